"""The embedding family's figure of record: TripletMarginLoss forward_backward with all three
gradients (anchor, positive, negative) at 4096 x 128 float32, against torch forward + backward and
JAX jit(value_and_grad) over all three, interleaved medians in one run.

    python benchmarks/bench_embedding.py
"""
import numpy as np

import lossengine as le
from lossengine.bench import interleaved_medians

N, D = 4096, 128


def engines():
    rng = np.random.default_rng(0)
    a, p, n = (rng.standard_normal((N, D)).astype(np.float32) for _ in range(3))
    loss = le.TripletMarginLoss()
    wrt = ("anchor", "positive", "negative")
    outs = tuple(np.empty_like(a) for _ in range(3))
    found = {"lossengine": lambda: loss.forward_backward(a, p, n, wrt=wrt),
             "lossengine (out=)": lambda: loss.forward_backward(a, p, n, wrt=wrt, out=outs)}
    try:
        import torch
        ta, tp, tn = (torch.from_numpy(x).requires_grad_(True) for x in (a, p, n))

        def torch_call():
            value = torch.nn.functional.triplet_margin_loss(ta, tp, tn)
            return value, torch.autograd.grad(value, (ta, tp, tn))
        found["torch"] = torch_call
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        def f(a, p, n):
            d_pos = jnp.sqrt(jnp.sum((a - p + 1e-6) ** 2, axis=-1))
            d_neg = jnp.sqrt(jnp.sum((a - n + 1e-6) ** 2, axis=-1))
            return jnp.mean(jnp.maximum(1.0 + d_pos - d_neg, 0))
        vg = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
        ja, jp, jn = (jnp.asarray(x) for x in (a, p, n))
        found["jax"] = lambda: jax.block_until_ready(vg(ja, jp, jn))
        found["jax"]()
    except ImportError:
        pass
    return found


def test_triplet_all_gradients(benchmark):
    benchmark(engines()["lossengine"])


if __name__ == "__main__":
    med = interleaved_medians(engines(), repeat=40)
    base = med["lossengine"]
    print(f"TripletMarginLoss {N}x{D} float32, forward_backward wrt anchor, positive, negative")
    for name, t in med.items():
        print(f"  {name:20s} {t * 1e3:8.3f} ms   {t / base:5.2f}x lossengine's time")

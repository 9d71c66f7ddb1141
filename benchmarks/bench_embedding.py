"""The embedding family's figures of record: forward_backward of MarginRankingLoss, CosineEmbeddingLoss,
TripletMarginLoss and TripletMarginWithDistanceLoss at 4096 x 128 float32 (mean, every differentiable
argument's gradient), against torch forward + backward (autograd.grad over the same arguments) and
JAX jit(value_and_grad(..., argnums=all of them)). Defaults of every loss (margin 0 / 1, p = 2,
eps = 1e-6, no swap); MarginRankingLoss is elementwise, so its inputs are 4096 x 128 too.

    python benchmarks/bench_embedding.py            # interleaved medians and ratios, one run
    pytest benchmarks/bench_embedding.py --benchmark-enable --benchmark-group-by=param:loss

Each engine's result is checked against lossengine's before anything is timed (a peer computing
something else would make its time meaningless).
"""
import numpy as np
import pytest

import lossengine as le
from lossengine.bench import interleaved_medians

N, D = 4096, 128
LOSSES = ("margin_ranking_loss", "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss")


def _inputs(name):
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((N, D)).astype(np.float32) for _ in range(3)]
    if name == "margin_ranking_loss":
        return le.MarginRankingLoss(), (x[0], x[1], rng.choice([-1.0, 1.0], (N, D)).astype(np.float32))
    if name == "cosine_embedding_loss":
        return le.CosineEmbeddingLoss(), (x[0], x[1], rng.choice([-1.0, 1.0], N).astype(np.float32))
    return le.registry.get(name)(), tuple(x)


def _jax_function(name, jnp):
    if name == "margin_ranking_loss":
        return lambda x1, x2, y: jnp.mean(jnp.maximum(0.0, -y * (x1 - x2)))

    if name == "cosine_embedding_loss":
        def cosine(x1, x2, y):
            # torch's: sum(x1 x2) / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12)), where() on the target
            cos = jnp.sum(x1 * x2, -1) / jnp.sqrt((jnp.sum(x1 * x1, -1) + 1e-12) * (jnp.sum(x2 * x2, -1) + 1e-12))
            return jnp.mean(jnp.where(y == 1, 1.0 - cos, jnp.where(y == -1, jnp.maximum(0.0, cos), 0.0)))
        return cosine

    def triplet(a, p, n):
        d_pos = jnp.sqrt(jnp.sum((a - p + 1e-6) ** 2, axis=-1))
        d_neg = jnp.sqrt(jnp.sum((a - n + 1e-6) ** 2, axis=-1))
        return jnp.mean(jnp.maximum(1.0 + d_pos - d_neg, 0.0))
    return triplet


def engines(name):
    """{engine: a call computing the value and every differentiable argument's gradient}."""
    loss, arrays = _inputs(name)
    wrt = loss.differentiable
    k = len(wrt)
    ours = loss.forward_backward(*arrays, wrt=wrt)
    found = {"lossengine": lambda: loss.forward_backward(*arrays, wrt=wrt)}
    checks = {}
    try:
        import torch
        ts = [torch.from_numpy(a).requires_grad_(i < k) for i, a in enumerate(arrays)]
        fn = getattr(torch.nn.functional, name)

        def torch_call():
            value = fn(*ts)
            return value, torch.autograd.grad(value, ts[:k])
        found["torch"] = torch_call
        checks["torch"] = lambda r: (r[0].item(), [g.numpy() for g in r[1]])
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp
        vg = jax.jit(jax.value_and_grad(_jax_function(name, jnp), argnums=tuple(range(k))))
        js = [jnp.asarray(a) for a in arrays]
        found["jax"] = lambda: jax.block_until_ready(vg(*js))
        checks["jax"] = lambda r: (float(r[0]), [np.asarray(g) for g in r[1]])
    except ImportError:
        pass
    for engine, convert in checks.items():
        value, grads = convert(found[engine]())
        np.testing.assert_allclose(value, ours[0], rtol=1e-4, err_msg=f"{engine} {name} value")
        for g, o in zip(grads, ours[1]):
            np.testing.assert_allclose(g, o, rtol=1e-3, atol=1e-6, err_msg=f"{engine} {name} gradient")
    return found


@pytest.mark.parametrize("engine", ["lossengine", "torch", "jax"])
@pytest.mark.parametrize("loss", LOSSES)
def test_forward_backward(benchmark, loss, engine):
    found = engines(loss)
    if engine not in found:
        pytest.skip(f"{engine} is not installed")
    benchmark(found[engine])


if __name__ == "__main__":
    print(f"{N}x{D} float32, forward_backward (mean) wrt every differentiable argument; "
          f"interleaved medians, {le.get_num_threads()} threads")
    for name in LOSSES:
        med = interleaved_medians(engines(name), repeat=60)
        base = med["lossengine"]
        peers = {k: v for k, v in med.items() if k != "lossengine"}
        fastest = min(peers, key=peers.get) if peers else None
        print(f"{name}: " + "   ".join(f"{k} {t * 1e6:7.1f} us" for k, t in med.items())
              + (f"   fastest peer {fastest}: {peers[fastest] / base:.2f}x" if fastest else ""))

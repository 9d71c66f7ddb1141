"""Embedding / ranking losses: lossengine forward_backward (value and every gradient) vs torch
forward + backward and JAX jit(value_and_grad), float32, reduction 'mean'.

    pytest benchmarks/bench_embedding.py --benchmark-enable --benchmark-group-by=param:case
    python benchmarks/bench_embedding.py [--threads N]   # the README table (medians, same run, interleaved)

Every engine computes the same gradients: all three for the triplet losses, input1 and input2 for
the pairwise ones. Compare rows of the same case, measured in the same run (the machines are shared
and noisy). Peers that are not installed are skipped.
"""
from __future__ import annotations

import numpy as np
import pytest

import lossengine as le
from lossengine.bench import interleaved_medians

N, D = 4096, 128
CASES = ("triplet_margin_loss", "triplet_cosine", "cosine_embedding_loss", "margin_ranking_loss")
ENGINES = ("lossengine", "torch", "jax")


def inputs(case: str):
    rng = np.random.default_rng(0)
    if case == "margin_ranking_loss":      # the same number of values as the N x D cases
        x1, x2 = rng.standard_normal((2, N * D)).astype(np.float32)
        return x1, x2, rng.choice(np.float32([-1, 1]), N * D)
    if case == "cosine_embedding_loss":
        x1, x2 = rng.standard_normal((2, N, D)).astype(np.float32)
        return x1, x2, rng.choice(np.float32([-1, 1]), N)
    return tuple(rng.standard_normal((N, D)).astype(np.float32) for _ in range(3))


def _lossengine(case):
    if case == "triplet_margin_loss":
        return le.TripletMarginLoss(), ("anchor", "positive", "negative")
    if case == "triplet_cosine":
        return le.TripletMarginWithDistanceLoss(distance_function="cosine"), ("anchor", "positive", "negative")
    if case == "cosine_embedding_loss":
        return le.CosineEmbeddingLoss(margin=0.1), ("input1", "input2")
    return le.MarginRankingLoss(margin=0.1), ("input1", "input2")


def make(engine: str, case: str, arrays):
    """A zero-argument callable computing the value and the case's gradients, or None when the peer
    is not installed."""
    differentiable = 3 if case.startswith("triplet") else 2
    if engine == "lossengine":
        loss, wrt = _lossengine(case)
        return lambda: loss.forward_backward(*arrays, wrt=wrt)
    if engine == "torch":
        try:
            import torch
        except ImportError:
            return None
        F = torch.nn.functional
        fn = {"triplet_margin_loss": F.triplet_margin_loss,
              "triplet_cosine": lambda a, p, n: F.triplet_margin_with_distance_loss(
                  a, p, n, distance_function=lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1)),
              "cosine_embedding_loss": lambda a, b, t: F.cosine_embedding_loss(a, b, t, margin=0.1),
              "margin_ranking_loss": lambda a, b, t: F.margin_ranking_loss(a, b, t, margin=0.1)}[case]
        tensors = [torch.from_numpy(a) for a in arrays]

        def run():
            leaves = [t.detach().requires_grad_() for t in tensors[:differentiable]]
            value = fn(*leaves, *tensors[differentiable:])
            value.backward()
            return value, [t.grad for t in leaves]
        return run
    if engine == "jax":
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            return None

        def pairwise(x, y):
            return jnp.sqrt(jnp.sum((x - y + 1e-6) ** 2, axis=-1))

        def cosine_distance(x, y):
            nx = jnp.maximum(jnp.linalg.norm(x, axis=-1), 1e-8)
            ny = jnp.maximum(jnp.linalg.norm(y, axis=-1), 1e-8)
            return 1.0 - jnp.sum(x * y, axis=-1) / (nx * ny)

        def triplet(distance):
            return lambda a, p, n: jnp.mean(jnp.maximum(1.0 + distance(a, p) - distance(a, n), 0.0))

        def cosine_embedding(x1, x2, t):
            eps = 1e-12
            cos = jnp.sum(x1 * x2, -1) / jnp.sqrt((jnp.sum(x1 * x1, -1) + eps) * (jnp.sum(x2 * x2, -1) + eps))
            return jnp.mean(jnp.where(t == 1, 1.0 - cos, jnp.where(t == -1, jnp.maximum(cos - 0.1, 0.0), 0.0)))

        def margin_ranking(x1, x2, t):
            return jnp.mean(jnp.maximum(-t * (x1 - x2) + 0.1, 0.0))

        objective = {"triplet_margin_loss": triplet(pairwise), "triplet_cosine": triplet(cosine_distance),
                     "cosine_embedding_loss": cosine_embedding, "margin_ranking_loss": margin_ranking}[case]
        fn = jax.jit(jax.value_and_grad(objective, argnums=tuple(range(differentiable))))
        device = [jnp.asarray(a) for a in arrays]
        return lambda: jax.block_until_ready(fn(*device))
    raise ValueError(engine)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("engine", ENGINES)
def test_embedding_forward_backward(benchmark, case, engine):
    fn = make(engine, case, inputs(case))
    if fn is None:
        pytest.skip(f"{engine} not installed")
    fn()
    benchmark(fn)


def figures(cases=CASES, engines=ENGINES, repeat: int = 30) -> list[dict]:
    """Median seconds per engine for each case, measured in one run, engines interleaved."""
    rows = []
    for case in cases:
        arrays = inputs(case)
        callables = {e: make(e, case, arrays) for e in engines}
        medians = interleaved_medians({e: fn for e, fn in callables.items() if fn is not None}, repeat=repeat)
        rows.append({"case": case, **{e: medians.get(e) for e in engines}})
    return rows


def format_figures(rows: list[dict], engines=ENGINES) -> str:
    def fmt(s):
        return "-" if s is None else (f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms")
    lines = ["| case | " + " | ".join(engines) + " | fastest peer / lossengine |",
             "|---|" + "---|" * len(engines) + "---|"]
    for row in rows:
        peers = [row[e] for e in engines if e != "lossengine" and row[e] is not None]
        ratio = f"{min(peers) / row['lossengine']:.2f}x" if peers else "-"
        lines.append(f"| {row['case']} | " + " | ".join(fmt(row[e]) for e in engines) + f" | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="lossengine's thread count (default: all cores)")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    if args.threads:
        le.set_num_threads(args.threads)
    print(f"lossengine threads: {le.get_num_threads()}, {N}x{D} float32, reduction 'mean'")
    print(format_figures(figures(repeat=args.repeat)))

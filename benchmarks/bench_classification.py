"""Cross-entropy forward_backward vs torch forward+backward, JAX/optax jit(value_and_grad) and
scikit-learn's HalfMultinomialLoss.loss_gradient, float32, with and without label smoothing.

    pytest benchmarks/bench_classification.py --benchmark-enable --benchmark-group-by=param:case
    python benchmarks/bench_classification.py            # the README table (medians, same run)

Compare rows of the same group, measured in the same run (the machines are shared and noisy).
Peers that are not installed are skipped. sklearn has no label smoothing, so it runs only without.
"""
from __future__ import annotations


import numpy as np
import pytest

import lossengine as le
from lossengine.bench import interleaved_medians

SHAPES = [(64, 10), (4096, 1000), (65536, 100)]
CASES = [(n, c, ls) for n, c in SHAPES for ls in (0.0, 0.1)]
ENGINES = ("lossengine", "torch", "jax", "sklearn")


def inputs(n: int, c: int):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, c)).astype(np.float32), rng.integers(0, c, n)


def make(engine: str, x: np.ndarray, t: np.ndarray, label_smoothing: float):
    """A zero-argument callable computing the mean cross-entropy and its input gradient, or None
    when the peer is not installed (or has no such option)."""
    if engine == "lossengine":
        loss = le.CrossEntropyLoss(label_smoothing=label_smoothing)
        return lambda: loss.forward_backward(x, t)
    if engine == "torch":
        try:
            import torch
        except ImportError:
            return None
        X, T = torch.from_numpy(x), torch.from_numpy(t)

        def run():
            xr = X.detach().requires_grad_()
            value = torch.nn.functional.cross_entropy(xr, T, label_smoothing=label_smoothing)
            value.backward()
            return value, xr.grad
        return run
    if engine == "jax":
        try:
            import jax
            import jax.numpy as jnp
            import optax
        except ImportError:
            return None
        c = x.shape[1]

        def objective(logits, labels):
            onehot = jax.nn.one_hot(labels, c, dtype=logits.dtype)
            if label_smoothing:
                onehot = optax.smooth_labels(onehot, label_smoothing)
            return optax.softmax_cross_entropy(logits, onehot).mean()
        fn = jax.jit(jax.value_and_grad(objective))
        X, T = jnp.asarray(x), jnp.asarray(t.astype(np.int32))
        return lambda: jax.block_until_ready(fn(X, T))
    if engine == "sklearn":
        if label_smoothing:
            return None
        try:
            from sklearn._loss.loss import HalfMultinomialLoss
        except ImportError:
            return None
        loss = HalfMultinomialLoss(n_classes=x.shape[1])
        y = t.astype(np.float32)
        xs = np.ascontiguousarray(x)
        # Per-sample values and gradients, as sklearn's solvers call it (it has no reduction).
        return lambda: loss.loss_gradient(y_true=y, raw_prediction=xs, n_threads=le.get_num_threads())
    raise ValueError(engine)


@pytest.mark.parametrize("case", CASES, ids=[f"{n}x{c}-ls{ls}" for n, c, ls in CASES])
@pytest.mark.parametrize("engine", ENGINES)
def test_cross_entropy_forward_backward(benchmark, case, engine):
    n, c, ls = case
    x, t = inputs(n, c)
    fn = make(engine, x, t, ls)
    if fn is None:
        pytest.skip(f"{engine} not installed or without this option")
    fn()
    benchmark(fn)


def figures(shapes=SHAPES, engines=ENGINES, smoothing=(0.0, 0.1)) -> list[dict]:
    """Median seconds per engine for each shape and smoothing, measured in one run, interleaved."""
    rows = []
    for (n, c), ls in [(s, ls) for s in shapes for ls in smoothing]:
        x, t = inputs(n, c)
        callables = {e: make(e, x, t, ls) for e in engines}
        medians = interleaved_medians({e: fn for e, fn in callables.items() if fn is not None},
                                      repeat=200 if n * c <= 10_000 else 15)
        rows.append({"shape": (n, c), "label_smoothing": ls, **{e: medians.get(e) for e in engines}})
    return rows


def format_figures(rows: list[dict], engines=ENGINES) -> str:
    def fmt(s):
        return "-" if s is None else (f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms")
    lines = ["| shape | smoothing | " + " | ".join(engines) + " | fastest peer / lossengine |",
             "|---|---|" + "---|" * len(engines) + "---|"]
    for row in rows:
        peers = [row[e] for e in engines if e != "lossengine" and row[e] is not None]
        ratio = f"{min(peers) / row['lossengine']:.2f}x" if peers else "-"
        lines.append(f"| {row['shape'][0]}x{row['shape'][1]} | {row['label_smoothing']} | "
                     + " | ".join(fmt(row[e]) for e in engines) + f" | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"threads: {le.get_num_threads()}")
    print(format_figures(figures()))

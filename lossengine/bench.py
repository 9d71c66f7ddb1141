"""``lossengine bench``: forward_backward against the peers installed here, measured in one run.

Peers are optional and imported only when this command runs: torch (forward + backward, the same
functional name and default options), JAX (``jit(value_and_grad)`` where a formula is known). Each
figure is the median of ``--repeat`` timed calls after a warm-up, taken in alternating blocks per
engine (``interleaved_medians``); ratios compare medians taken in the same run, because these machines
are shared and noisy. The scripts in benchmarks/ use the same timer.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np

DEFAULT_LOSSES = ("mse_loss", "binary_cross_entropy_with_logits")


def bench_inputs(loss_class: type, n: int, dtype) -> tuple:
    """Inputs of about ``n`` elements in the loss's valid domain: its sample inputs tiled along axis 0."""
    arrays = [np.asarray(a) for a in loss_class.sample_inputs(np.random.default_rng(0), dtype)]
    first = arrays[0]
    row_size = first.size // first.shape[0]
    rows = max(1, -(-n // row_size))
    return tuple(np.ascontiguousarray(np.resize(a, (rows,) + a.shape[1:])) if a.ndim else a for a in arrays)


def _torch_peer(name: str, arrays: tuple) -> Callable[[], object] | None:
    try:
        import torch
    except ImportError:
        return None
    fn = getattr(torch.nn.functional, name, None)
    if fn is None:
        return None
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]

    def run():
        x = tensors[0].detach().requires_grad_(True)
        value = fn(x, *tensors[1:])
        value.backward()
        return value, x.grad

    return run


def _jax_peer(name: str, arrays: tuple) -> Callable[[], object] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    formulas = {
        "mse_loss": lambda x, y: jnp.mean((x - y) ** 2),
        "l1_loss": lambda x, y: jnp.mean(jnp.abs(x - y)),
        "binary_cross_entropy_with_logits":
            lambda x, y: jnp.mean((1 - y) * x - jax.nn.log_sigmoid(x)),
        # The embedding family at its defaults (pairwise_distance's eps = 1e-6; torch's EPSILON).
        "margin_ranking_loss": lambda x1, x2, t: jnp.mean(jnp.maximum(-t * (x1 - x2), 0.0)),
        "cosine_embedding_loss": lambda x1, x2, t: jnp.mean(_jax_cosine_embedding(jnp, x1, x2, t)),
        "triplet_margin_loss": lambda a, p, n: jnp.mean(jnp.maximum(
            1.0 + jnp.linalg.norm(a - p + 1e-6, axis=-1) - jnp.linalg.norm(a - n + 1e-6, axis=-1), 0.0)),
    }
    if name not in formulas:
        return None
    value_and_grad = jax.jit(jax.value_and_grad(formulas[name]))
    device_arrays = [jnp.asarray(a) for a in arrays]

    def run():
        value, grad = value_and_grad(*device_arrays)
        grad.block_until_ready()
        return value, grad

    return run


def _jax_cosine_embedding(jnp, x1, x2, t):
    cos = jnp.sum(x1 * x2, -1) / jnp.sqrt((jnp.sum(x1 * x1, -1) + 1e-12) * (jnp.sum(x2 * x2, -1) + 1e-12))
    return jnp.where(t == 1, 1.0 - cos, jnp.where(t == -1, jnp.maximum(cos, 0.0), 0.0))


SETTLE_SECONDS = 0.05


def interleaved_medians(engines: dict[str, Callable[[], object]], repeat: int,
                        rounds: int = 3) -> dict[str, float]:
    """Median seconds per engine over ``repeat`` timed calls, taken in ``rounds`` alternating blocks.

    Each engine runs its calls in blocks (A A A, B B B, A A A, ...), so a burst of load on this shared
    machine falls on every engine alike, while no engine is timed with another's thread pool still
    spinning from the previous call: a short pause before each block lets the peers' worker threads
    (OpenMP, XLA) go idle, as they would in a program that uses one engine.
    """
    per_block = max(1, -(-repeat // rounds))
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            time.sleep(SETTLE_SECONDS)
            fn()  # warm-up: first-touch pages, JIT compilation, thread-pool start
            for _ in range(per_block):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def run_benchmarks(names, sizes, dtype, repeat) -> list[dict]:
    from . import registry

    rows = []
    for name in names:
        cls = registry.get(name)
        loss = cls()
        for n in sizes:
            arrays = bench_inputs(cls, n, dtype)
            engines = {"lossengine": lambda: loss.forward_backward(*arrays)}
            for peer, make in (("torch", _torch_peer), ("jax", _jax_peer)):
                fn = make(name, arrays)
                if fn is not None:
                    engines[peer] = fn
            reps = max(5, repeat if n <= 1_000_000 else repeat // 4)
            rows.append({"loss": name, "n": n, "dtype": np.dtype(dtype).name,
                         **interleaved_medians(engines, reps)})
    return rows


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:9.2f} ms"


def main(args: argparse.Namespace) -> int:
    from ._threads import get_num_threads

    names = args.names or list(DEFAULT_LOSSES)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    dtype = np.dtype(args.dtype)
    print(f"forward_backward medians, {dtype.name}, lossengine threads={get_num_threads()} "
          f"(ratio = peer time / lossengine time; > 1 means lossengine is faster)")
    for row in run_benchmarks(names, sizes, dtype, args.repeat):
        peers = "".join(f"   {peer} {_fmt(row[peer])} ({row[peer] / row['lossengine']:.2f}x)"
                        for peer in ("torch", "jax") if peer in row)
        print(f"{row['loss']:34} n={row['n']:<10} lossengine {_fmt(row['lossengine'])}{peers}")
    return 0

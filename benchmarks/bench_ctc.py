"""CTCLoss forward_backward vs torch forward+backward and optax.ctc_loss under jit(value_and_grad),
float32, reduction 'mean', at the issue's two sizes.

    pytest benchmarks/bench_ctc.py --benchmark-enable --benchmark-group-by=param:case
    python benchmarks/bench_ctc.py            # the README table (medians, one interleaved run)

Engines: ``lossengine`` (log_probs in, the default rescaled probability-space recursions),
``lossengine-logits`` (from_logits=True: log_softmax inside, gradient wrt the logits, as optax),
``lossengine-logspace`` (the same loss with the log-space recursions forced on every sample: the
measurement behind the kernel's choice), ``torch`` (F.ctc_loss on log_probs, then backward) and
``jax`` (optax.ctc_loss on the same values as logits: log_softmax of log-probabilities is the
identity, so it computes the same loss). Compare rows measured in the same run; peers that are not
installed are skipped.
"""
from __future__ import annotations

import numpy as np
import pytest

import lossengine as le
from lossengine.bench import interleaved_medians

CASES = [(100, 16, 30, 30), (400, 32, 60, 80)]     # T, N, C, S
ENGINES = ("lossengine", "lossengine-logits", "lossengine-logspace", "torch", "jax")


def inputs(T: int, N: int, C: int, S: int):
    """float32 log_probs (T, N, C); padded targets (N, S) with labels in [1, C); input lengths in
    [T/2, T] (the first T), target lengths in [S/2, S] (the first S): every sample feasible."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((T, N, C))
    log_probs = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(np.float32)
    targets = rng.integers(1, C, size=(N, S))
    input_lengths = rng.integers(T // 2, T + 1, size=N)
    target_lengths = rng.integers(S // 2, S + 1, size=N)
    input_lengths[0], target_lengths[0] = T, S
    return log_probs, targets, input_lengths, target_lengths


def make(engine: str, log_probs, targets, input_lengths, target_lengths):
    """A zero-argument callable computing the mean CTC loss and its gradient, or None when the
    peer is not installed."""
    args = (log_probs, targets, input_lengths, target_lengths)
    if engine.startswith("lossengine"):
        loss = le.CTCLoss(from_logits=engine == "lossengine-logits")
        loss._log_space = engine == "lossengine-logspace"
        return lambda: loss.forward_backward(*args)
    if engine == "torch":
        try:
            import torch
        except ImportError:
            return None
        lp, tg = torch.from_numpy(log_probs), torch.from_numpy(targets)
        il, tl = torch.from_numpy(input_lengths), torch.from_numpy(target_lengths)

        def run():
            x = lp.detach().requires_grad_()
            value = torch.nn.functional.ctc_loss(x, tg, il, tl)
            value.backward()
            return value, x.grad
        return run
    if engine == "jax":
        try:
            import jax
            import jax.numpy as jnp
            import optax
        except ImportError:
            return None
        T, N, _ = log_probs.shape
        S = targets.shape[1]
        logits = jnp.asarray(np.ascontiguousarray(log_probs.transpose(1, 0, 2)))     # (N, T, C)
        logit_paddings = jnp.asarray((np.arange(T)[None, :] >= input_lengths[:, None]).astype(np.float32))
        labels = jnp.asarray(targets.astype(np.int32))
        label_paddings = jnp.asarray((np.arange(S)[None, :] >= target_lengths[:, None]).astype(np.float32))
        lengths = jnp.asarray(np.maximum(target_lengths, 1).astype(np.float32))

        def objective(x):      # torch's 'mean': per-sample loss / target length, averaged
            per_seq = optax.ctc_loss(x, logit_paddings, labels, label_paddings, blank_id=0)
            return jnp.mean(per_seq / lengths)
        fn = jax.jit(jax.value_and_grad(objective))
        return lambda: jax.block_until_ready(fn(logits))
    raise ValueError(engine)


@pytest.mark.parametrize("case", CASES, ids=[f"T{t}-N{n}-C{c}-S{s}" for t, n, c, s in CASES])
@pytest.mark.parametrize("engine", ENGINES)
def test_ctc_forward_backward(benchmark, case, engine):
    fn = make(engine, *inputs(*case))
    if fn is None:
        pytest.skip(f"{engine} not installed")
    fn()
    benchmark(fn)


def figures(cases=CASES, engines=ENGINES) -> list[dict]:
    """Median seconds per engine for each size, measured in one run, interleaved."""
    rows = []
    for case in cases:
        arrays = inputs(*case)
        callables = {e: make(e, *arrays) for e in engines}
        medians = interleaved_medians({e: fn for e, fn in callables.items() if fn is not None},
                                      repeat=60 if case[0] * case[1] <= 2000 else 15)
        rows.append({"case": case, **{e: medians.get(e) for e in engines}})
    return rows


def format_figures(rows: list[dict], engines=ENGINES) -> str:
    def fmt(s):
        return "-" if s is None else (f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms")
    peers = [e for e in engines if not e.startswith("lossengine")]
    lines = ["| T, N, C, S | " + " | ".join(engines) + " | fastest peer / lossengine |",
             "|---|" + "---|" * len(engines) + "---|"]
    for row in rows:
        times = [row[e] for e in peers if row[e] is not None]
        ratio = f"{min(times) / row['lossengine']:.2f}x" if times else "-"
        lines.append(f"| {', '.join(map(str, row['case']))} | " + " | ".join(fmt(row[e]) for e in engines)
                     + f" | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"threads: {le.get_num_threads()}")
    print(format_figures(figures()))

"""CTCLoss forward_backward vs torch forward+backward and optax.ctc_loss under jit(value_and_grad),
float32, reduction 'mean', at the issue's two sizes: the case table's ctc_loss case (lossengine/bench/
cases.py, peers checked against lossengine before timing) with this script's inputs and two more
lossengine engines.

    python benchmarks/bench_ctc.py            # the docs' table (medians, one interleaved run)
    pytest benchmarks/bench_ctc.py --benchmark-enable --benchmark-group-by=param:case

Engines: ``lossengine`` (log_probs in, the default rescaled probability-space recursions),
``from_logits=True`` (log_softmax inside, gradient wrt the logits: the case the peers are checked
against), ``log space forced`` (the default loss with the log-space recursions forced on every sample:
the measurement behind the kernel's choice), ``torch`` (F.ctc_loss on log_probs, autograd.grad) and
``jax`` (optax.ctc_loss on the same values as logits: log_softmax of log-probabilities is the
identity, so it computes the same loss). Peers that are not installed are skipped.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import lossengine as le

CASES = [(100, 16, 30, 30), (400, 32, 60, 80)]     # T, N, C, S
EXTRA = ("lossengine", "log space forced")          # beside the case's own engines


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


def prepared(case):
    """The table's ctc_loss case (from_logits=True) on these inputs, its peers checked, with the
    default loss and the log-space one added as engines (checked against each other)."""
    from lossengine.bench import CASES as TABLE, prepare

    T, N, C, S = case
    table_case = next(c for c in TABLE if c.loss == "ctc_loss")
    p = prepare(replace(table_case, inputs=lambda rng, shape, dtype: inputs(T, N, C, S)), (T, N, C), np.float32,
                peers=("torch", "jax"))
    assert p.error is None, p.error
    p.engines["from_logits=True"] = p.engines.pop("lossengine")
    default, log_space = le.CTCLoss(), le.CTCLoss()
    log_space._log_space = True
    p.engines["lossengine"] = lambda: default.forward_backward(*p.arrays)
    p.engines["log space forced"] = lambda: log_space.forward_backward(*p.arrays)
    for a, b in zip(p.engines["lossengine"](), p.engines["log space forced"]()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    p.first.update({name: None for name in EXTRA})
    return p


@pytest.mark.parametrize("case", CASES, ids=[f"T{t}-N{n}-C{c}-S{s}" for t, n, c, s in CASES])
@pytest.mark.parametrize("engine", EXTRA + ("from_logits=True", "torch", "jax"))
def test_ctc_forward_backward(benchmark, case, engine):
    p = prepared(case)
    if engine not in p.engines:
        pytest.skip(f"{engine}: {p.skipped.get(engine)}")
    benchmark(p.engines[engine])


def main() -> None:
    from lossengine.bench import measure
    from lossengine.bench.report import fmt_seconds, table

    print(f"threads: {le.get_num_threads()}")
    engines = ("lossengine", "from_logits=True", "log space forced", "torch", "jax")
    rows, skipped = [], {}
    for case in CASES:
        p = prepared(case)
        skipped.update(p.skipped)
        medians = {e: r["median"] for e, r in measure(p, repeat=60 if case[0] * case[1] <= 2000 else 15)["results"].items()}
        peers = [medians[e] for e in ("torch", "jax") if e in medians]
        rows.append([", ".join(map(str, case))] + [fmt_seconds(medians[e]) if e in medians else "-" for e in engines]
                    + [f"{min(peers) / medians['lossengine']:.2f}x" if peers else "-"])
    print(table(["T, N, C, S", *engines, "fastest peer / lossengine"], rows, markdown=True))
    for peer, why in skipped.items():
        print(f"{peer}: {why}")


if __name__ == "__main__":
    main()

"""pytest-benchmark: every loss's forward_backward against each installed peer, from the case table of
``lossengine bench`` (lossengine/bench/cases.py ``CASES``; a registered loss without a declared case runs
against torch on its tiled sample inputs), float32, at each case's default sizes.

    pytest benchmarks/bench_losses.py --benchmark-enable --benchmark-group-by=param:case

Compare rows of the same group, measured in the same run (the machines are shared and noisy); for
interleaved medians and ratios use `lossengine bench`. A peer that is not installed, has no such loss,
or disagrees with lossengine's numbers is skipped with the reason. With benchmarks disabled (the
default addopts) each case runs once, checking that every engine still runs and agrees.
"""
import numpy as np
import pytest

from lossengine.bench import PEERS, prepare, select_cases

CASES = [(case, case.shape_for(size)) for case in select_cases(["all"])[0] for size in case.sizes]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.label}-{'x'.join(map(str, s))}" for c, s in CASES])
@pytest.mark.parametrize("engine", ("lossengine",) + PEERS)
def test_forward_backward(benchmark, case, engine):
    case, shape = case
    prepared = prepare(case, shape, np.float32, peers=() if engine == "lossengine" else (engine,))
    assert prepared.error is None, prepared.error
    if engine not in prepared.engines:
        pytest.skip(f"{engine}: {prepared.skipped[engine]}")
    benchmark(prepared.engines[engine])

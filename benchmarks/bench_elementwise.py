"""pytest-benchmark: elementwise forward_backward vs torch forward+backward and JAX jit(value_and_grad).

    pytest benchmarks/bench_elementwise.py --benchmark-enable --benchmark-group-by=param:case

Compare rows of the same group, measured in the same run (the machines are shared and noisy).
"""
import numpy as np
import pytest

import lossengine as le
from lossengine.bench import _jax_peer, _torch_peer, bench_inputs

CASES = [(name, n) for name in ("mse_loss", "binary_cross_entropy_with_logits") for n in (1_000, 10_000_000)]


@pytest.mark.parametrize("case", CASES, ids=[f"{name}-{n:.0e}" for name, n in CASES])
@pytest.mark.parametrize("engine", ["lossengine", "torch", "jax"])
def test_forward_backward(benchmark, case, engine):
    name, n = case
    cls = le.registry.get(name)
    arrays = bench_inputs(cls, n, np.float32)
    if engine == "lossengine":
        loss = cls()
        fn = lambda: loss.forward_backward(*arrays)  # noqa: E731
    else:
        fn = (_torch_peer if engine == "torch" else _jax_peer)(name, arrays)
        if fn is None:
            pytest.skip(f"{engine} not installed")
    benchmark(fn)

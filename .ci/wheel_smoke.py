"""Smoke test of an installed lossengine wheel (.ci/wheel; cibuildwheel's test-command): imported
from the installed package, its kernels multithreaded, a loss's value and gradient right, the
validator passing, and on Linux the OpenMP runtime the wheel carries (lossengine.libs/) in use."""
import os
import sys

import numpy as np

import lossengine as le
from lossengine import _elementwise

assert "site-packages" in le.__file__, f"not the installed package: {le.__file__}"
rng = np.random.default_rng(0)
x, t = rng.standard_normal(200_000), rng.standard_normal(200_000)
with le.threads(2):
    value, grad = le.MSELoss().forward_backward(x, t)
assert np.isclose(value, np.mean((x - t) ** 2)) and np.allclose(grad, 2 * (x - t) / x.size)
assert _elementwise.openmp_enabled(), "the wheel's kernels are serial"
assert le.check(le.HuberLoss).ok
runtime = "?"
if sys.platform.startswith("linux"):
    with open("/proc/self/maps") as maps:
        gomp = {line.split()[-1] for line in maps if "libgomp" in line}
    assert gomp and all("lossengine.libs" in path for path in gomp), f"OpenMP runtime not the wheel's: {gomp}"
    runtime = os.path.basename(next(iter(gomp)))
print(f"wheel smoke test: ok (OpenMP runtime {runtime}; ISA {le._isa.describe()})")

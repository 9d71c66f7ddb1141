"""Issue #31: the float32 vector math (pyx/_vecmath32.pxd) that float32 inputs of the elementwise
losses run on: its accuracy against a float64 reference on dense sweeps (the extremes included),
and the bit-identity of float32 results across the ISA variants it makes possible."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
from lossengine import _elementwise, _isa

F32 = np.float32
REFERENCE = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1}
# Max error in float32 ulps of the float64 reference (measured: exp 0.97, log 0.83, log1p 1.44, expm1 1.68).
MAX_ULP = {"exp": 1.0, "log": 1.0, "log1p": 1.5, "expm1": 2.0}


def _floats_between(lo: float, hi: float) -> np.ndarray:
    """Every float32 in [lo, hi] (lo, hi of one sign)."""
    a, b = np.array([lo, hi], F32).view(np.int32)
    a, b = min(a, b), max(a, b)
    return np.arange(a, b + 1, dtype=np.int64).astype(np.int32).view(F32)


def _sweep() -> np.ndarray:
    """A dense sample of all floats (every 1021st bit pattern, both signs, NaNs, infinities) plus every
    float where the functions turn: exp's overflow and its underflow through the denormals, every
    40th positive denormal, near 1, near -1, log1p's small arguments, expm1's switch at 0.7."""
    parts = [np.arange(0, 2**32, 1021, dtype=np.uint64).astype(np.uint32).view(F32),
             _floats_between(87.0, 89.5), _floats_between(-89.5, -86.0), _floats_between(-104.5, -100.0),
             np.arange(0, 0x00800001, 40, dtype=np.uint32).view(F32),
             _floats_between(0.999, 1.001), _floats_between(-1.0, -0.999), _floats_between(1e-8, 2e-8),
             _floats_between(-2e-8, -1e-8), _floats_between(0.69, 0.71), _floats_between(-0.71, -0.69),
             np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1 - 1e-7, 1 + 1.2e-7, -1 + 6e-8, 88.72283, 88.72284,
                       -87.33655, -103.27893, -103.97208, 1e-45, 1.1754942e-38, 3.4028235e38], F32)]
    return np.concatenate(parts)


def _ulp_error(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|got - ref| in float32 ulps at ref (ref float64, finite within float32's range)."""
    mag = np.abs(ref)
    exponent = np.frexp(np.maximum(mag, 2.0**-126))[1]          # mag = m 2^e, m in [0.5, 1)
    ulp = np.ldexp(1.0, exponent - 24)
    return np.abs(got.astype(np.float64) - ref) / ulp


@pytest.fixture(scope="module")
def sweep():
    return _sweep()


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_accuracy_within_a_few_ulp_of_float64(name, sweep):
    got = _elementwise._vecmath32(name, sweep)
    assert got.dtype == F32 and got.shape == sweep.shape
    with np.errstate(all="ignore"):
        ref = REFERENCE[name](sweep.astype(np.float64))
    special = ~np.isfinite(ref) | (np.abs(ref) > np.finfo(F32).max)
    # Where the float64 result is NaN, infinite or beyond float32's range, the float32 one is its
    # rounding (NaN, or the infinity of its sign).
    with np.errstate(over="ignore"):
        want = ref[special].astype(F32)
    np.testing.assert_array_equal(got[special], want, err_msg=f"{name}: specials")
    err = _ulp_error(got[~special], ref[~special])
    worst = int(np.argmax(err))
    assert err[worst] <= MAX_ULP[name], (
        f"{name}({sweep[~special][worst]!r}) = {got[~special][worst]!r}, float64 {ref[~special][worst]!r}: "
        f"{err[worst]:.3f} ulp")


def test_the_extremes():
    x = np.array([-np.inf, -104.0, -103.97208, -87.5, -88.0, 0.0, -0.0, 88.72283, 88.72284, 89.0, np.inf, np.nan], F32)
    e = _elementwise._vecmath32("exp", x)
    assert e[0] == 0 and e[1] == 0 and e[2] == np.float32(1e-45)     # the smallest denormal
    assert 0 < e[3] < np.finfo(F32).tiny and 0 < e[4] < np.finfo(F32).tiny   # denormal results
    assert e[5] == 1 and e[6] == 1 and np.isfinite(e[7]) and np.isinf(e[8]) and np.isinf(e[9]) and np.isinf(e[10])
    assert np.isnan(e[11])
    lg = _elementwise._vecmath32("log", np.array([0.0, -0.0, -1.0, 1e-45, 1.0, np.inf, np.nan, 1 - 6e-8], F32))
    assert lg[0] == -np.inf and lg[1] == -np.inf and np.isnan(lg[2]) and lg[3] == F32(np.log(np.float64(F32(1e-45))))
    assert lg[4] == 0 and lg[5] == np.inf and np.isnan(lg[6]) and lg[7] == np.float32(np.log(np.float64(F32(1 - 6e-8))))
    l1p = _elementwise._vecmath32("log1p", np.array([-1.0, -1.5, 1e-30, -1e-30, np.inf, np.nan, -(1 - 1e-7)], F32))
    assert l1p[0] == -np.inf and np.isnan(l1p[1]) and l1p[2] == F32(1e-30) and l1p[3] == F32(-1e-30)
    assert l1p[4] == np.inf and np.isnan(l1p[5])
    assert abs(l1p[6] - np.log1p(np.float64(F32(-(1 - 1e-7))))) < 1e-6
    em1 = _elementwise._vecmath32("expm1", np.array([-np.inf, np.inf, 1e-30, -200.0, 100.0, np.nan], F32))
    assert em1[0] == -1 and em1[1] == np.inf and em1[2] == F32(1e-30) and em1[3] == -1 and em1[4] == np.inf
    assert np.isnan(em1[5])


def test_the_entry_point_refuses_an_unknown_function():
    with pytest.raises(ValueError, match="sin"):
        _elementwise._vecmath32("sin", np.zeros(3, F32))


# ---------------------------------------------------------------------------------------------
# Bit-identity across the ISA variants: every elementwise loss (each option example too), float32,
# inputs long enough for the vector loops and their remainders, pushed to the extremes where the
# domain allows, in a fresh process per variant.
# ---------------------------------------------------------------------------------------------
PROBE = r"""
import hashlib, json, sys, numpy as np, lossengine as le
from lossengine import _elementwise, _isa
from lossengine.domains import domain_of, Real
from lossengine.losses import BUILTIN_LOSSES
from lossengine.losses.elementwise import ElementwiseLoss

def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.array(a, np.float32)
        a[np.isnan(a)] = np.nan          # one NaN pattern: a NaN's payload is not a result
        h.update(a.tobytes())
    return h.hexdigest()

out = {"chosen": sorted({v for v, _ in _isa.chosen.values()}), "results": {}}
rng = np.random.default_rng(31)
x = np.concatenate([np.linspace(-120, 120, 2001), rng.standard_normal(3000) * 30]).astype(np.float32)
for name in ("exp", "log", "log1p", "expm1"):
    out["results"]["vecmath32." + name] = digest(_elementwise._vecmath32(name, x))
for cls in BUILTIN_LOSSES:
    if not issubclass(cls, ElementwiseLoss):
        continue
    configs = [{}] + [{opt.name: ex} for opt in cls.options if getattr(opt, "kernel", True) for ex in opt.examples]
    for config in configs:
        rng = np.random.default_rng(7)
        arrays = [domain_of(cls, a).sample(rng, (4099,), np.float32) for a in cls.arguments]
        if isinstance(domain_of(cls, cls.arguments[0]), Real):
            arrays[0] = (arrays[0] * np.float32(25)).astype(np.float32)   # exp's far ends
        loss = cls(**config, reduction="none") if any(o.name == "reduction" for o in cls.options) else cls(**config)
        value, grads = loss.forward_backward(*arrays, wrt=cls.differentiable)
        results = [value, *grads]
        if loss.has_hessian:
            results += list(loss.gradient_hessian(*arrays))
        mean = cls(**config)
        mv, mg = mean.forward_backward(*arrays)
        out["results"][f"{cls.__name__}{config}"] = [digest(*results), float(mv), digest(mg)]
print(json.dumps(out))
"""


def _variant_run(variant: str, folder) -> dict:
    # The child imports the lossengine under test (this one), from a neutral folder.
    root = str(Path(le.__file__).resolve().parent.parent)
    env = dict(os.environ, LOSSENGINE_ISA=variant, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _built_and_runnable() -> list:
    runnable = _isa.supported_variants()
    return [v for v, _ in _isa.VARIANTS if v in runnable and _isa._variant_file(v, "_elementwise")]


@pytest.mark.parametrize("variant", [v for v, _ in _isa.VARIANTS])
def test_float32_results_are_bit_identical_across_isa_variants(variant, tmp_path):
    if variant not in _built_and_runnable():
        pytest.skip(f"{variant} is not built or this CPU cannot run it")
    baseline, ours = _variant_run(_isa.BASELINE, tmp_path), _variant_run(variant, tmp_path)
    assert baseline["chosen"] == [_isa.BASELINE] and ours["chosen"] == [variant]
    assert ours["results"].keys() == baseline["results"].keys()
    differ = [name for name, want in baseline["results"].items() if ours["results"][name] != want]
    assert not differ, f"float32 results differ between {variant} and the baseline: {differ}"

"""The kernels' ISA variants (lossengine/_isa.py, setup.py): each built variant the CPU runs gives
the baseline's numbers, is the one `lossengine info` names, and a variant the CPU lacks is never
loaded; under each, PoissonNLL's gradient is the same bits whichever arguments ``wrt`` selects."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
from lossengine import _isa

# Every built-in loss on its own sample inputs, float64, in a fresh process under one variant.
PROBE = r"""
import json, numpy as np, lossengine as le
from lossengine import _elementwise, _isa
from lossengine.losses import BUILTIN_LOSSES
out = {"chosen": {f: v for f, (v, _) in _isa.chosen.items()}, "flags": list(_elementwise.compile_flags()),
       "info": le.cli.build_info()["kernel variant"], "results": {}}
for cls in BUILTIN_LOSSES:
    arrays = cls.sample_inputs(np.random.default_rng(0), np.float64)
    value, grads = cls().forward_backward(*arrays, wrt=cls.differentiable)
    out["results"][cls.__name__] = [np.asarray(value).tolist()] + [np.asarray(g).tolist() for g in grads]
print(json.dumps(out))
"""


def _run(variant: str, folder) -> dict:
    # Run from another folder: `python -c` puts the working directory first on sys.path, and CI's
    # is the clone's root, whose unbuilt lossengine/ would shadow the installed one.
    env = dict(os.environ, LOSSENGINE_ISA=variant)
    done = subprocess.run([sys.executable, "-c", "import lossengine.cli\n" + PROBE], capture_output=True,
                          text=True, env=env, cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _built_and_runnable() -> list[str]:
    runnable = _isa.supported_variants()
    return [v for v, _ in _isa.VARIANTS if v in runnable and all(_isa._variant_file(v, f) for f in _isa.FAMILIES)]


def test_ci_builds_the_variants_this_cpu_runs():
    # CI sets this: a packaging change that dropped lossengine/_variants would otherwise only
    # show as a slower baseline.
    if os.environ.get("LOSSENGINE_REQUIRE_ISA_VARIANTS") != "1":
        pytest.skip("set LOSSENGINE_REQUIRE_ISA_VARIANTS=1 to require the variant builds")
    best = _isa.supported_variants()[0]
    if best == _isa.BASELINE:
        pytest.skip("this CPU runs no variant")
    assert best in _built_and_runnable()
    assert {v for v, _ in _isa.chosen.values()} == {best} or os.environ.get(_isa.ENV)


@pytest.mark.parametrize("variant", [v for v, _ in _isa.VARIANTS])
def test_a_variant_gives_the_baselines_numbers(variant, tmp_path):
    if variant not in _built_and_runnable():
        pytest.skip(f"{variant} is not built or this CPU cannot run it")
    baseline, ours = _run(_isa.BASELINE, tmp_path), _run(variant, tmp_path)
    assert set(baseline["chosen"].values()) == {_isa.BASELINE} and set(ours["chosen"].values()) == {variant}
    assert f"-march={variant.replace('_', '-')}" in ours["flags"]
    assert not any(f.startswith("-march") for f in baseline["flags"])
    assert ours["info"].startswith(variant) and baseline["info"].startswith(_isa.BASELINE)
    for name, expected in baseline["results"].items():
        for got, want in zip(ours["results"][name], expected):
            # Only vector math (libmvec's exp/log against the scalar ones) may differ, in the last bits.
            np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), rtol=1e-13, atol=1e-300,
                                       err_msg=f"{name} under {variant}")


def test_a_cpu_without_the_features_runs_the_baseline(monkeypatch):
    monkeypatch.setattr(_isa, "cpu_features", lambda: {"AVX2": True, "FMA3": True})   # AVX without BMI etc.
    assert _isa.supported_variants() == [_isa.BASELINE]


def test_forcing_a_variant_the_cpu_lacks_warns_and_loads_nothing(monkeypatch):
    monkeypatch.setenv(_isa.ENV, "x86_64_v9")
    before = {f: sys.modules[f"lossengine.{f}"] for f in _isa.FAMILIES}
    with pytest.warns(RuntimeWarning, match="LOSSENGINE_ISA='x86_64_v9' ignored"):
        _isa.load_kernels("lossengine")
    assert all(sys.modules[f"lossengine.{f}"] is m for f, m in before.items())
    assert le.MSELoss()(np.ones(3), np.zeros(3)) == 1.0


# -- PoissonNLL: wrt selections bit for bit, under every variant this machine runs ------------------
POISSON_PROBE = r"""
import json, numpy as np, lossengine as le
rng = np.random.default_rng(1)
mismatches = []
for options in ({}, {"full": True}, {"log_input": False}):
    for reduction in ("mean", "sum", "none"):
        loss = le.PoissonNLLLoss(reduction=reduction, **options)
        for n in (1, 2, 3, 5, 15, 37):
            for dtype in (np.float64, np.float32):
                x = (rng.random(n) + 0.1).astype(dtype)
                y = (rng.random(n) * 3).astype(dtype)
                alone = loss.backward(x, y, wrt="input")
                both = loss.backward(x, y, wrt=("input", "target"))[0]
                if not np.array_equal(alone, both):
                    mismatches.append([options, reduction, n, np.dtype(dtype).name])
print(json.dumps(mismatches))
"""


@pytest.mark.parametrize("variant", [_isa.BASELINE] + [v for v, _ in _isa.VARIANTS])
def test_poisson_nll_wrt_selections_agree_bit_for_bit(variant, tmp_path):
    if variant not in [_isa.BASELINE] + _built_and_runnable():
        pytest.skip(f"{variant} is not built or this CPU cannot run it")
    # A fresh process per variant, importing this very lossengine (the installed one, or a build in
    # place) from a neutral folder, so the unbuilt source tree cannot shadow it.
    env = dict(os.environ, LOSSENGINE_ISA=variant, PYTHONPATH=str(Path(le.__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-c", POISSON_PROBE], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []

"""Issue #14: the rough edges of a first hour with lossengine, each pinned by a test."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossengine as le

PACKAGE = Path(le.__file__).parent


def test_python_dash_m_lossengine_runs_the_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "lossengine", "list"], capture_output=True, text=True,
                         cwd=tmp_path, env=_env_with_package())
    assert out.returncode == 0, out.stderr
    assert "mse_loss" in out.stdout and "MSELoss" in out.stdout


def _env_with_package():
    import os
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PACKAGE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_unbuilt_source_folder_says_what_happened(tmp_path):
    """A source checkout without compiled kernels, imported from its root (it shadows an installed
    lossengine): an ImportError that says so and what to do, not a circular-import error."""
    shutil.copytree(PACKAGE, tmp_path / "lossengine",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    out = subprocess.run([sys.executable, "-c", "import lossengine"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "compiled kernels" in last and "not built" in last, last
    assert "build_ext --inplace" in last and "another folder" in last, last
    assert "circular import" not in out.stderr


@pytest.mark.parametrize("target_shape, torch_does", [((3, 5), "they do not broadcast either"),
                                                      ((4,), "torch would broadcast them")])
def test_shape_mismatch_message_states_what_torch_does(target_shape, torch_does):
    with pytest.raises(ValueError) as info:
        le.MSELoss()(np.zeros((3, 4)), np.zeros(target_shape))
    message = str(info.value)
    assert f"target has shape {target_shape}" in message and "input has shape (3, 4)" in message
    assert torch_does in message


def test_bce_outside_unit_interval_suggests_logits():
    with pytest.raises(ValueError, match="did you pass logits\\? BCEWithLogitsLoss takes them"):
        le.BCELoss()(np.array([2.0, -1.0]), np.array([1.0, 0.0]))


def test_public_callables_have_docstrings():
    for cls in (le.MSELoss, le.CrossEntropyLoss, le.CTCLoss):
        for method in ("forward", "backward", "forward_backward"):
            assert getattr(cls, method).__doc__, f"{cls.__name__}.{method}"
    for name in le.functional.__all__:
        assert getattr(le.functional, name).__doc__, name


# -- activations ---------------------------------------------------------------------------------
X = np.array([[-1000.0, -30.0, -1e-3, 0.0, 2.5, 40.0, 1000.0]])


def test_activations_are_stable_and_exact_at_the_extremes():
    F = le.functional
    s = F.sigmoid(X)
    assert np.all(np.isfinite(s)) and s[0, 0] == 0.0 and s[0, -1] == 1.0 and s[0, 3] == 0.5
    ls = F.log_sigmoid(X)
    assert ls[0, 0] == -1000.0 and ls[0, -1] == 0.0 and np.all(np.isfinite(ls))
    np.testing.assert_allclose(np.exp(F.log_sigmoid(X[:, 1:-1])), F.sigmoid(X[:, 1:-1]), rtol=1e-13)
    lsm = F.log_softmax(X)
    assert np.all(np.isfinite(lsm)) and lsm[0, -1] == 0.0
    np.testing.assert_allclose(F.softmax(X).sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(np.exp(lsm), F.softmax(X), atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_match_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 6)) * 20).astype(dtype)
    t = torch.from_numpy(x)
    F = le.functional
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    for ours, theirs in [(F.sigmoid(x), torch.sigmoid(t)), (F.log_sigmoid(x), torch.nn.functional.logsigmoid(t)),
                         (F.softmax(x, dim=0), torch.softmax(t, 0)), (F.log_softmax(x), torch.log_softmax(t, -1))]:
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=rtol, atol=1e-30)


def test_activation_bad_dim_is_an_index_error():
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        le.functional.softmax(np.zeros((2, 3)), dim=2)


def test_version_is_the_distributions():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert le.__version__ == pyproject["project"]["version"]


def test_every_builtin_loss_class_is_listed_by_its_family():
    """LOSSES is derived (lossengine.base.losses_defined_in): a class declaring a name is served."""
    import lossengine.losses as L

    for family in L.FAMILIES:
        declared = [v for v in vars(family).values() if isinstance(v, type) and issubclass(v, le.Loss)
                    and v.__module__ == family.__name__ and "name" in vars(v)]
        assert declared and list(family.LOSSES) == declared
        for cls in declared:
            assert le.registry.get(cls.name) is cls and hasattr(le.functional, cls.name)
    assert le.registry.get("nll_loss") is le.NLLLoss        # NLLLoss2d, an alias, is not a second entry


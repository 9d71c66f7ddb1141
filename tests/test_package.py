"""The package as a whole: `python -m lossengine` runs the command line, an unbuilt source folder
says so on import (and what to do), and the version is the distribution's."""
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_version_is_the_distributions():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert le.__version__ == pyproject["project"]["version"]

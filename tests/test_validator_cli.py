"""lossengine check --json, check module:Class from the current folder, and new-plugin."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lossengine as le
from lossengine.cli import main

# Where the lossengine under test lives (this checkout built in place, or site-packages when
# installed): a child Python must import that one, never an unbuilt source folder.
ROOT = Path(__import__("lossengine").__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    # -P: the current folder is not put on sys.path, as for the installed `lossengine` command.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-P", "-m", "lossengine.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


BROKEN = textwrap.dedent('''
    import numpy as np
    import lossengine as le

    class HalfSquare(le.NumpyElementwiseLoss):
        name = "half_square"

        def element_loss(self, x, t):
            return (x - t) ** 2

        def element_partials(self, x, t):
            return (x - t,)          # forgot the 2
''')


def test_check_json_for_ci(tmp_path):
    (tmp_path / "my_broken_loss.py").write_text(BROKEN)
    out = run_cli("check", "mse_loss", "my_broken_loss:HalfSquare", "--json", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is False
    by_name = {r["name"]: r for r in data["losses"]}
    assert by_name["mse_loss"]["ok"] is True and by_name["mse_loss"]["failures"] == []
    failed = by_name["my_broken_loss:HalfSquare"]
    assert failed["ok"] is False
    assert {f["check"] for f in failed["failures"]} >= {"gradient_vs_finite_differences"}


def test_check_finds_module_in_the_current_folder(tmp_path):
    # The module sits in the current folder only: not installed, not on PYTHONPATH.
    (tmp_path / "my_broken_loss.py").write_text(BROKEN)
    out = run_cli("check", "my_broken_loss:HalfSquare", cwd=tmp_path)
    assert "No module named" not in out.stdout + out.stderr
    assert out.returncode == 1 and "got/expected = 0.5x" in out.stdout


@pytest.mark.parametrize("compiled", [False, True, "--rowwise"], ids=["numpy", "compiled", "rowwise"])
def test_new_plugin_writes_a_distribution(tmp_path, compiled, capsys):
    flag = [compiled] if isinstance(compiled, str) else ["--compiled"] if compiled else []
    assert main(["new-plugin", "pseudo_huber", "--dir", str(tmp_path)] + flag) == 0
    root = tmp_path / "lossengine-pseudo-huber"
    assert "lossengine check lossengine_pseudo_huber:PseudoHuberLoss" in capsys.readouterr().out
    expected = {"pyproject.toml", "lossengine_pseudo_huber/__init__.py", "tests/test_pseudo_huber.py"}
    if compiled:
        expected |= {"setup.py", "lossengine_pseudo_huber/_kernel.pyx"}
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} == expected
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.lossengine]\npseudo_huber = "lossengine_pseudo_huber"' in pyproject
    assert main(["new-plugin", "pseudo_huber", "--dir", str(tmp_path)]) == 2   # refuses to overwrite


def test_generated_numpy_plugin_passes_as_generated(tmp_path, monkeypatch):
    main(["new-plugin", "gen_numpy", "--dir", str(tmp_path)])
    root = tmp_path / "lossengine-gen-numpy"
    monkeypatch.syspath_prepend(str(root))
    import importlib
    module = importlib.import_module("lossengine_gen_numpy")
    report = le.check(module.GenNumpyLoss)
    assert report.ok, str(report)
    # ... and its own test file passes (the registered-loss test skips: not installed).
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                         env={**os.environ, "PYTHONPATH": f"{root}:{ROOT}"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 skipped" in out.stdout


def test_bad_plugin_name_is_refused(tmp_path, capsys):
    assert main(["new-plugin", "Bad-Name", "--dir", str(tmp_path)]) == 2
    assert "lowercase identifier" in capsys.readouterr().err


def test_generated_plugin_installs_and_registers(tmp_path):
    # pip install into a venv (system site packages for numpy/pluggy); lossengine itself comes from
    # this checkout through PYTHONPATH, so --no-deps (lossengine is not on an index).
    main(["new-plugin", "gen_installed", "--dir", str(tmp_path)])
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                              str(tmp_path / "lossengine-gen-installed")], env=env, capture_output=True, text=True,
                             timeout=300)
    assert install.returncode == 0, install.stderr
    code = ("import lossengine as le; print(le.registry.source('gen_installed_loss'), "
            "sorted(le.registry.failures()))")
    out = subprocess.run([python, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["lossengine-gen-installed", "[]"]
    # The generated test suite, now with the registered loss checked as well.
    tests = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(tmp_path / "lossengine-gen-installed" / "tests")],
                           env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout + tests.stderr


def test_generated_rowwise_plugin_builds_and_passes_as_generated(tmp_path):
    # Built in place against this checkout (setup.py imports lossengine for its .pxd and flags), then
    # the validator on the class and the generated tests (the registered-loss test skips: not installed).
    assert main(["new-plugin", "gen_rows", "--rowwise", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "lossengine-gen-rows"
    env = {**os.environ, "PYTHONPATH": f"{root}:{ROOT}"}
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    code = ("import numpy as np, lossengine as le; from lossengine_gen_rows import GenRowsLoss as L; "
            "r = le.check(L); assert r.ok, str(r); x = np.array([[1.0, 2.0, 0.5]]); "
            "print(L(temperature=2.0)(x, np.array([1])), le.CrossEntropyLoss()(x / 2.0, np.array([1])))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    got, want = map(float, out.stdout.split())
    assert got == pytest.approx(want, rel=1e-14)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                           env=env, capture_output=True, text=True, timeout=300)
    assert tests.returncode == 0 and "1 passed, 1 skipped" in tests.stdout, tests.stdout + tests.stderr


def test_new_plugin_kinds_are_exclusive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["new-plugin", "both", "--compiled", "--rowwise", "--dir", str(tmp_path)])
    assert exit_.value.code == 2     # argparse's usage error
    assert "--rowwise: not allowed with argument --compiled" in capsys.readouterr().err


REJECTED_PLUGIN = '''
import lossengine as le


class WrongSquared(le.NumpyElementwiseLoss):
    """(x - y)^2 with a gradient 3 (x - y): the validator rejects it."""
    name = "cli_wrong_squared_loss"

    def element_loss(self, x, y):
        return (x - y) ** 2

    def element_partials(self, x, y):
        return 3 * (x - y), -3 * (x - y)


@le.hookimpl
def lossengine_register_losses(register):
    register(WrongSquared)
'''


def test_a_rejected_plugin_warns_once_and_only_where_plugins_are_loaded(tmp_path):
    # Issue #30: an installed rejected plugin made every command print its PluginLoadWarning, even
    # `lossengine check` of an unrelated built-in. Plugins now load on first need only: checking a
    # built-in loads none, and a command that lists them warns once.
    (tmp_path / "cli_wrong_plugin.py").write_text(REJECTED_PLUGIN)
    info = tmp_path / "cli_wrong_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cli-wrong-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lossengine]\ncli_wrong = cli_wrong_plugin\n")
    (info / "RECORD").write_text("cli_wrong_plugin.py,,\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
           "LOSSENGINE_CACHE_DIR": str(tmp_path / "cache")}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lossengine", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=300)

    checked = cli("check", "mse_loss")
    assert checked.returncode == 0 and "mse_loss: ok" in checked.stdout
    assert "PluginLoadWarning" not in checked.stderr
    listed = cli("list")
    assert listed.stderr.count("PluginLoadWarning") == 1, listed.stderr
    assert "cli_wrong_squared_loss" in listed.stderr and "rejected by the validator" in listed.stdout

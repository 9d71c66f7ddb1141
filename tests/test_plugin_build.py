"""lossengine.extending.build_plugin (lossengine/_plugin_build.py): a compiled plugin's setup.py in one
call, found under pip's build isolation through the python pip installs into (docs/plugins.md)."""
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import lossengine as le
from lossengine import _plugin_build
from lossengine._scaffold import _SETUP, new_plugin
from lossengine.extending import build_plugin

REPO = Path(__file__).resolve().parent.parent
# Where the lossengine under test lives (this checkout built in place, or site-packages when installed).
ROOT = Path(le.__file__).resolve().parents[1]


@pytest.mark.parametrize("name, kind", [("pseudohuber", "compiled"), ("amsoftmax", "rowwise")])
def test_example_setup_is_what_the_scaffold_writes(tmp_path, name, kind):
    example = REPO / "plugins" / f"lossengine-{name}" / "setup.py"
    if not example.is_file():
        pytest.skip("not a source checkout")
    root = new_plugin(name, tmp_path, compiled=kind == "compiled", rowwise=kind == "rowwise")
    assert (root / "setup.py").read_text() == example.read_text()


def test_doc_setup_is_what_the_scaffold_writes():
    doc = REPO / "docs" / "plugins.md"
    if not doc.is_file():
        pytest.skip("not a source checkout")
    block = re.search(r"```py\n(.*?)```", doc.read_text(), flags=re.S).group(1)
    assert block == _SETUP.format(module="lossengine_mycompiled")


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "_k.pyx").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((), {}, ValueError, "extensions is empty"),
    (("nodots",), {}, ValueError, r"extensions\[0\] must be a dotted module name"),
    (("pkg._k", "pkg/_k.pyx"), {}, ValueError, r"extensions\[1\] must be a dotted module name"),
    (("pkg._missing",), {}, ValueError, r"extensions\[0\]: 'pkg._missing' needs its Cython source pkg/_missing.pyx"),
    ((3,), {}, TypeError, r"extensions\[0\] must be a module name \(str\) or a setuptools.Extension, got int"),
    (("pkg._k",), {"ext_modules": []}, ValueError, "not as ext_modules"),
    (("pkg._k",), {"compiler_directives": "boundscheck=True"}, TypeError, "compiler_directives must be a dict"),
])
def test_build_plugin_refuses_bad_arguments(plugin_folder, monkeypatch, args, kwargs, error, match):
    import setuptools
    monkeypatch.setattr(setuptools, "setup", lambda **kw: pytest.fail("setup() ran"))
    with pytest.raises(error, match=match):
        build_plugin(*args, **kwargs)


def test_build_plugin_hands_setup_lossengines_flags(plugin_folder, monkeypatch):
    import Cython.Build
    import setuptools
    seen = {}
    monkeypatch.setattr(Cython.Build, "cythonize", lambda modules, **kw: seen.update(cythonize=kw) or modules)
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(setup=kw) or "distribution")
    own = setuptools.Extension("pkg._other", ["pkg/_k.pyx"], extra_compile_args=["-O2"], extra_link_args=["-lm"])
    assert build_plugin("pkg._k", own, compiler_directives={"cdivision": True}, zip_safe=False) == "distribution"
    options = le.plugin_build_options()
    assert seen["cythonize"] == {"include_path": [le.get_include()], "compiler_directives": {
        "language_level": 3, "boundscheck": False, "wraparound": False, "cdivision": True}}
    first, second = seen["setup"].pop("ext_modules")
    assert seen["setup"] == {"zip_safe": False}
    assert (first.name, first.sources) == ("pkg._k", ["pkg/_k.pyx"])
    assert first.extra_compile_args == options["extra_compile_args"]
    assert first.extra_link_args == options["extra_link_args"]
    # A given Extension: lossengine's flags, then its own (the last word), on a copy.
    assert second is not own and second.name == "pkg._other"
    assert second.extra_compile_args == options["extra_compile_args"] + ["-O2"]
    assert second.extra_link_args == options["extra_link_args"] + ["-lm"]
    assert own.extra_compile_args == ["-O2"] and own.extra_link_args == ["-lm"]


def test_helper_runs_by_path_without_lossengine_or_setuptools():
    # Under pip's build isolation setup.py runs this file by path, in a python that cannot import
    # lossengine (nor NumPy): it must load with the standard library alone (-S: no site-packages).
    code = (f"import runpy, sys; g = runpy.run_path({_plugin_build.__file__!r}); "
            "assert 'lossengine' not in sys.modules and 'setuptools' not in sys.modules; "
            "print(g['build_plugin'].__name__, g['build_options'].__name__)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["build_plugin", "build_options"]


def test_baseline_build_options_carry_no_march():
    # docs/plugins.md: a plugin built for other machines is built with LOSSENGINE_ISA=baseline.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOSSENGINE_ISA": "baseline"}
    code = "from lossengine._plugin_build import build_options; print(' '.join(build_options()['extra_compile_args']))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT.parent, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "-fopenmp-simd" in out.stdout.split() and "-march" not in out.stdout


def test_compiled_scaffold_installs_with_build_isolation(tmp_path):
    # What .ci/run does for plugins/*: a plain `pip install` (build isolation on), here of a generated
    # compiled plugin into a venv whose lossengine is the one under test (a .pth file names it). The
    # isolated build cannot import lossengine, so setup.py takes the ImportError branch: it asks the
    # venv's python for lossengine/_plugin_build.py and runs it by path.
    root = new_plugin("iso_built", tmp_path, compiled=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    Path(site, "lossengine_under_test.pth").write_text(f"{ROOT}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(root)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=900)
    if install.returncode != 0 and re.search(r"No matching distribution found for (setuptools|cython)",
                                             install.stdout + install.stderr, flags=re.I):
        pytest.skip("the package index offers no setuptools/cython for the isolated build environment")
    assert install.returncode == 0, install.stdout + install.stderr
    code = ("import lossengine as le, lossengine_iso_built as m; "
            "print(le.__file__, m.__file__, le.registry.source('iso_built_loss'), le.check(m.IsoBuiltLoss).ok)")
    out = subprocess.run([python, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(ROOT / "lossengine" / "__init__.py"), str(Path(site, "lossengine_iso_built",
                                  "__init__.py")), "lossengine-iso-built", "True"]

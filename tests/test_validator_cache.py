"""The cross-process verdict cache: keyed by the code, stored atomically in the user's cache
directory, bypassed by LOSSENGINE_NO_VALIDATION_CACHE."""
import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lossengine as le
from lossengine import validation

PLUGIN = textwrap.dedent('''
    import numpy as np
    import lossengine as le

    class CachedSquared(le.Loss):
        name = "cached_squared"

        def forward(self, input, target):
            v = (np.asarray(input, np.float64) - target) ** 2
            if self.reduction == "none":
                return v.astype(np.asarray(input).dtype)
            t = v.sum() / (v.size if self.reduction == "mean" else 1)
            return np.asarray(input).dtype.type(t)

        def backward(self, input, target, grad_output=1.0, wrt=None):
            x = np.asarray(input)
            g = 2.0 * (x.astype(np.float64) - target) * np.asarray(grad_output, np.float64)
            return ((g / (x.size if self.reduction == "mean" else 1)).astype(x.dtype),)
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "cached_plugin_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv(validation.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(validation.NO_CACHE_ENV, raising=False)
    sys.modules.pop("cached_plugin_mod", None)
    yield importlib.import_module("cached_plugin_mod")
    sys.modules.pop("cached_plugin_mod", None)


def _refuse(*args, **kwargs):
    raise AssertionError("check() ran although a cached verdict exists")


def test_verdict_is_reused_across_processes(plugin, tmp_path, monkeypatch):
    report = validation.cached_check(plugin.CachedSquared)
    assert report.ok
    stored = list((tmp_path / "cache").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["ok"]
    # A new process is a cold in-process cache over the same files: emulate it in-process ...
    validation._reports.clear()
    monkeypatch.setattr(validation, "check", _refuse)
    assert validation.cached_check(plugin.CachedSquared) == report
    # ... and the env var forces a fresh check.
    monkeypatch.setenv(validation.NO_CACHE_ENV, "1")
    with pytest.raises(AssertionError, match="check\\(\\) ran"):
        validation.cached_check(plugin.CachedSquared)


def test_changed_source_changes_the_key(plugin, tmp_path):
    key = validation._cache_key(plugin.CachedSquared)
    (tmp_path / "src" / "cached_plugin_mod.py").write_text(PLUGIN + "\n# edited\n")
    sys.modules.pop("cached_plugin_mod")
    edited = importlib.import_module("cached_plugin_mod")
    assert validation._cache_key(edited.CachedSquared) not in (None, key)


def test_a_changed_helper_module_or_kernel_of_the_package_changes_the_key(tmp_path, monkeypatch):
    # The class's own file is unchanged; the helper it calls and a compiled kernel beside it are
    # part of the plugin's code, so either changing must invalidate the stored verdict.
    package = tmp_path / "src" / "cached_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .loss import CachedSquared\n")
    (package / "loss.py").write_text(PLUGIN)
    (package / "helpers.py").write_text("SCALE = 2.0\n")
    (package / "_kernel.so").write_bytes(b"\x7fELF one build")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    keys = []
    for edit in (None, lambda: (package / "helpers.py").write_text("SCALE = 3.0\n"),
                 lambda: (package / "_kernel.so").write_bytes(b"\x7fELF another build")):
        if edit:
            edit()
        for name in [m for m in sys.modules if m.partition(".")[0] == "cached_pkg"]:
            del sys.modules[name]
        keys.append(validation._cache_key(importlib.import_module("cached_pkg").CachedSquared))
    for name in [m for m in sys.modules if m.partition(".")[0] == "cached_pkg"]:
        del sys.modules[name]
    assert None not in keys and len(set(keys)) == 3


def test_local_classes_are_not_cached_on_disk(plugin, tmp_path):
    class Local(plugin.CachedSquared):
        name = "local_squared"

    assert validation._cache_key(Local) is None
    assert validation.cached_check(Local).ok
    assert not (tmp_path / "cache").exists()


def test_a_separate_process_reads_the_stored_verdict(plugin, tmp_path):
    validation.cached_check(plugin.CachedSquared)
    code = ("import sys, lossengine.validation as v, cached_plugin_mod as m\n"
            "v.check = lambda *a, **k: sys.exit('check ran')\n"
            "print(v.cached_check(m.CachedSquared).ok)")
    env = {**__import__("os").environ, validation.CACHE_ENV: str(tmp_path / "cache"),
           "PYTHONPATH": f"{tmp_path / 'src'}:{sys.path[0]}:{Path(le.__file__).resolve().parents[1]}:" + __import__("os").environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_corrupt_cache_file_is_a_miss(plugin, tmp_path):
    key = validation._cache_key(plugin.CachedSquared)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"{key}.json").write_text("{not json")
    assert validation.cached_check(plugin.CachedSquared).ok
    assert json.loads((tmp_path / "cache" / f"{key}.json").read_text())["ok"]

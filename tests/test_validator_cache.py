"""The cross-process verdict cache: keyed by the code, stored atomically in the user's cache
directory, bypassed by LOSSENGINE_NO_VALIDATION_CACHE."""
import importlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import types
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


def _package(tmp_path, monkeypatch, name):
    """A plugin package ``name`` (CachedSquared in loss.py) under tmp_path/src, on sys.path."""
    package = tmp_path / "src" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .loss import CachedSquared\n")
    (package / "loss.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return package


def test_a_changed_helper_module_or_kernel_of_the_package_changes_the_key(tmp_path, monkeypatch):
    # The class's own file is unchanged; the helper it calls and a compiled kernel beside it are
    # part of the plugin's code, so either changing must invalidate the stored verdict.
    package = _package(tmp_path, monkeypatch, "cached_pkg")
    (package / "helpers.py").write_text("SCALE = 2.0\n")
    (package / "_kernel.so").write_bytes(b"\x7fELF one build")
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


# -- the cache trusts nothing it finds, and the key is what runs -----------------------------------
def _store(tmp_path, key, data):
    (tmp_path / "cache").mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "cache" / f"{key}.json").write_text(json.dumps(data))


def test_a_stored_pass_with_no_checks_is_not_a_pass(plugin, tmp_path, monkeypatch):
    key = validation._cache_key(plugin.CachedSquared)
    _store(tmp_path, key, {"loss": "CachedSquared", "ok": True, "checks_run": [], "failures": []})
    assert validation.cached_verdict(plugin.CachedSquared) is None
    # A pass over other checks than this validator runs (an older validator's) does not count either.
    stale = validation.expected_checks(plugin.CachedSquared)[:-1]
    _store(tmp_path, key, {"loss": "CachedSquared", "ok": True, "checks_run": stale, "failures": []})
    assert validation.cached_verdict(plugin.CachedSquared) is None
    full = validation.expected_checks(plugin.CachedSquared)
    _store(tmp_path, key, {"loss": "CachedSquared", "ok": True, "checks_run": full, "failures": []})
    assert validation.cached_verdict(plugin.CachedSquared).ok


def test_a_fifo_at_the_verdicts_path_is_ignored_not_waited_on(plugin, tmp_path):
    key = validation._cache_key(plugin.CachedSquared)
    (tmp_path / "cache").mkdir(mode=0o700)
    os.mkfifo(tmp_path / "cache" / f"{key}.json")
    result = {}
    reader = threading.Thread(target=lambda: result.setdefault("v", validation.cached_verdict(plugin.CachedSquared)),
                              daemon=True)
    reader.start()
    reader.join(60)
    if reader.is_alive():                                   # unblock the reader before failing
        os.close(os.open(tmp_path / "cache" / f"{key}.json", os.O_WRONLY | os.O_NONBLOCK))
    assert not reader.is_alive() and result == {"v": None}


def test_the_cache_folder_is_private_and_a_shared_one_is_not_used(plugin, tmp_path, monkeypatch):
    validation.cached_check(plugin.CachedSquared)
    assert stat.S_IMODE(os.stat(tmp_path / "cache").st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(validation.CACHE_ENV, str(shared))
    validation._reports.clear()
    key = validation._cache_key(plugin.CachedSquared)
    forged = {"loss": "CachedSquared", "ok": True, "checks_run": validation.expected_checks(plugin.CachedSquared),
              "failures": []}
    (shared / f"{key}.json").write_text(json.dumps(forged))
    assert validation.cached_verdict(plugin.CachedSquared) is None
    validation.cached_check(plugin.CachedSquared)
    assert [p.name for p in shared.iterdir()] == [f"{key}.json"]   # nothing written there either


def _fresh_import(name):
    for module in [m for m in sys.modules if m.partition(".")[0] == name]:
        del sys.modules[module]
    return importlib.import_module(name)


def test_a_data_file_the_plugin_reads_is_part_of_the_key(tmp_path, monkeypatch):
    package = _package(tmp_path, monkeypatch, "cached_data_pkg")
    (package / "params.json").write_text('{"scale": 2.0}')
    before = validation._cache_key(_fresh_import("cached_data_pkg").CachedSquared)
    (package / "params.json").write_text('{"scale": 3.0}')
    after = validation._cache_key(_fresh_import("cached_data_pkg").CachedSquared)
    _fresh_import("cached_data_pkg")
    del sys.modules["cached_data_pkg"]
    assert None not in (before, after) and before != after


def test_every_file_of_a_large_package_is_part_of_the_key(tmp_path, monkeypatch):
    package = _package(tmp_path, monkeypatch, "cached_big_pkg")
    (package / "parts").mkdir()
    for i in range(2100):                                   # past the 2000 files hashing used to stop at
        (package / "parts" / f"m{i:04d}.py").write_text(f"X = {i}\n")
    before = validation._cache_key(_fresh_import("cached_big_pkg").CachedSquared)
    (package / "parts" / "m2099.py").write_text("X = -1\n")
    after = validation._cache_key(_fresh_import("cached_big_pkg").CachedSquared)
    del sys.modules["cached_big_pkg"], sys.modules["cached_big_pkg.loss"]
    assert None not in (before, after) and before != after


def test_a_borrowed_module_and_qualname_do_not_share_the_builtins_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv(validation.CACHE_ENV, str(tmp_path / "cache"))
    namespace = {}
    exec(PLUGIN.replace("2.0 * (x", "3.0 * (x"), namespace)  # a wrong gradient
    impostor = namespace["CachedSquared"]
    impostor.__module__, impostor.__qualname__ = "lossengine.losses.elementwise", "MSELoss"
    assert validation._cache_key(impostor) != validation._cache_key(le.MSELoss)
    assert not validation.cached_check(impostor).ok
    validation._reports.pop(le.MSELoss, None)
    monkeypatch.setattr(validation, "check", lambda cls: validation.CheckReport(
        loss=cls.__name__, checks_run=validation.expected_checks(cls)))
    assert validation.cached_check(le.MSELoss).ok           # not the impostor's stored rejection


def test_a_class_without_a_file_is_keyed_by_its_code(tmp_path, monkeypatch):
    monkeypatch.setenv(validation.CACHE_ENV, str(tmp_path / "cache"))

    def notebook_class(source):
        module = types.ModuleType("le_test_notebook")        # no __file__, as in a notebook
        monkeypatch.setitem(sys.modules, "le_test_notebook", module)
        exec(compile(source, "<cell>", "exec"), module.__dict__)
        return module.CachedSquared

    one, same = notebook_class(PLUGIN), notebook_class(PLUGIN)
    other = notebook_class(PLUGIN.replace("2.0 * (x", "3.0 * (x"))
    assert None not in {validation._cache_key(c) for c in (one, same, other)}
    assert validation._cache_key(one) == validation._cache_key(same) != validation._cache_key(other)


def test_a_single_module_plugins_installed_data_file_is_part_of_the_key(tmp_path, monkeypatch):
    # A distribution of one top-level module and a data file: the files its RECORD lists are its code.
    site = tmp_path / "site"
    site.mkdir()
    (site / "cached_single_mod.py").write_text(PLUGIN)
    (site / "cached_single_params.json").write_text('{"scale": 2.0}')
    info = site / "cached_single-0.1.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("cached_single_mod.py,,\ncached_single_params.json,,\n"
                                 "cached_single-0.1.dist-info/RECORD,,\n")
    monkeypatch.syspath_prepend(str(site))
    before = validation._cache_key(_fresh_import("cached_single_mod").CachedSquared)
    (site / "cached_single_params.json").write_text('{"scale": 3.0}')
    after = validation._cache_key(_fresh_import("cached_single_mod").CachedSquared)
    del sys.modules["cached_single_mod"]
    assert None not in (before, after) and before != after


def test_the_default_cache_folder_left_0755_by_an_earlier_version_is_made_private(plugin, tmp_path, monkeypatch):
    monkeypatch.delenv(validation.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "lossengine").mkdir(parents=True, mode=0o755)
    os.chmod(tmp_path / "xdg" / "lossengine", 0o755)
    validation.cached_check(plugin.CachedSquared)
    assert stat.S_IMODE(os.stat(tmp_path / "xdg" / "lossengine").st_mode) == 0o700
    assert len(list((tmp_path / "xdg" / "lossengine").glob("*.json"))) == 1


def test_the_kernels_isa_variant_is_part_of_the_key(plugin, monkeypatch):
    # A verdict reached on one ISA variant of the kernels does not vouch for another (the same files,
    # other machine code: LOSSENGINE_ISA=baseline once failed a check the AVX-512 build passed).
    from lossengine import _isa

    key = validation._cache_key(plugin.CachedSquared)
    assert key is not None
    monkeypatch.setitem(_isa.chosen, "_elementwise", ("some_other_variant", "forced by a test"))
    assert validation._cache_key(plugin.CachedSquared) not in (None, key)


def test_code_that_cannot_be_serialized_gets_no_key_and_is_validated_afresh():
    # A fuzzing or coverage tool's instrumentation rewrites code objects with constants marshal
    # cannot serialize: keying such a class raised ValueError out of the registry (the fuzz harness
    # under atheris died on it). Now it has no key: nothing is cached for it.
    import lossengine as le

    def forward(self, *arrays):
        return 0.0

    forward.__code__ = forward.__code__.replace(co_consts=forward.__code__.co_consts + (object(),))
    cls = type("Instrumented", (le.Loss,), {"name": "instrumented_loss", "forward": forward,
                                           "__module__": __name__, "__qualname__": "Instrumented"})
    with pytest.raises(ValueError, match="unmarshallable"):
        __import__("marshal").dumps(forward.__code__)
    assert validation._cache_key(cls) is None

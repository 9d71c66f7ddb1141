"""The registry as a pluggy host and as an attack surface: hooks through the plugin manager, a typed
registrar, first-come names (built-ins reserved), ASCII names, plugins that exit, interrupt, block or
crash the interpreter, and how failures are reported (get, the warning, `lossengine list`)."""
import importlib
import os
import subprocess
import sys
import textwrap
import threading
import types
import warnings
from pathlib import Path

import pytest

import lossengine as le
from lossengine import _validation_child, cli, registry, validation

from test_plugins import Cube

TESTS = Path(__file__).parent


@pytest.fixture
def clean_registry():
    registry._reset()
    yield
    registry._reset()


@pytest.fixture
def install(tmp_path, monkeypatch, clean_registry):
    """``install(ep_name, source, dist=..., module=...)``: an installed-looking plugin distribution
    (a module and a *.dist-info folder on sys.path), without pip."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(TESTS))      # the plugins import test_plugins
    modules = []

    def add(ep_name, source, dist=None, module=None):
        dist = dist or f"le-test-{ep_name}"
        module = module or f"le_test_{ep_name}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source).replace("PARENT_PID", str(os.getpid())))
        info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[lossengine]\n{ep_name} = {module}\n")
        importlib.invalidate_caches()
        modules.append(module)
        return tmp_path

    yield add
    for module in modules:
        sys.modules.pop(module, None)


def quietly(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", registry.PluginLoadWarning)
        return fn(*args)


def plugin_module(hook, **attrs):
    module = types.ModuleType("inproc_" + hook.__name__)
    module.lossengine_register_losses = hook
    module.__dict__.update(attrs)
    return module


# -- pluggy used as designed ----------------------------------------------------------------------
def test_an_unmarked_hook_function_registers_nothing(clean_registry):
    def lossengine_register_losses(register):           # no @le.hookimpl
        register(Cube)

    with pytest.raises(ValueError, match="decorate its lossengine_register_losses with @lossengine.hookimpl"):
        quietly(le.registry.register_plugin, plugin_module(lossengine_register_losses), "unmarked")
    assert "test_plugin_cube" not in le.registry.names()


def test_an_unmarked_entry_point_plugin_is_recorded(install):
    install("unmarked", "from test_plugins import Cube\ndef lossengine_register_losses(register):\n    register(Cube)\n")
    with pytest.warns(registry.PluginLoadWarning, match="unmarked"):
        names = le.registry.names()
    assert "test_plugin_cube" not in names
    assert "@lossengine.hookimpl" in le.registry.failures()["unmarked"]


def test_a_misspelled_hook_is_that_plugins_failure_not_a_crash(install):
    install("misspelled", """
        import lossengine as le
        from test_plugins import Cube

        @le.hookimpl
        def lossengine_register_loss(register):
            register(Cube)
        """)
    install("good", """
        import lossengine as le
        from test_plugins import Cube

        @le.hookimpl
        def lossengine_register_losses(register):
            register(Cube)
        """)
    with pytest.warns(registry.PluginLoadWarning, match="misspelled"):
        names = le.registry.names()
    assert "unknown hook 'lossengine_register_loss'" in le.registry.failures()["misspelled"]
    assert "good" not in le.registry.failures()
    assert le.registry.source("test_plugin_cube") == "le-test-good"
    le.registry.plugin_manager().check_pending()           # the misspelled plugin did not stay behind
    assert "mse_loss" in names


def test_each_hook_is_called_alone_and_receives_a_typed_registrar(clean_registry):
    seen = []

    @le.hookimpl
    def lossengine_register_losses(register):
        seen.append(register)
        assert register(Cube) is Cube                       # usable as a decorator

    name = le.registry.register_plugin(plugin_module(lossengine_register_losses), "typed")
    assert len(seen) == 1                                   # not again for the built-ins' hook, nor theirs for us
    assert isinstance(seen[0], registry.Registrar)
    assert (seen[0].plugin, seen[0].source) == ("typed", "typed")
    assert le.registry.get("test_plugin_cube") is Cube
    le.registry.unregister_plugin(name)


def test_disabled_plugins_are_blocked_in_the_manager(install, monkeypatch):
    install("good", "raise AssertionError('a disabled plugin must not be imported')\n")
    monkeypatch.setenv("LOSSENGINE_DISABLE_PLUGINS", "good,other,lossengine")
    manager = le.registry.plugin_manager()
    assert manager.is_blocked("good") and manager.is_blocked("other")
    assert le.registry.get("mse_loss") is le.MSELoss         # the built-ins cannot be disabled
    assert le.registry.failures() == {}
    with pytest.raises(ValueError, match="blocked"):
        le.registry.register_plugin(plugin_module(lambda register: None), "other")


# -- names: first come, first served; built-ins reserved --------------------------------------------
class Impostor(Cube):
    name = "mse_loss"


def test_a_hook_cannot_unregister_a_builtin_and_replace_it(clean_registry):
    @le.hookimpl
    def lossengine_register_losses(register):
        le.registry.unregister("mse_loss")
        register(Impostor)

    with pytest.warns(registry.PluginLoadWarning):
        le.registry.register_plugin(plugin_module(lossengine_register_losses), "hijack")
    assert le.registry.get("mse_loss") is le.MSELoss
    assert "built-in names are reserved" in le.registry.failures()["hijack"]


def test_a_plugin_cannot_register_over_a_builtin(clean_registry):
    @le.hookimpl
    def lossengine_register_losses(register):
        register(Impostor)
        register(Cube)

    with pytest.warns(registry.PluginLoadWarning, match="'mse_loss'"):
        le.registry.register_plugin(plugin_module(lossengine_register_losses), "over")
    assert le.registry.get("mse_loss") is le.MSELoss and le.registry.source("mse_loss") == "lossengine"
    assert "reserved for lossengine's built-in" in le.registry.failures()["over"]
    assert le.registry.get("test_plugin_cube") is Cube      # the plugin's other loss is kept


def test_a_direct_register_over_a_taken_name_raises_and_is_recorded(clean_registry):
    with pytest.raises(ValueError, match="reserved for lossengine's built-in"):
        le.registry.register(Impostor, source="my-script")
    assert le.registry.get("mse_loss") is le.MSELoss
    assert "'mse_loss'" in le.registry.failures()["my-script"]


def test_reregistering_the_builtin_class_keeps_its_source(clean_registry):
    @le.hookimpl
    def lossengine_register_losses(register):
        register(le.MSELoss)

    le.registry.register_plugin(plugin_module(lossengine_register_losses), "again")
    assert le.registry.source("mse_loss") == "lossengine"
    assert le.registry.unregister_plugin("again") == []
    assert le.registry.get("mse_loss") is le.MSELoss


def test_builtin_names_cannot_be_unregistered(clean_registry):
    with pytest.raises(ValueError, match="reserved"):
        le.registry.unregister("mse_loss")
    with pytest.raises(ValueError, match="built-in plugin cannot be unregistered"):
        le.registry.unregister_plugin("lossengine")
    assert le.registry.get("mse_loss") is le.MSELoss


def test_a_second_plugin_cannot_take_or_remove_the_firsts_loss(clean_registry):
    class Other(Cube):
        pass                                                # same name, another class

    @le.hookimpl
    def first(register):
        register(Cube)

    @le.hookimpl
    def second(register):
        register(Other)

    @le.hookimpl
    def third(register):
        le.registry.unregister("test_plugin_cube")

    le.registry.register_plugin(plugin_module(first), "first")
    with pytest.warns(registry.PluginLoadWarning):
        le.registry.register_plugin(plugin_module(second), "second")
        le.registry.register_plugin(plugin_module(third), "third")
    assert le.registry.get("test_plugin_cube") is Cube and le.registry.source("test_plugin_cube") == "first"
    assert "taken by first" in le.registry.failures()["second"]
    assert "may not unregister" in le.registry.failures()["third"]


def test_a_second_distribution_reusing_an_entry_point_name_is_refused(install):
    install("shared", """
        import lossengine as le
        from test_plugins import Cube

        @le.hookimpl
        def lossengine_register_losses(register):
            register(Cube)
        """, dist="le-test-first", module="le_test_first")
    install("shared", """
        import lossengine as le
        from test_plugins import Cube

        class Second(Cube):
            name = "test_second_dist"

        @le.hookimpl
        def lossengine_register_losses(register):
            register(Second)
        """, dist="le-test-second", module="le_test_second")
    with pytest.warns(registry.PluginLoadWarning, match="shared"):
        names = le.registry.names()
    loaded = [n for n in ("test_plugin_cube", "test_second_dist") if n in names]
    assert len(loaded) == 1                                 # whichever came first keeps serving
    winner = le.registry.source(loaded[0])
    loser = ({"le-test-first", "le-test-second"} - {winner}).pop()
    assert f"of distribution {loser} was not loaded: the plugin name is taken by {winner}" in le.registry.failures()["shared"]


def test_registry_names_are_ascii_identifiers(clean_registry):
    class Homoglyph(Cube):
        name = "mse_l\u043ess"                              # Cyrillic о

    with pytest.raises(TypeError, match="ASCII identifier"):
        le.registry.register(Homoglyph)

    @le.hookimpl
    def lossengine_register_losses(register):
        register(Homoglyph)

    with pytest.warns(registry.PluginLoadWarning, match="ASCII"):
        le.registry.register_plugin(plugin_module(lossengine_register_losses), "glyph")
    assert "mse_l\u043ess" not in le.registry.names()


# -- robustness ----------------------------------------------------------------------------------
def test_a_plugin_calling_sys_exit_on_import_does_not_end_the_host(install):
    install("exits", "import sys\nsys.exit(3)\n")
    with pytest.warns(registry.PluginLoadWarning, match="SystemExit"):
        names = le.registry.names()
    assert "mse_loss" in names
    assert "SystemExit(3)" in le.registry.failures()["exits"]


def test_register_turns_a_loss_that_exits_into_a_rejection(clean_registry):
    class Exits(Cube):
        name = "test_exits_in_forward"

        def element_loss(self, x, y):
            sys.exit("a loss must not end the host")

    with pytest.raises(le.LossValidationError, match="SystemExit"):
        le.registry.register(Exits)
    assert "test_exits_in_forward" not in le.registry.names()


def test_a_keyboard_interrupt_in_a_hook_is_recorded_once_and_does_not_poison_the_registry(install):
    install("interrupts", """
        import lossengine as le

        @le.hookimpl
        def lossengine_register_losses(register):
            raise KeyboardInterrupt
        """)
    with pytest.warns(registry.PluginLoadWarning, match="KeyboardInterrupt"):
        le.registry.names()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # and no second warning either
        for _ in range(3):
            assert le.registry.get("mse_loss") is le.MSELoss
            assert "mse_loss" in le.registry.names()
    assert le.registry.failures()["interrupts"].count("KeyboardInterrupt") == 1
    assert le.registry.plugin_manager().get_plugin("interrupts") is None


def test_a_slow_plugin_import_does_not_block_another_threads_get(install, monkeypatch):
    gate = types.SimpleNamespace(started=threading.Event(), release=threading.Event())
    monkeypatch.setitem(sys.modules, "le_test_gate", gate)
    install("slow", """
        import os
        import lossengine as le
        from test_plugins import Cube

        if os.getpid() == PARENT_PID:                       # the host, not the validation child
            import le_test_gate
            le_test_gate.started.set()
            le_test_gate.release.wait(60)

        @le.hookimpl
        def lossengine_register_losses(register):
            register(Cube)
        """)
    results = {}
    loader = threading.Thread(target=lambda: results.setdefault("names", le.registry.names()))
    loader.start()
    try:
        assert gate.started.wait(60)
        getter = threading.Thread(target=lambda: results.setdefault("mse", le.registry.get("mse_loss")))
        getter.start()
        getter.join(30)
        # Served while the plugin's import is still blocked.
        assert results.get("mse") is le.MSELoss and not gate.release.is_set()
        # A name not served yet waits for discovery instead of failing.
        waiter = threading.Thread(target=lambda: results.setdefault("cube", le.registry.get("test_plugin_cube")))
        waiter.start()
    finally:
        gate.release.set()
        loader.join(60)
    waiter.join(60)
    assert "test_plugin_cube" in results["names"] and results.get("cube") is Cube


CRASHES = """
    import ctypes
    import os
    import lossengine as le
    from test_plugins import Cube

    class Crash(Cube):
        name = "test_crash_loss"

        def element_loss(self, x, y):
            if os.getpid() == PARENT_PID:
                raise RuntimeError("validated in the host process, which this would have crashed")
            ctypes.string_at(0)                             # SIGSEGV

    class AfterCrash(Cube):
        name = "test_after_crash"

    @le.hookimpl
    def lossengine_register_losses(register):
        register(Crash)
        register(AfterCrash)
    """


def test_a_plugin_that_segfaults_is_rejected_not_fatal(install):
    install("crashes", CRASHES)
    with pytest.warns(registry.PluginLoadWarning, match="test_crash_loss"):
        names = le.registry.names()
    assert "test_crash_loss" not in names
    assert "test_after_crash" in names                      # validated by a fresh child
    assert "crashed the interpreter (SIGSEGV)" in le.registry.failures()["crashes"]


def test_a_cached_verdict_spares_the_child(install, monkeypatch):
    install("crashes", CRASHES)
    verdicts = {}

    def cached_verdict(loss_class):
        verdicts[loss_class.name] = validation.CheckReport(loss=loss_class.__name__, checks_run=["cached"])
        return verdicts[loss_class.name]

    def no_child(*args):
        raise AssertionError("a child process was started although the verdict was cached")

    monkeypatch.setattr(validation, "cached_verdict", cached_verdict, raising=False)
    monkeypatch.setattr(_validation_child, "run_child", no_child)
    assert {"test_crash_loss", "test_after_crash"} <= set(le.registry.names())
    assert set(verdicts) == {"test_crash_loss", "test_after_crash"}


# -- reporting ------------------------------------------------------------------------------------
BROKEN = """
    import lossengine as le
    from test_plugins import BrokenCube

    @le.hookimpl
    def lossengine_register_losses(register):
        register(BrokenCube)
    """


def test_get_of_a_rejected_loss_says_so_and_where_the_report_is(install):
    install("broken", BROKEN)
    quietly(le.registry.names)
    with pytest.raises(KeyError, match=r"'test_plugin_broken_cube' from plugin 'broken' was rejected.*failures\(\)"):
        le.registry.get("test_plugin_broken_cube")


def test_the_warning_is_one_line_without_a_source_line(install):
    install("broken", BROKEN)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        le.registry.names()
    (w,) = [w for w in caught if issubclass(w.category, registry.PluginLoadWarning)]
    text = warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
    assert text.count("\n") == 1, text                      # the message line only
    assert "see lossengine.registry.failures()" in text and "gradient_vs_finite_differences" in text
    # The full report is in failures(), once.
    assert le.registry.failures()["broken"].count("rejected by the validator") == 1


def test_cli_list_shows_collisions_and_rejections(install, capsys):
    install("broken", BROKEN)
    install("over", """
        import lossengine as le
        from test_plugins import Cube

        class Impostor(Cube):
            name = "mse_loss"

        @le.hookimpl
        def lossengine_register_losses(register):
            register(Impostor)
        """)
    with pytest.warns(registry.PluginLoadWarning):
        assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert next(line for line in out.splitlines() if line.startswith("mse_loss ")).rstrip().endswith(" lossengine")
    served, _, unserved = out.partition("losses not served")
    assert "test_plugin_broken_cube" not in served
    assert "broken: loss 'test_plugin_broken_cube' (BrokenCube) rejected by the validator" in unserved
    assert "over: loss 'mse_loss' (le_test_over.Impostor) refused: the name is reserved" in unserved


def test_cli_list_in_a_subprocess_prints_the_report_once(install):
    where = install("broken", BROKEN)
    package_parent = Path(le.__file__).resolve().parents[1]      # the lossengine under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(where), str(TESTS), str(package_parent)])}
    done = subprocess.run([sys.executable, "-m", "lossengine.cli", "list"], capture_output=True, text=True,
                          env=env, cwd=where, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "le_test_broken" not in done.stderr              # no stray source line
    assert done.stderr.count("PluginLoadWarning") == 1 and done.stderr.count("\n") == 1
    assert "[gradient_vs_finite_differences]" not in done.stderr
    assert done.stdout.count("BrokenCube: ") == 1           # the report's head line: printed once


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

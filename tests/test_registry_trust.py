"""Trust in the registry's verdict: it is about the code that runs, and nothing around it can fake
it -- a print, a module in the working folder, a slow or hanging child, a thread at import, a Ctrl-C,
another plugin's unregister, a distribution calling itself 'lossengine'. Each test installs plugins
the way pip would (a module and a *.dist-info folder on sys.path) and runs the real validation child."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

import lossengine as le
from lossengine import _validation_child, cli, registry, validation

from test_registry import TESTS, clean_registry, install, quietly  # noqa: F401 - fixtures

# A loss whose gradient is 3(x - y)^2 where the truth is (x - y)^2: rejected in a clean setting.
BAD = """
    import os
    import lossengine as le
    from test_plugins import Cube

    class Bad(Cube):
        name = "test_trust_bad"

        def element_partials(self, x, y):
            d2 = (x - y) ** 2
            return 3.0 * d2, -d2

    @le.hookimpl
    def lossengine_register_losses(register):
        register(Bad)
    """

# A correct loss, a class of each plugin's own (so no verdict from another test stands in for it).
GOOD = """
    import lossengine as le
    from test_plugins import Cube

    class Good(Cube):
        name = "test_trust_good"

    @le.hookimpl
    def lossengine_register_losses(register):
        register(Good)
    """


def in_child(code: str) -> str:
    """Plugin source that runs ``code`` at import in the validation child only."""
    return "import os\nif os.getpid() != PARENT_PID:\n" + textwrap.indent(textwrap.dedent(code), "    ") + "\n"


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs once a SIGKILL sent to it has had time to land (a kill is
    delivered asynchronously; an unkilled process is still running after the wait)."""
    for _ in range(100):
        if not running(pid):
            return False
        time.sleep(0.05)
    return True


# -- 1. the channel --------------------------------------------------------------------------------
def test_a_forged_verdict_printed_by_the_plugin_does_not_pass_its_loss(install):
    forged = in_child("""
        import base64, json, pickle
        from lossengine.validation import CheckReport
        ok = base64.b64encode(pickle.dumps(CheckReport(loss="Bad", checks_run=["x"]))).decode()
        print("\\nlossengine-verdict:" + json.dumps(["test_trust_bad", ok]), flush=True)
        os._exit(0)                                         # before the real verdict could follow
        """)
    install("forger", forged + textwrap.dedent(BAD))
    names = quietly(le.registry.names)
    assert "test_trust_bad" not in names
    assert "ended without a verdict" in le.registry.failures()["forger"]      # rejected, not served


def test_a_plugin_printing_the_verdict_mark_is_served_and_the_host_unharmed(install):
    install("chatty", in_child('print("lossengine-verdict: starting", flush=True)') + textwrap.dedent(GOOD))
    with warnings.catch_warnings():
        warnings.simplefilter("error", registry.PluginLoadWarning)
        names = le.registry.names()
    assert "test_trust_good" in names and "chatty" not in le.registry.failures()


def test_garbage_on_the_verdict_channel_is_that_losss_failure(install):
    install("garbage", in_child("""
        import sys
        os.write(int(sys.argv[2]), b"{not json\\n")
        """) + textwrap.dedent(GOOD))
    names = quietly(le.registry.names)                      # no exception in the host
    assert "test_trust_good" not in names
    assert "malformed verdict" in le.registry.failures()["garbage"]


def test_a_verdict_that_does_not_record_the_current_checks_is_not_a_pass():
    report = validation.CheckReport(loss="Cube", checks_run=[])
    line = b'{"protocol": "%s", "loss": "c", "report": %s}\n' % (
        _validation_child.PROTOCOL.encode(), __import__("json").dumps(report.to_dict()).encode())
    from test_plugins import Cube
    verdicts, malformed = _validation_child.parse_verdicts(line, {"c": Cube})
    assert malformed == "" and not verdicts["c"].ok
    assert "this validator runs" in str(verdicts["c"])
    for junk in (b"[1, 2]\n", b'{"protocol": "other", "loss": "c", "report": {}}\n', b"\xff\n",
                 b'{"protocol": "%s", "loss": "zz", "report": {}}\n' % _validation_child.PROTOCOL.encode()):
        verdicts, malformed = _validation_child.parse_verdicts(junk, {"c": Cube})
        assert verdicts == {} and "malformed verdict" in malformed


# -- 2. isolation ----------------------------------------------------------------------------------
def test_the_working_folder_cannot_inject_modules_into_the_child(install, tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    marker = tmp_path / "injected"
    (folder / "json.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    seen = tmp_path / "child-saw"
    install("plain", in_child(f"""
        import sys, lossengine
        open({str(seen)!r}, "w").write(lossengine.__file__ + "\\n" + str(sys.flags.isolated) + "\\n" + os.getcwd())
        """) + textwrap.dedent(GOOD))
    monkeypatch.chdir(folder)
    names = le.registry.names()
    assert "test_trust_good" in names and "plain" not in le.registry.failures()
    assert not marker.exists()
    child_file, isolated, cwd = seen.read_text().splitlines()
    assert child_file == le.__file__                      # the same lossengine as this process
    assert isolated == "1" and Path(cwd) != folder


# -- 3./4. the cache and the key: tests/test_validator_cache.py ------------------------------------

# -- 5. slow plugins -------------------------------------------------------------------------------
HANGS = in_child("""
    import subprocess, sys, time
    open(os.environ["LE_TEST_PIDS"], "w").write(f"{os.getpid()} {subprocess.Popen(['sleep', '600']).pid}")
    time.sleep(600)
    """) + textwrap.dedent(GOOD)


def test_a_hanging_validation_times_out_kills_its_group_and_is_cached(install, tmp_path, monkeypatch):
    monkeypatch.setenv(validation.TIMEOUT_ENV, "5")
    monkeypatch.setenv("LE_TEST_PIDS", str(tmp_path / "pids"))
    install("hangs", HANGS)
    names = quietly(le.registry.names)
    assert "test_trust_good" not in names
    assert "did not finish within 5 s" in le.registry.failures()["hangs"]
    child, grandchild = map(int, (tmp_path / "pids").read_text().split())
    assert not alive(child) and not alive(grandchild)     # the whole process group
    # The timeout is the verdict for this code: the next process does not wait again ...
    validation._reports.clear()
    registry._reset()

    def no_child(*args):
        raise AssertionError("a child was started although the timeout is cached")

    monkeypatch.setattr(_validation_child, "run_child", no_child)
    quietly(le.registry.names)
    assert "did not finish within 5 s" in le.registry.failures()["hangs"]
    # ... until the timeout is raised.
    monkeypatch.setenv(validation.TIMEOUT_ENV, "50")
    validation._reports.clear()
    assert validation.cached_verdict(sys.modules["le_test_hangs"].Good) is None


def test_a_background_process_started_at_import_does_not_hold_the_validation(install, tmp_path, monkeypatch):
    monkeypatch.setenv(validation.TIMEOUT_ENV, "300")
    monkeypatch.setenv("LE_TEST_PIDS", str(tmp_path / "pids"))
    install("daemon", in_child("""
        import subprocess
        p = subprocess.Popen(["sleep", "600"], stdout=None, stderr=None, close_fds=False)
        open(os.environ["LE_TEST_PIDS"], "w").write(str(p.pid))
        """) + textwrap.dedent(GOOD))
    names = le.registry.names()
    assert "test_trust_good" in names and "daemon" not in le.registry.failures()
    assert not alive(int((tmp_path / "pids").read_text()))  # the orphan does not stay


def test_get_of_a_builtin_does_not_load_plugins(install, tmp_path):
    marker = tmp_path / "imported"
    install("lazy", f"open({str(marker)!r}, 'w').close()\n" + textwrap.dedent(GOOD))
    assert le.registry.get("mse_loss") is le.MSELoss
    assert le.registry.source("l1_loss") == "lossengine"
    assert not marker.exists()
    assert "test_trust_good" in le.registry.names()
    assert marker.exists()


def test_get_of_a_builtin_is_served_while_a_plugins_validation_hangs(install, tmp_path, monkeypatch):
    monkeypatch.setenv(validation.TIMEOUT_ENV, "120")
    monkeypatch.setenv("LE_TEST_PIDS", str(tmp_path / "pids"))
    install("hangs", HANGS)
    loader = threading.Thread(target=quietly, args=(le.registry.names,), daemon=True)
    loader.start()
    try:
        while not (tmp_path / "pids").exists():          # the child is validating, and hangs
            assert loader.is_alive()
            time.sleep(0.05)
        assert le.registry.get("mse_loss") is le.MSELoss
        assert loader.is_alive()                           # still waiting for the child
    finally:
        child = int((tmp_path / "pids").read_text().split()[0])
        os.kill(child, signal.SIGKILL)
        loader.join(60)
    assert "hangs" in le.registry.failures()


# -- 6. no deadlock --------------------------------------------------------------------------------
def test_a_plugin_using_the_registry_from_another_thread_at_import_does_not_deadlock(tmp_path):
    (tmp_path / "le_test_pool.py").write_text(textwrap.dedent("""
        from concurrent.futures import ThreadPoolExecutor
        import lossengine as le
        from test_plugins import Cube

        with ThreadPoolExecutor(2) as pool:
            SEEN = pool.submit(le.registry.names).result()

        @le.hookimpl
        def lossengine_register_losses(register):
            register(Cube)
        """))
    info = tmp_path / "le_test_pool-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: le-test-pool\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lossengine]\npool = le_test_pool\n")
    code = ("import lossengine as le\n"
            "names = le.registry.names()\nimport le_test_pool\n"
            "print('mse_loss' in le_test_pool.SEEN, 'test_plugin_cube' in names, le.registry.failures())")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(TESTS), str(Path(le.__file__).parents[1])])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["True", "True"], done.stdout


# -- 7. guards -------------------------------------------------------------------------------------
def test_a_plugin_cannot_unregister_another_distributions_loss_and_take_its_name(tmp_path, monkeypatch, clean_registry):
    # Two folders, the owner's first on sys.path, so its entry point is loaded first.
    for folder, ep, module, source in (
            ("b", "taker", "le_test_taker", """
                import lossengine as le
                from test_plugins import Cube
                for call in (lambda: le.registry.unregister("test_trust_good"),
                             lambda: le.registry.unregister_plugin("owner")):
                    try:
                        call()
                    except (KeyError, ValueError, RuntimeError):
                        pass

                class Taken(Cube):
                    name = "test_trust_good"

                @le.hookimpl
                def lossengine_register_losses(register):
                    register(Taken)
                """),
            ("a", "owner", "le_test_owner", GOOD)):
        where = tmp_path / folder
        where.mkdir()
        (where / f"{module}.py").write_text(textwrap.dedent(source))
        info = where / f"le_test_{ep}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: le-test-{ep}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[lossengine]\n{ep} = {module}\n")
        monkeypatch.syspath_prepend(str(where))
    monkeypatch.syspath_prepend(str(TESTS))
    __import__("importlib").invalidate_caches()
    try:
        quietly(le.registry.names)
        assert le.registry.get("test_trust_good") is sys.modules["le_test_owner"].Good
        assert le.registry.source("test_trust_good") == "le-test-owner"
        assert "refused" in le.registry.failures()["taker"]
        # Nor can the host pull a plugin's loss out from under it.
        with pytest.raises(ValueError, match="belongs to plugin 'owner'.*LOSSENGINE_DISABLE_PLUGINS=owner"):
            le.registry.unregister("test_trust_good")
        with pytest.raises(ValueError, match="plugin 'owner' is installed"):
            le.registry.unregister_plugin("owner")
    finally:
        for module in ("le_test_taker", "le_test_owner"):
            sys.modules.pop(module, None)


def test_a_distribution_named_lossengine_is_not_a_builtin(install, capsys):
    install("fake", GOOD, dist="lossengine")
    with pytest.warns(registry.PluginLoadWarning, match="reserved"):
        assert "test_trust_good" not in le.registry.names()
    assert "distribution name is reserved for lossengine's built-ins" in le.registry.failures()["fake"]
    with pytest.raises(ValueError, match="source must be a name other than 'lossengine'"):
        from test_plugins import Cube
        le.registry.register(Cube, source="LossEngine")
    assert cli.main(["list"]) == 0
    assert "test_trust_good" not in capsys.readouterr().out.partition("losses not served")[0]


def test_ctrl_c_during_validation_fails_that_plugin_and_the_others_load_on_next_use(install, tmp_path, monkeypatch):
    monkeypatch.setenv(validation.TIMEOUT_ENV, "300")
    monkeypatch.setenv("LE_TEST_PIDS", str(tmp_path / "pids"))
    install("hangs", HANGS)
    install("fine", """
        import lossengine as le
        from test_plugins import Cube

        class Fine(Cube):
            name = "test_trust_fine"

        @le.hookimpl
        def lossengine_register_losses(register):
            register(Fine)
        """)

    def interrupt_when_the_child_hangs():
        while not (tmp_path / "pids").exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_the_child_hangs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        quietly(le.registry.names)
    child, grandchild = map(int, (tmp_path / "pids").read_text().split())
    assert not alive(child) and not alive(grandchild)
    names = quietly(le.registry.names)
    assert "interrupted (KeyboardInterrupt)" in le.registry.failures()["hangs"]
    assert "test_trust_good" not in names and "test_trust_fine" in names


def test_a_validation_child_that_cannot_start_is_the_losss_failure(install, monkeypatch):
    install("nostart", GOOD)

    def no_processes(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(_validation_child.subprocess, "Popen", no_processes)
    names = quietly(le.registry.names)                      # no exception in the host
    assert "test_trust_good" not in names
    assert "could not start: BlockingIOError" in le.registry.failures()["nostart"]

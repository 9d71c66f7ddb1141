"""The validation child: an installed plugin's losses are first validated in a fresh interpreter, so
a loss that crashes the interpreter is rejected, not fatal.

What the parent trusts of the child is its verdict channel and nothing else:

- **Its own channel.** The verdict comes over a pipe of its own (an fd handed over with
  ``pass_fds``), one JSON object per line with a fixed schema (``PROTOCOL``), never pickle. The
  child's stdout goes to /dev/null and its stderr to a file (its last line explains an exit), so a
  plugin that prints -- a line that looks like a verdict included -- changes nothing, and a
  background process the plugin starts cannot hold a pipe the parent waits on. Anything malformed
  or missing becomes the failure of the loss it concerns, never an exception in the host.
- **Isolated.** ``python -I`` (no PYTHON* variables, no user site, no script folder on sys.path) run
  from a fresh private temporary folder, so the user's working folder cannot inject modules (a
  stray ``json.py``). The child imports the same lossengine and plugins as the parent because the
  parent hands over its own sys.path explicitly (minus '' and the working folder), with the folder
  the parent's lossengine comes from first.
- **Bounded.** The child runs in a session (process group) of its own; when it exceeds the timeout
  (``validation.validation_timeout()``), or when the parent is interrupted, the whole group is
  killed, and after a normal exit whatever it left behind in its group is killed too.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import validation

PROTOCOL = "lossengine-verdict/1"
CHILD_ENV = "LOSSENGINE_VALIDATION_CHILD"
_MAX_CHANNEL_BYTES = 64 << 20
_SCRIPT = ("import sys, json\n"
           "with open(sys.argv[1], 'rb') as f:\n"
           "    request = json.load(f)\n"
           "sys.path[:] = request['path'] + [p for p in sys.path if p not in request['path']]\n"
           "from lossengine._validation_child import child_main\n"
           "child_main(request, int(sys.argv[2]))\n")


def child_path() -> list[str]:
    """The sys.path the child gets: the folder this lossengine comes from, then the parent's
    entries as absolute paths, without '' and the working folder -- the folder Python put first
    implicitly (``python -c``, ``-m``, a script run where it lives). The working folder stays when
    it is named explicitly in PYTHONPATH: then the user chose it. Deduplicated, order kept."""
    cwd = os.getcwd()
    explicit = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    here = str(Path(__file__).resolve().parents[1])
    entries = [here] + [os.path.abspath(p) for p in sys.path
                        if p and (os.path.abspath(p) != cwd or os.path.abspath(p) in explicit)]
    return list(dict.fromkeys(entries))


def run_child(entry_point: str, plugin: str, staged: dict[str, type], timeout: float) \
        -> tuple[dict[str, validation.CheckReport], str, bool]:
    """Validate ``staged`` (loss name -> class) of the plugin at ``entry_point`` in a fresh
    interpreter. Returns the verdicts it gave before it finished, died or ran out of time, what went
    wrong if it did not finish, and whether it timed out."""
    with tempfile.TemporaryDirectory(prefix="lossengine-validate-") as folder:
        request = os.path.join(folder, "request.json")
        with open(request, "w") as f:
            json.dump({"protocol": PROTOCOL, "path": child_path(), "entry_point": entry_point,
                       "plugin": plugin, "names": list(staged)}, f)
        read_fd, write_fd = os.pipe()
        try:
            with open(os.path.join(folder, "stderr"), "w+b") as stderr:
                try:
                    process = subprocess.Popen(
                        [sys.executable, "-I", "-c", _SCRIPT, request, str(write_fd)], cwd=folder,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                        pass_fds=(write_fd,), start_new_session=True, env={**os.environ, CHILD_ENV: "1"})
                except OSError as exc:  # no interpreter to run, no processes left: the loss's failure
                    return {}, f"the validation process could not start: {type(exc).__name__}: {exc}", False
                finally:
                    os.close(write_fd)
                try:
                    data, timed_out = _collect(process, read_fd, timeout)
                finally:
                    _kill_group(process)
                stderr.seek(0)
                tail = stderr.read().decode(errors="replace").strip().splitlines()[-1:]
        finally:
            os.close(read_fd)
    verdicts, malformed = parse_verdicts(data, staged)
    if timed_out:
        trouble = f"validating it did not finish within {timeout:g} s"
    elif malformed:
        trouble = malformed
    elif process.returncode < 0:
        trouble = f"validating it crashed the interpreter ({_signal_name(-process.returncode)})"
    elif process.returncode != 0:
        trouble = f"the validation process exited with status {process.returncode}: {(tail or ['no message'])[0]}"
    else:
        trouble = "the validation process ended without a verdict"
    return verdicts, trouble, timed_out


def _collect(process: subprocess.Popen, fd: int, timeout: float) -> tuple[bytes, bool]:
    """What the child writes to the verdict channel until it exits (or ``timeout`` passes: then
    True). Reads as it goes, so a large verdict never blocks the child on a full pipe; stops
    listening at end of file or at the size limit, and never waits for a grandchild holding the fd."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        listening = True
        while True:
            exited = process.poll() is not None
            if listening and (exited or selector.select(max(0.0, min(0.05, deadline - time.monotonic())))):
                chunk = _read_some(fd)
                if chunk:
                    chunks.append(chunk)
                    size += len(chunk)
                    listening = size <= _MAX_CHANNEL_BYTES
                    continue
                listening = chunk is None   # b"": end of file; None: nothing right now
            if exited:
                return b"".join(chunks), False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"".join(chunks), True
            if not listening:
                try:
                    process.wait(min(0.05, remaining))
                except subprocess.TimeoutExpired:
                    pass


def _read_some(fd: int) -> bytes | None:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the child's process group (the child, and anything it started and left behind)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def parse_verdicts(data: bytes, staged: dict[str, type]) -> tuple[dict[str, validation.CheckReport], str]:
    """The verdicts on the channel, each checked against the schema and against what the current
    validator runs on its class; and what was malformed ('' when nothing). A verdict that cannot
    stand becomes a failure of its loss; a line that cannot be read ends the reading."""
    verdicts: dict[str, validation.CheckReport] = {}
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
            if not isinstance(message, dict) or set(message) != {"protocol", "loss", "report"} \
                    or message["protocol"] != PROTOCOL:
                raise ValueError(f"not a {PROTOCOL} message")
            name = message["loss"]
            if name not in staged or name in verdicts:
                raise ValueError(f"a verdict on {name!r}, which was not asked for (or twice)")
            report = validation.report_from_json(message["report"])
        except (ValueError, TypeError) as exc:
            return verdicts, f"the validation process sent a malformed verdict (line {number}: {exc})"
        problem = validation.verdict_problem(staged[name], report)
        if problem is not None:
            report = validation.CheckReport(loss=staged[name].__name__, failures=[validation.Failure(
                "verdict", f"the validation process's verdict cannot stand: {problem}")])
        verdicts[name] = report
    return verdicts, ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def child_main(request: dict, fd: int) -> None:
    """In the validation child: load the plugin as the parent did, call its hook, validate the
    asked-for losses one at a time, sending each verdict as soon as it is known."""
    from importlib.metadata import EntryPoint

    from . import registry
    os.set_inheritable(fd, False)           # a process the plugin starts does not get the channel
    channel = os.fdopen(fd, "w", encoding="utf-8")
    plugin = EntryPoint(request["plugin"], request["entry_point"], registry.ENTRY_POINT_GROUP).load()
    registrar = registry.run_hook_alone(plugin, request["plugin"])
    for loss_name in request["names"]:
        report = validation.cached_check(registrar.staged[loss_name])
        channel.write(json.dumps({"protocol": PROTOCOL, "loss": loss_name, "report": report.to_dict()}) + "\n")
        channel.flush()
    channel.close()

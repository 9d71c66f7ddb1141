"""Suite-wide setup: the validator's verdict cache lives in a fresh directory per test session, so
a run never reads verdicts an earlier run (or the user's own cache) stored, and never writes into
the user's cache. Subprocesses the tests start inherit it."""
import os
import shutil
import tempfile

import pytest

_CACHE_DIR = None


def pytest_configure(config):
    global _CACHE_DIR
    if "LOSSENGINE_CACHE_DIR" not in os.environ:
        _CACHE_DIR = tempfile.mkdtemp(prefix="lossengine-test-cache-")
        os.environ["LOSSENGINE_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config):
    if _CACHE_DIR is not None:
        os.environ.pop("LOSSENGINE_CACHE_DIR", None)
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)


# -- how much the hypothesis properties compared with torch (tests/test_properties.py) --------------
# Each torch property counts, per loss, the examples it drew and those it compared with torch
# (the rest: inputs torch refuses, checked to be refused alike). The property itself fails below its
# minimum share; the summary shows the counts, so a run says what it compared, not only that it passed.
_TORCH_COMPARED: dict = {}


@pytest.fixture(scope="session")
def torch_compared() -> dict:
    return _TORCH_COMPARED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _TORCH_COMPARED:
        return
    terminalreporter.section("hypothesis examples compared with torch")
    for (name, kind), counts in sorted(_TORCH_COMPARED.items()):
        share = counts["compared"] / counts["drawn"] if counts["drawn"] else 0.0
        terminalreporter.write_line(f"{name:36s} {kind:15s} {counts['compared']:4d} of {counts['drawn']:4d} compared "
                                    f"({share:.0%})")

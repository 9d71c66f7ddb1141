"""Suite-wide setup: the validator's verdict cache lives in a fresh directory per test session, so
a run never reads verdicts an earlier run (or the user's own cache) stored, and never writes into
the user's cache. Subprocesses the tests start inherit it."""
import os
import shutil
import tempfile

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

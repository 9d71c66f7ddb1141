"""lossengine beside a boosting library's own OpenMP runtime (issue #26): telling another runtime from
ours, releasing our worker threads after an objective call (and never in a forked child, where that
would wait for ever), and the adapters' single-pass checks (NaN labels, weights, the Hessian floor)."""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import sys
import time

import numpy as np
import pytest

import lossengine as le
from lossengine import _threads
from lossengine.integrations import _boosting
from lossengine.integrations import lightgbm as ll
from lossengine.integrations import xgboost as lx
from test_integrations_boosting import _FakeData as _Labels     # a DMatrix/Dataset stand-in

LINUX = sys.platform.startswith("linux")
BIG = 300_000          # well above PARALLEL_MIN_ELEMENTS: a team of workers runs it


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


def _settled_tasks(expected: int, timeout: float = 5.0) -> int:
    """The process's thread count once it equals ``expected`` (or after ``timeout``): a joined
    thread leaves /proc a moment after its join returns."""
    end = time.monotonic() + timeout
    while _tasks() != expected and time.monotonic() < end:
        time.sleep(0.01)
    return _tasks()


def _parallel_call() -> None:
    x = np.linspace(-3, 3, BIG)
    with le.threads(3):
        le.MSELoss()(x, x[::-1].copy())


class _Dl_info(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _own_runtime_file() -> str:
    """The file of the OpenMP runtime our kernels were bound to (dladdr of its omp_get_max_threads)."""
    function = getattr(_threads._own_runtime(), "omp_get_max_threads", None)
    if function is None:
        pytest.skip("built without OpenMP")
    info = _Dl_info()
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "dladdr") or not libc.dladdr(ctypes.cast(function, ctypes.c_void_p), ctypes.byref(info)):
        pytest.skip("no dladdr")
    return info.dli_fname.decode()


@pytest.mark.skipif(not LINUX, reason="loads a copy of the OpenMP runtime by path")
def test_shares_openmp_runtime_tells_a_second_copy_of_the_runtime_from_ours(tmp_path):
    ours = _threads._own_runtime()
    copy = tmp_path / "libgomp-second-copy.so"
    shutil.copyfile(_own_runtime_file(), copy)
    second = ctypes.CDLL(str(copy))            # another file: the dynamic linker loads a second runtime
    assert _threads.shares_openmp_runtime(ours)
    assert not _threads.shares_openmp_runtime(second)
    assert _threads.shares_openmp_runtime(object())      # no OpenMP there: no second runtime
    assert bool(_boosting.ForeignRuntime(lambda: second))
    assert not _boosting.ForeignRuntime(lambda: ours)
    assert not _boosting.ForeignRuntime(lambda: None)

    def not_installed():
        raise ImportError("no such library")

    assert not _boosting.ForeignRuntime(not_installed)


@pytest.mark.skipif(not LINUX, reason="counts threads in /proc/self/task")
def test_release_workers_ends_the_calling_threads_workers_and_the_next_call_starts_new_ones():
    if _threads._pause_all() is None:
        pytest.skip("the OpenMP runtime has no omp_pause_resource_all")
    _threads.release_workers()
    alone = _settled_tasks(_tasks())
    _parallel_call()
    assert _tasks() == alone + 2                 # a team of 3: two workers kept for the next call
    assert _threads.release_workers() is True
    assert _settled_tasks(alone) == alone
    x = np.linspace(-3, 3, BIG)
    with le.threads(1):
        serial = le.MSELoss().gradient_hessian(x, x[::-1].copy())
    with le.threads(3):
        again = le.MSELoss().gradient_hessian(x, x[::-1].copy())
    assert _tasks() == alone + 2                 # new workers, the same bits
    for a, b in zip(serial, again):
        np.testing.assert_array_equal(a, b)
    _threads.release_workers()


def _child_releases(queue) -> None:
    x = np.linspace(-3, 3, BIG).astype(np.float32)
    y = (x > 0).astype(np.float32)
    released = _threads.release_workers()
    g, h = _boosting.gradient_hessian(le.BCEWithLogitsLoss(), x, y, None, None, 1e-16, foreign_runtime=True)
    queue.put((released, float(g.sum()), float(h.sum())))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_release_workers_in_a_forked_child_does_not_wait_for_the_parents_workers():
    # The child inherits the forking thread's pool record, whose workers exist only in the parent:
    # omp_pause_resource_all there waits for them for ever (measured: the child hung until killed).
    _parallel_call()                            # the parent's pool exists before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_releases, args=(queue,))
    child.start()
    try:
        released, g_sum, h_sum = queue.get(timeout=60)
    except Exception:
        pytest.fail("the forked child did not answer within 60 s: it waited for the parent's workers")
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert released is False
    x = np.linspace(-3, 3, BIG).astype(np.float32)
    g, h = le.BCEWithLogitsLoss().gradient_hessian(x, (x > 0).astype(np.float32))
    assert (g_sum, h_sum) == (float(g.sum()), float(h.sum()))


@pytest.mark.parametrize("module, foreign", [(lx, True), (lx, False), (ll, True), (ll, False)])
def test_beside_another_runtime_the_default_runs_on_one_thread_and_workers_are_released(monkeypatch, module,
                                                                                         foreign):
    releases = []
    monkeypatch.setattr(_threads, "release_workers", lambda: releases.append(1) or True)
    monkeypatch.setattr(_threads, "shares_openmp_runtime", lambda lib: not foreign)
    monkeypatch.setattr(module, "_library", lambda: object())
    preds = np.zeros(5, np.float32 if module is lx else np.float64)
    y = np.array([0, 1, 1, 0, 1], preds.dtype)
    obj = module.objective(le.BCEWithLogitsLoss())
    counts = []
    kernel = obj.loss.gradient_hessian

    def spy(*args, **kwargs):
        counts.append(le.get_num_threads())
        return kernel(*args, **kwargs)

    monkeypatch.setattr(obj.loss, "gradient_hessian", spy)
    default = le.get_num_threads()
    obj(preds, _Labels(y))
    with le.threads(3):                          # an explicit count is kept
        obj(preds, _Labels(y))
    le.set_num_threads(2)
    try:
        obj(preds, _Labels(y))
    finally:
        le.set_num_threads(None)
    assert counts == ([1, 3, 2] if foreign else [default, 3, 2])
    assert len(releases) == (3 if foreign else 0)
    assert le.get_num_threads() == default       # the override does not outlive the call


@pytest.mark.skipif(not LINUX, reason="counts threads in /proc/self/task")
def test_the_xgboost_objective_leaves_no_worker_spinning_beside_xgboosts_runtime():
    xgb = pytest.importorskip("xgboost")
    if _threads._pause_all() is None:
        pytest.skip("the OpenMP runtime has no omp_pause_resource_all")
    foreign = not _threads.shares_openmp_runtime(xgb.core._LIB)
    x = np.linspace(-3, 3, BIG).astype(np.float32)
    y = (x > 0).astype(np.float32)

    class Data:
        def get_label(self):
            return y

        def get_weight(self):
            return np.array([], np.float32)

    _threads.release_workers()
    alone = _settled_tasks(_tasks())
    with le.threads(3):
        lx.objective(le.BCEWithLogitsLoss())(x, Data())
    assert _settled_tasks(alone if foreign else alone + 2) == (alone if foreign else alone + 2)
    _threads.release_workers()


# -- the single-pass checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_hessian_floor_rewrites_only_what_is_below_it(dtype):
    preds = np.array([0.0, 40.0, -40.0, 1.0, np.nan], dtype)
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0], dtype)
    loss = le.BCEWithLogitsLoss()
    exact_g, exact_h = loss.gradient_hessian(preds, y)
    for floor in (1e-16, 1e-3, 0.3):
        g, h = lx.objective(loss, min_hessian=floor)(preds, _Labels(y))
        np.testing.assert_array_equal(h, np.maximum(exact_h, floor))     # NaN stays NaN, as np.maximum's
        np.testing.assert_array_equal(g, exact_g)
    g, h = lx.objective(loss)(preds[:0], _Labels(y[:0]))                 # no rows: nothing to floor
    assert g.shape == h.shape == (0,)


def test_weights_are_checked_in_one_pass_with_the_same_errors():
    preds, y = np.zeros(4), np.array([0.0, 1.0, 1.0, 0.0])
    obj = ll.objective(le.BCEWithLogitsLoss())
    for bad, message in (([1.0, np.inf, 1.0, 1.0], "NaN or inf"), ([1.0, -np.inf, 1.0, 1.0], "NaN or inf"),
                         ([np.nan, 1.0, 1.0, 1.0], "NaN or inf"), ([1.0, -2.0, -0.5, 1.0], "2 negative weight")):
        with pytest.raises(ValueError, match=message):
            obj(preds, _Labels(y, np.array(bad)))
    g, h = obj(preds, _Labels(y, np.array([0, 1, 2, 3])))                # integer weights, a zero among them
    np.testing.assert_allclose(g, [0.0, -0.5, -1.0, 1.5])
    assert h[0] == 1e-16

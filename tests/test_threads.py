"""Threads: the API, bit-identical results for any thread count, safety under concurrent calls, and
that the build really has OpenMP."""
import contextlib
import os
import tempfile
import threading

import numpy as np
import pytest

import lossengine as le
from lossengine.cli import build_info
from lossengine.losses import BUILTIN_LOSSES

LARGE = 300_000  # well above the parallel threshold, many reduction blocks


def test_thread_count_api():
    before = le.get_num_threads()
    with le.threads(1):
        assert le.get_num_threads() == 1
        with le.threads(3):
            assert le.get_num_threads() == 3
        assert le.get_num_threads() == 1
    assert le.get_num_threads() == before
    le.set_num_threads(1)
    try:
        assert le.get_num_threads() == 1
    finally:
        le.set_num_threads(None)          # back to the default
    assert le.get_num_threads() == before
    with pytest.raises(ValueError, match="number of threads must be between 1 and 1024, got 0"):
        le.set_num_threads(0)
    with pytest.raises(TypeError, match="number of threads must be an integer"):
        le.threads(1.5).__enter__()


def test_override_is_per_python_thread():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other():
        inside.wait()
        seen["other"] = le.get_num_threads()
        release.set()

    t = threading.Thread(target=other)
    t.start()
    default = le.get_num_threads()
    with le.threads(1):
        inside.set()
        release.wait()
    t.join()
    assert seen["other"] == default


def test_build_has_openmp():
    # A release once shipped loss kernels that had silently lost OpenMP: CI must prove it is on.
    if os.environ.get("LOSSENGINE_ALLOW_SERIAL_BUILD") == "1":
        pytest.skip("serial build explicitly allowed")
    info = build_info()
    assert info["openmp"] == "on", info
    assert "-fopenmp" in info["compile flags"]


def _large_inputs(cls, dtype):
    """Tile the class's sample inputs along axis 0 to LARGE elements (keeps them in the valid domain);
    a class whose arguments do not tile (CTC's lengths) provides large_sample_inputs, as for the validator."""
    if hasattr(cls, "large_sample_inputs"):
        return list(cls.large_sample_inputs(np.random.default_rng(3), dtype))
    arrays = [np.asarray(a) for a in cls.sample_inputs(np.random.default_rng(3), dtype)]
    reps = -(-LARGE // arrays[0].size)
    rng = np.random.default_rng(4)
    tiled = [np.concatenate([a] * reps, axis=0) if a.ndim else a for a in arrays]
    # Jitter the first argument so blocks differ: sums over identical blocks would hide ordering bugs.
    tiled[0] = (tiled[0] * (1 + 1e-3 * rng.uniform(size=tiled[0].shape))).astype(dtype)
    return tiled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [c for c in BUILTIN_LOSSES], ids=lambda c: c.__name__)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bit_identical_for_any_thread_count(cls, reduction, dtype):
    arrays = _large_inputs(cls, dtype)
    loss = cls(reduction=reduction)
    results = {}
    for n in (1, 2, 3):
        with le.threads(n):
            value, grads = loss.forward_backward(*arrays, grad_output=0.7, wrt=cls.differentiable)
        results[n] = [np.asarray(value), *grads]
    for n in (2, 3):
        for a, b in zip(results[1], results[n]):
            assert a.tobytes() == b.tobytes(), f"{cls.__name__} {reduction} {np.dtype(dtype).name}: 1 vs {n} threads"


def test_eight_python_threads_at_once_get_correct_results():
    rng = np.random.default_rng(8)
    jobs = [(rng.standard_normal(200_000), rng.standard_normal(200_000)) for _ in range(8)]
    expected = [((x - y) ** 2).mean() for x, y in jobs]
    expected_grad = [2 * (x - y) / x.size for x, y in jobs]
    barrier = threading.Barrier(8)
    results = [None] * 8
    errors = []

    def work(i):
        try:
            barrier.wait()
            for _ in range(5):
                results[i] = le.MSELoss().forward_backward(*jobs[i])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (value, grad), e, eg in zip(results, expected, expected_grad):
        np.testing.assert_allclose(value, e, rtol=1e-12)
        np.testing.assert_allclose(grad, eg, rtol=1e-14)


def test_info_names_the_kernel_variant_from_the_compile_flags():
    from lossengine.cli import _kernel_variant

    assert _kernel_variant(["-O3", "-march=native"]).startswith("native")
    assert _kernel_variant(["-O3", "-march=x86-64-v3"]).startswith("x86-64-v3")
    assert _kernel_variant(["-O3"]).startswith("baseline")
    assert build_info()["variant target"] == _kernel_variant(build_info()["compile flags"].split())


# --- One source of truth for the count (issue 26) -----------------------------------------------

from pathlib import Path  # noqa: E402
import multiprocessing  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

from lossengine import _elementwise, _threads  # noqa: E402

# Where the lossengine under test lives (a checkout built in place, or site-packages when installed):
# a child Python must import that one, never an unbuilt source folder.
ROOT = Path(le.__file__).resolve().parents[1]


def test_default_follows_threadpoolctl_and_an_explicit_count_still_wins():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    default = le.get_num_threads()
    if default < 2:
        pytest.skip("one CPU: a limit of 1 changes nothing")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert le.get_num_threads() == 1
        assert _elementwise.resolve_threads(_threads._kernel_threads()) == 1   # what the kernels run
        assert "OpenMP runtime's limit (1" in build_info()["threads from"]
        with le.threads(2):
            assert le.get_num_threads() == 2
            assert "lossengine.threads(n)" in build_info()["threads from"]
    assert le.get_num_threads() == default


def test_an_explicit_set_num_threads_wins_over_the_runtime_limit():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    le.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert le.get_num_threads() == 2
            assert build_info()["threads from"] == "lossengine.set_num_threads(n)"
    finally:
        le.set_num_threads(None)
    assert build_info()["threads from"] != "lossengine.set_num_threads(n)"


def test_calls_inside_another_openmp_parallel_region_run_on_one_thread():
    assert _elementwise.resolve_threads(3) == 3
    assert _elementwise.resolve_threads(3, nested=True) == 1
    assert _elementwise.resolve_threads(-4, nested=True) == 1
    assert _elementwise.resolve_threads(-1) == 1


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "150000 100000\n"}, 2),
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu.max": "400000 100000\n"}, 4),
    ({"cpu.max": "garbage\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "250000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "0\n"}, None),
    ({}, None),
], ids=["v2-max", "v2-1.5", "v2-0.5", "v2-4", "v2-garbage", "v1-unlimited", "v1-2.5", "v1-zero-period", "none"])
def test_cgroup_cpu_quota_parser(tmp_path, files, expected):
    for name, text in files.items():
        _write(tmp_path / name, text)
    assert _threads.cgroup_cpu_quota(tmp_path) == expected


def test_the_first_default_is_capped_by_the_quota_and_the_affinity(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(_threads, "cgroup_cpu_quota", lambda: 3)
    assert _threads._initial_cap() == (3, "CPU quota (cgroup: 3 of the 8 CPUs in the affinity)")
    monkeypatch.setattr(_threads, "cgroup_cpu_quota", lambda: 16)
    assert _threads._initial_cap() == (8, "CPU affinity (8 CPUs)")
    monkeypatch.setattr(_threads, "cgroup_cpu_quota", lambda: None)
    assert _threads._initial_cap() == (8, "CPU affinity (8 CPUs)")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert _threads._initial_cap() == (5, "OMP_NUM_THREADS")
    # The kernels take the cap as -cap and never exceed it, whatever the runtime's limit.
    assert _elementwise.resolve_threads(-1) == 1


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("  ", None), ("4", 4), (" 3 , 2", 3), ("99999", _threads.MAX_THREADS),
])
def test_omp_num_threads_valid_or_unset(value, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no warning for these
        assert _threads.parse_omp_num_threads(value) == expected


@pytest.mark.parametrize("value", ["²", "٣", "0", "-1", "two", "1.5", "+2", "4a"])
def test_omp_num_threads_anything_else_falls_back_with_one_warning(value):
    with pytest.warns(RuntimeWarning, match="is not a positive integer in ASCII digits") as caught:
        assert _threads.parse_omp_num_threads(value) is None
    assert len(caught) == 1


def test_import_with_a_non_ascii_omp_num_threads_warns_once_and_uses_the_default():
    env = dict(os.environ, OMP_NUM_THREADS="²", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-W", "always", "-c",
                           "import lossengine as le; print(le.get_num_threads())"],
                          cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("is not a positive integer in ASCII digits") == 1, done.stderr
    assert int(done.stdout) >= 1


# --- Fork ----------------------------------------------------------------------------------------

def _child_mse(queue, x, y, explicit):
    if explicit:                                 # the forking thread stays serial even so
        le.set_num_threads(2)
    value, grad = le.MSELoss().forward_backward(x, y)
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(n=le.get_num_threads()))
    worker.start()
    worker.join()
    queue.put((value, grad, le.get_num_threads(), seen["n"]))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("explicit", [False, True], ids=["default", "set_num_threads-in-child"])
def test_a_child_forked_after_parallel_calls_computes_correctly(explicit):
    rng = np.random.default_rng(26)
    x, y = rng.standard_normal(LARGE), rng.standard_normal(LARGE)
    with le.threads(2):                          # the parent's pool exists before the fork
        expected = le.MSELoss().forward_backward(x, y)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_mse, args=(queue, x, y, explicit))
    child.start()
    try:
        value, grad, n_forking_thread, n_new_thread = queue.get(timeout=60)
    except Exception:
        child.kill()
        child.join()
        pytest.fail("the forked child did not answer within 60 s (an OpenMP pool that does not survive fork)")
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.asarray(value).tobytes() == np.asarray(expected[0]).tobytes()
    assert grad.tobytes() == expected[1].tobytes()
    assert n_forking_thread == 1
    assert n_new_thread == (2 if explicit else le.get_num_threads())


# --- Determinism under dynamic scheduling --------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["mse_loss", "cross_entropy", "triplet_margin_loss", "ctc_loss"])
def test_bit_identical_with_more_threads_than_cpus_and_with_the_default(name, dtype):
    """Blocks are handed out dynamically: with more threads than CPUs (5) and with the default count
    (which the oversubscription hold may lower between calls) who runs which block changes from call
    to call, the bits must not."""
    cls = le.registry.get(name)
    arrays = _large_inputs(cls, dtype)
    loss = cls(reduction="mean")

    def run():
        value, grads = loss.forward_backward(*arrays, grad_output=0.7, wrt=cls.differentiable)
        return [np.asarray(value).tobytes(), *(g.tobytes() for g in grads)]

    with le.threads(1):
        reference = run()
    for _ in range(3):
        with le.threads(5):
            assert run() == reference
        assert run() == reference


# --- The oversubscription hold (pyx/_common.pxd), fed synthetic regions -----------------------------

def test_a_late_thread_holds_the_default_down_and_an_on_time_region_releases_it():
    """Per-thread records as run_blocks keeps them: last block's end (s from now), longest and
    shortest time between block ends. The hold lowers the default (-cap) only, never an explicit count."""
    clean = dict(last=[-1e-5, -2e-5], longest=[3e-5, 3e-5], shortest=[1e-5, 1e-5], end=0.0)
    late = dict(last=[-0.02, -1e-5], longest=[3e-5, 0.02], shortest=[1e-5, 1e-5], end=0.0)   # thread 1 paused 20 ms
    absent = dict(last=[-0.02, 0.0], longest=[3e-5, 0.0], shortest=[1e-5, 0.0], end=0.0)     # thread 1 ran no block,
    # arrived 20 ms after thread 0 had finished them all
    with threadpoolctl_limits(2):
        try:
            _elementwise.note_region(**clean)
            assert _elementwise.thread_hold()[0] == 0
            assert _elementwise.resolve_threads(-2) == 2
            _elementwise.note_region(**late)
            held, left = _elementwise.thread_hold()
            assert held == 1 and 0.04 < left <= 0.05
            assert _elementwise.resolve_threads(-2) == 1          # the default steps down
            assert _elementwise.resolve_threads(2) == 2           # an explicit count does not
            _elementwise.note_region(**absent)                     # detected again: the hold doubles
            held, left = _elementwise.thread_hold()
            assert held == 1 and 0.09 < left <= 0.1
        finally:
            _elementwise.note_region(**clean)
        assert _elementwise.thread_hold()[0] == 0
        assert _elementwise.resolve_threads(-2) == 2


@contextlib.contextmanager
def threadpoolctl_limits(n):
    """The OpenMP runtime's limit at ``n`` for this thread (the hold test needs 2 to see it step down)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(n, user_api="openmp"):
        if _elementwise.max_threads() != n:
            pytest.skip("threadpoolctl does not reach this OpenMP runtime")
        yield


# -- out-of-range thread counts: refused when set, never a crash at call time ----------------------
@pytest.mark.parametrize("n", [0, 1025, 60000, 100000, 2**31 - 1, 2**31, 2**64])
def test_thread_count_out_of_range_is_refused_when_set(n):
    before = le.get_num_threads()
    with pytest.raises(ValueError, match="number of threads must be between 1 and 1024"):
        le.set_num_threads(n)
    with pytest.raises(ValueError, match="number of threads must be between 1 and 1024"):
        with le.threads(n):
            pass
    assert le.get_num_threads() == before
    x = np.ones(100_000)
    assert le.MSELoss()(x, x) == 0.0      # the kernel still runs (in parallel) afterwards

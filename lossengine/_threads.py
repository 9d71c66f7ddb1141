"""Thread-count control for the OpenMP kernels: one source of truth (docs/threads.md).

A kernel call's count comes from the first of:

1. ``threads(n)``: this Python thread (and asyncio task) only, through a ContextVar, so concurrent
   Python threads never see each other's overrides;
2. ``set_num_threads(n)``: the process-wide explicit count;
3. the default: the OpenMP runtime's current limit, ``omp_get_max_threads()`` read at call time in the
   calling thread (what threadpoolctl's ``threadpool_limits`` and ``omp_set_num_threads`` change), at
   most the cap fixed at import: ``OMP_NUM_THREADS`` when it is a positive ASCII integer, else the CPUs
   this process may run on (its affinity) and its CPU quota (cgroup v2 ``cpu.max`` or v1
   ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, rounded up, as loky and scikit-learn count them).
   The kernels run the default on fewer threads while they see the machine oversubscribed
   (pyx/_common.pxd) and on one thread inside another OpenMP parallel region.

The thread that forked a process runs serially in the child whatever the count: libgomp's thread pool
does not survive fork, and that thread's next parallel region would wait forever for threads that
exist only in the parent. Other threads of the child start a pool of their own and are unaffected.

Results never depend on the count: blocks are fixed, threads only decide who computes which.

Beside another OpenMP runtime (XGBoost's wheels bundle their own libgomp): an idle libgomp worker
spin-waits for milliseconds after a parallel region before it sleeps, and neither runtime knows the
other's threads, so a worker of one spins on a core the other's team needs. The boosting adapters
call the loss ``beside_another_runtime()`` when the library's runtime is another one
(``shares_openmp_runtime``): one thread by default, and no worker left spinning after the call
(``release_workers()``); docs/threads.md has the figures.
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import math
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator

# Below this many elements (or element-equivalents of work) a kernel stays on one thread: waking a
# thread team costs more than the work.
PARALLEL_MIN_ELEMENTS = 32768

# The most threads a kernel may be asked for. OpenMP runtimes fail badly far above the core count
# (libgomp: a crash at 100000, "Thread creation failed" and exit at 60000, a 481 GB allocation at
# 2^31 - 1), and no CPU this engine runs on has more: counts above it are refused when set.
MAX_THREADS = 1024

CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_omp_num_threads(value: str | None) -> int | None:
    """OMP_NUM_THREADS's first (outermost) count, if it is a positive integer in ASCII digits
    (capped at MAX_THREADS); None when unset or empty. Anything else (``"²"``, ``"-1"``, ``"two"``)
    warns once and gives None: the default applies. ``str.isdigit`` alone would accept ``"²"``,
    which ``int`` then refuses: that made ``import lossengine`` raise."""
    if value is None or not value.strip():
        return None
    first = value.split(",")[0].strip(" \t\n\r\f\v")
    if first.isascii() and first.isdigit() and int(first) > 0:
        return min(int(first), MAX_THREADS)
    warnings.warn(f"OMP_NUM_THREADS={value!r} is not a positive integer in ASCII digits; lossengine ignores "
                  "it and uses its default thread count", RuntimeWarning, stacklevel=2)
    return None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> int | None:
    """The CPUs this process's cgroup may use, rounded up (quota / period), or None for no limit or
    no readable cgroup. Reads cgroup v2's ``cpu.max`` ("max 100000", "150000 100000"), else v1's
    ``cpu/cpu.cfs_quota_us`` and ``cpu/cpu.cfs_period_us`` (-1: no limit), under ``root``."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
        elif (root / "cpu" / "cpu.cfs_quota_us").is_file():
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        else:
            return None
        if quota in ("max", "-1"):
            return None
        q, p = int(quota), int(period)
    except (OSError, ValueError):
        return None       # unreadable or malformed: no limit known, the affinity decides
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


def affinity_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _initial_cap() -> tuple[int, str]:
    """The most threads the default may use, and where that number came from."""
    env = parse_omp_num_threads(os.environ.get("OMP_NUM_THREADS"))
    if env is not None:
        return env, "OMP_NUM_THREADS"
    cpus, quota = affinity_cpus(), cgroup_cpu_quota()
    if quota is not None and quota < cpus:
        return quota, f"CPU quota (cgroup: {quota} of the {cpus} CPUs in the affinity)"
    return min(cpus, MAX_THREADS), f"CPU affinity ({cpus} CPUs)"


_cap, _cap_source = _initial_cap()
_explicit: int | None = None          # set_num_threads
_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("lossengine_threads", default=None)
_forked_thread: int | None = None     # threading.get_ident() of the thread that forked this process


def _after_fork_in_child() -> None:
    global _forked_thread
    _forked_thread = threading.get_ident()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _runtime_max_threads() -> int:
    """omp_get_max_threads() in the calling thread (1 without OpenMP)."""
    from . import _elementwise

    return _elementwise.max_threads()


def _validated(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"number of threads must be an integer, got {type(n).__name__}")
    n = int(n)  # type: ignore[arg-type]
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"number of threads must be between 1 and {MAX_THREADS}, got {n}")
    return n


def set_num_threads(n: int | None) -> None:
    """Set the process-wide number of threads the kernels use instead of the default; ``None`` goes
    back to the default (which follows the OpenMP runtime's limit again)."""
    global _explicit
    _explicit = None if n is None else _validated(n)


def _in_forked_thread() -> bool:
    return _forked_thread is not None and threading.get_ident() == _forked_thread


def _kernel_threads() -> int:
    """What a kernel call takes as ``num_threads``: an explicit count (> 0), or -cap for the default,
    which the kernel resolves at call time against the OpenMP runtime's limit (pyx/_common.pxd)."""
    n = _override.get()
    if n is None:
        n = _explicit if _explicit is not None else -_cap
    return 1 if _forked_thread is not None and _in_forked_thread() else n


def get_num_threads() -> int:
    """The number of threads a kernel called now from this thread would use (on an idle machine)."""
    n = _kernel_threads()
    return n if n > 0 else max(1, min(_runtime_max_threads(), -n))


def thread_count_source() -> str:
    """Where get_num_threads()'s number comes from, in words (``lossengine info``)."""
    if _in_forked_thread():
        return "1: this thread forked the process (an OpenMP pool does not survive fork)"
    if _override.get() is not None:
        return "lossengine.threads(n) in this thread"
    if _explicit is not None:
        return "lossengine.set_num_threads(n)"
    omp = _runtime_max_threads()
    if omp < _cap:
        return f"the OpenMP runtime's limit ({omp}: threadpoolctl, omp_set_num_threads or OMP_NUM_THREADS)"
    return _cap_source


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Use ``n`` threads inside the ``with`` block, in this thread only."""
    token = _override.set(_validated(n))
    try:
        yield
    finally:
        _override.reset(token)


# -- beside another OpenMP runtime -----------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _own_runtime() -> ctypes.CDLL | None:
    """A ctypes handle through which symbol lookups reach the OpenMP runtime the kernels were bound
    to: the compiled module's own (dlsym on a library's handle searches it and its dependencies)."""
    from . import _elementwise

    try:
        return ctypes.CDLL(_elementwise.__file__)
    except (OSError, AttributeError, TypeError):
        return None


def _symbol(lib: object, name: str) -> object | None:
    try:
        return getattr(lib, name)
    except (AttributeError, OSError, TypeError, ValueError):   # no such symbol (no OpenMP), not a library
        return None


def _address(function: object | None) -> int | None:
    return None if function is None else ctypes.cast(function, ctypes.c_void_p).value


def shares_openmp_runtime(lib: object) -> bool:
    """Whether the native library behind the ctypes handle ``lib`` (XGBoost's ``xgboost.core._LIB``,
    LightGBM's ``lightgbm.basic._LIB``) runs its OpenMP loops on lossengine's runtime: the same
    ``omp_get_max_threads``, as each one's dynamic linking resolved it. True as well when either has
    no OpenMP (no second runtime then)."""
    ours = _address(_symbol(_own_runtime(), "omp_get_max_threads"))
    theirs = _address(_symbol(lib, "omp_get_max_threads"))
    return ours is None or theirs is None or ours == theirs


@functools.lru_cache(maxsize=None)
def _pause_all():
    pause = _symbol(_own_runtime(), "omp_pause_resource_all")     # OpenMP 5.0: libgomp >= 9, LLVM >= 8
    if pause is not None:
        pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
    return pause


OMP_PAUSE_SOFT = 1      # omp_pause_resource_t's omp_pause_soft


@contextlib.contextmanager
def beside_another_runtime() -> Iterator[None]:
    """For a call made between a library's parallel loops on another OpenMP runtime (XGBoost's): the
    default count runs the call on one thread (the library's team holds the cores: its workers
    spin-wait through the call), an explicit count (``threads(n)``, ``set_num_threads(n)``) is kept,
    and lossengine's workers for the calling thread are released afterwards, not left spin-waiting
    through the library's next loop."""
    token = _override.set(1) if _override.get() is None and _explicit is None else None
    try:
        yield
    finally:
        if token is not None:
            _override.reset(token)
        release_workers()


def release_workers() -> bool:
    """End the worker threads lossengine's OpenMP runtime keeps for the calling thread (OpenMP 5.0's
    ``omp_pause_resource_all(omp_pause_soft)``), instead of leaving them to spin-wait for the next
    call; the next parallel call starts new ones (about 0.1 ms). For a caller that knows another
    runtime's threads need the cores next. Not done in the thread that forked this process (its
    pool's threads do not exist in the child: releasing them would wait for them for ever), inside a
    parallel region (the runtime refuses) or without OpenMP. Returns whether the runtime did it."""
    if _in_forked_thread():
        return False
    pause = _pause_all()
    return pause is not None and pause(OMP_PAUSE_SOFT) == 0

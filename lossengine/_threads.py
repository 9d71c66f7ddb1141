"""Thread-count control for the OpenMP kernels.

The process-wide default is every core this process may run on, or OMP_NUM_THREADS when set.
``threads(n)`` overrides it for the current thread (and asyncio task) only, through a ContextVar, so
concurrent Python threads never see each other's overrides. Results never depend on the count.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

# Below this many elements (or element-equivalents of work) a kernel stays on one thread: waking a
# thread team costs more than the work.
PARALLEL_MIN_ELEMENTS = 32768

# The most threads a kernel may be asked for. OpenMP runtimes fail badly far above the core count
# (libgomp: a crash at 100000, "Thread creation failed" and exit at 60000, a 481 GB allocation at
# 2^31 - 1), and no CPU this engine runs on has more: counts above it are refused when set.
MAX_THREADS = 1024


def _initial_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), MAX_THREADS)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_default_threads = _initial_threads()
_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("lossengine_threads", default=None)


def _validated(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"number of threads must be an integer, got {type(n).__name__}")
    n = int(n)  # type: ignore[arg-type]
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"number of threads must be between 1 and {MAX_THREADS}, got {n}")
    return n


def set_num_threads(n: int) -> None:
    """Set the process-wide default number of threads the kernels use."""
    global _default_threads
    _default_threads = _validated(n)


def get_num_threads() -> int:
    """The number of threads a kernel called now from this thread would use."""
    override = _override.get()
    return _default_threads if override is None else override


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Use ``n`` threads inside the ``with`` block, in this thread only."""
    token = _override.set(_validated(n))
    try:
        yield
    finally:
        _override.reset(token)

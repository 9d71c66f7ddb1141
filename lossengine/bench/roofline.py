"""``--roofline``: the bytes a call moves and the bandwidth it reaches, against ``a + b -> c`` over the
same bytes, timed in the same interleaved run.

Bytes moved: each array the call reads (every positional array) plus each array it writes (the
gradients, and the value: a scalar, or reduction='none''s per-element losses), once per call, from the
arrays' sizes. So it is the least traffic the call can make, counted the same way for any loss, a
plugin's too; a loss that reads an input twice from memory (two passes over arrays larger than the
caches) reaches a lower fraction. The reference's bytes are counted the same way (two reads, one
write: 3 arrays of n elements of the run's dtype), n chosen so that they total the case's bytes.

The reference ``a + b -> c``: NumPy's ``np.add(a, b, out=c)`` on one thread, and split into one
contiguous slice per thread over a pool of the run's thread count (NumPy releases the GIL inside the
ufunc, so the slices run in parallel). Both are timed beside the case, interleaved; the faster is the
reference (the pool's hand-off costs tens of microseconds, so small arrays go faster on one thread).
fraction = the loss's bandwidth / the reference's; near 1: the call is bandwidth-bound, moving its bytes
as fast as the plain add does; well below 1: compute-bound (or making more passes than it counts).
Meaningful for arrays beyond the last-level cache (about 1e6 elements and up); below it, both sides
are dominated by call overhead.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

ONE_THREAD = "a+b->c (1 thread)"


def pool_name(threads: int) -> str:
    return f"a+b->c ({threads} threads)"


def nbytes(obj: Any) -> int:
    """Bytes of every NumPy array or scalar in ``obj`` (nested tuples and lists)."""
    if isinstance(obj, (tuple, list)):
        return sum(nbytes(o) for o in obj)
    if isinstance(obj, (np.ndarray, np.generic)):
        return int(obj.nbytes)
    return 0


def bytes_moved(arrays: tuple, result: Any) -> dict:
    """What a call with positional ``arrays`` returning ``result`` (value, gradient(s)) reads and writes."""
    read, written = nbytes(tuple(arrays)), nbytes(result)
    return {"read": read, "written": written, "total": read + written}


class AddReference:
    """``a + b -> c`` calls moving about ``total`` bytes of ``dtype``, on one thread and on ``threads``
    threads (a pool made once per run and reused; ``close`` ends it)."""

    def __init__(self, threads: int):
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def engines(self, total: int, dtype: Any) -> tuple[dict[str, Callable[[], object]], int]:
        """The reference's calls for about ``total`` bytes, and the bytes they move."""
        dtype = np.dtype(dtype)
        n = max(1, total // (3 * dtype.itemsize))
        rng = np.random.default_rng(1)
        a, b = (rng.standard_normal(n).astype(dtype) for _ in range(2))
        c = np.zeros_like(a)        # touched: no page faults in the timing
        out: dict[str, Callable[[], object]] = {ONE_THREAD: lambda: np.add(a, b, out=c)}
        if self.pool is not None:
            bounds = np.linspace(0, n, self.threads + 1).astype(int)
            slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
            pool = self.pool

            def add_threads():
                for job in [pool.submit(np.add, a[s], b[s], out=c[s]) for s in slices]:
                    job.result()
            out[pool_name(self.threads)] = add_threads
        return out, 3 * n * dtype.itemsize

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def figures(moved: dict, reference_bytes: int, medians: dict[str, float]) -> dict:
    """The roofline figures of one case from its interleaved medians (lossengine's and the reference's)."""
    seconds = medians["lossengine"]
    references = {name: t for name, t in medians.items() if name.startswith("a+b->c")}
    fastest = min(references, key=references.get)
    bandwidth = moved["total"] / seconds
    reference_bandwidth = reference_bytes / references[fastest]
    return {**moved, "bandwidth": bandwidth,
            "reference": {"engine": fastest, "bytes": reference_bytes, "seconds": references[fastest],
                          "bandwidth": reference_bandwidth},
            "fraction": bandwidth / reference_bandwidth}

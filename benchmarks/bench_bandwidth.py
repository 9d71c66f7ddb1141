"""How close the memory-bound losses come to the machine's bandwidth (issue #9's 85% target).

    python benchmarks/bench_bandwidth.py [--n 1e7] [--threads 2] [--repeat 41]

At 1e7 float32 elements, MSE, L1 and Huber ``forward_backward(input, target, out=grad)`` read 8 bytes
and write 4 per element: the traffic of ``c = a + b``. The reference is the fastest way this
machine has to run ``a + b -> c`` over the same bytes on the same threads: NumPy's ``np.add(a, b,
out=c)`` on one thread, and split into one contiguous slice per thread in a thread pool (NumPy
releases the GIL inside the ufunc). Every engine is timed in one interleaved run
(lossengine.bench.interleaved_medians); a loss's share = fastest ``a + b -> c`` / the loss's median
(1.0: the loss moves its bytes as fast as the plain add does). Output arrays are preallocated and
touched first, so no engine pays page faults inside the timing.
"""
import argparse
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import lossengine as le

LOSSES = ("MSELoss", "L1Loss", "HuberLoss")


def main() -> None:
    from lossengine.bench import interleaved_medians

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=41)
    args = parser.parse_args()
    n, threads = int(args.n), args.threads
    le.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    c = np.zeros_like(a)
    grads = {name: np.zeros_like(a) for name in LOSSES}
    pool = ThreadPoolExecutor(threads)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def add_threads():
        for f in [pool.submit(np.add, a[s], b[s], out=c[s]) for s in slices]:
            f.result()

    engines = {"a + b -> c, NumPy, 1 thread": lambda: np.add(a, b, out=c),
               f"a + b -> c, NumPy, {threads} threads": add_threads}
    for name in LOSSES:
        loss = getattr(le, name)()
        engines[f"{name} forward_backward(out=)"] = (lambda loss=loss, g=grads[name]:
                                                     loss.forward_backward(a, b, out=g))
    medians = interleaved_medians(engines, args.repeat)
    fastest_add = min(t for label, t in medians.items() if label.startswith("a + b"))
    gb = 12 * n / 1e9
    print(f"n = {n:.0e} float32, {threads} threads, median of {args.repeat} interleaved calls each; "
          f"12 bytes per element ({gb:.2f} GB per call)\n")
    print("| engine | time | GB/s | share of the fastest a + b -> c |")
    print("|---|---|---|---|")
    for label, t in medians.items():
        print(f"| {label} | {t * 1e3:.2f} ms | {gb / t:.1f} | {fastest_add / t:.2f} |")


if __name__ == "__main__":
    main()

"""How close every elementwise loss comes to the machine's bandwidth (issue #9's 85% target, #31's
every elementwise loss).

    python benchmarks/bench_bandwidth.py [--n 1e7] [--threads 2] [--repeat 41] [--losses mse_loss,l1_loss]

Every registered elementwise loss (a plugin's too), ``forward_backward(..., out=grad)`` at --n float32
elements on --threads threads, against ``a + b -> c`` over the same bytes: ``lossengine bench
--roofline`` (lossengine/bench/roofline.py) with no peer. Bytes per call: every input read and every
output written once (MSE, L1, Huber: 8 read and 4 written per element, the traffic of ``c = a + b``;
a loss with more arguments moves more). The reference is the faster of NumPy's ``np.add(a, b, out=c)``
on one thread and split into one contiguous slice per thread in a pool of --threads threads (NumPy
releases the GIL inside the ufunc), timed beside each loss in one interleaved run; a loss's share =
its bandwidth / the reference's (1.0: the loss moves its bytes as fast as the plain add does). Output
arrays are preallocated and touched first, so no engine pays page faults inside the timing.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

import lossengine as le
from lossengine.losses.elementwise import ElementwiseLoss


def elementwise_cases(names=None) -> list:
    """One case per registered elementwise loss (its first declared case, else its tiled samples),
    timing the input's gradient (forward_backward's default)."""
    from lossengine.bench import select_cases

    wanted = names or [n for n in le.registry.names() if issubclass(le.registry.get(n), ElementwiseLoss)]
    cases = []
    for name in wanted:
        found, _ = select_cases([name])
        cases.append(replace(found[0], wrt=None))
    return cases


def main(argv=None) -> None:
    from lossengine.bench import run_benchmarks
    from lossengine.bench.report import fmt_bytes, fmt_seconds, table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=41)
    parser.add_argument("--losses", help="comma-separated registry names (default: every elementwise loss)")
    args = parser.parse_args(argv)
    n = int(args.n)
    cases = elementwise_cases(args.losses.split(",") if args.losses else None)
    report = run_benchmarks(cases, [n], np.float32, peers=(), threads=args.threads, repeat=args.repeat,
                            roofline=True, out=True)
    print(f"n = {n:.0e} float32, {args.threads} threads, median of {args.repeat} interleaved calls each; "
          f"reference: {report['roofline']['reference']}, over the same bytes\n")
    rows = []
    for row in report["cases"]:
        if "error" in row:
            rows.append([row["label"], "error: " + row["error"], "", "", "", ""])
            continue
        r = row["roofline"]
        rows.append([row["label"], fmt_bytes(r["total"]), fmt_seconds(row["results"]["lossengine"]["median"]),
                     f"{r['bandwidth'] / 1e9:.1f}", f"{r['reference']['bandwidth'] / 1e9:.1f}", f"{r['fraction']:.2f}"])
    print(table(["loss", "bytes per call", "time", "GB/s", "a + b -> c GB/s", "share of a + b -> c"], rows, True))


if __name__ == "__main__":
    main()

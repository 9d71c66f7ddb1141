"""The ``lossengine bench`` command: its arguments, checked before anything runs, and the run."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

from .._threads import MAX_THREADS
from .cases import Case, select_cases, sizes_per_case
from .peers import PEERS
from .report import format_report, write_plot
from .run import run_benchmarks


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2 (no usage dump, no traceback)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):
        # As a subcommand, leftovers would go back to the top-level parser and its usage dump.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


DESCRIPTION = ("Time forward_backward (value with reduction='mean', input gradient) against every installed "
               "peer, each peer's numbers checked against lossengine's first, all engines measured in one "
               "interleaved run.")
ROOFLINE_HELP = """\
--roofline: bytes/call counts every array the call reads (each input) and writes (each gradient, the
value) once, from the arrays' sizes, so it works for any loss, a plugin's too; lossengine then writes
its gradients into arrays allocated once (out=), so no page faults of fresh allocations are timed.
GB/s = bytes / lossengine's median. The reference is a + b -> c over the same bytes (two reads, one
write), timed beside the case in the same interleaved run: NumPy's np.add(a, b, out=c) on one thread,
and split into one contiguous slice per thread over a pool of as many Python threads as lossengine
uses (--threads; NumPy releases the GIL inside the ufunc); the faster of the two counts. "of a+b->c" = the case's GB/s / the
reference's: near 1, the call is bandwidth-bound; well below 1, compute-bound. Meaningful for arrays
larger than the last-level cache (1e6 elements and up). The same figures go in --json ("roofline"
per case)."""


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """The ``bench`` subcommand's arguments (cli.py calls this)."""
    p = subparsers.add_parser(
        "bench", help="time forward_backward against torch, JAX, scikit-learn and NumPy (those installed)",
        description=DESCRIPTION, epilog=ROOFLINE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = _OneLineParser     # add_parser builds the parent's class; only bench's errors change
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="registry or class names, or 'all' (default: the quick set: L1, MSE, Huber, BCE, "
                        "BCEWithLogits, cross-entropy, MultiMargin, TripletMargin, CTC)")
    p.add_argument("--sizes", help="comma-separated element counts (1e5) or shapes (4096x1000) "
                                   "(default: each case's own)")
    p.add_argument("--dtype", default="float32", help="float32 or float64 (default float32)")
    p.add_argument("--threads", help="threads for lossengine, torch and scikit-learn (default: lossengine's)")
    p.add_argument("--compare", default=",".join(PEERS),
                   help=f"comma-separated peers to compare with (default: {','.join(PEERS)})")
    p.add_argument("--repeat", help="timed calls per engine and case (default: as many as fit ~0.1 s)")
    p.add_argument("--baseline", metavar="NAME",
                   help="also time loss NAME (a plugin's or a built-in) at each case's size, interleaved, and "
                        "report each case's time relative to it")
    p.add_argument("--roofline", action="store_true",
                   help="add each case's bytes per call, the bandwidth lossengine reached, and its fraction of "
                        "a + b -> c over the same bytes (see below)")
    p.add_argument("--json", metavar="FILE", help="write every number (all call times) to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="plot time against size per engine (needs matplotlib)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    return p


def _parse_sizes(text: str) -> list:
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            if "x" in item:
                size = tuple(int(d) for d in item.split("x"))
                ok = all(d > 0 for d in size)
            else:
                value = float(item)
                size = int(value)
                ok = value == size and size > 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"--sizes: {item!r} is not a positive element count (1000, 1e5) or a shape (4096x1000)")
        sizes.append(size)
    return sizes


def _positive_int(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{option}: expected a positive integer, got {text!r}")
    return value


def _options(args: argparse.Namespace) -> dict:
    """The validated arguments; ValueError with a one-line message otherwise."""
    if args.dtype not in ("float32", "float64"):
        raise ValueError(f"--dtype: expected float32 or float64, got {args.dtype!r}")
    peers = [p.strip() for p in args.compare.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise ValueError(f"--compare: unknown peer {unknown[0]!r} (choose from {', '.join(PEERS)})")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'lossengine[plot]'") from None
    threads = _positive_int("--threads", args.threads)
    if threads is not None and threads > MAX_THREADS:
        raise ValueError(f"--threads: expected at most {MAX_THREADS}, got {threads}")
    repeat = _positive_int("--repeat", args.repeat)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            _check_writable(option, path)
    cases, notes = select_cases(args.names)
    sizes = _parse_sizes(args.sizes) if args.sizes else None
    if sizes and cases:
        notes += sizes_per_case(cases, sizes)[1]
    baseline = _baseline_case(args.baseline, cases) if args.baseline else None
    return {"cases": cases, "notes": notes, "sizes": sizes, "dtype": np.dtype(args.dtype), "peers": peers,
            "threads": threads, "repeat": repeat, "baseline": baseline}


def _check_writable(option: str, path: str) -> None:
    """Before the run, not after it: open ``path`` for appending (creating it, then removing what
    was created), so an unwritable path costs no benchmark time."""
    existed = os.path.lexists(path)
    if os.path.isdir(path):
        raise ValueError(f"{option}: {path!r} is a folder; expected a file path")
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise ValueError(f"{option}: cannot write {path!r}: {exc.strerror or exc}") from None
    if not existed:
        os.unlink(path)


def _baseline_case(name: str, cases: Sequence[Case]) -> Case:
    """The case ``--baseline NAME`` times beside every case (its first case when it has several), so
    any loss, a plugin's too, can be the reference. It must take the same form of size as each case
    it is compared with."""
    try:
        matches, _ = select_cases([name])
    except ValueError as exc:
        raise ValueError(f"--baseline: {exc}") from None
    if not matches:
        raise ValueError(f"--baseline: {name!r} is not registered in this build")
    baseline = matches[0]
    for case in cases:
        if case.rank != baseline.rank:
            raise ValueError(f"--baseline: {baseline.loss} takes {_form(baseline)}, but {case.loss} "
                             f"takes {_form(case)}; compare losses of one form")
    return baseline


def _form(case: Case) -> str:
    return "element counts" if case.rank == 1 else f"{case.rank}-D shapes"


def main(args: argparse.Namespace) -> int:
    try:
        opts = _options(args)
    except ValueError as exc:
        print(f"lossengine bench: error: {exc}", file=sys.stderr)
        return 2
    if (opts["threads"] == 1 and "jax" in opts["peers"] and "jax" not in sys.modules):
        # XLA sizes its thread pool when it starts; this is the one count it can be told.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    if not opts["cases"]:
        print("\n".join(["lossengine bench: nothing to run"] + opts["notes"]), file=sys.stderr)
        return 2
    report = run_benchmarks(opts["cases"], opts["sizes"], opts["dtype"], opts["peers"], opts["threads"],
                            opts["repeat"], progress=not args.quiet, baseline=opts["baseline"],
                            roofline=args.roofline, out=args.roofline)
    report["arguments"] = {k: v for k, v in vars(args).items() if k not in ("run", "command")}
    report["notes"] = opts["notes"]
    print(format_report(report, opts["notes"], args.markdown))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0

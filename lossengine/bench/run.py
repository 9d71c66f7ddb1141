"""Running cases: each engine's call built and checked against lossengine's, then timed, interleaved."""
from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import roofline as rl
from .cases import Case, loss_class, sizes_per_case
from .peers import PEERS, Skip, engine_settings, installed, peer_threads, versions
from .timing import LONG_CALL, NOISY_SPREAD, call_seconds, calls_per_engine, interleaved_times, summarize, timed

# The engine name ``--baseline``'s loss is timed under (lossengine computing another loss).
BASELINE = "baseline"


def agreement(expected: tuple, got: tuple, dtype: np.dtype) -> str | None:
    """None when a peer's (value, gradient or gradients) matches lossengine's, else the difference."""
    rtol = 2e-3 if dtype == np.float32 else 1e-7
    (v0, g0), (v1, g1) = expected, got
    v0, v1 = float(v0), float(v1)
    if not math.isclose(v0, v1, rel_tol=rtol, abs_tol=rtol * 1e-3) and not (math.isnan(v0) and math.isnan(v1)):
        return f"value {v1:.6g} vs lossengine {v0:.6g}"
    several = isinstance(g0, tuple)
    if several != isinstance(g1, tuple) or (several and len(g0) != len(g1)):
        return f"{len(g1) if isinstance(g1, tuple) else 1} gradient(s) vs {len(g0) if several else 1}"
    for k, (a, b) in enumerate(zip(g0, g1) if several else [(g0, g1)]):
        mismatch = _gradient_agreement(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol)
        if mismatch:
            return f"gradient {k + 1}: {mismatch}" if several else f"gradient {mismatch}"
    return None


def _gradient_agreement(g0: np.ndarray, g1: np.ndarray, rtol: float) -> str | None:
    if g0.shape != g1.shape:
        return f"shape {g1.shape} vs {g0.shape}"
    scale = np.nanmax(np.abs(g0)) if g0.size else 0.0
    with np.errstate(invalid="ignore"):
        diff = np.abs(g0 - g1)
    bad = (diff > rtol * scale) & ~(np.isnan(g0) & np.isnan(g1))
    if bad.any():
        return f"differs by up to {np.nanmax(diff[bad]) / scale:.2g} of its largest element"
    return None


@dataclass
class Prepared:
    """One case at one size, ready to time: its inputs, each engine's zero-argument call (peers only
    when they agree with lossengine), the first call's seconds per engine, the peers skipped, and
    lossengine's first result. A script may add engines of its own before ``measure``."""
    case: Case
    arrays: tuple
    engines: dict[str, Callable[[], object]]
    first: dict[str, float | None]
    skipped: dict[str, str]
    error: str | None = None
    result: Any = None
    out: bool = False
    extra: dict = field(default_factory=dict)       # more fields for the row (the roofline's)


def _out_like(gradients: Any) -> Any:
    if isinstance(gradients, tuple):
        return tuple(np.empty_like(g) for g in gradients)
    return np.empty_like(gradients)


def prepare(case: Case, shape: tuple, dtype: Any = np.float32, peers: Sequence[str] = PEERS,
            threads: int | None = None, out: bool = False) -> Prepared:
    """Build the inputs and every engine's call for ``case`` at ``shape``; each peer is called once
    and checked against lossengine (a peer that disagrees, cannot run or is absent is skipped).
    lossengine writes its gradients into arrays allocated once (``out=``) when ``out`` is asked, and
    where a peer writes into preallocated outputs (scikit-learn's ``gradient_out``)."""
    from .._threads import get_num_threads

    dtype = np.dtype(dtype)
    loss = loss_class(case.loss)(**case.options)
    arrays = case.make_inputs(shape, dtype)
    wrt = case.wrt_names()
    engines: dict[str, Callable[[], object]] = {"lossengine": lambda: loss.forward_backward(*arrays, wrt=wrt)}
    prepared = Prepared(case, arrays, engines, {}, {})
    try:
        reference, prepared.first["lossengine"] = timed(engines["lossengine"])
    except Exception as exc:  # a loss that cannot take these inputs: say so, keep going
        prepared.error = f"lossengine: {type(exc).__name__}: {exc}"
        return prepared
    if out or case.sklearn is not None:
        gradients = _out_like(reference[1])
        with_out = lambda: loss.forward_backward(*arrays, wrt=wrt, out=gradients)  # noqa: E731
        try:
            reference, prepared.first["lossengine"] = timed(with_out)
            engines["lossengine"], prepared.out = with_out, True
        except Exception as exc:  # a plugin's forward_backward without out=: timed allocating, said so
            prepared.skipped["out="] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}; timed without it"
    prepared.result = reference
    for peer in peers:
        why = installed(peer)
        build = case.peer(peer)
        if why is None and build is None:
            why = case.no_peer.get(peer, "no implementation declared in lossengine.bench.CASES")
        if why is None:
            try:
                runner = build(case, arrays, case.options, threads or get_num_threads())
                result, seconds = timed(runner.call)
                prepared.first[peer] = None if runner.compiles else seconds
                mismatch = agreement(reference, runner.read(result), dtype)
                why = mismatch and f"disagrees with lossengine ({mismatch})"
            except Skip as exc:
                why = str(exc)
            except Exception as exc:
                why = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        if why:
            prepared.skipped[peer] = why
        else:
            engines[peer] = runner.call
    return prepared


def measure(p: Prepared, repeat: int | None = None, budget: float = 0.1) -> dict:
    """Time every engine of ``p``, interleaved; the row ``--json`` writes for it."""
    shape = np.shape(p.arrays[0])
    case = p.case
    row: dict = {"loss": case.loss, "label": case.label, "options": case.options,
                 "shape": list(shape), "elements": math.prod(shape),
                 "inputs": [{"name": n, "shape": list(np.shape(a)), "dtype": np.asarray(a).dtype.name}
                            for n, a in zip(loss_class(case.loss).arguments, p.arrays)],
                 "wrt": list(case.wrt_names() or loss_class(case.loss).arguments[:1]), "out": p.out,
                 "skipped": p.skipped, "results": {}}
    if p.error:
        row["error"] = p.error
        return row
    seconds = {name: call_seconds(fn, p.first.get(name), budget) for name, fn in p.engines.items()}
    reps = repeat or calls_per_engine(seconds, budget)
    samples = interleaved_times(p.engines, reps, warmup={name: t < LONG_CALL for name, t in seconds.items()})
    row["results"] = {name: {**summarize(t), "samples": t} for name, t in samples.items()}
    medians = {name: r["median"] for name, r in row["results"].items()}
    if BASELINE in medians:
        row["baseline_ratio"] = medians[BASELINE] / medians["lossengine"]
    peer_medians = {e: m for e, m in medians.items() if e in PEERS}
    if peer_medians:
        fastest = min(peer_medians, key=peer_medians.get)
        row["fastest_peer"] = fastest
        row["ratio"] = peer_medians[fastest] / medians["lossengine"]
    if "bytes" in p.extra:
        row["roofline"] = rl.figures(p.extra["bytes"], p.extra["reference_bytes"], medians)
    row["noisy"] = [n for n, r in row["results"].items() if r["spread"] > NOISY_SPREAD]
    return row


def _run_case(case, shape, dtype, peers, threads, repeat, budget, baseline: Case | None = None,
              reference: rl.AddReference | None = None, out: bool = False) -> dict:
    p = prepare(case, shape, dtype, peers, threads, out=out)
    if baseline is not None and not p.error:
        base = loss_class(baseline.loss)(**baseline.options)
        base_arrays = baseline.make_inputs(baseline.shape_for(shape[0] if len(shape) == 1 else shape), dtype)
        p.engines[BASELINE] = lambda: base.forward_backward(*base_arrays)
        p.first[BASELINE] = timed(p.engines[BASELINE])[1]
    if reference is not None and not p.error:
        p.extra["bytes"] = rl.bytes_moved(p.arrays, p.result)
        adds, p.extra["reference_bytes"] = reference.engines(p.extra["bytes"]["total"], dtype)
        p.engines.update(adds)
    return measure(p, repeat, budget)


def _progress(stream, enabled: bool):
    tty = enabled and hasattr(stream, "isatty") and stream.isatty()

    def show(text: str, final: bool = False) -> None:
        if not enabled:
            return
        if tty:
            stream.write("\r\033[K" + ("" if final else text))
        elif not final:
            stream.write(text + "\n")
        stream.flush()
    return show


def run_benchmarks(cases: Sequence[Case], sizes: Sequence | None = None, dtype: Any = np.float32,
                   peers: Sequence[str] = PEERS, threads: int | None = None, repeat: int | None = None,
                   budget: float = 0.1, progress: bool = False, baseline: Case | None = None,
                   roofline: bool = False, out: bool = False) -> dict:
    """Measure every case at every size; everything ``--json`` writes (see ``command.main``).
    ``baseline``: a case timed beside each case at its size (``--baseline``); ``roofline``: each
    case's bytes and bandwidth against ``a + b -> c`` (``--roofline``); ``out``: lossengine writes
    its gradients into preallocated arrays in every case."""
    from .._threads import get_num_threads

    dtype = np.dtype(dtype)
    threads = threads or get_num_threads()
    unavailable = {p: why for p in peers if (why := installed(p)) is not None}
    active = [p for p in peers if p not in unavailable]
    per_case = sizes_per_case(cases, sizes)[0] if sizes else {k: [c.shape_for(s) for s in c.sizes]
                                                               for k, c in enumerate(cases)}
    plan = [(case, shape) for k, case in enumerate(cases) for shape in per_case[k]]
    show = _progress(sys.stderr, progress)
    rows = []
    started = time.perf_counter()
    reference = rl.AddReference(threads) if roofline else None
    try:
        with engine_settings(active, threads, dtype):
            thread_counts = peer_threads(active, threads)
            for k, (case, shape) in enumerate(plan, 1):
                show(f"[{k}/{len(plan)}] {case.label} {'x'.join(map(str, shape))}  "
                     f"({time.perf_counter() - started:.0f} s)")
                rows.append(_run_case(case, shape, dtype, peers, threads, repeat, budget, baseline, reference, out))
            show("", final=True)
    finally:
        if reference is not None:
            reference.close()
    ratios = [r["ratio"] for r in rows if r.get("ratio")]
    report = {
        "what": "forward_backward: value (reduction='mean') and input gradient",
        "dtype": dtype.name, "threads": thread_counts, "peers": list(peers),
        "unavailable_peers": unavailable, "versions": versions(active),
        "noisy_spread": NOISY_SPREAD, "seconds": time.perf_counter() - started,
        "geomean_ratio": math.exp(statistics.fmean(map(math.log, ratios))) if ratios else None,
        "baseline": baseline.label if baseline is not None else None,
        "cases": rows,
    }
    if any(case.wrt for case, _ in plan):
        report["what"] += " (every differentiable argument's gradient in the cases labelled 'wrt all')"
    if roofline:
        report["roofline"] = {"reference": f"the faster of NumPy's np.add(a, b, out=c) on 1 thread and on "
                                           f"{threads} threads (one contiguous slice each)", "threads": threads}
    return report

"""Timing: engines measured in interleaved blocks, and the statistics a run reports."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

# A timing whose interquartile range exceeds this fraction of its median is flagged as untrustworthy.
NOISY_SPREAD = 0.25
SETTLE_SECONDS = 0.05
# Timed calls per engine and case without --repeat: as many as fit the time budget, within these bounds.
MIN_CALLS, MAX_CALLS = 6, 1000
WARMUP_SECONDS = 0.005
# Calls longer than this skip the per-block warm-up: a thread pool's wake-up is lost in them.
LONG_CALL = 0.01


def interleaved_times(engines: dict[str, Callable[[], object]], repeat: int | dict[str, int],
                      rounds: int = 3, warmup: bool | dict[str, bool] = True) -> dict[str, list[float]]:
    """Seconds per call for each engine: ``repeat`` timed calls (per engine when a dict), taken in
    ``rounds`` alternating blocks.

    Each engine runs its calls in blocks (A A A, B B B, A A A, ...), so a burst of load on this shared
    machine falls on every engine alike, while no engine is timed with another's thread pool still
    spinning from the previous call: a short pause before each block lets the peers' worker threads
    (OpenMP, XLA) go idle, as they would in a program that uses one engine. An untimed warm-up call
    opens each block (first-touch pages, JIT compilation, thread-pool start) unless ``warmup`` says
    otherwise for that engine (a call so long that waking a thread pool is lost in it).
    """
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            n = repeat[name] if isinstance(repeat, dict) else repeat
            time.sleep(SETTLE_SECONDS)
            if warmup[name] if isinstance(warmup, dict) else warmup:
                # A few milliseconds of calls, not one: after the pause some engines (XLA) take tens of
                # calls to come back to the speed a program calling them in a loop sees.
                deadline = time.perf_counter() + WARMUP_SECONDS
                fn()
                while time.perf_counter() < deadline:
                    fn()
            for _ in range(max(1, -(-n // rounds))):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(engines: dict[str, Callable[[], object]], repeat: int,
                        rounds: int = 3) -> dict[str, float]:
    """Median seconds per engine (see ``interleaved_times``)."""
    return {name: statistics.median(t) for name, t in interleaved_times(engines, repeat, rounds).items()}


def summarize(samples: Sequence[float]) -> dict:
    """Median, quartiles, extremes and spread (IQR / median) of one engine's call times."""
    q1, median, q3 = (statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1
                      else (samples[0],) * 3)
    return {"median": median, "q1": q1, "q3": q3, "min": min(samples), "max": max(samples),
            "spread": (q3 - q1) / median if median > 0 else 0.0, "calls": len(samples)}


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """One call's result and its seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def call_seconds(fn: Callable[[], object], first: float | None, budget: float) -> float:
    """One call's time: the first (checked) call's when it is long and was no JIT compilation (None),
    else a fresh call's (the first may include first-touch page faults)."""
    if first is not None and first > budget:
        return first
    return timed(fn)[1]


def calls_per_engine(seconds: dict[str, float], budget: float) -> dict[str, int]:
    """Timed calls per engine when no count is asked: as many as fit ``budget``, within bounds."""
    return {name: int(min(MAX_CALLS, max(MIN_CALLS, budget / max(t, 1e-7)))) for name, t in seconds.items()}


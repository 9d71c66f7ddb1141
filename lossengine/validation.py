"""The validator: ``check(LossClass) -> CheckReport``, one function serving the test suite, the CLI
and the registry.

It is a list of small named checks (lossengine._checks_numeric and lossengine._checks_contract, run
in ``CHECK_ORDER``). Each takes a ``Case`` (lossengine._check_support: one loss configuration: options and
reduction, with sample inputs from the class's ``sample_inputs``) and returns failure messages that
say which argument, reduction and dtype, and the worst element with its error. ``check`` runs every
check on every configuration and collects the failures; a check that raises is itself a failure.

Configurations: every reduction in ``LossClass.reductions`` with the default options, plus each entry
of the optional class attribute ``check_options`` (a tuple of keyword dicts) with every reduction.

Gradients are checked against float64 central differences of sum(grad_output * loss), with a
grad_output other than 1 (an ignored grad_output must not pass) and, for 'none', a random array.
Elements where the one-sided differences disagree sit on a kink (|x| at 0, a hinge) and are skipped:
that is how losses with kinks pass without hand-written exclusions. Bounded domains are the
sample inputs' business: they must keep every element farther than the step from its boundary.

Beyond the gradient: 'sum'/'mean'/'batchmean' against 'none' (the 1/N of the 'mean' gradient), and
on a large input against the exactly rounded sum (summation-precision bugs), linearity in
grad_output, wrt selection and order, shapes and dtypes, Hessians (``gradient_hessian``, where a loss
offers one) against central differences of the gradient, float32 against float64, forward_backward
against forward and backward, inputs unmodified, results not aliasing inputs or earlier results,
bit-identical repeats and thread counts (also on inputs large enough to run in parallel, for every
family: see ``_check_support.large_inputs``), and finiteness over several sample draws.
tests/test_validator_catches.py holds one deliberately buggy loss per bug class, each caught by the
check named for it.

The validator imports no loss family: what it needs from a class, the class declares (``arguments``,
``differentiable``, ``reductions``, ``sample_inputs``, ``sample_layout``, ``has_hessian``,
``mean_denominator``), with defaults on ``lossengine.Loss``.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from . import _checks_contract, _checks_numeric  # noqa: F401 - importing them registers their checks
from ._check_support import (  # noqa: F401 - the tolerances, as importable here as before the split
    F32_ATOL, F32_RTOL, FD_ATOL, FD_RTOL, FD_STEP, FINITE_SEEDS, FUSED_RTOL, GRAD_OUTPUT_RTOL, KINK_RTOL,
    LARGE_FRESH_DRAWS, REDUCTION_RTOL, SCALAR_GRAD_OUTPUT)
from ._check_support import REGISTERED, Case, large_inputs
from ._structure import structural_problems
from ._verdict_store import CACHE_ENV, cache_dir  # noqa: F401 - public here, defined there
from ._verdict_store import cache_key as _cache_key
from ._verdict_store import read_verdict, write_verdict
from .base import Loss
from .declaration import declared_options

SHOWN_FAILURES = 8      # failures a report prints before "... and N more"
# The checks, in the order each configuration runs them and a report lists them (lossengine._checks_numeric
# and lossengine._checks_contract define them).
CHECK_ORDER = ("sample_inputs", "gradient_vs_finite_differences", "hessian_vs_finite_differences",
               "float32_matches_float64", "reductions_consistent", "forward_backward_fused", "shapes_and_dtypes",
               "inputs_unmodified", "outputs_not_aliased", "grad_output_respected", "wrt_selection",
               "deterministic_and_thread_invariant", "reduction_precise_at_large_n", "layout_invariant",
               "gradient_at_scale", "finite_on_valid_domain")
if set(CHECK_ORDER) != set(REGISTERED):
    raise ImportError(f"lossengine.validation: CHECK_ORDER and the registered checks differ: "
                      f"{sorted(set(CHECK_ORDER) ^ set(REGISTERED))}")
_CHECKS = [(name, REGISTERED[name]) for name in CHECK_ORDER]
# Their former private names, for code that reached for them here.
_Case, _large_inputs = Case, large_inputs


@dataclass(frozen=True)
class Failure:
    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass
class CheckReport:
    """The validator's verdict on one Loss class."""
    loss: str
    failures: list[Failure] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        """The verdict, the root cause first, the first SHOWN_FAILURES failures and a count of the rest."""
        head = f"{self.loss}: {'ok' if self.ok else f'{len(self.failures)} failure(s)'} ({len(self.checks_run)} checks)"
        lines = [head] + [f"  {f}" for f in self.failures[:SHOWN_FAILURES]]
        if len(self.failures) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(self.failures) - SHOWN_FAILURES} more failure(s)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"loss": self.loss, "ok": self.ok, "checks_run": list(self.checks_run),
                "failures": [{"check": f.check, "message": f.message} for f in self.failures]}

    @classmethod
    def from_dict(cls, data: dict) -> "CheckReport":
        return cls(loss=data["loss"], checks_run=list(data["checks_run"]),
                   failures=[Failure(f["check"], f["message"]) for f in data["failures"]])


class LossValidationError(ValueError):
    """A loss failed the validator; ``.report`` holds the CheckReport."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        super().__init__(f"loss rejected by the validator:\n{report}")



def check_names() -> list[str]:
    return list(CHECK_ORDER)


def _contract_problems(loss_class: type) -> list[str]:
    """Pieces of the contract a class leaves out, each with its one-line fix."""
    problems = []
    for method, signature in (("forward", "forward(self, *arrays)"),
                              ("backward", "backward(self, *arrays, grad_output=1.0, wrt=None)")):
        if getattr(loss_class, method, None) is getattr(Loss, method):
            problems.append(f"{loss_class.__name__} does not implement {method}(): define {signature}")
    return problems


def _option_sets(loss_class: type) -> list[dict]:
    """The option configurations checked: the defaults, each declared option's examples (one
    non-default value at a time, lossengine.declaration), then the class's ``check_options``."""
    sets = [{}]
    for option in declared_options(loss_class):
        if option.name != "reduction":
            sets += [{option.name: example} for example in option.examples]
    sets += [dict(o) for o in getattr(loss_class, "check_options", ())]
    unique = []
    for s in sets:
        if not any(s.keys() == u.keys() and all(_same(s[k], u[k]) for k in s) for u in unique):
            unique.append(s)
    return unique


def _same(a, b) -> bool:
    return a is b or (type(a) is type(b) and not isinstance(a, np.ndarray) and a == b)


def _as_checked(loss_class):
    """The class ``check`` runs on: something that is not a loss but stands for one (a
    ``lossengine.Distance``, checked as the loss of (x1, x2) it defines) names it through its
    ``as_loss()``; a loss class or instance is taken as it is."""
    if isinstance(loss_class, Loss) or (isinstance(loss_class, type) and issubclass(loss_class, Loss)):
        return loss_class
    as_loss = getattr(loss_class, "as_loss", None)
    return as_loss() if callable(as_loss) else loss_class


def _configurations(loss_class: type) -> list[tuple[dict, str]]:
    return list(itertools.product(_option_sets(loss_class), loss_class.reductions))


def expected_checks(loss_class: type) -> list[str] | None:
    """The ``checks_run`` list a passing ``check(loss_class)`` records with this validator, without
    running a check (None for something that cannot pass). A stored or reported verdict counts as
    "ok" only when it records exactly these: an empty or stale report is not a pass."""
    loss_class = _as_checked(loss_class)
    if not isinstance(loss_class, type) or structural_problems(loss_class) or _contract_problems(loss_class):
        return None
    return [f"{name}:{Case(loss_class, options, reduction, 0).label}"
            for options, reduction in _configurations(loss_class) for name, _ in _CHECKS]


def check(loss_class: type, *, seed: int = 0) -> CheckReport:
    """Run every check on every configuration of ``loss_class``; never raises for a bad loss.

    Root causes stop what follows from them: a malformed class or a missing method is the whole
    report, and a configuration whose sample inputs fail runs no further checks."""
    loss_class = _as_checked(loss_class)
    report = CheckReport(loss=getattr(loss_class, "__name__", repr(loss_class)))
    if isinstance(loss_class, Loss):
        cls = type(loss_class).__name__
        report.loss = cls
        report.failures.append(Failure("structure", f"pass the class, not an instance: check({cls}), "
                                                    f"not check({cls}(...))"))
        return report
    problems = structural_problems(loss_class) or _contract_problems(loss_class)
    if problems:
        report.failures += [Failure("structure", p) for p in problems]
        return report
    shared: dict = {}
    for options, reduction in _configurations(loss_class):
        case = Case(loss_class, options, reduction, seed, shared)
        for name, fn in _CHECKS:
            report.checks_run.append(f"{name}:{case.label}")
            try:
                messages = list(fn(case))
            except NotImplementedError as exc:  # a missing piece: say it once, not per check
                messages = [f"raised NotImplementedError: {exc}"]
                report.failures += [Failure(name, f"{case.label}: {m}") for m in messages]
                return report
            except Exception as exc:  # a loss that crashes a check fails it
                messages = [f"raised {type(exc).__name__}: {exc}"]
            report.failures += [Failure(name, f"{case.label}: {m}") for m in messages]
            if messages and name == "sample_inputs":
                break  # every other check of this configuration would fail on the same inputs
    return report


# -- the verdict cache --------------------------------------------------------------------------
# A plugin class is checked once per process (weakly keyed by the class, so it never keeps a class
# alive) and once per version of its code across processes. The on-disk verdict is keyed by
# lossengine._code_identity: every file of every top-level package the class's MRO comes from (data
# included, no cutoff), lossengine's own package always, and the code objects of each class -- never
# by a self-declared ``__module__``/``__qualname__`` alone (lossengine._verdict_store: the key, the
# folder, reading and writing).
#
# What is read back is not trusted either (the folder and file rules are _verdict_store's), and a
# verdict counts only when it records
# exactly the checks this validator runs for the class (``expected_checks``): a file with no checks
# and no failures is not a pass. A recorded timeout counts while the timeout is no longer than it was.
_reports: "weakref.WeakKeyDictionary[type, CheckReport]" = weakref.WeakKeyDictionary()
_reports_lock = threading.Lock()
NO_CACHE_ENV = "LOSSENGINE_NO_VALIDATION_CACHE"
TIMEOUT_ENV = "LOSSENGINE_VALIDATION_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 60.0
TIMEOUT_CHECK = "timeout"


def validation_timeout() -> float:
    """Seconds a plugin's validation child may take: $LOSSENGINE_VALIDATION_TIMEOUT, else 60."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        value = DEFAULT_TIMEOUT_SECONDS
    return value if math.isfinite(value) and value > 0 else DEFAULT_TIMEOUT_SECONDS


def timeout_report(loss_class: type, seconds: float) -> CheckReport:
    """The verdict on a loss whose validation did not finish within ``seconds``: stored like any
    other, so the next process does not wait again for the same code."""
    return CheckReport(loss=loss_class.__name__, checks_run=[f"{TIMEOUT_CHECK}:{seconds:g}"],
                       failures=[Failure(TIMEOUT_CHECK, f"validating it did not finish within {seconds:g} s "
                                                        f"(set {TIMEOUT_ENV} to allow longer)")])


def verdict_problem(loss_class: type, report: CheckReport) -> str | None:
    """Why ``report`` cannot stand as the verdict on ``loss_class`` with this validator (None when it
    can): a pass must record exactly the checks ``check`` runs; a failure must name one; a timeout
    counts only while the current timeout is no longer than the one that ran out."""
    if report.ok:
        expected = expected_checks(loss_class)
        if report.checks_run != expected:
            return (f"it reports a pass over {len(report.checks_run)} checks, but this validator runs "
                    f"{len(expected or ())} on it")
        return None
    if not report.failures:
        return "it reports neither a pass nor a failure"
    if report.checks_run and report.checks_run[0].startswith(TIMEOUT_CHECK + ":"):
        try:
            ran_out = float(report.checks_run[0].partition(":")[2])
        except ValueError:
            return "its timeout is not a number"
        if ran_out < validation_timeout():
            return f"it timed out after {ran_out:g} s, and the timeout is now {validation_timeout():g} s"
    return None



def _read_cached(key: str, loss_class: type) -> CheckReport | None:
    data = read_verdict(key)
    if data is None:
        return None
    try:
        report = report_from_json(json.loads(data))
    except ValueError:
        return None
    return report if verdict_problem(loss_class, report) is None else None


def report_from_json(data) -> CheckReport:
    """A CheckReport from its ``to_dict`` form, every field's type checked (ValueError otherwise)."""
    if not isinstance(data, dict) or set(data) != {"loss", "ok", "checks_run", "failures"}:
        raise ValueError("a verdict is an object with exactly loss, ok, checks_run and failures")
    loss, ok, checks_run, failures = data["loss"], data["ok"], data["checks_run"], data["failures"]
    if not (isinstance(loss, str) and isinstance(ok, bool) and isinstance(checks_run, list)
            and all(isinstance(c, str) for c in checks_run) and isinstance(failures, list)
            and all(isinstance(f, dict) and set(f) == {"check", "message"} and isinstance(f["check"], str)
                    and isinstance(f["message"], str) for f in failures)):
        raise ValueError("a verdict field has the wrong type")
    report = CheckReport.from_dict(data)
    if report.ok != ok:
        raise ValueError("the verdict's ok disagrees with its failures")
    return report


def store_verdict(loss_class: type, report: CheckReport) -> None:
    """Store ``report`` for ``loss_class``'s code, when the class has a key and the cache is usable."""
    key = _cache_key(loss_class)
    if key is not None:
        write_verdict(key, report.to_dict())


def cached_verdict(loss_class: type) -> CheckReport | None:
    """The verdict already held for ``loss_class`` (this process's, or an earlier process's for
    unchanged code), or None when only running ``check`` would tell. Never runs a check."""
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    with _reports_lock:
        report = _reports.get(loss_class) if isinstance(loss_class, type) else None
    if report is None:
        key = _cache_key(loss_class)
        report = None if key is None else _read_cached(key, loss_class)
        if report is not None:
            with _reports_lock:
                _reports[loss_class] = report
    return report


def remember(loss_class: type, report: CheckReport) -> CheckReport:
    """Hold ``report`` as this process's verdict on ``loss_class`` (the first one held wins)."""
    if not isinstance(loss_class, type):
        return report
    with _reports_lock:
        return _reports.setdefault(loss_class, report)


def cached_check(loss_class: type) -> CheckReport:
    """``check(loss_class)``, reusing the verdict from this process or, for unchanged code, from an
    earlier one. ``LOSSENGINE_NO_VALIDATION_CACHE=1`` forces a fresh check (and stores it)."""
    report = cached_verdict(loss_class)
    if report is not None:
        return report
    report = check(loss_class)
    store_verdict(loss_class, report)
    with _reports_lock:
        if isinstance(loss_class, type):
            _reports[loss_class] = report
    return report

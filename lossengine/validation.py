"""The validator: ``check(LossClass) -> CheckReport``, one function serving the test suite, the CLI
and the registry.

It is a list of small named checks. Each takes a ``_Case`` (one loss configuration: options and
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
family: see ``_large_inputs``), and finiteness over several sample draws. tests/test_validator_catches.py holds one
deliberately buggy loss per bug class, each caught by the check named for it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import stat
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import _code_identity
from ._structure import structural_problems
from ._threads import PARALLEL_MIN_ELEMENTS, get_num_threads, threads
from .base import Loss
from .declaration import declared_options
from .domains import domain_of
from .extending import NumpyElementwiseLoss
from .losses.classification import ClassificationLoss
from .losses.elementwise import ElementwiseLoss
from .losses.embedding import Distance, distance_loss

FD_STEP = 1e-6          # relative central-difference step
FD_RTOL = 1e-5          # gradient vs central difference
FD_ATOL = 1e-7          # ... times (1 + max |central difference|)
KINK_RTOL = 1e-3        # one-sided differences further apart than this: a kink, skipped
F32_RTOL = 1e-5         # float32 path vs float64 path, relative to the element ...
F32_ATOL = 1e-6         # ... plus this times the largest magnitude (~17 float32 ulps of it)
FUSED_RTOL = 1e-12      # forward_backward vs forward then backward
REDUCTION_RTOL = 1e-10  # 'sum'/'mean' vs the sum/mean of 'none'
SCALAR_GRAD_OUTPUT = 0.7
GRAD_OUTPUT_RTOL = 1e-12  # backward(c * g) vs c * backward(g)
FINITE_SEEDS = 4        # sample draws the finiteness check looks at (the others use one)
SHOWN_FAILURES = 8      # failures a report prints before "... and N more"


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


@dataclass
class _Case:
    loss_class: type
    options: dict
    reduction: str
    seed: int
    shared: dict = field(default_factory=dict)  # inputs reused across one check() run's cases

    @property
    def label(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.loss_class.__name__}({opts}{', ' if opts else ''}reduction={self.reduction!r})"

    def make(self, reduction: str | None = None):
        return self.loss_class(**self.options, reduction=reduction or self.reduction)

    def inputs(self, dtype, draw: int = 0) -> tuple:
        """The sample inputs of one draw, drawn once per check() run (sample_inputs may be slow: the
        checks ask for them thousands of times) and handed out as fresh copies, so a loss that
        writes into its arguments cannot corrupt what later checks see."""
        key = ("inputs", np.dtype(dtype).name, draw)
        if key not in self.shared:
            rng = np.random.default_rng([self.seed, draw] if draw else self.seed)
            self.shared[key] = tuple(self.loss_class.sample_inputs(rng, dtype))
        return tuple(np.array(a, copy=True, order="K") if isinstance(a, np.ndarray) else a
                     for a in self.shared[key])


_CHECKS: list[tuple[str, Callable[[_Case], Iterator[str]]]] = []


def _check(name: str):
    def add(fn):
        _CHECKS.append((name, fn))
        return fn
    return add


def check_names() -> list[str]:
    return [name for name, _ in _CHECKS]


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
    """The class ``check`` runs on: a Distance is checked as the loss of (x1, x2) it defines."""
    if isinstance(loss_class, Distance) or (isinstance(loss_class, type) and issubclass(loss_class, Distance)):
        return distance_loss(loss_class)
    return loss_class


def _configurations(loss_class: type) -> list[tuple[dict, str]]:
    return list(itertools.product(_option_sets(loss_class), loss_class.reductions))


def expected_checks(loss_class: type) -> list[str] | None:
    """The ``checks_run`` list a passing ``check(loss_class)`` records with this validator, without
    running a check (None for something that cannot pass). A stored or reported verdict counts as
    "ok" only when it records exactly these: an empty or stale report is not a pass."""
    loss_class = _as_checked(loss_class)
    if not isinstance(loss_class, type) or structural_problems(loss_class) or _contract_problems(loss_class):
        return None
    return [f"{name}:{_Case(loss_class, options, reduction, 0).label}"
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
        case = _Case(loss_class, options, reduction, seed, shared)
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


# -- helpers ------------------------------------------------------------------------------------
def _grad_outputs(case: _Case, loss, arrays) -> list:
    if case.reduction != "none":
        return [SCALAR_GRAD_OUTPUT]
    shape = np.shape(loss(*arrays))
    rng = np.random.default_rng(case.seed + 1)
    return [SCALAR_GRAD_OUTPUT, rng.uniform(0.5, 1.5, shape)]


def _objective(loss, arrays, grad_output) -> float:
    return float(np.sum(np.asarray(grad_output) * np.asarray(loss(*arrays), dtype=np.float64)))


def _as_tuple(grads, n: int) -> tuple:
    """Gradients requested with a tuple ``wrt`` of n names, checked to be a tuple of n arrays."""
    if not isinstance(grads, tuple) or len(grads) != n:
        raise TypeError(f"backward(wrt=<tuple of {n}>) must return a tuple of {n} arrays, got {type(grads).__name__}")
    return grads


def _num(x) -> str:
    """A number as plain text: 0.25, not np.float64(0.25)."""
    x = np.asarray(x)
    if x.ndim:
        return np.array2string(x, separator=", ", threshold=8)
    return repr(x.item())


def _ratio(got, expected) -> str:
    """got/expected as a factor (1.01x is a rounding slip, 20x a missing scale), '' when undefined."""
    g, e = float(got), float(expected)
    if e == 0 or not np.isfinite(g) or not np.isfinite(e):
        return ""
    return f", got/expected = {g / e:.3g}x"


def _worst(actual: np.ndarray, expected: np.ndarray) -> str:
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    err = np.abs(a - e)
    err = np.where(np.isnan(err), np.inf, err)
    j = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    return (f"worst at index {tuple(int(i) for i in j)}: got {_num(np.asarray(actual)[j])}, "
            f"expected {_num(np.asarray(expected)[j])}{_ratio(a[j], e[j])}")


def _close(actual, expected, rtol: float, atol: float = 0.0) -> bool:
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    return a.shape == e.shape and bool(np.all((np.abs(a - e) <= atol + rtol * np.abs(e)) | ((a == e))
                                              | (np.isnan(a) & np.isnan(e))))


def _bits_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _as_float(a, dtype):
    """Floating arrays in ``dtype``; anything else (class indices) as it is."""
    a = np.asarray(a)
    return a.astype(dtype) if a.dtype.kind == "f" else a


def _snapshot(arrays) -> list:
    return [np.array(a, copy=True) for a in arrays]


# -- the checks ---------------------------------------------------------------------------------
@_check("sample_inputs")
def _sample_inputs(case: _Case):
    for dtype in (np.float64, np.float32):
        arrays = case.inputs(dtype)
        if len(arrays) != len(case.loss_class.arguments):
            yield (f"sample_inputs returned {len(arrays)} arrays for arguments "
                   f"{case.loss_class.arguments}")


@_check("gradient_vs_finite_differences")
def _gradient_fd(case: _Case):
    loss = case.make()
    arrays = [_as_float(a, np.float64) for a in case.inputs(np.float64)]
    names = case.loss_class.differentiable
    for go in _grad_outputs(case, loss, arrays):
        go_label = "array grad_output" if np.ndim(go) else f"grad_output={go}"
        grads = _as_tuple(loss.backward(*arrays, grad_output=go, wrt=names), len(names))
        f0 = _objective(loss, arrays, go)
        for name, grad in zip(names, grads):
            k = case.loss_class.arguments.index(name)
            x = arrays[k]
            fd = np.zeros(x.shape)
            kink = np.zeros(x.shape, bool)
            for j in np.ndindex(x.shape):
                h = FD_STEP * max(1.0, abs(float(x[j])))
                probe = list(arrays)
                plus, minus = x.copy(), x.copy()
                plus[j] += h
                minus[j] -= h
                probe[k] = plus
                f_plus = _objective(loss, probe, go)
                probe[k] = minus
                f_minus = _objective(loss, probe, go)
                fd[j] = (f_plus - f_minus) / (2 * h)
                right, left = (f_plus - f0) / h, (f0 - f_minus) / h
                kink[j] = abs(right - left) > KINK_RTOL * (abs(right) + abs(left)) + 10 * FD_ATOL
            grad = np.asarray(grad)
            if grad.shape != x.shape:
                yield f"gradient wrt {name} has shape {grad.shape}, expected {x.shape} ({go_label})"
                continue
            atol = FD_ATOL * (1.0 + float(np.max(np.abs(fd), initial=0.0)))
            g = np.where(kink, fd, grad)
            if not _close(g, fd, FD_RTOL, atol):
                yield (f"gradient wrt {name} disagrees with central differences ({go_label}, float64); "
                       f"{_worst(g, fd)}")


@_check("hessian_vs_finite_differences")
def _hessian_fd(case: _Case):
    """Losses offering ``gradient_hessian`` (has_hessian): its gradient is backward of the 'none' loss
    with grad_output 1, its Hessian the central difference of that gradient, element by element
    (kinks of the gradient skipped, as for the gradient check); float32 tracks float64 and ``out=``
    gives the same bits. Once per option set: the Hessian does not depend on the reduction."""
    loss = case.make()
    if not getattr(loss, "has_hessian", False) or case.reduction != case.loss_class.reductions[0]:
        return
    arrays = [_as_float(a, np.float64) for a in case.inputs(np.float64)]
    name = case.loss_class.arguments[0]
    grad, hess = loss.gradient_hessian(*arrays)
    x = arrays[0]
    if np.shape(grad) != x.shape or np.shape(hess) != x.shape:
        yield f"gradient_hessian returned shapes {np.shape(grad)}, {np.shape(hess)} for an input of {x.shape}"
        return
    unreduced = case.loss_class(**case.options, reduction="none")

    def gradient(probe):
        return np.asarray(unreduced.backward(*probe, grad_output=1.0, wrt=name), np.float64)

    g0 = gradient(arrays)
    if not _close(grad, g0, FUSED_RTOL, FUSED_RTOL * float(np.max(np.abs(g0), initial=0.0))):
        yield f"gradient_hessian's gradient differs from backward of the 'none' loss; {_worst(grad, g0)}"
    fd = np.zeros(x.shape)
    kink = np.zeros(x.shape, bool)
    for j in np.ndindex(x.shape):
        h = FD_STEP * max(1.0, abs(float(x[j])))
        probe = list(arrays)
        plus, minus = x.copy(), x.copy()
        plus[j] += h
        minus[j] -= h
        probe[0] = plus
        g_plus = gradient(probe)[j]
        probe[0] = minus
        g_minus = gradient(probe)[j]
        fd[j] = (g_plus - g_minus) / (2 * h)
        right, left = (g_plus - g0[j]) / h, (g0[j] - g_minus) / h
        kink[j] = abs(right - left) > KINK_RTOL * (abs(right) + abs(left)) + 10 * FD_ATOL
    atol = FD_ATOL * (1.0 + float(np.max(np.abs(fd), initial=0.0)))
    checked = np.where(kink, fd, np.asarray(hess, np.float64))
    if not _close(checked, fd, 10 * FD_RTOL, 10 * atol):
        yield (f"Hessian wrt {name} disagrees with central differences of the gradient (float64); "
               f"{_worst(checked, fd)}")
    a32 = [_as_float(a, np.float32) for a in case.inputs(np.float32)]
    g32, h32 = loss.gradient_hessian(*a32)
    g64, h64 = loss.gradient_hessian(*[_as_float(a, np.float64) for a in a32])
    for what, lo, hi in (("gradient", g32, g64), ("Hessian", h32, h64)):
        scale = float(np.max(np.abs(np.asarray(hi, np.float64)), initial=0.0))
        if not _close(lo, hi, F32_RTOL, F32_ATOL * scale):
            yield f"float32 gradient_hessian {what} strays from float64; {_worst(lo, hi)}"
    out = (np.empty_like(grad), np.empty_like(hess))
    result = loss.gradient_hessian(*arrays, out=out)
    if result[0] is not out[0] or result[1] is not out[1] or not (_bits_equal(out[0], grad)
                                                                 and _bits_equal(out[1], hess)):
        yield "gradient_hessian(out=(g, h)) did not fill and return the given arrays with the same bits"


@_check("float32_matches_float64")
def _float32(case: _Case):
    loss = case.make()
    a32 = [_as_float(a, np.float32) for a in case.inputs(np.float32)]
    a64 = [_as_float(a, np.float64) for a in a32]  # the same values, so only the arithmetic differs
    names = case.loss_class.differentiable
    v32, g32 = loss.forward_backward(*a32, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
    v64, g64 = loss.forward_backward(*a64, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
    pairs = [("value", v32, v64)] + [(f"gradient wrt {n}", a, b) for n, a, b in
                                    zip(names, _as_tuple(g32, len(names)), _as_tuple(g64, len(names)))]
    for what, lo, hi in pairs:
        scale = float(np.max(np.abs(np.asarray(hi, np.float64)), initial=0.0))
        if not _close(lo, hi, F32_RTOL, F32_ATOL * scale):
            yield (f"float32 {what} strays from float64 beyond {F32_RTOL:g} relative (+{F32_ATOL:g} of the "
                   f"largest magnitude); {_worst(lo, hi)}")


def _denominator(reduced, arrays, per_element) -> tuple[float, str]:
    """What ``reduced`` divides the sum of its 'none' values by, and how to say so; (0, '') for a
    reduction this module does not know."""
    reduction = reduced.reduction
    if reduction == "sum":
        return 1.0, "sum of 'none'"
    if reduction == "mean":
        declared = reduced.mean_denominator(*arrays)
        n = float(per_element.size if declared is None else declared)
        return n, f"sum of 'none' / {n:g}"
    if reduction == "batchmean":
        n = float(np.shape(arrays[0])[0]) if np.ndim(arrays[0]) else 1.0
        return n, f"sum of 'none' / input.shape[0] = {n:g}"
    return 0.0, ""


@_check("reductions_consistent")
def _reductions(case: _Case):
    # Each reduced configuration against its own 'none': 'sum' is the sum, 'mean' the sum over
    # mean_denominator (the element count unless the loss declares a weighted mean), 'batchmean'
    # the sum over input.shape[0] (torch's kl_div). Labelled with the reduction that is wrong.
    reduction = case.reduction
    if reduction == "none" or "none" not in case.loss_class.reductions:
        return
    arrays = case.inputs(np.float64)
    names = case.loss_class.differentiable
    none, reduced = case.make("none"), case.make()
    per_element = np.asarray(none(*arrays), np.float64)
    n, what = _denominator(reduced, arrays, per_element)
    if not n:
        return
    value, expected = reduced(*arrays), per_element.sum() / n
    if not _close(value, expected, REDUCTION_RTOL, 1e-12):
        yield f"{reduction!r} value {_num(value)} != {what} = {_num(expected)}{_ratio(value, expected)}"
    ones = np.full(per_element.shape, SCALAR_GRAD_OUTPUT)
    g_none = _as_tuple(none.backward(*arrays, grad_output=ones, wrt=names), len(names))
    g_red = _as_tuple(reduced.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    for name, gn, gr in zip(names, g_none, g_red):
        scaled = np.asarray(gr, np.float64) * n
        if not _close(scaled, gn, REDUCTION_RTOL, 1e-14):
            label = "the 'none' gradient" if n == 1 else f"the 'none' gradient / {n:g}"
            yield (f"{reduction!r} gradient wrt {name} is not {label} (grad_output {SCALAR_GRAD_OUTPUT}); "
                   f"{_worst(scaled, gn)}")


@_check("forward_backward_fused")
def _fused(case: _Case):
    loss = case.make()
    arrays = case.inputs(np.float64)
    names = case.loss_class.differentiable
    for go in _grad_outputs(case, loss, arrays):
        value, grads = loss.forward_backward(*arrays, grad_output=go, wrt=names)
        if not _close(value, loss.forward(*arrays), FUSED_RTOL):
            yield f"forward_backward value differs from forward; {_worst(value, loss.forward(*arrays))}"
        separate = _as_tuple(loss.backward(*arrays, grad_output=go, wrt=names), len(names))
        for name, fused, alone in zip(names, _as_tuple(grads, len(names)), separate):
            if not _close(fused, alone, FUSED_RTOL):
                yield f"forward_backward gradient wrt {name} differs from backward; {_worst(fused, alone)}"
        first = loss.backward(*arrays, grad_output=go)
        if not _close(first, separate[0], FUSED_RTOL):
            yield f"backward(wrt=None) is not the gradient wrt {names[0]}"


@_check("shapes_and_dtypes")
def _shapes(case: _Case):
    loss = case.make()
    names = case.loss_class.differentiable
    for dtype in (np.float64, np.float32):
        arrays = case.inputs(dtype)
        value = loss(*arrays)
        if np.asarray(value).dtype != np.dtype(dtype):
            yield f"{np.dtype(dtype).name} input gave a {np.asarray(value).dtype} value"
        if case.reduction != "none" and (np.ndim(value) != 0 or not isinstance(value, np.generic)):
            yield f"reduction={case.reduction!r} must give a NumPy scalar, got {type(value).__name__} {np.shape(value)}"
        if case.reduction == "none" and not isinstance(value, np.ndarray):
            yield f"reduction='none' must give an ndarray, got {type(value).__name__}"
        grads = _as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
        for name, grad in zip(names, grads):
            arg = arrays[case.loss_class.arguments.index(name)]
            if not isinstance(grad, np.ndarray) or grad.shape != np.shape(arg) or grad.dtype != np.dtype(dtype):
                yield (f"gradient wrt {name} is {type(grad).__name__} {np.shape(grad)} "
                       f"{getattr(grad, 'dtype', '')}, expected ndarray {np.shape(arg)} {np.dtype(dtype).name}")


@_check("inputs_unmodified")
def _unmodified(case: _Case):
    loss = case.make()
    names = case.loss_class.differentiable
    for dtype in (np.float64, np.float32):
        arrays = case.inputs(dtype)
        before = _snapshot(arrays)
        loss(*arrays)
        loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        for name, a, b in zip(case.loss_class.arguments, arrays, before):
            if not _bits_equal(a, b):
                yield f"argument {name} ({np.dtype(dtype).name}) was modified in place"


@_check("outputs_not_aliased")
def _not_aliased(case: _Case):
    # A result sharing memory with an argument, or with the previous call's result, turns the
    # caller's next in-place update (or the next call) into silent corruption.
    loss = case.make()
    names = case.loss_class.differentiable
    arrays = case.inputs(np.float64)

    def outputs():
        # The default grad_output of 1: where "skip the multiply" fast paths hand back a partial as is.
        value, grads = loss.forward_backward(*arrays, wrt=names)
        return [("value", value)] + [(f"gradient wrt {n}", g) for n, g in zip(names, _as_tuple(grads, len(names)))]

    first, second = outputs(), outputs()
    for (what, out), (_, again) in zip(first, second):
        if not isinstance(out, np.ndarray):
            continue
        for name, arg in zip(case.loss_class.arguments, arrays):
            if np.shares_memory(out, arg):
                yield f"the {what} shares memory with argument {name}"
        if isinstance(again, np.ndarray) and np.shares_memory(out, again):
            yield f"the {what} of two calls is the same buffer"


@_check("grad_output_respected")
def _grad_output(case: _Case):
    # The gradient is linear in grad_output: scaling it must scale every gradient, including by 0
    # and by a negative number. (An array grad_output for 'none' is held to the finite differences.)
    loss = case.make()
    names = case.loss_class.differentiable
    arrays = case.inputs(np.float64)
    base = _as_tuple(loss.backward(*arrays, grad_output=1.0, wrt=names), len(names))
    shape = np.shape(loss(*arrays)) if case.reduction == "none" else None
    for c in (2.5, -0.5, 0.0):
        grad_outputs = [(f"grad_output={c}", c)]
        if shape is not None:
            grad_outputs.append((f"grad_output=full({shape}, {c})", np.full(shape, c)))
        for label, go in grad_outputs:
            scaled = _as_tuple(loss.backward(*arrays, grad_output=go, wrt=names), len(names))
            for name, g1, gc in zip(names, base, scaled):
                expected = c * np.asarray(g1, np.float64)
                if not _close(gc, expected, GRAD_OUTPUT_RTOL, 1e-300):
                    yield (f"gradient wrt {name} with {label} is not {c} x the gradient with grad_output=1; "
                           f"{_worst(gc, expected)}")


@_check("wrt_selection")
def _wrt(case: _Case):
    loss = case.make()
    cls = case.loss_class
    names = cls.differentiable
    arrays = case.inputs(np.float64)
    together = _as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    for name, expected in zip(names, together):
        alone = loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=name)
        if not isinstance(alone, np.ndarray):
            yield f"backward(wrt={name!r}) must return one ndarray, got {type(alone).__name__}"
        elif not _bits_equal(alone, expected):
            yield f"backward(wrt={name!r}) differs from its entry in backward(wrt={names!r})"
    if len(names) > 1:
        flipped = _as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names[::-1]), len(names))
        if not all(_bits_equal(a, b) for a, b in zip(flipped, together[::-1])):
            yield f"backward(wrt={names[::-1]!r}) does not return the gradients in the order asked"
    for name in cls.arguments:
        if name in names:
            continue
        try:
            loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=name)
        except (ValueError, TypeError):
            continue
        yield f"backward(wrt={name!r}) returned a gradient for a non-differentiable argument instead of raising ValueError"


@_check("deterministic_and_thread_invariant")
def _deterministic(case: _Case):
    loss = case.make()
    names = case.loss_class.differentiable

    def run(arrays):
        value, grads = loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        return [value, *_as_tuple(grads, len(names))]

    arrays = case.inputs(np.float64)
    first, second = run(arrays), run(arrays)
    if not all(_bits_equal(a, b) for a, b in zip(first, second)):
        yield "two identical calls gave different bits"
    # The sample inputs are too small to wake a thread team (and a sum of 15 numbers rarely changes
    # bits when regrouped), so thread invariance is also checked on inputs past the parallel cutoff.
    for label, arrays in (("sample inputs", arrays), ("large inputs", _shared(case, "large-float64", _large_inputs, np.float64))):
        if arrays is None:
            continue
        counts = sorted({1, 2, 3, max(2, get_num_threads())})
        results = {}
        for count in counts:
            with threads(count):
                results[count] = run(arrays)
        for count in counts[1:]:
            if not all(_bits_equal(a, b) for a, b in zip(results[counts[0]], results[count])):
                yield f"{counts[0]} thread and {count} threads gave different bits ({label})"
                break


def _shared(case: _Case, key: str, make, *args):
    if key not in case.shared:
        case.shared[key] = make(case, *args)
    return case.shared[key]


LARGE_FRESH_DRAWS = 16  # fresh sample draws a large input is tiled from (sample_inputs may be slow)


def _large_inputs(case: _Case, dtype):
    """Inputs with more elements than the kernels' parallel cutoff (PARALLEL_MIN_ELEMENTS elements;
    for the classification family rows x classes), for every family:

    - the class's own ``large_sample_inputs(rng, dtype)`` if it has one;
    - with the default ``sample_inputs``, a draw from the declared domains at ``sample_shape`` with
      its leading (batch) axis grown past the cutoff;
    - for the built-in families (whose batch rows are independent), and for any class whose every
      sample input has the same leading (batch) axis in every draw, LARGE_FRESH_DRAWS sample draws
      joined along the leading axis, tiled past the cutoff and the rows shuffled (one permutation
      for every argument that has the batch axis): fresh, shuffled values, because a sum over a
      repeated pattern can regroup without changing bits;
    - else None (a plugin of another shape: give it ``large_sample_inputs``)."""
    cls = case.loss_class
    target = 2 * PARALLEL_MIN_ELEMENTS + 1
    if hasattr(cls, "large_sample_inputs"):
        return tuple(cls.large_sample_inputs(np.random.default_rng(case.seed), dtype))
    rng = np.random.default_rng([case.seed, 1 << 20])
    if getattr(cls.sample_inputs, "__func__", None) is Loss.sample_inputs.__func__ and len(cls.sample_shape):
        shape = tuple(cls.sample_shape)
        per_row = max(1, int(np.prod(shape[1:])))
        big = (-(-target // per_row),) + shape[1:]
        return tuple(domain_of(cls, name).sample(rng, big, dtype) for name in cls.arguments)
    draws = [tuple(cls.sample_inputs(rng, dtype)) for _ in range(LARGE_FRESH_DRAWS)]
    first = draws[0]
    if not np.ndim(first[0]):
        return None
    rows = np.shape(first[0])[0]
    batched = [np.ndim(a) >= 1 and np.shape(a)[0] == rows for a in first]
    family = issubclass(cls, (ElementwiseLoss, NumpyElementwiseLoss, ClassificationLoss))
    if not family and not (all(batched) and all(np.shape(d[k]) == np.shape(first[k]) for d in draws
                                                 for k in range(len(first)))):
        return None  # another shape (a batch axis that is not the first, ragged draws): no guess
    joined = tuple(np.concatenate([d[k] for d in draws]) if b else a for k, (a, b) in enumerate(zip(first, batched)))
    per_row = max(1, int(np.prod(np.shape(first[0])[1:])))
    reps = -(-target // (per_row * len(joined[0])))
    order = rng.permutation(reps * len(joined[0]))
    return tuple(np.concatenate([a] * reps)[order] if b else a for a, b in zip(joined, batched))


LARGE_REDUCTION_RTOL = {"float32": 2e-6, "float64": 1e-12}  # times the mean |element| (the conditioning)


@_check("reduction_precise_at_large_n")
def _large_reduction(case: _Case):
    # Summation-precision bugs (a float32 running sum, a naive loop) stay below every tolerance on
    # 15 elements and appear past tens of thousands: the reduced value on the large inputs against
    # the exactly rounded (math.fsum) sum of the 'none' values, in each dtype.
    if case.reduction == "none" or "none" not in case.loss_class.reductions:
        return
    for dtype in (np.float32, np.float64):
        arrays = _shared(case, f"large-{np.dtype(dtype).name}", _large_inputs, dtype)
        if arrays is None:
            return
        reduced = case.make()
        per_element = np.asarray(case.make("none")(*arrays), np.float64)
        n, what = _denominator(reduced, arrays, per_element)
        if not n:
            return
        exact = math.fsum(per_element.ravel()) / n
        scale = math.fsum(np.abs(per_element).ravel()) / n
        got = float(reduced(*arrays))
        rtol = LARGE_REDUCTION_RTOL[np.dtype(dtype).name]
        if not abs(got - exact) <= rtol * scale:
            yield (f"{np.dtype(dtype).name} {case.reduction!r} value over {per_element.size} elements is "
                   f"{got!r}, the exact {what} is {exact!r} (error {abs(got - exact) / (scale or 1):.2g} of the "
                   f"mean |element|, allowed {rtol:g}): accumulate in float64")


LAYOUT_RTOL = 1e-12     # another memory layout of the same values: only the summation order may differ


def _other_layouts(a: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The same values as ``a`` in the layouts users pass: Fortran-ordered, a strided view (every
    other element of a wider buffer, along the last axis), read-only and byte-swapped."""
    layouts = []
    if a.ndim >= 2:
        layouts.append(("Fortran-ordered", np.asfortranarray(a)))
    if a.ndim >= 1:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        layouts.append(("a strided view", wide[..., ::2]))
    frozen = a.copy()
    frozen.flags.writeable = False
    layouts.append(("read-only", frozen))
    if a.dtype.itemsize > 1:
        layouts.append(("byte-swapped", a.astype(a.dtype.newbyteorder())))
    return layouts


@_check("layout_invariant")
def _layout(case: _Case):
    # The sample inputs are C-ordered; users pass transposes, slices, memory-mapped (read-only) and
    # big-endian data. Each argument in turn, the others C-ordered: the value and every gradient must
    # be the C-ordered call's, element for element (a gradient written in memory order and reshaped
    # in C order is right for C input only). Once per option set: layout does not depend on it.
    if case.reduction != case.loss_class.reductions[0]:
        return
    loss = case.make("none" if "none" in case.loss_class.reductions else None)
    names = case.loss_class.differentiable
    arrays = case.inputs(np.float64)
    value, grads = loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
    expected = [("value", value)] + list(zip((f"gradient wrt {n}" for n in names), _as_tuple(grads, len(names))))
    for k, (argument, a) in enumerate(zip(case.loss_class.arguments, arrays)):
        if not isinstance(a, np.ndarray):
            continue
        for label, other in _other_layouts(a):
            probe = list(arrays)
            probe[k] = other
            v, g = loss.forward_backward(*probe, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
            got = [v, *_as_tuple(g, len(names))]
            for (what, want), have in zip(expected, got):
                if not _close(have, want, LAYOUT_RTOL):
                    yield (f"{argument} given {label} changes the {what}; {_worst(have, want)}"
                           if np.shape(have) == np.shape(want) else
                           f"{argument} given {label} changes the {what}'s shape to {np.shape(have)}")


SCALE_SUBSET_ELEMENTS = 2048  # the subset's size: below any chunk or parallel cutoff a kernel may have
SCALE_RTOL = 1e-10            # per-element math may differ between vector and scalar code paths


def _row_subset(case: _Case, arrays, per_row_loss) -> tuple | None:
    """The large inputs restricted to a random subset of rows, the row indices and the batched
    argument positions; None when the loss does not decompose by rows on these inputs (its 'none'
    value has no batch axis, or a row's value depends on other rows)."""
    rows = np.shape(per_row_loss)[0] if np.ndim(per_row_loss) else 0
    batched = [isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] == rows for a in arrays]
    if rows < 2 or not batched[0]:
        return None
    per_row = max(1, int(np.prod(np.shape(arrays[0])[1:])))
    take = max(1, min(rows // 2, SCALE_SUBSET_ELEMENTS // per_row))
    picked = np.sort(np.random.default_rng([case.seed, 7]).choice(rows, take, replace=False))
    subset = tuple(a[picked] if b else a for a, b in zip(arrays, batched))
    alone = np.asarray(case.make("none")(*subset), np.float64)
    if not _close(alone, np.asarray(per_row_loss, np.float64)[picked], SCALE_RTOL, 1e-300):
        return None
    return subset, picked, batched


@_check("gradient_at_scale")
def _gradient_at_scale(case: _Case):
    # The gradient checks run on the sample inputs (15 elements); a chunked or parallel code path
    # runs only past some size, where nothing compared gradients. On the large inputs, a loss that
    # decomposes by rows (its 'none' value per row depends on that row alone, which is tested first)
    # must give, on a random subset of rows, the gradient of the same loss over those rows alone:
    # the 'sum' gradient as is, a 'mean' gradient times its denominator.
    cls = case.loss_class
    reduction = "sum" if "sum" in cls.reductions else "mean"
    if case.reduction != reduction or "none" not in cls.reductions:
        return
    arrays = _shared(case, "large-float64", _large_inputs, np.float64)
    if arrays is None:
        return
    per_row_loss = case.make("none")(*arrays)
    found = _row_subset(case, arrays, per_row_loss)
    if found is None:
        return
    subset, picked, batched = found
    loss, names = case.make(), cls.differentiable
    full = _as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    part = _as_tuple(loss.backward(*subset, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    scale_full = scale_part = 1.0
    if reduction == "mean":
        scale_full = _denominator(loss, arrays, np.asarray(per_row_loss))[0]
        scale_part = _denominator(loss, subset, np.asarray(case.make("none")(*subset)))[0]
    size = np.shape(arrays[0])
    for name, g_full, g_part in zip(names, full, part):
        if not batched[cls.arguments.index(name)]:
            continue
        got = np.asarray(g_full, np.float64)[picked] * scale_full
        want = np.asarray(g_part, np.float64) * scale_part
        if not _close(got, want, SCALE_RTOL, 1e-300):
            yield (f"gradient wrt {name} on {np.prod(size):.0f} elements {size}, restricted to {len(picked)} random "
                   f"rows, differs from the gradient over those rows alone; {_worst(got, want)}")


@_check("finite_on_valid_domain")
def _finite(case: _Case):
    # Several draws: a NaN on a sliver of the domain (a 0/0 at a tie, an overflow in a tail) should
    # not hide behind one lucky sample.
    loss = case.make()
    names = case.loss_class.differentiable
    for dtype, draw in itertools.product((np.float64, np.float32), range(FINITE_SEEDS)):
        arrays = case.inputs(dtype, draw)
        value, grads = loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        where = f"{np.dtype(dtype).name}, sample draw {draw}"
        if not np.all(np.isfinite(value)):
            yield f"value not finite on the sample inputs ({where}); {_first_nonfinite(value, arrays, case)}"
        for name, grad in zip(names, _as_tuple(grads, len(names))):
            if not np.all(np.isfinite(grad)):
                yield (f"gradient wrt {name} not finite on the sample inputs ({where}); "
                       f"{_first_nonfinite(grad, arrays, case)}")


def _first_nonfinite(result, arrays, case: _Case) -> str:
    result = np.asarray(result)
    if result.ndim == 0:
        return f"got {_num(result)}"
    j = tuple(int(i) for i in np.argwhere(~np.isfinite(result))[0])
    at = ", ".join(f"{n}={_num(np.asarray(a)[j])}" for n, a in zip(case.loss_class.arguments, arrays)
                   if np.shape(a) == result.shape)
    return f"first at index {j}: {_num(result[j])}" + (f" ({at})" if at else "")


# -- the verdict cache --------------------------------------------------------------------------
# A plugin class is checked once per process (weakly keyed by the class, so it never keeps a class
# alive) and once per version of its code across processes. The on-disk verdict is keyed by
# lossengine._code_identity: every file of every top-level package the class's MRO comes from (data
# included, no cutoff), lossengine's own package always, and the code objects of each class -- never
# by a self-declared ``__module__``/``__qualname__`` alone.
#
# What is read back is not trusted either: the folder must be a directory of this user's that no one
# else can write (it is created 0700), a verdict must be a regular file (opened without blocking: a
# FIFO at its path must not hang the first registry use), and a verdict counts only when it records
# exactly the checks this validator runs for the class (``expected_checks``): a file with no checks
# and no failures is not a pass. A recorded timeout counts while the timeout is no longer than it was.
_reports: "weakref.WeakKeyDictionary[type, CheckReport]" = weakref.WeakKeyDictionary()
_reports_lock = threading.Lock()
CACHE_ENV = "LOSSENGINE_CACHE_DIR"
NO_CACHE_ENV = "LOSSENGINE_NO_VALIDATION_CACHE"
TIMEOUT_ENV = "LOSSENGINE_VALIDATION_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 60.0
TIMEOUT_CHECK = "timeout"
_MAX_VERDICT_BYTES = 16 << 20


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


def cache_dir() -> Path:
    """Where verdicts are stored: $LOSSENGINE_CACHE_DIR, else $XDG_CACHE_HOME/lossengine, else
    ~/.cache/lossengine."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lossengine"


def _private_cache_dir(create: bool) -> Path | None:
    """The cache folder if it is a directory of this user's that others cannot write (created 0700
    when ``create`` and missing), else None: no cache rather than one anyone could plant verdicts in."""
    folder = cache_dir()
    try:
        if create:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
        if create and not os.environ.get(CACHE_ENV) and info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(folder, 0o700)     # the default folder, made 0755 by earlier versions
            info = os.stat(folder)
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022
    return folder if private else None


def _cache_key(loss_class: type) -> str | None:
    """The verdict's key: the digest of the class's code and of lossengine's own package (the
    validator and the kernels), None for what cannot be keyed (see lossengine._code_identity)."""
    if not isinstance(loss_class, type):
        return None
    code = _code_identity.code_identity(loss_class, _code_identity.module_files(__name__) or [__file__])
    if code is None:
        return None
    # The kernels' ISA variant chosen at import (LOSSENGINE_ISA, the CPU): the same files run
    # different machine code per variant, and a verdict holds for the variant it was reached on.
    from . import _isa

    variants = ",".join(f"{family}={variant}" for family, (variant, _) in sorted(_isa.chosen.items()))
    return hashlib.sha256(f"{code}\0isa {variants}".encode()).hexdigest()


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (not a symlink, FIFO or device) of sane size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_VERDICT_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(_MAX_VERDICT_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_cached(key: str, loss_class: type) -> CheckReport | None:
    folder = _private_cache_dir(create=False)
    data = None if folder is None else _read_regular(folder / f"{key}.json")
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
        _write_cached(key, report)


def _write_cached(key: str, report: CheckReport) -> None:
    """Atomically (a temporary file renamed over the target), so concurrent processes each see a
    whole verdict or none; an unwritable or shared cache directory just means no cache."""
    folder = _private_cache_dir(create=True)
    if folder is None:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(report.to_dict(), f)
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


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

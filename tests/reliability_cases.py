"""Generated calls for the reliability suites (tests/test_properties.py, fuzz/fuzz_losses.py): the
pieces both draw from, in plain Python so hypothesis and atheris can each drive them. Everything
comes from a loss's declaration (arguments, domains, options), so any registered loss is covered."""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from lossengine.base import Loss
from lossengine.losses.embedding import TripletMarginLoss
from lossengine.domains import ClassIndex, domain_of

CLEAN_ERRORS = (ValueError, TypeError, IndexError)
SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -5e-324, 1e-310, -0.0, 3.4e38, 1e-45)
HUGE_INT = 10 ** 400
GRAD_OUTPUTS = [1.0, 0.5, -2.0, 0.0, 3]
HOSTILE_GRAD_OUTPUTS = [math.nan, math.inf, HUGE_INT, 1e300, True, np.float32(2.0), "x", [1.0, 2.0]]
HOSTILE_INDICES = (-1, -100, 2 ** 62, -2 ** 63)   # and the class count and one past it


@dataclass
class Case:
    """One generated call: the loss class, its options, its arrays, grad_output and wrt."""
    cls: type
    options: dict
    arrays: list
    grad_output: Any = 1.0
    wrt: Any = None
    notes: set = field(default_factory=set)   # what the generator did (for KNOWN_DEFECTS)

    def make(self) -> Loss:
        return self.cls(**self.options)

    def __repr__(self) -> str:
        arrays = ", ".join(f"array({a.tolist()!r}, dtype={a.dtype.str})" if isinstance(a, np.ndarray) and a.size < 40
                           else f"<{getattr(a, 'dtype', type(a))} {np.shape(a)}>" for a in self.arrays)
        return (f"Case({self.cls.__name__}({self.options!r}), [{arrays}], grad_output={self.grad_output!r}, "
                f"wrt={self.wrt!r}, notes={sorted(self.notes)})")


def _largest(case: Case) -> float:
    """The largest finite magnitude among the float arrays and option arrays."""
    values = [np.abs(np.asarray(a, np.float64)) for a in [*case.arrays, *case.options.values()]
              if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size]
    return max((float(v[np.isfinite(v)].max(initial=0.0)) for v in values), default=0.0)


def _torch_cosine_norms_overflow(case) -> bool:
    """A row of the "cosine" distance whose squared norm (or norm product) overflows: torch's norm
    is inf there, so its cosine is 0 (distance 1) or NaN; lossengine rescales the row and returns
    the true distance and its gradient."""
    try:
        xs = [np.asarray(a, np.float64) for a in case.arrays]
    except (TypeError, ValueError, OverflowError):
        return False
    if any(x.shape != xs[0].shape for x in xs):
        return False
    with np.errstate(all="ignore"):
        norms = [np.sqrt(np.sum(x * x, axis=-1)) for x in xs]
        finite = [np.isfinite(x).all(axis=-1) for x in xs]
        return any(((np.isinf(norms[i]) | np.isinf(np.maximum(norms[i], 1e-8) * np.maximum(norms[j], 1e-8)))
                    & finite[i] & finite[j]).any() for i, j in [(0, 1), (0, 2), (1, 2)])


def _torch_triplet_distance_overflows(case) -> bool:
    """A row computed through powers (0-d, or a last axis > 1; torch reduces a one-element axis to |v|)
    whose sum |x1 - x2 + eps|^p overflows: torch's distance is inf there and its gradient through it 0;
    lossengine rescales the row, so its value and gradient are the finite distance's."""
    if not case.cls.name.startswith("triplet_margin") or len(case.arrays) != 3:
        return False
    if case.options.get("distance_function") == "cosine":
        return _torch_cosine_norms_overflow(case)
    try:
        xs = [np.asarray(a, np.float64) for a in case.arrays]
        p, eps = float(case.options.get("p", 2.0)), float(case.options.get("eps", 1e-6))
    except (TypeError, ValueError, OverflowError):
        return False
    if any(x.shape != xs[0].shape for x in xs) or (xs[0].ndim and xs[0].shape[-1] < 2):
        return False
    pairs = [(0, 1), (0, 2)] + ([(1, 2)] if case.options.get("swap") else [])
    with np.errstate(all="ignore"):
        return any((np.isinf(np.sum(np.abs(xs[i] - xs[j] + eps) ** p, axis=-1))
                    & np.isfinite(xs[i] - xs[j] + eps).all(axis=-1)).any() for i, j in pairs)


# Known defects and deviations the properties must step around. Each entry: a name, what it is,
# and a predicate on a Case; the properties skip matching cases, and a test named test_<name>
# (tests/test_properties.py) is a strict xfail with ``raises=`` that shows it, so it turns into a
# failure (XPASS) when the library changes (test_validator_deviations.py checks the pairing). Remove
# an entry once its fix lands. The fuzz harness (fuzz/fuzz_losses.py) skips them too.
KNOWN_DEFECTS: dict[str, tuple[str, Callable[[Case], bool]]] = {
    # torch's distance overflows to inf where lossengine rescales the row (a documented deviation).
    "triplet_distance_finite_where_torch_overflows": (
        "documented deviation: " + TripletMarginLoss.deviations["distance_finite_where_torch_overflows"],
        lambda case: _torch_triplet_distance_overflows(case)),
}


def known_defect(case: Case) -> str | None:
    for name, (_, applies) in KNOWN_DEFECTS.items():
        if applies(case):
            return name
    return None


# -- outcomes ---------------------------------------------------------------------------------------
def outcome(fn: Callable[[], Any]):
    """("ok", result) or ("error", exception type); anything but a clean error fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", fn()
    except CLEAN_ERRORS as exc:
        return "error", type(exc)


def flat(result) -> list:
    if isinstance(result, tuple):
        return [x for r in result for x in flat(r)]
    return [np.asarray(result)]


def assert_identical(a, b, what: str) -> None:
    """Same outcome; results equal bit for bit (dtype, shape and every byte, NaN payloads aside)."""
    assert a[0] == b[0], f"{what}: {a[0]} ({a[1]}) vs {b[0]} ({b[1]})"
    if a[0] == "error":
        assert a[1] is b[1], f"{what}: {a[1].__name__} vs {b[1].__name__}"
        return
    xs, ys = flat(a[1]), flat(b[1])
    assert len(xs) == len(ys), what
    for x, y in zip(xs, ys):
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        same = (x == y) & (np.signbit(x) == np.signbit(y)) | (np.isnan(x) & np.isnan(y))
        assert same.all(), f"{what}: differ at {np.argwhere(~same)[:5].tolist()}: {x[~same][:5]} vs {y[~same][:5]}"


# -- strategies -------------------------------------------------------------------------------------

def uses_default_sampler(cls: type) -> bool:
    return getattr(cls.sample_inputs, "__func__", None) is Loss.sample_inputs.__func__


def _index_sample(domain: ClassIndex, rng, shape: tuple) -> np.ndarray:
    if not shape:
        return np.zeros((), np.int64)
    axis = domain.axis if len(shape) > domain.axis else 0
    classes = domain.classes if domain.classes is not None else shape[axis]
    out_shape = () if len(shape) == 1 else shape[:axis] + shape[axis + 1:]
    if classes == 0 or math.prod(out_shape) == 0:
        return np.zeros(out_shape, np.int64)
    return rng.integers(0, classes, size=out_shape)


def domain_inputs(cls: type, rng, dtype, shape: tuple) -> list:
    arrays = []
    for name in cls.arguments:
        domain = domain_of(cls, name)
        if domain.is_index:
            arrays.append(_index_sample(domain, rng, shape))
            continue
        try:
            arrays.append(np.asarray(domain.sample(rng, shape, dtype), dtype))
        except (ValueError, IndexError):    # e.g. a simplex over an empty axis
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def _bounds(constraint: str) -> list[tuple[float, bool]]:
    """The bounds a constraint text states ("> 0", ">= 0 and <= 1"), each with whether it is allowed."""
    return [(float(v), op.endswith("=")) for op, v in re.findall(r"([<>]=?) (-?[\d.e+-]+|inf)", constraint)]


def _within(value: float, constraint: str) -> bool:
    """Whether ``value`` meets every bound the constraint text states."""
    checks = {">": value.__gt__, ">=": value.__ge__, "<": value.__lt__, "<=": value.__le__}
    return all(checks[op](float(v)) for op, v in re.findall(r"([<>]=?) (-?[\d.e+-]+|inf)", constraint))


def option_candidates(option, hostile: bool, classes: int, shape: tuple) -> list:
    """Values for one declared option: valid ones always (the default, the declared examples, the
    bounds its constraint states), invalid ones too when ``hostile`` (just outside the bounds,
    NaN/inf, huge Python ints, wrong types)."""
    valid = [option.default, *option.examples]
    invalid: list = []
    kind = option.kind
    if kind == "real":
        bounds = _bounds(option.constraint)
        for b, allowed in bounds:
            (valid if allowed else invalid).append(b)
            invalid += [np.nextafter(b, -math.inf), np.nextafter(b, math.inf), b - 1.0, b + 1.0]
        # Two plain values, where the constraint admits them (3.0 is outside label_smoothing's [0, 1]).
        valid += [v for v in (0.5, 3.0) if _within(v, option.constraint)]
        invalid += [math.nan, math.inf, -math.inf, -1e300, HUGE_INT, -HUGE_INT, 2 ** 70, True, "1.0", None]
    elif kind == "integer":
        choices = [int(v) for v in re.findall(r"-?\d+", option.constraint)] if option.constraint.startswith("in") else []
        valid += choices
        invalid += [-1, 0, 3, classes, 2 ** 63, -2 ** 63 - 1, HUGE_INT, 1.0, True, np.int8(1), None]
    elif kind == "flag":
        valid += [True, False]
        invalid += [1, np.bool_(True), "yes"]
    elif kind == "array":
        valid += [None]
        lengths = {classes, shape[-1] if shape else 1, 1}
        for n in sorted(lengths):
            valid.append(np.linspace(0.25, 2.0, n))
        invalid += [np.array([math.nan, 1.0, 1.0, 1.0]), np.array([1e308, 1e308, 1.0]), np.ones((2, 2, 2, 2)),
                    np.array([1, 2]), "weight", np.array([-1.0, math.inf, 0.0, 5e-324])]
    else:   # choice, reduction and whatever a plugin declares
        valid += re.findall(r"'([^']*)'", option.constraint)
        invalid += ["bogus", None, 1, "MEAN"]
    return valid + (invalid if hostile else [])



def layout(arr: np.ndarray, how: str) -> np.ndarray:
    """``arr`` with the same values in another memory layout."""
    if how == "fortran":
        return np.array(arr, order="F")
    if how == "strided":    # every other element of a wider buffer (a 0-d array: a view into one)
        wide = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],) if arr.ndim else (2,), arr.dtype)
        view = wide[..., ::2] if arr.ndim else wide[1:].reshape(())
        view[...] = arr
        return view
    if how == "big_endian":
        return arr.astype(arr.dtype.newbyteorder(">"))
    if how == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    raise AssertionError(how)


LAYOUTS = ("fortran", "strided", "big_endian", "readonly")


def call(case: Case, arrays=None, method: str = "forward_backward"):
    loss = case.make()
    arrays = case.arrays if arrays is None else arrays
    if method == "forward":
        return loss.forward(*arrays)
    return getattr(loss, method)(*arrays, grad_output=case.grad_output, wrt=case.wrt)




def large_inputs(cls: type, rng, dtype, elements: int = 70_000) -> list:
    """Valid arguments past the parallel threshold (many reduction blocks, several threads): the
    class's own ``large_sample_inputs`` when it has one; else, with at least ``elements`` elements
    in the first, its domains at ``sample_shape`` with more rows for the default sampler, or copies
    of ``sample_inputs`` concatenated along the first axis."""
    if hasattr(cls, "large_sample_inputs"):
        return list(cls.large_sample_inputs(rng, dtype))
    if uses_default_sampler(cls):
        shape = tuple(cls.sample_shape)
        rows = -(-elements // max(1, math.prod(shape[1:])))
        return domain_inputs(cls, rng, dtype, (rows,) + shape[1:])
    first = cls.sample_inputs(rng, dtype)
    reps = -(-elements // max(1, np.asarray(first[0]).size))
    draws = [first] + [cls.sample_inputs(rng, dtype) for _ in range(min(reps, 16) - 1)]
    return [np.concatenate([np.asarray(draws[i % len(draws)][k]) for i in range(reps)])
            for k in range(len(first))]

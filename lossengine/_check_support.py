"""What the validator's checks share (lossengine.validation runs them): the tolerances, ``Case``
(one loss configuration with its sample inputs), the comparison and message helpers, the
denominators of the reductions and the large inputs for the parallel code paths.

The checks themselves are in lossengine._checks_numeric (the numbers: gradients, Hessians,
reductions, precision) and lossengine._checks_contract (the calling contract: shapes, dtypes,
aliasing, wrt, determinism, layouts), each registered under its report name with ``check``.
Nothing here knows a loss family: what a check needs from a class it reads from the class's
declarations (``arguments``, ``differentiable``, ``reductions``, ``sample_inputs``,
``sample_layout``, ``has_hessian``, ``mean_denominator``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ._reductions import REDUCTIONS
from ._threads import PARALLEL_MIN_ELEMENTS
from .base import Loss
from .domains import domain_of

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

# name -> check: a check takes a Case and yields failure messages. Registered by ``check``, run in
# lossengine.validation.CHECK_ORDER.
REGISTERED: dict[str, Callable[["Case"], Iterator[str]]] = {}


def check(name: str):
    """Register the decorated function as the check reported under ``name``."""
    def add(fn):
        REGISTERED[name] = fn
        return fn
    return add


@dataclass
class Case:
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


# -- helpers ------------------------------------------------------------------------------------
def grad_outputs(case: Case, loss, arrays) -> list:
    if case.reduction != "none":
        return [SCALAR_GRAD_OUTPUT]
    shape = np.shape(loss(*arrays))
    rng = np.random.default_rng(case.seed + 1)
    return [SCALAR_GRAD_OUTPUT, rng.uniform(0.5, 1.5, shape)]


def objective(loss, arrays, grad_output) -> float:
    return float(np.sum(np.asarray(grad_output) * np.asarray(loss(*arrays), dtype=np.float64)))


def as_tuple(grads, n: int) -> tuple:
    """Gradients requested with a tuple ``wrt`` of n names, checked to be a tuple of n arrays."""
    if not isinstance(grads, tuple) or len(grads) != n:
        raise TypeError(f"backward(wrt=<tuple of {n}>) must return a tuple of {n} arrays, got {type(grads).__name__}")
    return grads


def central_differences(f, f0, arrays, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per element j of ``arrays[k]``: the central difference of ``f(probe, j)`` (a float) at a
    relative step of FD_STEP, and whether the one-sided differences from ``f0`` (f at ``arrays``: a
    float, or an array read at j) disagree there -- a kink (|x| at 0, a hinge), which the checks skip."""
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
        f_plus = f(probe, j)
        probe[k] = minus
        f_minus = f(probe, j)
        center = f0[j] if np.ndim(f0) else f0
        fd[j] = (f_plus - f_minus) / (2 * h)
        right, left = (f_plus - center) / h, (center - f_minus) / h
        kink[j] = abs(right - left) > KINK_RTOL * (abs(right) + abs(left)) + 10 * FD_ATOL
    return fd, kink


def num(x) -> str:
    """A number as plain text: 0.25, not np.float64(0.25)."""
    x = np.asarray(x)
    if x.ndim:
        return np.array2string(x, separator=", ", threshold=8)
    return repr(x.item())


def ratio(got, expected) -> str:
    """got/expected as a factor (1.01x is a rounding slip, 20x a missing scale), '' when undefined."""
    g, e = float(got), float(expected)
    if e == 0 or not np.isfinite(g) or not np.isfinite(e):
        return ""
    return f", got/expected = {g / e:.3g}x"


def worst(actual: np.ndarray, expected: np.ndarray) -> str:
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    err = np.abs(a - e)
    err = np.where(np.isnan(err), np.inf, err)
    j = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    return (f"worst at index {tuple(int(i) for i in j)}: got {num(np.asarray(actual)[j])}, "
            f"expected {num(np.asarray(expected)[j])}{ratio(a[j], e[j])}")


def close(actual, expected, rtol: float, atol: float = 0.0) -> bool:
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    return a.shape == e.shape and bool(np.all((np.abs(a - e) <= atol + rtol * np.abs(e)) | ((a == e))
                                              | (np.isnan(a) & np.isnan(e))))


def bits_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def as_float(a, dtype):
    """Floating arrays in ``dtype``; anything else (class indices) as it is."""
    a = np.asarray(a)
    return a.astype(dtype) if a.dtype.kind == "f" else a


def snapshot(arrays) -> list:
    return [np.array(a, copy=True) for a in arrays]




def denominator(reduced, arrays, per_element) -> tuple[float, str]:
    """What ``reduced`` divides the sum of its 'none' values by (its Reduction's denominator, with
    the loss's declared ``mean_denominator``), and how to say so; (0, '') for a reduction the
    validator does not know."""
    if reduced.reduction not in REDUCTIONS:
        return 0.0, ""
    mode = REDUCTIONS[reduced.reduction]
    if mode.divides is None:
        return 1.0, "sum of 'none'"
    batch = float(np.shape(arrays[0])[0]) if np.ndim(arrays[0]) else 1.0
    declared = reduced.mean_denominator(*arrays) if mode.divides == "positions" else None
    n = float(mode.denominator(float(per_element.size), batch=batch, declared=declared))
    if mode.divides == "batch":
        return n, f"sum of 'none' / input.shape[0] = {n:g}"
    return n, f"sum of 'none' / {n:g}"


def shared(case: Case, key: str, make, *args):
    if key not in case.shared:
        case.shared[key] = make(case, *args)
    return case.shared[key]


LARGE_FRESH_DRAWS = 16  # fresh sample draws a large input is tiled from (sample_inputs may be slow)


def large_inputs(case: Case, dtype):
    """Inputs with more elements than the kernels' parallel cutoff (PARALLEL_MIN_ELEMENTS elements;
    for the classification family rows x classes), for every family:

    - the class's own ``large_sample_inputs(rng, dtype)`` if it has one;
    - with the default ``sample_inputs``, a draw from the declared domains at ``sample_shape`` with
      its leading (batch) axis grown past the cutoff;
    - for a class declaring ``sample_layout = "batch-rows"`` (the built-in elementwise and
      classification families: their batch rows are independent), and for any class whose every
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
    independent_rows = getattr(cls, "sample_layout", None) == "batch-rows"
    if not independent_rows and not (all(batched) and all(np.shape(d[k]) == np.shape(first[k]) for d in draws
                                                 for k in range(len(first)))):
        return None  # another shape (a batch axis that is not the first, ragged draws): no guess
    joined = tuple(np.concatenate([d[k] for d in draws]) if b else a for k, (a, b) in enumerate(zip(first, batched)))
    per_row = max(1, int(np.prod(np.shape(first[0])[1:])))
    reps = -(-target // (per_row * len(joined[0])))
    order = rng.permutation(reps * len(joined[0]))
    return tuple(np.concatenate([a] * reps)[order] if b else a for a, b in zip(joined, batched))

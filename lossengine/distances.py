"""Distances for TripletMarginWithDistanceLoss: a value and its gradients over NumPy rows.

torch's TripletMarginWithDistanceLoss takes any callable and differentiates it with autograd;
without autograd, a distance must bring its own gradient. ``Distance`` is that contract:

    class SquaredEuclidean(le.Distance):
        def value_and_grad(self, x1, x2):
            diff = x1 - x2
            return (diff * diff).sum(axis=1), 2 * diff, -2 * diff

``value_and_grad(x1, x2)`` receives two (R, D) float arrays of the same shape and dtype (float32 or
float64: rows already broadcast, never to be modified) and returns ``(d, g1, g2)``: ``d`` the R
distances (row r of x1 to row r of x2), ``g1`` and ``g2`` (R, D) with ``g1[r] = d d[r] / d x1[r]``
and ``g2[r] = d d[r] / d x2[r]``. ``lossengine.check(distance)`` runs the validator on it (finite
differences of both gradients, dtypes, shapes, ...), treating the distance as a loss of (x1, x2)
whose 'none' value is ``d``.

The named distances are Distance subclasses too (their NumPy code is the readable reference; the
loss runs them through compiled kernels): ``"euclidean"`` is ``PairwiseDistance()`` (torch's
pairwise_distance, the loss's default) and ``"cosine"`` is ``CosineDistance()`` (1 - torch's
cosine_similarity along the last axis).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from . import _arrays
from .base import FusedLoss
from .declaration import parse_real

__all__ = ["Distance", "PairwiseDistance", "CosineDistance", "SquaredEuclideanDistance", "NAMED_DISTANCES",
           "distance_function", "distance_loss"]


class Distance:
    """A distance between rows with its gradients; subclass it and implement ``value_and_grad``."""

    def value_and_grad(self, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d, d d / d x1, d d / d x2) for (R, D) rows x1, x2: d of shape (R,), the others (R, D)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement value_and_grad(x1, x2)")

    def __call__(self, x1: Any, x2: Any) -> np.ndarray:
        return self.value_and_grad(np.asarray(x1), np.asarray(x2))[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


def _sign(u: np.ndarray) -> np.ndarray:
    return np.sign(u)


class PairwiseDistance(Distance):
    """torch.nn.functional.pairwise_distance: ||x1 - x2 + eps||_p over the last axis (p > 0, inf
    allowed); gradients as torch's norm backward (0 where the difference or the norm is 0)."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6) -> None:
        self.p = parse_real("p", p, gt=0.0)
        self.eps = parse_real("eps", eps)

    def value_and_grad(self, x1, x2):
        u = x1 - x2 + x1.dtype.type(self.eps)
        a = np.abs(u).astype(np.float64)
        p = self.p
        if p == np.inf:
            d = a.max(axis=1, initial=0.0)
            at_max = a == d[:, None]
            partial = _sign(u) * at_max / at_max.sum(axis=1, keepdims=True)
        else:
            d = np.power(np.power(a, p).sum(axis=1), 1.0 / p)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(d[:, None] > 0, a / d[:, None], 0.0)
                partial = np.where(a > 0, _sign(u) * np.power(ratio, p - 1.0), 0.0)
        partial = partial.astype(x1.dtype)
        return d.astype(x1.dtype), partial, -partial

    def __repr__(self) -> str:
        return f"PairwiseDistance(p={self.p!r}, eps={self.eps!r})"


class CosineDistance(Distance):
    """1 - torch.nn.functional.cosine_similarity(x1, x2, dim=-1, eps): rows divided by their norms
    clamped at eps. As in torch the clamp is outside autograd: the gradient differentiates the raw
    norm (x / |x|, 0 for a zero row) while dividing by the clamped one."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = parse_real("eps", eps, ge=0.0)

    def value_and_grad(self, x1, x2):
        a, b = x1.astype(np.float64), x2.astype(np.float64)
        n1, n2 = np.sqrt((a * a).sum(axis=1)), np.sqrt((b * b).sum(axis=1))
        c1, c2 = np.maximum(n1, self.eps), np.maximum(n2, self.eps)
        cos = (a * b).sum(axis=1) / (c1 * c2)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta1 = np.where(n1 > 0, cos / (c1 * n1), 0.0)
            beta2 = np.where(n2 > 0, cos / (c2 * n2), 0.0)
        alpha = -1.0 / (c1 * c2)
        g1 = alpha[:, None] * b + beta1[:, None] * a
        g2 = alpha[:, None] * a + beta2[:, None] * b
        return (1.0 - cos).astype(x1.dtype), g1.astype(x1.dtype), g2.astype(x1.dtype)

    def __repr__(self) -> str:
        return f"CosineDistance(eps={self.eps!r})"


class SquaredEuclideanDistance(Distance):
    """||x1 - x2||^2 over the last axis: the interface's worked example (and a useful distance)."""

    def value_and_grad(self, x1, x2):
        diff = x1 - x2
        return (diff * diff).sum(axis=1), 2 * diff, -2 * diff


NAMED_DISTANCES = {"euclidean": PairwiseDistance, "cosine": CosineDistance}


def distance_function(name: str, value: Any) -> Distance | None:
    """Parse TripletMarginWithDistanceLoss's ``distance_function``: None, a name, or a Distance."""
    if value is None or isinstance(value, Distance):
        return value
    if isinstance(value, str):
        if value not in NAMED_DISTANCES:
            raise ValueError(f"{name} must be None, one of {', '.join(map(repr, NAMED_DISTANCES))} or a "
                             f"lossengine.Distance; got {value!r}")
        return NAMED_DISTANCES[value]()
    if isinstance(value, type) and issubclass(value, Distance):
        raise TypeError(f"{name} must be a Distance instance, got the class {value.__name__}: "
                        f"pass {value.__name__}()")
    what = getattr(value, "__name__", type(value).__name__)
    raise TypeError(
        f"{name}: lossengine has no autograd, so it cannot differentiate a plain callable ({what}). "
        f"Pass None (pairwise distance), 'euclidean', 'cosine', or a lossengine.Distance subclass "
        f"instance whose value_and_grad(x1, x2) returns the row distances and their gradients "
        f"wrt x1 and x2"
    )


def rows_value_and_grad(distance: Distance, x1: np.ndarray, x2: np.ndarray) -> tuple:
    """``distance.value_and_grad`` on (R, D) rows, its results checked (shapes; float) and cast."""
    x1 = x1.view()
    x2 = x2.view()
    x1.flags.writeable = False
    x2.flags.writeable = False
    result = distance.value_and_grad(x1, x2)
    if not isinstance(result, tuple) or len(result) != 3:
        raise TypeError(f"{type(distance).__name__}.value_and_grad must return a tuple (d, grad_x1, grad_x2), "
                        f"got {type(result).__name__}")
    rows = x1.shape[0]
    expected = ((rows,), x1.shape, x1.shape)
    out = []
    for what, arr, shape in zip(("distance", "grad_x1", "grad_x2"), result, expected):
        arr = np.asarray(arr)
        if arr.shape != shape or arr.dtype.kind not in "fiu":
            raise ValueError(f"{type(distance).__name__}.value_and_grad: {what} must be a real array of shape "
                             f"{shape}, got {arr.dtype} {arr.shape}")
        out.append(arr.astype(np.float64, copy=False))
    return tuple(out)


class _DistanceAsLoss(FusedLoss):
    """A Distance seen as a loss of (x1, x2): 'none' is the row distances. ``lossengine.check``
    validates distances through it (distance_loss below)."""

    arguments = ("x1", "x2")
    differentiable = ("x1", "x2")
    sample_shape = (5, 4)
    distance: ClassVar[Distance]

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _arrays.check_reduction(reduction)

    def _plan(self, arrays):
        x1, x2 = (_arrays.float_array(n, a) for n, a in zip(self.arguments, arrays))
        if x1.ndim != 2 or x1.shape != x2.shape:
            raise ValueError(f"x1 and x2 must be (R, D) rows of one shape, got {x1.shape} and {x2.shape}")
        dtype = _arrays.compute_dtype(x1)
        return _DistancePlan(x1.astype(dtype, copy=False), x2.astype(dtype, copy=False), dtype, x1.shape[:1])

    def _grad_buffer(self, plan, name):
        return np.empty(plan.x1.shape, plan.dtype)

    def _run(self, plan, grads, loss_out, upstream, scale):
        d, g1, g2 = rows_value_and_grad(self.distance, plan.x1, plan.x2)
        rows = d.shape[0]
        g = scale * np.broadcast_to(upstream.astype(np.float64), (rows,))
        if self.reduction == "mean" and rows:
            g = g / rows
        for name, partial in (("x1", g1), ("x2", g2)):
            if name in grads:
                grads[name][...] = g[:, None] * partial
        if loss_out is not None:
            loss_out[...] = d
        total = float(d.sum())
        return total / rows if self.reduction == "mean" else total


class _DistancePlan:
    __slots__ = ("x1", "x2", "dtype", "loss_shape")

    def __init__(self, x1, x2, dtype, loss_shape):
        self.x1, self.x2, self.dtype, self.loss_shape = x1, x2, dtype, loss_shape


def distance_loss(distance: Distance) -> type:
    """The loss class through which the validator checks ``distance``."""
    name = type(distance).__name__
    return type(name, (_DistanceAsLoss,), {"name": "distance_" + name.lower(), "distance": distance,
                                           "__doc__": f"{distance!r} as a loss of (x1, x2)."})

"""The embedding family: CosineEmbeddingLoss, TripletMarginLoss, TripletMarginWithDistanceLoss.

Each loss is one declaration (options, argument domains, its kernel generated from its row in
pyx/embedding_losses.pxi); ``EmbeddingLoss`` is the family's plan: every row input of one shape — torch
would broadcast a size-1 batch or feature axis between them; lossengine refuses mismatched shapes
with the shapes named — and the per-row target of the cosine loss. The cosine loss takes (N, D)
rows or one unbatched (D,) row, as torch; the triplet losses, as torch's, any shape, the rows along
the last axis ((N, ..., D) gives a loss of shape (N, ...); a 0-d array is one row of one element). (MarginRankingLoss, elementwise, is in lossengine/losses/elementwise.py.)

TripletMarginWithDistanceLoss takes its distance as torch does, with one difference forced by the
absence of autograd: a distance must bring its gradient. ``distance_function`` is None or
"euclidean" (torch.pairwise_distance), "cosine" (1 - torch.cosine_similarity), both compiled, or a
``lossengine.Distance`` (value and gradient over NumPy rows, checked by ``le.check`` like a loss).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import _arrays, _embedding
from .._reductions import reduction_of
from .._threads import PARALLEL_MIN_ELEMENTS, _kernel_threads
from ..base import FusedLoss, Loss, losses_defined_in
from ..declaration import Option, flag, real, reduction
from ..domains import Signs

DISTANCE_PNORM, DISTANCE_COSINE = 0, 1


class _Plan(NamedTuple):
    dtype: np.dtype
    loss_shape: tuple
    given: list             # the arguments as given (float arrays)
    rows: list              # the row inputs as (n, D) C-contiguous arrays of the compute dtype
    target: Any             # (n,) of the compute dtype, or None
    n: int
    D: int


class EmbeddingLoss(FusedLoss):
    """A loss over rows of D values: per row, a distance or similarity between its inputs."""
    # Each row's loss depends on that row only, its features the last axis (for 2-d rows the same as
    # "rows"; the triplet losses' (N, ..., D) reduce the last axis, not axis 1).
    decomposes: ClassVar[str] = "feature-rows"
    # Whether the row inputs may have any number of dimensions, as torch's triplet losses take
    # (pairwise_distance over the last axis); otherwise (N, D) or (D,), as cosine_embedding_loss.
    any_batch_shape: ClassVar[bool] = False
    row_arguments: ClassVar[tuple[str, ...]] = ()
    target_argument: ClassVar[str | None] = None
    sample_shape = (4, 6)

    def _make_kernel(self):
        kernel = type(self).kernel
        return kernel(*[getattr(self, field) for field in kernel.fields])

    def _plan(self, arrays) -> _Plan:
        given = [_arrays.float_array(name, a) for name, a in zip(self.arguments, arrays)]
        rows = given[:len(self.row_arguments)]
        first, ref = self.row_arguments[0], rows[0]
        if not self.any_batch_shape and ref.ndim not in (1, 2):
            raise ValueError(f"{first} must be (N, D) rows or one unbatched (D,) row, got shape {ref.shape}")
        for name, arr in zip(self.row_arguments[1:], rows[1:]):
            if arr.shape != ref.shape:
                raise ValueError(f"{name} must have the shape of {first}: {name} has shape {arr.shape}, "
                                 f"{first} has shape {ref.shape}")
        dtype = _arrays.compute_dtype(ref)
        # The rows lie along the last axis: (..., D) is prod(...) rows, the loss of shape (...); one
        # (D,) row is unbatched (loss shape ()); a 0-d array is one row of one element (torch's
        # pairwise_distance reduces a 0-d difference over its "last axis": |x1 - x2 + eps|).
        loss_shape = ref.shape[:-1] if ref.ndim >= 2 else ()
        D = ref.shape[-1] if ref.ndim else 1
        n = math.prod(loss_shape)
        target = None
        if self.target_argument is not None:
            t = given[self.arguments.index(self.target_argument)]
            if t.shape != loss_shape:
                raise ValueError(f"{self.target_argument} must have shape {loss_shape}: one value per row of "
                                 f"{first} {ref.shape}; got shape {t.shape}")
            target = _arrays.contiguous(t, dtype).reshape(n)
        xs = [_arrays.contiguous(a, dtype).reshape(n, D) for a in rows]
        return _Plan(dtype, loss_shape, given, xs, target, n, D)

    def _grad_buffer(self, plan: _Plan, name: str) -> np.ndarray:
        return np.empty((plan.n, plan.D), plan.dtype)

    def _run(self, plan: _Plan, grads: dict, loss_out, upstream, scale: float) -> float:
        kernel = self.__dict__.get("_kernel_object")
        if kernel is None:
            kernel = self.__dict__["_kernel_object"] = self._make_kernel()
        mode = reduction_of(self.reduction)
        denominator = mode.denominator(plan.n if plan.loss_shape else 1)
        total = kernel.run(plan.n, plan.D, plan.rows, plan.target, [grads.get(n) for n in self.row_arguments],
                           loss_out, upstream, mode.grad_scale(scale, denominator),
                           _kernel_threads(), PARALLEL_MIN_ELEMENTS, plan.given[0].ndim == 0)
        return mode.value(total, denominator if plan.n else 0)

    def _grad_result(self, plan: _Plan, name: str, grad: np.ndarray) -> np.ndarray:
        arg = plan.given[self.arguments.index(name)]
        return grad.reshape(arg.shape).astype(_arrays.result_dtype(arg, plan.dtype), copy=False)


class CosineEmbeddingLoss(EmbeddingLoss):
    """1 - cos(x1, x2) where y == 1, max(0, cos(x1, x2) - margin) where y == -1, 0 for any other y
    (torch's where()); cos = x1 . x2 / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12)), finite for zero rows."""
    name = "cosine_embedding_loss"
    kernel = _embedding.CosineEmbedding
    arguments = ("input1", "input2", "target")
    differentiable = ("input1", "input2")
    row_arguments = ("input1", "input2")
    target_argument = "target"
    options = (real("margin", 0.0, examples=(0.3,)), reduction())
    domains = {"target": Signs()}

    @classmethod
    def sample_inputs(cls, rng, dtype):
        n, d = cls.sample_shape
        return (rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((n, d)).astype(dtype),
                rng.choice([-1.0, 1.0], size=n).astype(dtype))


def _parse_p(name: str, value: Any) -> float:
    from ..declaration import parse_real
    p = parse_real(name, value, gt=0.0)
    if math.isinf(p):
        # torch's p = inf is the max-norm; the kernel's sum-of-powers path would silently return
        # distance 1 for every row (pow(s, 1 / inf) == 1), so it is refused until implemented.
        raise ValueError(f"{name} must be finite (p = inf, the max-norm, is not supported), got {p!r}")
    return p


class TripletMarginLoss(EmbeddingLoss):
    """max(0, margin + d(a, p) - d(a, n)), d the p-norm pairwise distance ||x1 - x2 + eps||_p (torch's
    pairwise_distance); with ``swap``, d(a, n) is min(d(a, n), d(p, n)). p > 0 (torch accepts p <= 0,
    which is no distance: refused here)."""
    name = "triplet_margin_loss"
    kernel = _embedding.TripletMargin
    arguments = ("anchor", "positive", "negative")
    differentiable = ("anchor", "positive", "negative")
    row_arguments = arguments
    any_batch_shape = True
    options = (real("margin", 1.0, gt=0.0, examples=(0.5,)),
               Option("p", 2.0, _parse_p, "real", "> 0 and finite", (1.0, 3.0)),
               real("eps", 1e-6, ge=0.0, examples=(0.0,)), flag("swap"), reduction())
    distance = DISTANCE_PNORM
    # margin 20 in the validator's samples would make every row active; the defaults' mix is fine.
    # Declared once here, cited by the tests that exclude or show it.
    deviations = {"distance_finite_where_torch_overflows": (
        "a row whose powers overflow (|x| near 1e154 and beyond in float64) has torch's distance inf "
        "(gradient 0 through it), or for the cosine distance a norm of inf (cosine 0 or NaN); lossengine "
        "rescales the row by its largest |v|, so its distance is the true, finite one and its gradient "
        "that distance's")}


class Distance:
    """A distance between rows for TripletMarginWithDistanceLoss, with its gradient (no autograd
    here). Subclasses implement, over NumPy arrays x1, x2 of shape (N, D) (float64 or float32):

    ``distance(x1, x2) -> (N,)``
        the distance between each row pair;
    ``gradients(x1, x2, grad) -> (g1, g2)``
        grad (N,) times d distance / d x1 and d distance / d x2, each (N, D).

    Both results are checked against those shapes (a ValueError naming the method otherwise: a
    (N, 1) or (D,) gradient would broadcast silently into the (N, D) sums).

    ``le.check(MyDistance)`` validates it like a loss (finite differences, dtypes, layouts).
    """

    def distance(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement distance()")

    def gradients(self, x1: np.ndarray, x2: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} does not implement gradients()")

    @classmethod
    def as_loss(cls) -> type:
        """The loss ``le.check`` validates in this distance's place: the loss of (x1, x2) it defines
        (``DistanceLoss``)."""
        return distance_loss(cls)


class EuclideanDistance(Distance):
    """torch.pairwise_distance(x1, x2) (p = 2, eps = 1e-6 added to the difference)."""
    name = "euclidean"

    def distance(self, x1, x2):
        return np.sqrt(np.sum((x1 - x2 + 1e-6) ** 2, axis=-1))

    def gradients(self, x1, x2, grad):
        v = x1 - x2 + 1e-6
        norm = np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
        g = np.where(norm > 0, v / np.where(norm > 0, norm, 1), 0) * np.asarray(grad)[..., None]
        return g, -g


class CosineDistance(Distance):
    """1 - torch.cosine_similarity(x1, x2) (eps = 1e-8 on each norm)."""
    name = "cosine"

    def distance(self, x1, x2):
        n1 = np.maximum(np.linalg.norm(x1, axis=-1), 1e-8)
        n2 = np.maximum(np.linalg.norm(x2, axis=-1), 1e-8)
        return 1.0 - np.sum(x1 * x2, axis=-1) / (n1 * n2)

    def gradients(self, x1, x2, grad):
        r1, r2 = np.linalg.norm(x1, axis=-1), np.linalg.norm(x2, axis=-1)
        n1, n2 = np.maximum(r1, 1e-8)[..., None], np.maximum(r2, 1e-8)[..., None]
        dot = np.sum(x1 * x2, axis=-1)[..., None]
        g = np.asarray(grad)[..., None]
        safe1, safe2 = np.where(r1 > 0, r1, 1)[..., None], np.where(r2 > 0, r2, 1)[..., None]
        g1 = -g * (x2 / (n1 * n2) - np.where(r1[..., None] > 0, dot / (n1 * n1 * n2) * x1 / safe1, 0))
        g2 = -g * (x1 / (n1 * n2) - np.where(r2[..., None] > 0, dot / (n1 * n2 * n2) * x2 / safe2, 0))
        return g1, g2


NAMED_DISTANCES = {"euclidean": EuclideanDistance, "cosine": CosineDistance}


def _parse_distance(name: str, value: Any):
    if value is None or isinstance(value, Distance):
        return value
    if isinstance(value, str):
        if value not in NAMED_DISTANCES:
            raise ValueError(f"{name} must be None, one of {', '.join(map(repr, NAMED_DISTANCES))} or a "
                             f"lossengine.Distance; got {value!r}")
        return value
    if isinstance(value, type) and issubclass(value, Distance):
        return value()
    if callable(value):
        raise TypeError(
            f"{name}: a plain callable has no gradient here (there is no autograd). Pass None or "
            f"'euclidean' (pairwise distance), 'cosine', or a lossengine.Distance subclass instance that "
            f"implements distance(x1, x2) and gradients(x1, x2, grad)")
    raise TypeError(f"{name} must be None, a distance name or a lossengine.Distance, got {type(value).__name__}")


class TripletMarginWithDistanceLoss(EmbeddingLoss):
    """max(0, margin + d(a, p) - d(a, n)) for a chosen distance d (``swap`` as TripletMarginLoss).
    ``distance_function``: None or 'euclidean' (torch.pairwise_distance), 'cosine'
    (1 - cosine_similarity), both compiled, or a ``lossengine.Distance`` instance (NumPy)."""
    name = "triplet_margin_with_distance_loss"
    deviations = TripletMarginLoss.deviations
    kernel = _embedding.TripletMargin
    arguments = ("anchor", "positive", "negative")
    differentiable = ("anchor", "positive", "negative")
    row_arguments = arguments
    any_batch_shape = True
    options = (Option("distance_function", None, _parse_distance, "distance",
                      "None, 'euclidean', 'cosine' or a lossengine.Distance", ("cosine",), keyword_only=True,
                      kernel=False),
               real("margin", 1.0, gt=0.0, examples=(0.5,), keyword_only=True),
               flag("swap", keyword_only=True), reduction(keyword_only=True))

    # The compiled kernel's fields, from the distance: euclidean is pairwise_distance's p = 2,
    # eps = 1e-6.
    p, eps = 2.0, 1e-6

    @property
    def distance(self) -> int:
        return DISTANCE_COSINE if self.distance_function == "cosine" else DISTANCE_PNORM

    def _run(self, plan: _Plan, grads: dict, loss_out, upstream, scale: float) -> float:
        if not isinstance(self.distance_function, Distance):
            return super()._run(plan, grads, loss_out, upstream, scale)
        return _run_with_distance(self, self.distance_function, plan, grads, loss_out, upstream, scale)


def _run_with_distance(loss, distance: Distance, plan: _Plan, grads: dict, loss_out, upstream, scale) -> float:
    """The triplet loss over a user Distance, in NumPy (float64)."""
    a, p, n = (x.astype(np.float64) for x in plan.rows)
    d_pos = np.asarray(distance.distance(a, p), dtype=np.float64)
    d_an = np.asarray(distance.distance(a, n), dtype=np.float64)
    d_pn = np.asarray(distance.distance(p, n), dtype=np.float64) if loss.swap else d_an
    for what, d in (("distance(anchor, positive)", d_pos), ("distance(anchor, negative)", d_an),
                    ("distance(positive, negative)", d_pn)):
        if d.shape != (plan.n,):
            raise ValueError(f"{type(distance).__name__}.{what} must return one distance per row "
                             f"({plan.n},), got shape {d.shape}")
    d_neg = np.minimum(d_an, d_pn)
    z = loss.margin + d_pos - d_neg
    values = np.where(z < 0, 0.0, z)
    if loss_out is not None:
        loss_out.reshape(-1)[...] = values
    mode = reduction_of(loss.reduction)
    denominator = mode.denominator(plan.n if plan.loss_shape else 1)
    if grads:
        g = scale / denominator * np.broadcast_to(np.asarray(upstream, np.float64).reshape(-1), (plan.n,))
        g = np.where(z >= 0, g, 0.0)
        w_an = np.where(d_an < d_pn, 1.0, np.where(d_an == d_pn, 0.5, 0.0)) if loss.swap else np.ones(plan.n)
        total = {name: np.zeros((plan.n, plan.D)) for name in loss.row_arguments}
        ga, gp = _gradients(distance, "anchor, positive", a, p, g)
        total["anchor"] += ga
        total["positive"] += gp
        ga, gn = _gradients(distance, "anchor, negative", a, n, -g * w_an)
        total["anchor"] += ga
        total["negative"] += gn
        if loss.swap:
            gp, gn = _gradients(distance, "positive, negative", p, n, -g * (1.0 - w_an))
            total["positive"] += gp
            total["negative"] += gn
        for name, buffer in grads.items():
            buffer[...] = total[name]
    return mode.value(float(np.sum(values)), denominator if plan.n else 0)


def _gradients(distance: Distance, between: str, x1: np.ndarray, x2: np.ndarray, grad: np.ndarray) -> tuple:
    """``distance.gradients(x1, x2, grad)``, each checked to have its argument's shape: a (N, 1), (D,)
    or scalar result would otherwise broadcast silently into the (N, D) sums."""
    result = distance.gradients(x1, x2, grad)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise ValueError(f"{type(distance).__name__}.gradients({between}) must return a pair (g1, g2), "
                         f"got {type(result).__name__}")
    pair = tuple(np.asarray(g, dtype=np.float64) for g in result)
    for k, (g, x) in enumerate(zip(pair, (x1, x2))):
        if g.shape != x.shape:
            raise ValueError(f"{type(distance).__name__}.gradients({between}) must return gradients of the "
                             f"rows' shape {x.shape}; g{k + 1} has shape {g.shape}")
    return pair


class DistanceLoss(Loss):
    """A Distance seen as a loss of (x1, x2), for the validator: ``le.check`` on a Distance checks
    this adapter (its gradients against finite differences of its distances)."""
    arguments = ("x1", "x2")
    differentiable = ("x1", "x2")
    distance_class: ClassVar[type] = Distance
    sample_shape = (4, 6)

    def forward(self, x1, x2):
        x1, x2 = _arrays.float_array("x1", x1), _arrays.float_array("x2", x2)
        dtype = _arrays.compute_dtype(x1)
        d = np.asarray(self.distance_class().distance(x1.astype(np.float64), x2.astype(np.float64)))
        mode = reduction_of(self.reduction)
        if not mode.reduces:
            return d.astype(dtype)
        return dtype.type(mode.value(float(np.sum(d)), mode.denominator(d.size)))

    def backward(self, x1, x2, grad_output=1.0, wrt=None):
        x1a, x2a = _arrays.float_array("x1", x1), _arrays.float_array("x2", x2)
        dtype = _arrays.compute_dtype(x1a)
        n = x1a.shape[0] if x1a.ndim > 1 else 1
        g = np.broadcast_to(np.asarray(grad_output, np.float64), (n,) if x1a.ndim > 1 else ())
        g = g / reduction_of(self.reduction).denominator(n)
        g1, g2 = _gradients(self.distance_class(), "x1, x2", x1a.astype(np.float64), x2a.astype(np.float64), g)
        out = {"x1": np.asarray(g1, dtype), "x2": np.asarray(g2, dtype)}
        return tuple(out[name] for name in wrt)


def distance_loss(distance: Distance | type) -> type:
    """The DistanceLoss adapter class for a Distance class or instance."""
    cls = distance if isinstance(distance, type) else type(distance)
    if not (isinstance(cls, type) and issubclass(cls, Distance)):
        raise TypeError(f"expected a lossengine.Distance, got {cls!r}")
    return type(f"{cls.__name__}AsLoss", (DistanceLoss,),
                {"distance_class": cls, "name": f"distance_{getattr(cls, 'name', cls.__name__.lower())}",
                 "__module__": cls.__module__})


LOSSES = losses_defined_in(globals())      # this module's classes that declare a registry name
__all__ = ["EmbeddingLoss", "Distance", "EuclideanDistance", "CosineDistance", "LOSSES"] + \
    [cls.__name__ for cls in LOSSES]

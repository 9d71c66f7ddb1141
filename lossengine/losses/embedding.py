"""The embedding / ranking family: losses over pairs or triplets of rows (the last axis), one
declaration per loss over one plan.

A call becomes the kernel's view of the problem in ``_plan``: R rows of D features (D = 1 for
MarginRankingLoss, which compares scalars), each row operand either one row per loss row or a single
row shared by all (torch's (1, D) against (N, D): no copy), anything else broadcast into a copy;
the per-row target likewise. The kernel (pyx/embedding.pyx.tp) writes every gradient with one row
per loss row; ``_grad_result`` sums it back over the axes an argument was broadcast along.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import _arrays, _embedding
from .._threads import PARALLEL_MIN_ELEMENTS, get_num_threads
from ..base import FusedLoss
from ..declaration import Option, flag, real, reduction
from ..distances import (CosineDistance, PairwiseDistance, SquaredEuclideanDistance, distance_function,
                         rows_value_and_grad)
from ..domains import Real, Signs


class _Rows(NamedTuple):
    n_rows: int
    D: int
    rows: tuple                 # the row operands, compute dtype, C-contiguous (n_rows x D or D values)
    target: np.ndarray | None   # per-row target (n_rows or 1 values)
    row_shape: tuple            # the full broadcast shape of a row operand (loss_shape + (D,))
    loss_shape: tuple
    dtype: np.dtype
    given: tuple                # the arguments as given (their shapes and dtypes shape the gradients)


def _row_operand(arr: np.ndarray, row_shape: tuple, D: int, dtype: np.dtype) -> np.ndarray:
    """An operand the kernel can read: its own rows (row_shape), one shared row, or a broadcast copy."""
    if arr.shape == row_shape or arr.size == D == (arr.shape[-1] if arr.ndim else 1):
        return _arrays.contiguous(arr, dtype)
    return _arrays.contiguous(np.broadcast_to(arr, row_shape), dtype)


def _broadcast(names: tuple, shapes: list) -> tuple:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            "the shapes of " + ", ".join(f"{n} {s}" for n, s in zip(names, shapes)) + " do not broadcast together"
        ) from None


class EmbeddingLoss(FusedLoss):
    """A loss over rows of embeddings; subclasses set ``kernel`` and ``_layout``."""

    kernel: ClassVar[type]
    sample_shape = (6, 5)
    # Each element is a "row" of one feature (MarginRankingLoss): operands gain a unit feature axis.
    scalar_rows: ClassVar[bool] = False

    def _options_parsed(self) -> None:
        self._kernel = self._make_kernel()
        # Arguments before this index are row operands; the one after them (if any) is the target.
        self._operands = len(self.arguments) if self._kernel is None else self._kernel.operands

    def _make_kernel(self):
        return self.kernel(*[getattr(self, f) for f in self.kernel.fields])

    # -- per-class hook: (row operands as float arrays, target or None) -> shapes ----------------
    def _shapes(self, arrays: list) -> tuple[tuple, int]:
        """(loss_shape, D) for these arguments (all float arrays), after the loss's own checks."""
        raise NotImplementedError

    def _plan(self, arrays) -> _Rows:
        arrays = [_arrays.float_array(name, a) for name, a in zip(self.arguments, arrays)]
        dtype = _arrays.compute_dtype(arrays[0])
        loss_shape, D = self._shapes(arrays)
        n_rows = math.prod(loss_shape)
        ops = self._operands
        row_shape = loss_shape + (D,)
        rows = tuple(_row_operand(a[..., None] if self.scalar_rows else a, row_shape, D, dtype) for a in arrays[:ops])
        target = None
        if len(arrays) > ops:
            t = arrays[ops]
            target = _arrays.contiguous(t, dtype) if t.shape == loss_shape or t.size == 1 else \
                _arrays.contiguous(np.broadcast_to(t, loss_shape), dtype)
        return _Rows(n_rows, D, rows, target, row_shape, loss_shape, dtype, tuple(arrays))

    def _grad_buffer(self, plan: _Rows, name: str) -> np.ndarray:
        k = self.arguments.index(name)
        return np.empty(plan.row_shape if k < self._operands else plan.loss_shape, plan.dtype)

    def _run(self, plan: _Rows, grads: dict, loss_out, upstream, scale: float) -> float:
        slots = [grads.get(name) for name in self.arguments]
        slots += [None] * (self._operands + 1 - len(slots))
        return self._kernel.run(plan.n_rows, plan.D, plan.rows, plan.target, slots, loss_out, upstream, scale,
                                self.reduction == "mean", get_num_threads(), PARALLEL_MIN_ELEMENTS)

    def _grad_result(self, plan: _Rows, name: str, grad: np.ndarray) -> np.ndarray:
        k = self.arguments.index(name)
        arg = plan.given[k]
        if self.scalar_rows or k >= self._operands:
            grad = grad.reshape(plan.loss_shape)
        result = grad if grad.shape == arg.shape else _arrays.unbroadcast(grad, arg.shape)
        return result.astype(_arrays.result_dtype(arg, plan.dtype), copy=False)

    @classmethod
    def large_sample_inputs(cls, rng, dtype):
        """Inputs past the parallel cutoff, for the validator's thread-invariance check."""
        rows = 2 * PARALLEL_MIN_ELEMENTS // cls.sample_shape[-1] + 7
        shape = (rows, cls.sample_shape[-1])
        saved = cls.sample_shape
        try:
            cls.sample_shape = shape
            return cls.sample_inputs(rng, dtype)
        finally:
            cls.sample_shape = saved


def _same_ndim(loss_name: str, names: tuple, arrays: list) -> None:
    if len({a.ndim for a in arrays}) != 1:
        dims = ", ".join(f"{n} {a.ndim}-D {a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"{loss_name}: {', '.join(names)} must have the same number of dimensions, got {dims}")


class MarginRankingLoss(EmbeddingLoss):
    """max(0, -target (input1 - input2) + margin), elementwise; input1, input2 and target of one
    number of dimensions, broadcast together as torch does."""
    name = "margin_ranking_loss"
    arguments = ("input1", "input2", "target")
    differentiable = ("input1", "input2", "target")
    kernel = _embedding.MarginRanking
    scalar_rows = True
    options = (real("margin", 0.0, examples=(0.5,)), reduction())
    domains = {"target": Signs()}
    sample_shape = (7,)

    def _shapes(self, arrays):
        _same_ndim(self.name, self.arguments, arrays)
        return _broadcast(self.arguments, [a.shape for a in arrays]), 1

    check_options = ({"margin": 0.5},)


def _feature_shapes(loss_name: str, names: tuple, arrays: list) -> tuple[tuple, int]:
    """Leading (batch) shape and feature count D of row operands broadcast together (0-d: D = 1)."""
    batch = _broadcast(names, [a.shape[:-1] for a in arrays])
    D = _broadcast(names, [a.shape[-1:] for a in arrays])
    D = D[0] if D else 1
    if D == 0:
        raise ValueError(f"{loss_name}: {names[0]} has no features (its last dimension has size 0)")
    return batch, D


class CosineEmbeddingLoss(EmbeddingLoss):
    """1 - cos(x1, x2) where target == 1, max(0, cos(x1, x2) - margin) where target == -1, 0 for any
    other target; cos with torch's 1e-12 inside the squared norms (finite for zero rows)."""
    name = "cosine_embedding_loss"
    arguments = ("input1", "input2", "target")
    differentiable = ("input1", "input2")
    kernel = _embedding.CosineEmbedding
    options = (real("margin", 0.0, examples=(0.3, -0.2)), reduction())
    domains = {"target": Signs()}

    @classmethod
    def sample_inputs(cls, rng, dtype):
        n, d = cls.sample_shape
        return (rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((n, d)).astype(dtype),
                Signs().sample(rng, (n,), dtype))

    def _shapes(self, arrays):
        x1, x2, t = arrays
        if t.ndim > 1:
            raise ValueError(f"{self.name}: target must be 0-D or 1-D (multi-target not supported), "
                             f"got shape {t.shape}")
        expected = 2 if t.ndim == 1 else 1
        if x1.ndim != expected or x2.ndim != expected:
            raise ValueError(
                f"{self.name}: a {t.ndim}-D target takes {expected}-D input1 and input2 "
                f"({'(N, D) with (N,)' if t.ndim else '(D,) with ()'}), got {x1.shape} and {x2.shape}"
            )
        if x1.shape[-1:] != x2.shape[-1:]:
            # torch broadcasts x1 * x2 but takes each norm over its own features, so a (N, 1) row
            # "broadcast" to D features is not the cosine of anything: refused (README).
            raise ValueError(f"{self.name}: input1 and input2 must have the same number of features (last "
                             f"dimension), got {x1.shape} and {x2.shape}")
        batch, D = _feature_shapes(self.name, self.arguments[:2], [x1, x2])
        return _broadcast(("input1/input2 rows", "target"), [batch, t.shape]), D

    check_options = ({"margin": 0.3},)


class _TripletLoss(EmbeddingLoss):
    arguments = ("anchor", "positive", "negative")
    differentiable = ("anchor", "positive", "negative")

    def _shapes(self, arrays):
        _same_ndim(self.name, self.arguments, arrays)
        return _feature_shapes(self.name, self.arguments, arrays)


class TripletMarginLoss(_TripletLoss):
    """max(0, margin + d(anchor, positive) - d(anchor, negative)), d = pairwise_distance
    (||x - y + eps||_p over the last axis); swap: d(anchor, negative) -> min(that, d(positive, negative))."""
    name = "triplet_margin_loss"
    kernel = _embedding.TripletMargin
    options = (real("margin", 1.0, gt=0.0, examples=(0.5,)), real("p", 2.0, gt=0.0, examples=(1.0, 3.0)),
               real("eps", 1e-6, examples=(0.0,)), flag("swap"), reduction())

    check_options = ({"p": 1.0, "swap": True}, {"p": 3.0, "margin": 2.0}, {"p": 1.5, "eps": 0.0},
                     {"p": 0.7, "swap": True})


def _distance_option() -> Option:
    return Option("distance_function", None, distance_function, "distance",
                  "None, 'euclidean', 'cosine' or a lossengine.Distance", keyword_only=True, kernel=False)


class TripletMarginWithDistanceLoss(_TripletLoss):
    """max(0, margin + d(anchor, positive) - d(anchor, negative)) for a distance d with its gradient:
    None (pairwise distance), 'euclidean', 'cosine', or a lossengine.Distance."""
    name = "triplet_margin_with_distance_loss"
    options = (_distance_option(), real("margin", 1.0, gt=0.0, examples=(0.5,), keyword_only=True),
               flag("swap", keyword_only=True), reduction(keyword_only=True))

    def _make_kernel(self):
        d = self.distance_function
        if d is None or type(d) is PairwiseDistance:
            d = d or PairwiseDistance()
            return _embedding.TripletMargin(self.margin, d.p, d.eps, self.swap)
        if type(d) is CosineDistance:
            return _embedding.TripletCosine(self.margin, d.eps, self.swap)
        return None             # a user Distance: its NumPy value_and_grad, combined below

    def _plan(self, arrays):
        if self._kernel is not None:
            return super()._plan(arrays)
        arrays = [_arrays.float_array(name, a) for name, a in zip(self.arguments, arrays)]
        dtype = _arrays.compute_dtype(arrays[0])
        loss_shape, D = self._shapes(arrays)
        row_shape = loss_shape + (D,)
        n_rows = math.prod(loss_shape)
        rows = tuple(np.ascontiguousarray(np.broadcast_to(a, row_shape), dtype).reshape(n_rows, D) for a in arrays)
        return _Rows(n_rows, D, rows, None, row_shape, loss_shape, dtype, tuple(arrays))

    def _grad_buffer(self, plan, name):
        return np.empty(plan.row_shape, plan.dtype)

    def _run(self, plan, grads, loss_out, upstream, scale):
        if self._kernel is not None:
            return super()._run(plan, grads, loss_out, upstream, scale)
        return _distance_triplet(self.distance_function, self.margin, self.swap, self.reduction == "mean",
                                 plan, grads, loss_out, upstream, scale)

    check_options = ({"distance_function": "cosine"}, {"distance_function": "cosine", "swap": True},
                     {"distance_function": "euclidean", "swap": True, "margin": 0.5},
                     # A user Distance: its NumPy value_and_grad, combined by _distance_triplet.
                     {"distance_function": SquaredEuclideanDistance(), "swap": True},
                     {"distance_function": PairwiseDistance(p=1.5, eps=1e-3)})


def _distance_triplet(distance, margin, swap, mean, plan, grads, loss_out, upstream, scale) -> float:
    """The triplet hinge over a user Distance, vectorized over rows (the distance is NumPy code
    anyway): the same formulas as the kernel's, including torch.minimum's halves at a tie."""
    a, p, n = plan.rows
    R = plan.n_rows
    d_ap, ga_ap, gp_ap = rows_value_and_grad(distance, a, p)
    d_an, ga_an, gn_an = rows_value_and_grad(distance, a, n)
    d_neg, share_an, share_pn = d_an, np.ones(R), np.zeros(R)
    if swap:
        d_pn, gp_pn, gn_pn = rows_value_and_grad(distance, p, n)
        share_an = np.where(d_an < d_pn, 1.0, np.where(d_an == d_pn, 0.5, 0.0))
        share_pn = np.where(d_pn < d_an, 1.0, np.where(d_an == d_pn, 0.5, 0.0))
        d_neg = np.minimum(d_an, d_pn)
    z = margin + d_ap - d_neg
    losses = np.maximum(z, 0.0)
    if grads:
        g = scale * np.broadcast_to(upstream.astype(np.float64), (R,)) / (R if mean and R else 1)
        c = np.where(z >= 0.0, g, 0.0)[:, None]
        c_an, c_pn = c * share_an[:, None], c * share_pn[:, None]
        parts = {"anchor": c * ga_ap - c_an * ga_an, "positive": c * gp_ap, "negative": -c_an * gn_an}
        if swap:
            parts["positive"] = parts["positive"] - c_pn * gp_pn
            parts["negative"] = parts["negative"] - c_pn * gn_pn
        for name, buf in grads.items():
            buf.reshape(R, plan.D)[...] = parts[name]
    if loss_out is not None:
        loss_out.reshape(-1)[...] = losses
    total = float(losses.sum())
    return (total / R if R else math.nan) if mean else total


LOSSES = (MarginRankingLoss, CosineEmbeddingLoss, TripletMarginLoss, TripletMarginWithDistanceLoss)
__all__ = ["EmbeddingLoss", "LOSSES"] + [cls.__name__ for cls in LOSSES]

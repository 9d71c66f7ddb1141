"""The classification family: thin classes (options, shape rules, sample inputs) over one driver.

``ClassificationLoss._compute`` is the family's only path into the compiled kernel
(``pyx/classification.pyx``). Each class's ``_layout`` turns (input, target) into the kernel's view
of the problem: positions x classes with a class stride, the target as int64 class indices or as a
float array of the input's layout, and the loss's shape. ``_compute`` then allocates exactly the
outputs the call needs, runs one fused pass (targets validated first, in the kernel, before any row
is touched) and shapes the results.

The call path is kept short on purpose: at (64, 10) a call is a few microseconds, so the common case
(C-contiguous native float arrays, scalar grad_output) skips every conversion it does not need.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import _arrays, _classification
from .._threads import PARALLEL_MIN_ELEMENTS, get_num_threads
from ..base import FORWARD_ONLY, FusedLoss

_KINDS = _classification.KINDS
_DENOMINATORS = _classification.DENOMINATORS
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INT64 = np.dtype(np.int64)
_ONES = {dt: np.ones(1, dt) for dt in _FLOAT_DTYPES}


class _Layout(NamedTuple):
    kind: str
    denominator: str
    n_pos: int
    classes: int
    stride: int                     # class stride S
    x: np.ndarray                   # C-contiguous, compute dtype
    t: np.ndarray | None            # float target, compute dtype, input's layout
    idx: np.ndarray | None          # int64 class indices
    loss_shape: tuple
    weight_row_step: int = 0
    weight: np.ndarray | None = None


def _fast_float(name: str, value: Any) -> np.ndarray:
    # The common case costs two attribute checks; everything else goes through _arrays.
    if type(value) is np.ndarray and value.dtype in _FLOAT_DTYPES and value.flags.aligned:
        return value
    return _arrays.float_array(name, value)


def _target(value: Any) -> np.ndarray:
    if type(value) is np.ndarray:
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"target must be an array; could not convert it: {exc}") from None


def _indices(t: np.ndarray) -> np.ndarray:
    """int64 C-contiguous class indices (the given array itself when it already is)."""
    if t.dtype is _INT64 and t.flags.c_contiguous and t.flags.aligned and t.ndim:
        return t
    return _arrays.index_array("target", t)


def _operand(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if arr.dtype is dtype and arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    return _arrays.contiguous(arr, dtype)


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not np.iinfo(np.int64).min <= value <= np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in a 64-bit signed integer, got {value}")
    return value


def _class_weight(weight: Any) -> np.ndarray | None:
    if weight is None:
        return None
    w = _arrays.float_array("weight", weight)
    if w.ndim != 1:
        raise ValueError(f"weight must be a 1-D array of per-class weights, got shape {w.shape}")
    return np.array(w, dtype=np.float64 if w.dtype.itemsize >= 8 else np.float32, copy=True)


class ClassificationLoss(FusedLoss):
    """A loss over class scores along one axis, with a per-position target."""

    differentiable: ClassVar[tuple[str, ...]] = ("input",)
    # Classes owning a (C,) class-weight option store it in self.weight.
    weight: np.ndarray | None = None

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self._weight_cache: dict = {}

    # -- per-class hook ------------------------------------------------------------------------
    def _layout(self, input: np.ndarray, target: Any, dtype: np.dtype) -> _Layout:
        raise NotImplementedError

    def _options(self, lay: _Layout) -> tuple:
        """(label_smoothing, margin, p, ignore_index, weight_row_step) for the kernel."""
        return (0.0, 0.0, 1, -100, lay.weight_row_step)

    # -- the family's driver -------------------------------------------------------------------
    def _class_weight_for(self, dtype: np.dtype, classes: int) -> np.ndarray | None:
        """The class weights rounded to the compute dtype (as torch stores them), as float64."""
        if self.weight is None:
            return None
        if self.weight.shape[0] != classes:
            raise ValueError(
                f"weight should be defined either for all {classes} classes or no classes, "
                f"but got weight of shape {self.weight.shape}"
            )
        w = self._weight_cache.get(dtype)
        if w is None:
            w = self.weight.astype(dtype).astype(np.float64)
            self._weight_cache[dtype] = w
        return w

    def _compute(self, arrays, want_value: bool, wrt: Any, grad_output: Any):
        if len(arrays) != 2:
            self._check_arity(arrays)
        if wrt is FORWARD_ONLY:
            wrt_names = ()
        elif wrt is None:
            wrt_names = ("input",)
        else:
            wrt_names, _ = self._resolve_wrt(wrt)
        input = _fast_float("input", arrays[0])
        dtype = input.dtype if input.dtype in _FLOAT_DTYPES else _arrays.compute_dtype(input)
        lay = self._layout(input, arrays[1], dtype)
        if "target" in wrt_names and lay.t is None:
            raise ValueError(
                f"wrt: 'target' is not differentiable for {type(self).__name__} when it holds class "
                "indices (only class-probability targets have a gradient)"
            )
        if wrt_names:
            if type(grad_output) is float or type(grad_output) is int:
                scale, upstream = float(grad_output), _ONES[dtype]
            else:
                scale, upstream = _arrays.grad_output_operand(grad_output, self.reduction, lay.loss_shape, dtype)
        else:
            scale, upstream = 1.0, _ONES[dtype]
        gx = np.empty(input.shape, dtype) if "input" in wrt_names else None
        gt = np.empty(lay.t.shape, dtype) if "target" in wrt_names else None
        loss_out = np.empty(lay.loss_shape, dtype) if want_value and self.reduction == "none" else None
        weight = lay.weight if lay.weight is not None else self._class_weight_for(dtype, lay.classes)
        denominator = self.reduction
        if denominator == "mean":
            denominator = lay.denominator

        value, bad = _classification.run(
            _KINDS[lay.kind], _DENOMINATORS[denominator], lay.n_pos, lay.classes, lay.stride, lay.x,
            lay.t, lay.idx, weight, gx, gt, loss_out, upstream, scale, self._options(lay),
            get_num_threads(), PARALLEL_MIN_ELEMENTS,
        )
        if bad >= 0:
            self._raise_bad_target(np.asarray(arrays[1]), lay, bad)

        if want_value:
            value = loss_out if self.reduction == "none" else dtype.type(value)
        if not wrt_names:
            return value, None
        grads = []
        for name in wrt_names:
            if name == "input":
                grads.append(gx if gx.dtype == _arrays.result_dtype(input, dtype)
                             else gx.astype(_arrays.result_dtype(input, dtype)))
            else:
                tgt = np.asarray(arrays[1])
                grads.append(gt.reshape(tgt.shape).astype(_arrays.result_dtype(tgt, dtype), copy=False))
        single = wrt is None or isinstance(wrt, str)
        return value, (grads[0] if single else tuple(grads))

    def _valid_classes(self, classes: int) -> str:
        return f"class indices must lie in [0, {classes})"

    def _raise_bad_target(self, target: np.ndarray, lay: _Layout, flat: int) -> None:
        shape = target.shape
        position = tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
        value = int(lay.idx.reshape(-1)[flat])
        raise IndexError(
            f"Target {value} is out of bounds at position {position}: {self._valid_classes(lay.classes)}"
        )

    def _options_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def _index_layout_shapes(input: np.ndarray, target: np.ndarray, loss_name: str) -> tuple:
    """torch's (C,) / (N, C) / (N, C, d1..dK) input with () / (N,) / (N, d1..dK) index targets:
    returns (n_pos, C, S, loss_shape)."""
    if input.ndim == 0:
        raise ValueError(f"{loss_name}: input must have at least 1 dimension (the classes), got a 0-d array")
    if input.ndim == 1:
        if target.ndim != 0:
            raise ValueError(
                f"{loss_name}: a 1-D input (C,) takes a 0-d class-index target, got target of shape {target.shape}"
            )
        return 1, input.shape[0], 1, ()
    expected = (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{loss_name}: input of shape {input.shape} takes class-index targets of shape {expected}, "
            f"got target of shape {target.shape}"
        )
    stride = math.prod(input.shape[2:])
    return input.shape[0] * stride, input.shape[1], stride, expected


class _IndexTargetLoss(ClassificationLoss):
    """NLL and cross-entropy: weight and ignore_index, 'mean' weighted by w[target]."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = _class_weight(weight)
        self.ignore_index = _int("ignore_index", ignore_index)

    def _index_layout(self, input: np.ndarray, target: Any, dtype: np.dtype, kind: str) -> _Layout:
        target = _target(target)
        idx = _indices(target)
        n_pos, classes, stride, loss_shape = _index_layout_shapes(input, target, self.name)
        return _Layout(kind, "mean_weight", n_pos, classes, stride, _operand(input, dtype), None,
                       idx, loss_shape)

    def mean_denominator(self, input: Any, target: Any) -> float | None:
        """torch's 'mean' for class indices: the sum of weight[t] over non-ignored positions."""
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            return None  # class probabilities: the plain mean over positions
        kept = t[t != self.ignore_index]
        return float(kept.size if self.weight is None else np.asarray(self.weight, np.float64)[kept].sum())

    def _valid_classes(self, classes: int) -> str:
        return f"class indices must lie in [0, {classes}) or equal ignore_index={self.ignore_index}"

    def _options_repr(self) -> str:
        return (f"weight={'None' if self.weight is None else 'array'}, ignore_index={self.ignore_index}, "
                f"reduction={self.reduction!r}")


class NLLLoss(_IndexTargetLoss):
    """-weight[t] input[t] per position; 'mean' divides by the sum of weight[t] (ignored excluded)."""
    name = "nll_loss"

    def _layout(self, input, target, dtype):
        return self._index_layout(input, target, dtype, "nll")

    def _options(self, lay):
        return (0.0, 0.0, 1, self.ignore_index, 0)

    # Weighted and ignoring configurations: 'mean' is torch's weighted mean (see mean_denominator).
    check_options = ({"weight": np.array([0.5, 2.0, 1.0, 1.5])}, {"ignore_index": 1},
                     {"weight": np.array([0.5, 2.0, 1.0, 1.5]), "ignore_index": 2})

    @classmethod
    def sample_inputs(cls, rng, dtype):
        logits = rng.standard_normal((6, 4))
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return log_probs.astype(dtype), rng.integers(0, 4, size=6)


class NLLLoss2d(NLLLoss):
    """Deprecated alias of NLLLoss (as in torch, which warns the same way)."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        warnings.warn("NLLLoss2d is deprecated; use NLLLoss, which accepts the same (N, C, H, W) inputs",
                      FutureWarning, stacklevel=2)
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)


class CrossEntropyLoss(_IndexTargetLoss):
    """-log softmax(input)[target] with optional class weights, ignore_index and label smoothing;
    a float target of the input's shape holds class probabilities instead (torch's rule)."""
    name = "cross_entropy"
    differentiable = ("input", "target")

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        self.label_smoothing = _real("label_smoothing", label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {self.label_smoothing!r}")

    def _layout(self, input, target, dtype):
        t = _target(target)
        if t.dtype.kind == "f":
            if input.ndim == 0 or t.shape != input.shape:
                raise TypeError(
                    f"target must hold integer class indices, or be class probabilities of the input's "
                    f"shape {input.shape}; got a float target of shape {t.shape}"
                )
            if self.ignore_index >= 0:
                raise ValueError("ignore_index is not supported for class-probability (float) targets")
            classes = input.shape[0] if input.ndim == 1 else input.shape[1]
            stride = math.prod(input.shape[2:])
            loss_shape = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
            return _Layout("ce_prob", "mean", math.prod(loss_shape), classes, stride,
                           _operand(input, dtype), _operand(t, dtype), None, loss_shape)
        if t.dtype.kind in "iu" and t.shape == input.shape and input.ndim > 0:
            raise TypeError(
                f"target has the input's shape {input.shape}, so it must hold class probabilities "
                f"(a float array), got dtype {t.dtype}"
            )
        return self._index_layout(input, t, dtype, "ce_index")

    def _options(self, lay):
        return (self.label_smoothing, 0.0, 1, self.ignore_index, 0)

    def _options_repr(self) -> str:
        return super()._options_repr() + f", label_smoothing={self.label_smoothing!r}"

    check_options = ({"label_smoothing": 0.2}, {"weight": np.array([0.5, 2.0, 1.0, 1.5]), "label_smoothing": 0.1})

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # Class probabilities: the target is differentiable too, so the validator checks both.
        return (rng.standard_normal((6, 4)).astype(dtype),
                rng.dirichlet(np.ones(4), size=6).astype(dtype))


def _vector_layout_shapes(input: np.ndarray, loss_name: str) -> tuple:
    """torch's multi-margin inputs: (C,) or (N, C); a 0-d input is one class. (n_pos, C)."""
    if input.ndim > 2:
        raise ValueError(f"{loss_name}: input must be a vector (C,) or a matrix (N, C), got shape {input.shape}")
    if input.ndim == 2:
        return input.shape[0], input.shape[1]
    return 1, (input.shape[0] if input.ndim else 1)


class MultiMarginLoss(ClassificationLoss):
    """sum_{j != t} weight[t] max(0, margin - x[t] + x[j])^p / C per row (p in {1, 2})."""
    name = "multi_margin_loss"

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        p = _int("p", p)
        if p not in (1, 2):
            raise ValueError(f"only p == 1 and p == 2 are supported, got p={p}")
        self.p = p
        self.margin = _real("margin", margin)
        self.weight = _class_weight(weight)

    def _layout(self, input, target, dtype):
        target = _target(target)
        idx = _indices(target)
        n_pos, classes = _vector_layout_shapes(input, self.name)
        if target.ndim > 1 or target.size != n_pos or (input.ndim == 2 and target.ndim != 1):
            raise ValueError(
                f"{self.name}: input of shape {input.shape} takes {n_pos} class-index target(s) "
                f"({'(N,)' if input.ndim == 2 else '() or (1,)'}), got target of shape {target.shape}"
            )
        return _Layout("multi_margin", "mean", n_pos, classes, 1, _operand(input, dtype), None, idx,
                       target.shape)

    def _options(self, lay):
        return (0.0, self.margin, self.p, -100, 0)

    def _options_repr(self) -> str:
        return (f"p={self.p}, margin={self.margin!r}, weight={'None' if self.weight is None else 'array'}, "
                f"reduction={self.reduction!r}")

    check_options = ({"p": 2, "margin": 0.7, "weight": np.array([0.5, 2.0, 1.0, 1.5, 0.3])},)

    @classmethod
    def sample_inputs(cls, rng, dtype):
        return rng.standard_normal((6, 5)).astype(dtype), rng.integers(0, 5, size=6)


class MultiLabelMarginLoss(ClassificationLoss):
    """sum over listed classes j and unlisted c of max(0, 1 - (x[j] - x[c])) / C per row; target rows
    list class indices and end at the first -1."""
    name = "multilabel_margin_loss"

    def _layout(self, input, target, dtype):
        target = _target(target)
        idx = _indices(target)
        n_pos, classes = _vector_layout_shapes(input, self.name)
        if target.shape != input.shape:
            raise ValueError(
                f"{self.name}: target must have the input's shape {input.shape}, got {target.shape}"
            )
        return _Layout("multilabel_margin", "mean", n_pos, classes, 1, _operand(input, dtype), None, idx,
                       input.shape[:1] if input.ndim == 2 else ())

    def _valid_classes(self, classes: int) -> str:
        return f"target entries must lie in [0, {classes}) or be -1 (end of the row's list)"

    @classmethod
    def sample_inputs(cls, rng, dtype):
        x = rng.standard_normal((4, 5))
        target = np.full((4, 5), -1)
        for i in range(4):
            k = int(rng.integers(1, 4))
            target[i, :k] = rng.choice(5, size=k, replace=False)
        return x.astype(dtype), target


class MultiLabelSoftMarginLoss(ClassificationLoss):
    """sum_c weight_c (-(y log sigmoid(x) + (1 - y) log sigmoid(-x))) / C over the last axis."""
    name = "multilabel_soft_margin_loss"
    differentiable = ("input", "target")

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = None if weight is None else _arrays.float_array("weight", weight).copy()

    def _layout(self, input, target, dtype):
        t = _fast_float("target", target)
        if input.ndim == 0:
            raise ValueError(f"{self.name}: input must have at least 1 dimension (the classes), got a 0-d array")
        if t.shape != input.shape:
            raise ValueError(f"{self.name}: target must have the input's shape {input.shape}, got {t.shape}")
        classes = input.shape[-1]
        loss_shape = input.shape[:-1]
        weight, step = None, 0
        if self.weight is not None:
            w = self.weight.astype(dtype)  # rounded as torch stores it
            _arrays.operand("weight", w, input.shape, dtype)  # raises unless it broadcasts
            if w.ndim <= 1:
                weight = np.ascontiguousarray(np.broadcast_to(w, (classes,)), dtype=np.float64)
            else:
                weight = np.ascontiguousarray(np.broadcast_to(w, input.shape), dtype=np.float64)
                step = classes
        return _Layout("multilabel_soft_margin", "mean", math.prod(loss_shape), classes, 1,
                       _operand(input, dtype), _operand(t, dtype), None, loss_shape, step, weight)

    def _options_repr(self) -> str:
        return f"weight={'None' if self.weight is None else 'array'}, reduction={self.reduction!r}"

    def _class_weight_for(self, dtype, classes):
        return None     # its weight broadcasts to the input (see _layout), not a (C,) class weight

    check_options = ({"weight": np.array([0.5, 2.0, 1.0, 1.5])},)

    @classmethod
    def sample_inputs(cls, rng, dtype):
        return (rng.standard_normal((3, 4)).astype(dtype), rng.uniform(0.0, 1.0, (3, 4)).astype(dtype))


LOSSES = (CrossEntropyLoss, NLLLoss, MultiMarginLoss, MultiLabelMarginLoss, MultiLabelSoftMarginLoss)

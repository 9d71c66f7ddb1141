"""The classification family: thin classes (options, shape rules, sample inputs) over one driver.

``ClassificationLoss._compute`` is the family's only path into the compiled kernel
(``pyx/classification.pyx``). Each class's ``_layout`` turns (input, target) into the kernel's view
of the problem: positions x classes with a class stride, the target as int64 class indices or as a
float array of the input's layout, and the loss's shape. ``_compute`` then allocates exactly the
outputs the call needs, runs one fused pass (targets validated first, in the kernel, before any row
is touched) and shapes the results.

The call path is kept short on purpose: at (64, 10) a call is a few microseconds. The common call of
the class-index losses ((N, C) scores and (N,) int64 targets, C-contiguous native arrays, a float
grad_output, 'mean' or 'sum') takes the compiled fast path, RowKernel.fast, which checks that and runs
the kernel with no Python in between; other calls skip every conversion they do not need.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import _arrays, _classification
from .._threads import PARALLEL_MIN_ELEMENTS, _kernel_threads
from ..base import FastPathLoss, losses_defined_in
from ..declaration import array, integer, real, reduction
from ..domains import ClassIndex, Interval, LogSimplex, Simplex


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INT64 = np.dtype(np.int64)
_MEAN_OVER = {"none": _classification.MEAN_NONE, "sum": _classification.MEAN_NONE,
              "mean_weight": _classification.MEAN_OVER_WEIGHTS, "mean": _classification.MEAN_OVER_POSITIONS}


class _Layout(NamedTuple):
    kernel: type                    # the lossengine._classification kernel class for these targets
    denominator: str                # what 'mean' divides by: "mean" (positions) or "mean_weight"
    n_pos: int
    classes: int
    stride: int                     # class stride S
    x: np.ndarray                   # C-contiguous, compute dtype
    t: np.ndarray | None            # float target, compute dtype, input's layout
    idx: np.ndarray | None          # int64 class indices
    loss_shape: tuple
    dtype: np.dtype
    target: Any                     # the target as given (for error messages and its gradient's shape)
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
    _arrays.require_host_memory("target", value)
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


def _class_weight(name: str, weight: Any) -> np.ndarray:
    """A (C,) class-weight option: a private copy (later changes to the caller's array don't leak in)."""
    w = _arrays.float_array(name, weight)
    if w.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-class weights, got shape {w.shape}")
    return np.array(w, dtype=np.float64 if w.dtype.itemsize >= 8 else np.float32, copy=True)


def class_weight() -> Any:
    return array("weight", parse=_class_weight)


class ClassificationLoss(FastPathLoss):
    """A loss over class scores along one axis, with a per-position target."""
    # How the loss splits over chunks (lossengine.integrations.dask): along the leading (batch) axis,
    # each position's loss depending on its own row of classes and its target.
    decomposes: ClassVar[str] = "rows"
    sample_layout: ClassVar[str] = "batch-rows"   # its batch rows are independent (lossengine.Loss)

    differentiable: ClassVar[tuple[str, ...]] = ("input",)
    options = (reduction(),)
    reference: ClassVar[str] = "torch"
    sample_shape = (6, 4)
    # Classes owning a (C,) class-weight option store it in self.weight.
    weight: np.ndarray | None = None
    # The kernel (lossengine._classification) of torch's class-index layout, (C,), (N, C) or
    # (N, C, d1..dK) scores with (), (N,) or (N, d1..dK) int class indices, and what its 'mean' divides
    # by (a key of _MEAN_OVER); None: the loss takes no such targets. The compiled fast path
    # (RowKernel.fast) runs it on the common call.
    index_kernel: ClassVar[type | None] = None
    index_denominator: ClassVar[str] = "mean"

    def _options_parsed(self) -> None:
        self._weight_cache: dict = {}
        self._kernels: dict = {}

    # -- per-class hook ------------------------------------------------------------------------
    def _layout(self, input: np.ndarray, target: Any, dtype: np.dtype) -> _Layout:
        raise NotImplementedError

    # -- the family's hooks --------------------------------------------------------------------
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

    # -- the fast path: the common call, one compiled check-and-run ----------------------------------
    # (N, C) scores and (N,) class indices as C-contiguous native ndarrays (float32/float64, int64), a
    # float grad_output, wrt and value_out left out, reduction 'mean' or 'sum': RowKernel.fast checks
    # that in compiled code and runs index_kernel; anything else (or an invalid target, to be
    # reported) takes the general path, FusedLoss._compute, unchanged.
    def _fast(self, arrays: tuple, want_grad: bool, grad_output: Any, out: Any):
        kernel, reduction = self.index_kernel, self.reduction
        if kernel is None or (reduction != "mean" and reduction != "sum") or type(grad_output) is not float \
                or len(arrays) != 2:
            return None
        mean_over = _MEAN_OVER[self.index_denominator if reduction == "mean" else reduction]
        weights = None if self.weight is None else self._weight_cache
        return self._kernel(kernel).fast(arrays[0], arrays[1], weights, want_grad, mean_over, grad_output, out,
                                         _kernel_threads(), PARALLEL_MIN_ELEMENTS)

    def _kernel(self, kernel_class: type):
        """The kernel for these options, built once per instance and kernel class; the options it
        takes are the loss's attributes of the same names (its ``fields``)."""
        kernel = self._kernels.get(kernel_class)
        if kernel is None:
            kernel = self._kernels[kernel_class] = kernel_class(*[getattr(self, f) for f in kernel_class.fields])
        return kernel

    def _plan(self, arrays) -> _Layout:
        input = _fast_float("input", arrays[0])
        dtype = input.dtype if input.dtype in _FLOAT_DTYPES else _arrays.compute_dtype(input)
        lay = self._layout(input, arrays[1], dtype)
        if lay.weight is None and self.weight is not None:
            lay = lay._replace(weight=self._class_weight_for(dtype, lay.classes))
        return lay

    def _grad_buffer(self, lay: _Layout, name: str) -> np.ndarray:
        if name == "input":
            return np.empty(lay.x.shape, lay.dtype)
        if lay.t is None:
            raise ValueError(
                f"wrt: 'target' is not differentiable for {type(self).__name__} when it holds class "
                "indices (only class-probability targets have a gradient)"
            )
        return np.empty(lay.t.shape, lay.dtype)

    def _run(self, lay: _Layout, grads: dict, loss_out, upstream, scale: float) -> float:
        mean_over = _MEAN_OVER[lay.denominator if self.reduction == "mean" else self.reduction]
        value, bad = self._kernel(lay.kernel).run(lay, grads.get("input"), grads.get("target"), loss_out,
                                                  upstream, scale, mean_over, _kernel_threads(),
                                                  PARALLEL_MIN_ELEMENTS)
        if bad >= 0:
            self._raise_bad_target(np.asarray(lay.target), lay, bad)
        return value

    def _hessian_shape(self, lay: _Layout) -> tuple:
        return lay.x.shape

    def _run_hessian(self, lay: _Layout, grad: np.ndarray, hess: np.ndarray) -> None:
        # The unreduced loss ('sum' with grad_output 1): per-element gradient and Hessian diagonal.
        _, bad = self._kernel(lay.kernel).run(lay, grad, None, None, _arrays.one(lay.dtype), 1.0,
                                              _classification.MEAN_NONE, _kernel_threads(),
                                              PARALLEL_MIN_ELEMENTS, hess)
        if bad >= 0:
            self._raise_bad_target(np.asarray(lay.target), lay, bad)

    def _grad_result(self, lay: _Layout, name: str, grad: np.ndarray) -> np.ndarray:
        if name == "input":     # the input's shape, and its dtype is the compute dtype
            return grad
        target = np.asarray(lay.target)
        return grad.reshape(target.shape).astype(_arrays.result_dtype(target, lay.dtype), copy=False)

    def _valid_classes(self, classes: int) -> str:
        return f"class indices must lie in [0, {classes})"

    def _raise_bad_target(self, target: np.ndarray, lay: _Layout, flat: int) -> None:
        shape = target.shape
        position = tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
        value = int(lay.idx.reshape(-1)[flat])
        raise IndexError(
            f"Target {value} is out of bounds at position {position}: {self._valid_classes(lay.classes)}"
        )


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


class IndexTargetLoss(ClassificationLoss):
    """A classification loss whose target holds class indices, as NLL's and cross-entropy's: options
    ``weight`` (per-class) and ``ignore_index``, 'mean' weighted by w[target] over the positions not
    ignored. The public parent of lossengine.CompiledRowLoss."""
    # What the integrations read (boosting's labels, fit_intercept_only's class priors): the target
    # may hold integer class indices (with ``ignore_index``) into the input's class axis.
    class_index_targets: ClassVar[bool] = True
    options = (class_weight(), integer("ignore_index", -100, examples=(1,)), reduction())
    domains = {"target": ClassIndex("input", 1)}
    index_denominator = "mean_weight"

    def _layout(self, input, target, dtype):
        return self._index_layout(input, target, dtype)

    def _index_layout(self, input: np.ndarray, target: Any, dtype: np.dtype, kernel: type | None = None) -> _Layout:
        kernel = kernel or self.index_kernel
        target = _target(target)
        idx = _indices(target)
        n_pos, classes, stride, loss_shape = _index_layout_shapes(input, target, self.name)
        return _Layout(kernel, self.index_denominator, n_pos, classes, stride, _operand(input, dtype), None,
                       idx, loss_shape, dtype, target)

    def mean_denominator(self, input: Any, target: Any) -> float | None:
        """torch's 'mean' for class indices: the sum of weight[t] over non-ignored positions."""
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            return None  # class probabilities: the plain mean over positions
        kept = t[t != self.ignore_index]
        return float(kept.size if self.weight is None else np.asarray(self.weight, np.float64)[kept].sum())

    def _valid_classes(self, classes: int) -> str:
        return f"class indices must lie in [0, {classes}) or equal ignore_index={self.ignore_index}"


class NLLLoss(IndexTargetLoss):
    """-weight[t] input[t] per position; 'mean' divides by the sum of weight[t] (ignored excluded)."""
    name = "nll_loss"
    domains = {"input": LogSimplex(1), "target": ClassIndex("input", 1)}
    index_kernel = _classification.NLL

    # Weighted and ignoring configurations: 'mean' is torch's weighted mean (see mean_denominator).
    check_options = ({"weight": np.array([0.5, 2.0, 1.0, 1.5])}, {"ignore_index": 1},
                     {"weight": np.array([0.5, 2.0, 1.0, 1.5]), "ignore_index": 2})


class NLLLoss2d(NLLLoss):
    """Deprecated alias of NLLLoss (as in torch, which warns the same way)."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        warnings.warn("NLLLoss2d is deprecated; use NLLLoss, which accepts the same (N, C, H, W) inputs",
                      FutureWarning, stacklevel=2)
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)


class CrossEntropyLoss(IndexTargetLoss):
    """-log softmax(input)[target] with optional class weights, ignore_index and label smoothing;
    a float target of the input's shape holds class probabilities instead (torch's rule).
    Hessian (``gradient_hessian``): the diagonal of each position's Hessian wrt its scores,
    k p_c (1 - p_c) with p = softmax(input) and k = (1 - eps) w_t + eps / C sum(w) (class probability
    targets: k = sum_c w_c t'_c); 0 at ignored positions. The off-diagonal -k p_c p_d is not returned
    (the diagonal is what boosting uses, as scikit-learn's multinomial gradient_hessian)."""
    name = "cross_entropy"
    has_hessian = True
    intercept_form = "log_priors"
    index_kernel = _classification.CrossEntropyIndex
    differentiable = ("input", "target")
    # ignore_index has no example here: the validator's samples include probability targets, for
    # which torch (and lossengine) refuse an ignore_index; NLLLoss exercises it.
    options = (class_weight(), integer("ignore_index", -100), reduction(),
               real("label_smoothing", 0.0, ge=0.0, le=1.0, examples=(0.2,)))
    # Class probabilities: the target is differentiable too, so the validator checks both.
    domains = {"target": Simplex(1)}

    def _layout(self, input, target, dtype):
        t = _target(target)
        if input.ndim == 0:     # before the target's kind: a 0-d input is refused whatever the target
            raise ValueError(f"{self.name}: input must have at least 1 dimension (the classes), got a 0-d array")
        if t.dtype.kind == "f":
            if t.shape != input.shape:
                raise TypeError(
                    f"target must hold integer class indices, or be class probabilities of the input's "
                    f"shape {input.shape}; got a float target of shape {t.shape}"
                )
            if self.ignore_index >= 0:
                raise ValueError("ignore_index is not supported for class-probability (float) targets")
            classes = input.shape[0] if input.ndim == 1 else input.shape[1]
            stride = math.prod(input.shape[2:])
            loss_shape = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
            return _Layout(_classification.CrossEntropyProb, "mean", math.prod(loss_shape), classes, stride,
                           _operand(input, dtype), _operand(t, dtype), None, loss_shape, dtype, target)
        if t.dtype.kind in "iu" and t.shape == input.shape and input.ndim > 0:
            raise TypeError(
                f"target has the input's shape {input.shape}, so it must hold class probabilities "
                f"(a float array), got dtype {t.dtype}"
            )
        return self._index_layout(input, t, dtype)

    check_options = ({"label_smoothing": 0.2}, {"weight": np.array([0.5, 2.0, 1.0, 1.5]), "label_smoothing": 0.1})


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
    options = (integer("p", 1, choices=(1, 2), examples=(2,)), real("margin", 1.0, examples=(0.7,)),
               class_weight(), reduction())
    domains = {"target": ClassIndex("input", 1)}
    sample_shape = (6, 5)
    index_kernel = _classification.MultiMargin

    def _layout(self, input, target, dtype):
        target = _target(target)
        idx = _indices(target)
        n_pos, classes = _vector_layout_shapes(input, self.name)
        if target.ndim > 1 or target.size != n_pos or (input.ndim == 2 and target.ndim != 1):
            raise ValueError(
                f"{self.name}: input of shape {input.shape} takes {n_pos} class-index target(s) "
                f"({'(N,)' if input.ndim == 2 else '() or (1,)'}), got target of shape {target.shape}"
            )
        return _Layout(self.index_kernel, self.index_denominator, n_pos, classes, 1, _operand(input, dtype), None, idx,
                       target.shape, dtype, target)

    check_options = ({"p": 2, "margin": 0.7, "weight": np.array([0.5, 2.0, 1.0, 1.5, 0.3])},)


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
        return _Layout(_classification.MultiLabelMargin, "mean", n_pos, classes, 1, _operand(input, dtype), None,
                       idx, input.shape[:1] if input.ndim == 2 else (), dtype, target)

    def _valid_classes(self, classes: int) -> str:
        return f"target entries must lie in [0, {classes}) or be -1 (end of the row's list)"

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # Rows list 1 to 3 distinct classes, then -1: a shape of data no per-argument domain states.
        x = rng.standard_normal((4, 5))
        target = np.full((4, 5), -1)
        for i in range(4):
            k = int(rng.integers(1, 4))
            target[i, :k] = rng.choice(5, size=k, replace=False)
        return x.astype(dtype), target


class MultiLabelSoftMarginLoss(ClassificationLoss):
    """sum_c weight_c (-(y log sigmoid(x) + (1 - y) log sigmoid(-x))) / C over the last axis.
    Hessian: diagonal (the classes are independent), weight_c sigmoid(x) (1 - sigmoid(x)) / C."""
    name = "multilabel_soft_margin_loss"
    has_hessian = True
    intercept_form = "logit_mean"
    differentiable = ("input", "target")
    options = (array("weight", parse=lambda n, v: _arrays.float_array(n, v).copy()), reduction())
    domains = {"target": Interval(0.0, 1.0)}
    sample_shape = (3, 4)

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
        return _Layout(_classification.MultiLabelSoftMargin, "mean", math.prod(loss_shape), classes, 1,
                       _operand(input, dtype), _operand(t, dtype), None, loss_shape, dtype, target, step, weight)

    def _class_weight_for(self, dtype, classes):
        return None     # its weight broadcasts to the input (see _layout), not a (C,) class weight

    check_options = ({"weight": np.array([0.5, 2.0, 1.0, 1.5])},)


class SoftmaxFocalLoss(IndexTargetLoss):
    """Multi-class focal loss on logits (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017):
    per position -w_t (1 - p_t)^gamma log p_t, p = softmax(input) over the class axis (axis 1, as
    CrossEntropyLoss; (C,), (N, C) and (N, C, d1, ...) inputs with class-index targets), 0 at
    ignore_index; 'mean' divides by the sum of w[target] over non-ignored positions, as torch's
    cross-entropy (the number of positions without weights). gamma = 0 is CrossEntropyLoss. The
    formula is the one PyTorch users write by hand, -(1 - exp(logp))^gamma * logp with
    logp = log_softmax(input).gather(1, target), here computed so that 1 - p_t does not cancel.
    Hessian: the diagonal of each position's Hessian wrt its scores (exact)."""
    name = "softmax_focal_loss"
    has_hessian = True
    options = (real("gamma", 2.0, ge=0.0, examples=(0.0, 0.5, 1.0)), class_weight(),
               integer("ignore_index", -100, examples=(1,)), reduction())
    check_options = ({"weight": np.array([0.5, 2.0, 1.0, 1.5]), "ignore_index": 2},)
    index_kernel = _classification.SoftmaxFocal


class Poly1CrossEntropyLoss(IndexTargetLoss):
    """Poly-1 cross-entropy (Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022): per position CE + epsilon w_t (1 - p_t), CE being
    CrossEntropyLoss's per-position loss (class weights, ignore_index, label_smoothing as torch's),
    p = softmax(input); 'mean' as CrossEntropyLoss (the sum over positions divided by the sum of
    w[target] over non-ignored ones). The poly term carries the class weight w_t too (so the weighted
    'mean' is a weighted mean of whole per-position losses); the paper's reference code
    (CE(weight)(reduction='none') + epsilon (1 - p_t)).mean() leaves it unweighted and takes a plain
    mean: the two agree without class weights. Class-index targets only.
    Hessian: the diagonal of each position's Hessian wrt its scores (exact)."""
    name = "poly1_cross_entropy"
    has_hessian = True
    options = ((real("epsilon", 1.0, examples=(-0.5, 2.0)),) + IndexTargetLoss.options
               + (real("label_smoothing", 0.0, ge=0.0, le=1.0, examples=(0.2,)),))
    check_options = ({"weight": np.array([0.5, 2.0, 1.0, 1.5]), "label_smoothing": 0.1, "ignore_index": 1},)
    index_kernel = _classification.Poly1CrossEntropy


class TverskyLoss(ClassificationLoss):
    """Tversky loss on probabilities (Salehi et al., "Tversky loss function for image segmentation
    using 3D fully convolutional deep networks", 2017), per sample over the trailing axes: with
    TP = sum p y, FP = sum p (1 - y), FN = sum (1 - p) y over a sample,
    1 - (TP + smooth) / (TP + alpha FP + beta FN + smooth). ``input`` (N, ...) probabilities,
    ``target`` of the same shape in [0, 1]; the loss has shape (N,), 'mean' is over samples.
    Differentiable in the input (targets are masks). Hessian: the diagonal, exact."""
    name = "tversky_loss"
    has_hessian = True
    options = (real("alpha", 0.5, ge=0.0, examples=(0.3, 0.7)), real("beta", 0.5, ge=0.0, examples=(0.7, 0.3)),
               real("smooth", 1.0, ge=0.0, examples=(1e-3,)), reduction())
    domains = {"input": Interval(0.0, 1.0), "target": Interval(0.0, 1.0)}
    sample_shape = (3, 2, 4)
    tp_weight = 1.0

    def _layout(self, input, target, dtype):
        t = _fast_float("target", target)
        if input.ndim < 2:
            raise ValueError(f"{self.name}: input must be (N, ...) with at least one axis after the samples "
                             f"(each sample's values are summed over them), got shape {input.shape}")
        if t.shape != input.shape:
            raise ValueError(f"{self.name}: target must have the input's shape {input.shape}, got {t.shape}")
        n = input.shape[0]
        return _Layout(_classification.Tversky, "mean", n, math.prod(input.shape[1:]), 1,
                       _operand(input, dtype), _operand(t, dtype), None, (n,), dtype, target)


class DiceLoss(TverskyLoss):
    """Dice loss on probabilities (Milletari et al., "V-Net", 3DV 2016, with additive smoothing as
    segmentation code uses it), per sample over the trailing axes:
    1 - (2 sum p y + smooth) / (sum p + sum y + smooth). Shapes and reduction as TverskyLoss
    (whose kernel it is, with 2 TP + FP + FN = sum p + sum y). Hessian: the diagonal, exact."""
    name = "dice_loss"
    options = (real("smooth", 1.0, ge=0.0, examples=(1e-3,)), reduction())
    alpha = beta = 1.0
    tp_weight = 2.0


LOSSES = losses_defined_in(globals())      # this module's classes that declare a registry name
__all__ = ["ClassificationLoss", "IndexTargetLoss", "NLLLoss2d", "LOSSES"] + [cls.__name__ for cls in LOSSES]

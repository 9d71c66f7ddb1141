"""torch.nn.functional-style functions: same names and signatures (minus the deprecated
size_average/reduce), returning the forward value.

One function per built-in loss, generated from its class's declaration
(lossengine.declaration.make_functional): ``mse_loss(input, target, reduction='mean')`` is
``MSELoss(reduction=reduction)(input, target)``. Where torch's function takes more than its class
(l1_loss, mse_loss and huber_loss take ``weight`` since torch 2.13), or where an argument is optional
(linear_cross_entropy's ``bias``), the function is written out below.
"""
from __future__ import annotations

import numpy as np

from . import _arrays
from ._reductions import reduction_of
from .declaration import make_functional
from .losses import BUILTIN_LOSSES, HuberLoss, L1Loss, LinearCrossEntropyLoss, MSELoss

for _cls in BUILTIN_LOSSES:
    globals()[_cls.name] = make_functional(_cls)
__all__ = [cls.name for cls in BUILTIN_LOSSES]
del _cls


def _weighted(loss_class, input, target, reduction, weight, mean_divides_by_weight, **options):
    """torch 2.13's functional ``weight`` for l1/mse/huber: the elementwise loss times ``weight``
    (same shape as input), then 'sum', or 'mean' as sum(w l) / sum(w) (l1, mse) or mean(w l) (huber)."""
    _arrays.check_reduction(reduction)
    per_element = loss_class(reduction="none", **options)(input, target)
    w = _arrays.float_array("weight", weight)
    if w.shape != per_element.shape:
        raise ValueError(f"Weights and input must have the same size: got {w.shape} and {per_element.shape}")
    weighted = per_element * w.astype(per_element.dtype, copy=False)
    mode = reduction_of(reduction)
    if not mode.reduces:
        return weighted
    declared = w.sum(dtype=np.float64) if mean_divides_by_weight else None
    # NumPy's division, as torch's: weights summing to 0 give inf or NaN, not a guess.
    denominator = mode.denominator(weighted.size, declared=declared)
    return (weighted.sum(dtype=np.float64) / denominator).astype(per_element.dtype)


def l1_loss(input, target, reduction="mean", weight=None):
    """torch.nn.functional.l1_loss: mean/sum/none of |input - target|, optionally times ``weight``
    (input's shape; 'mean' is then sum(w l) / sum(w), as torch 2.13)."""
    if weight is not None:
        return _weighted(L1Loss, input, target, reduction, weight, True)
    return L1Loss(reduction=reduction)(input, target)


def mse_loss(input, target, reduction="mean", weight=None):
    """torch.nn.functional.mse_loss: mean/sum/none of (input - target)^2, optionally times ``weight``
    (input's shape; 'mean' is then sum(w l) / sum(w), as torch 2.13)."""
    if weight is not None:
        return _weighted(MSELoss, input, target, reduction, weight, True)
    return MSELoss(reduction=reduction)(input, target)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """torch.nn.functional.huber_loss, optionally times ``weight`` (input's shape; 'mean' is then
    mean(w l), as torch 2.13)."""
    if weight is not None:
        return _weighted(HuberLoss, input, target, reduction, weight, False, delta=delta)
    return HuberLoss(reduction=reduction, delta=delta)(input, target)


def linear_cross_entropy(input, weight, target, bias=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0, *, chunk_size=None):
    """``cross_entropy(linear(input, weight, bias), target, ...)`` without materializing the (N, V)
    logits: ``LinearCrossEntropyLoss(...)(input, weight, target, bias)``, the forward value."""
    loss = LinearCrossEntropyLoss(ignore_index=ignore_index, reduction=reduction,
                                  label_smoothing=label_smoothing, chunk_size=chunk_size)
    return loss(input, weight, target, bias)


# -- activations: to read predictions made for the losses above ------------------------------------
# NumPy, numerically stable, dtype-preserving (float32 stays float32; integers become float64).
def _activation_input(x) -> np.ndarray:
    arr = _arrays.float_array("input", x)
    return arr.astype(_arrays.compute_dtype(arr), copy=False)


def _check_dim(dim: int, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an integer, got {type(dim).__name__}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"dim {dim} is out of range for an input with {ndim} dimension(s)")
    return int(dim)


def sigmoid(input):
    """1 / (1 + exp(-input)), without overflow for any input (torch.sigmoid)."""
    x = _activation_input(input)
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


def log_sigmoid(input):
    """log(sigmoid(input)) = min(input, 0) - log1p(exp(-|input|)), exact for any input
    (torch.nn.functional.logsigmoid)."""
    x = _activation_input(input)
    return (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


def log_softmax(input, dim: int = -1):
    """input - logsumexp(input) along ``dim``, max-shifted (torch.nn.functional.log_softmax; torch
    requires ``dim``, here it defaults to the last axis as optax's)."""
    x = _activation_input(input)
    if x.ndim == 0:
        return np.zeros_like(x)
    dim = _check_dim(dim, x.ndim)
    m = np.max(x, axis=dim, keepdims=True)
    shifted = x - np.where(np.isfinite(m), m, 0)
    return (shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))).astype(x.dtype, copy=False)


def softmax(input, dim: int = -1):
    """exp(input) / sum(exp(input)) along ``dim``, max-shifted (torch.nn.functional.softmax)."""
    x = _activation_input(input)
    if x.ndim == 0:
        return np.ones_like(x)
    dim = _check_dim(dim, x.ndim)
    m = np.max(x, axis=dim, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    return (e / np.sum(e, axis=dim, keepdims=True)).astype(x.dtype, copy=False)


__all__ += ["sigmoid", "log_sigmoid", "softmax", "log_softmax"]


def __dir__() -> list[str]:
    # The module's exports only: its helpers and imports (np, the loss classes) stay reachable but
    # are not the functional API (the public stub, functional.pyi, lists the same names).
    return sorted(__all__)

"""torch.nn.functional-style functions: same names and signatures (minus the deprecated
size_average/reduce), returning the forward value.

One function per built-in loss, generated from its class's declaration
(lossengine.declaration.make_functional): ``mse_loss(input, target, reduction='mean')`` is
``MSELoss(reduction=reduction)(input, target)``. Where torch's function takes more than its class
(l1_loss, mse_loss and huber_loss take ``weight`` since torch 2.13) the function is written out below.
"""
from __future__ import annotations

import numpy as np

from . import _arrays
from .declaration import make_functional
from .losses import BUILTIN_LOSSES, HuberLoss, L1Loss, MSELoss

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
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum(dtype=np.float64).astype(per_element.dtype)
    denominator = w.sum(dtype=np.float64) if mean_divides_by_weight else weighted.size
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

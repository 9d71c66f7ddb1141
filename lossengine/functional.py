"""torch.nn.functional-style functions: same names and signatures (minus the deprecated
size_average/reduce), returning the forward value. Each builds the loss class and calls it."""
from __future__ import annotations

import numpy as np

from . import _arrays
from .losses.elementwise import (BCELoss, BCEWithLogitsLoss, GaussianNLLLoss, HingeEmbeddingLoss,
                                 HuberLoss, KLDivLoss, L1Loss, MSELoss, PoissonNLLLoss, SmoothL1Loss,
                                 SoftMarginLoss)


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
    if weight is not None:
        return _weighted(L1Loss, input, target, reduction, weight, True)
    return L1Loss(reduction=reduction)(input, target)


def mse_loss(input, target, reduction="mean", weight=None):
    if weight is not None:
        return _weighted(MSELoss, input, target, reduction, weight, True)
    return MSELoss(reduction=reduction)(input, target)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    return SmoothL1Loss(reduction=reduction, beta=beta)(input, target)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    if weight is not None:
        return _weighted(HuberLoss, input, target, reduction, weight, False, delta=delta)
    return HuberLoss(reduction=reduction, delta=delta)(input, target)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    return BCELoss(weight=weight, reduction=reduction)(input, target)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    return BCEWithLogitsLoss(weight=weight, reduction=reduction, pos_weight=pos_weight)(input, target)


def soft_margin_loss(input, target, reduction="mean"):
    return SoftMarginLoss(reduction=reduction)(input, target)


def kl_div(input, target, reduction="mean", log_target=False):
    return KLDivLoss(reduction=reduction, log_target=log_target)(input, target)


def poisson_nll_loss(input, target, log_input=True, full=False, eps=1e-8, reduction="mean"):
    return PoissonNLLLoss(log_input=log_input, full=full, eps=eps, reduction=reduction)(input, target)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    return GaussianNLLLoss(full=full, eps=eps, reduction=reduction)(input, target, var)


def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):
    return HingeEmbeddingLoss(margin=margin, reduction=reduction)(input, target)


# -- classification family ------------------------------------------------------------------------
from .losses.classification import (CrossEntropyLoss, MultiLabelMarginLoss, MultiLabelSoftMarginLoss,
                                    MultiMarginLoss, NLLLoss)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return CrossEntropyLoss(weight=weight, ignore_index=ignore_index, reduction=reduction,
                            label_smoothing=label_smoothing)(input, target)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return NLLLoss(weight=weight, ignore_index=ignore_index, reduction=reduction)(input, target)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    return MultiMarginLoss(p=p, margin=margin, weight=weight, reduction=reduction)(input, target)


def multilabel_margin_loss(input, target, reduction="mean"):
    return MultiLabelMarginLoss(reduction=reduction)(input, target)


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):
    return MultiLabelSoftMarginLoss(weight=weight, reduction=reduction)(input, target)


# -- connectionist temporal classification --------------------------------------------------------
from .losses.ctc import CTCLoss


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    return CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)(
        log_probs, targets, input_lengths, target_lengths)

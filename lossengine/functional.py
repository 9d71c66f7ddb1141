"""torch.nn.functional-style functions: same names and signatures (minus the deprecated
size_average/reduce), returning the forward value. Each builds the loss class and calls it."""
from __future__ import annotations

from .losses.elementwise import (BCELoss, BCEWithLogitsLoss, GaussianNLLLoss, HingeEmbeddingLoss,
                                 HuberLoss, KLDivLoss, L1Loss, MSELoss, PoissonNLLLoss, SmoothL1Loss,
                                 SoftMarginLoss)


def l1_loss(input, target, reduction="mean"):
    return L1Loss(reduction=reduction)(input, target)


def mse_loss(input, target, reduction="mean"):
    return MSELoss(reduction=reduction)(input, target)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    return SmoothL1Loss(reduction=reduction, beta=beta)(input, target)


def huber_loss(input, target, reduction="mean", delta=1.0):
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

"""What the XGBoost and LightGBM adapters share: a loss (instance, class or registry name) turned into
per-sample gradients and Hessians, and into a per-sample-weighted metric, over the libraries' raw
predictions and labels.

Layouts: a 1-D prediction (binary or regression, one value per sample) goes to the loss with the
labels as its target, elementwise. A 2-D (N, K) prediction (multi-class, or multi-output
regression) goes to the loss as (N, K) scores: with (N,) labels the labels are class indices
(cross-entropy, softmax focal, poly-1); with (N, K) labels, an elementwise target. The gradient
and Hessian are those of the loss summed over samples ("gradient_hessian": the unreduced loss,
whatever the loss's reduction), each sample's multiplied by its weight.

Hessians: boosting needs them positive. Where a loss's true second derivative is 0 (L1, pinball,
Huber's linear part, hinge: declared by the loss's ``hessian_surrogate``) the adapters substitute that
surrogate (1, scikit-learn's and LightGBM's choice) for non-positive entries; every Hessian is then
floored at ``min_hessian`` (non-convex losses such as focal or Cauchy have negative ones far out).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def resolve(loss: Any):
    """A loss instance from an instance, a loss class (default options) or a registry name."""
    from .. import registry
    from ..base import Loss

    if isinstance(loss, str):
        loss = registry.get(loss)
    if isinstance(loss, type) and issubclass(loss, Loss):
        loss = loss()
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a lossengine loss (instance, class or registry name), got {type(loss).__name__}")
    if not getattr(loss, "has_hessian", False):
        raise TypeError(f"{type(loss).__name__} has no second derivative (has_hessian is False): "
                        f"it cannot be a boosting objective")
    return loss


def _target(preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    n = preds.shape[0]
    if preds.ndim == 2 and labels.size == n:
        # (N, K) scores with one label per sample: class indices (stored as floats by both libraries).
        idx = labels.reshape(n).astype(np.int64)
        if not np.array_equal(idx, labels.reshape(n)):
            raise ValueError("multi-class labels must be whole class indices 0..K-1")
        return idx
    if labels.size != preds.size:
        raise ValueError(f"labels: {labels.size} values for predictions of shape {preds.shape}")
    return labels.reshape(preds.shape)


def _weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.size == 0:
        return None
    if w.size != n:
        raise ValueError(f"sample weights: {w.size} for {n} samples")
    return w


def gradient_hessian(loss, preds: np.ndarray, labels: Any, weights: Any, surrogate: float | None,
                     min_hessian: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (weighted) gradient and Hessian of ``loss`` at ``preds``, of preds' shape and dtype."""
    grad, hess = loss.gradient_hessian(preds, _target(preds, labels))
    if surrogate is not None:
        np.copyto(hess, surrogate, where=~(hess > 0))    # in place: gradient_hessian's own arrays
    np.maximum(hess, min_hessian, out=hess)
    w = _weights(weights, preds.shape[0])
    if w is not None:
        w = w.reshape((-1,) + (1,) * (preds.ndim - 1)).astype(grad.dtype, copy=False)
        grad *= w
        hess *= w
    return grad, hess


def metric_value(loss, preds: np.ndarray, labels: Any, weights: Any) -> float:
    """The loss under its reduction, samples weighted: 'mean' is sum(w l) / sum(w), 'sum' sum(w l)."""
    import copy

    per_sample = copy.copy(loss)
    per_sample.reduction = "none"
    values = np.asarray(per_sample(preds, _target(preds, labels)), np.float64)
    values = values.reshape(preds.shape[0], -1).sum(axis=1)     # a sample's outputs add up
    w = _weights(weights, preds.shape[0])
    w = np.ones(preds.shape[0]) if w is None else np.asarray(w, np.float64)
    total = float(np.dot(w, values))
    return total if loss.reduction == "sum" else total / float(w.sum())


def default_surrogate(loss) -> float | None:
    return getattr(loss, "hessian_surrogate", None)

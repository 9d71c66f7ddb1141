"""XGBoost custom objectives and metrics from lossengine losses.

    import xgboost as xgb
    from lossengine.integrations import xgboost as lx

    booster = xgb.train({"disable_default_eval_metric": 1, "base_score": 0.0}, dtrain, 50,
                        obj=lx.objective(le.SigmoidFocalLoss(alpha=0.25, gamma=2.0)),
                        custom_metric=lx.metric(le.SigmoidFocalLoss()), evals=[(dtrain, "train")])

``objective(loss)`` -> ``obj(preds, dtrain) -> (grad, hess)``: the loss's per-sample gradient and
Hessian (``gradient_hessian``) at XGBoost's raw predictions (float32: computed in float32, no cast),
the DMatrix's labels as the target and its sample weights multiplied in. Binary and regression:
preds (N,); multi-class (``num_class`` K): preds (N, K) with class-index labels, grad and hess
returned as (N, K), the layout XGBoost >= 2.0 takes. See lossengine/integrations/_boosting.py for the
Hessian surrogate and floor. ``metric(loss)`` -> ``custom_metric(preds, dtrain) -> (name, value)``,
the sample-weighted loss under the loss's reduction, at the raw predictions (what XGBoost passes
when a custom objective is in use).

The loss is any lossengine loss with a second derivative: an instance, a class (default options)
or a registry name, plugins included.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _boosting

__all__ = ["objective", "metric"]

_UNSET = object()


def objective(loss: Any, *, surrogate: Any = _UNSET, min_hessian: float = 1e-16) -> Callable:
    """``obj(preds, dtrain) -> (grad, hess)`` for ``xgboost.train(..., obj=...)``.

    surrogate: the Hessian used where the loss's is not positive (default: the loss's
    ``hessian_surrogate``, 1.0 for L1/pinball/Huber/hinge, None for the others); min_hessian: the
    floor of every Hessian."""
    loss = _boosting.resolve(loss)
    sur = _boosting.default_surrogate(loss) if surrogate is _UNSET else surrogate

    def obj(preds: np.ndarray, dtrain) -> tuple[np.ndarray, np.ndarray]:
        return _boosting.gradient_hessian(loss, preds, dtrain.get_label(), dtrain.get_weight(), sur, min_hessian)

    obj.loss = loss
    return obj


def metric(loss: Any) -> Callable:
    """``custom_metric(preds, dtrain) -> (name, value)`` for ``xgboost.train(..., custom_metric=...)``:
    the loss (its registry name) under its reduction, samples weighted by the DMatrix's weights."""
    loss = _boosting.resolve(loss)

    def custom_metric(preds: np.ndarray, dtrain) -> tuple[str, float]:
        return loss.name, _boosting.metric_value(loss, preds, dtrain.get_label(), dtrain.get_weight())

    custom_metric.loss = loss
    return custom_metric

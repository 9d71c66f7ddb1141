"""LightGBM custom objectives and metrics from lossengine losses.

    import lightgbm as lgb
    from lossengine.integrations import lightgbm as ll

    booster = lgb.train({"objective": ll.objective(le.HalfTweedieLoss(power=1.5)), "verbose": -1},
                        train_set, 100, feval=ll.metric(le.HalfTweedieLoss(power=1.5)))

``objective(loss)`` -> ``fobj(preds, dataset) -> (grad, hess)`` (LightGBM >= 4 takes it as
``params["objective"]``): the loss's per-sample gradient and Hessian at LightGBM's raw scores
(float64), the Dataset's labels as the target and its weights multiplied in. Binary and regression:
preds (N,); multi-class (``num_class`` K): preds (N, K) with class-index labels, grad and hess (N, K),
LightGBM 4's layout. See lossengine/integrations/_boosting.py for the Hessian surrogate and floor.
``metric(loss)`` -> ``feval(preds, dataset) -> (name, value, is_higher_better=False)``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _boosting

__all__ = ["objective", "metric"]

_UNSET = object()


def objective(loss: Any, *, surrogate: Any = _UNSET, min_hessian: float = 1e-16) -> Callable:
    """``fobj(preds, dataset) -> (grad, hess)`` for ``lightgbm.train({"objective": fobj, ...})``;
    ``surrogate`` and ``min_hessian`` as for lossengine.integrations.xgboost.objective."""
    loss = _boosting.resolve(loss)
    sur = _boosting.default_surrogate(loss) if surrogate is _UNSET else surrogate

    def fobj(preds: np.ndarray, dataset) -> tuple[np.ndarray, np.ndarray]:
        return _boosting.gradient_hessian(loss, preds, dataset.get_label(), dataset.get_weight(), sur, min_hessian)

    fobj.loss = loss
    return fobj


def metric(loss: Any) -> Callable:
    """``feval(preds, dataset) -> (name, value, False)`` for ``lightgbm.train(..., feval=...)``."""
    loss = _boosting.resolve(loss)

    def feval(preds: np.ndarray, dataset) -> tuple[str, float, bool]:
        return loss.name, _boosting.metric_value(loss, preds, dataset.get_label(), dataset.get_weight()), False

    feval.loss = loss
    return feval

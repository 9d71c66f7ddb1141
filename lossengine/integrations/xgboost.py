"""XGBoost custom objectives, metrics and start scores from lossengine losses.

    import xgboost as xgb
    from lossengine.integrations import xgboost as lx

    focal = le.SigmoidFocalLoss(alpha=0.25, gamma=2.0)
    params = {"base_score": lx.start_score(focal, y, w), "disable_default_eval_metric": 1}
    booster = xgb.train(params, dtrain, 50, obj=lx.objective(focal), custom_metric=lx.metric(focal),
                        evals=[(dtrain, "train")])

``objective(loss, hessian="exact")`` -> ``obj(preds, dtrain) -> (grad, hess)``: the loss's per-sample
gradient and Hessian (``gradient_hessian``) at XGBoost's raw predictions (float32: computed in
float32, no cast), the DMatrix's labels as the target and its sample weights multiplied in. Binary
and regression: preds (N,); multi-class (``num_class`` K): preds (N, K) with class-index labels,
grad and hess returned as (N, K), the layout XGBoost >= 2.0 takes. ``hessian="library"``: XGBoost's
built-in Hessian where it differs from the exact one (multi:softprob's max(2 p (1 - p), 1e-16),
count:poisson's exp(x + 0.7); count:poisson also sets the tree parameter ``max_delta_step`` to 0.7,
which a custom objective must pass in its params to grow the same trees); see
lossengine/integrations/_boosting.py for the surrogate, the weights and the floor. XGBoost's wheels
bundle their own OpenMP runtime: beside it the objective runs on one thread unless a count is set
(``lossengine.threads``), and no lossengine worker is left spin-waiting after a call
(docs/threads.md, "With XGBoost and LightGBM").
``metric(loss)`` -> ``custom_metric(preds, dtrain) -> (name, value)``, the sample-weighted loss under
the loss's reduction, at the raw predictions (what XGBoost passes when a custom objective is in use).

``start_score(loss, label, weight=None)``: the value for ``params["base_score"]``, the loss's
``fit_intercept_only`` at the labels (a float; a list of K floats for multi-class, which XGBoost
>= 3.1 takes as its per-class intercept). XGBoost applies base_score as a raw margin when a custom
objective is in use (no link), so this is the constant the built-in objective would start from
(its boost_from_average); without it a custom objective starts at 0.5.

The loss is any lossengine loss with a second derivative: an instance, a class (default options)
or a registry name, plugins included.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _boosting

__all__ = ["objective", "metric", "start_score"]

_UNSET = object()


def _library():
    """XGBoost's native library (a ctypes handle): the OpenMP runtime its trees are grown on."""
    from xgboost import core

    return getattr(core, "_LIB", None)


def _softprob_factor(k: int) -> float:
    return 2.0      # multi:softprob: h = max(2 p (1 - p) w, 1e-16)


def objective(loss: Any, *, hessian: str = "exact", surrogate: Any = _UNSET, min_hessian: float = 1e-16) -> Callable:
    """``obj(preds, dtrain) -> (grad, hess)`` for ``xgboost.train(..., obj=...)``.

    hessian: "exact" (the loss's own second derivative) or "library" (XGBoost's built-in objective's:
    with ``start_score``, a lossengine cross-entropy then trains multi:softprob's model);
    surrogate: the Hessian used where the loss's is not positive (default: the loss's
    ``hessian_surrogate``, 1.0 for L1/pinball/Huber/hinge, None for the others); min_hessian: the
    floor of every (weighted) Hessian."""
    return _boosting.objective_function(loss, hessian, surrogate, min_hessian, _library, _softprob_factor, _UNSET)


def metric(loss: Any) -> Callable:
    """``custom_metric(preds, dtrain) -> (name, value)`` for ``xgboost.train(..., custom_metric=...)``:
    the loss (its registry name) under its reduction, samples weighted by the DMatrix's weights."""
    loss = _boosting.resolve(loss)

    def custom_metric(preds: np.ndarray, dtrain) -> tuple[str, float]:
        return loss.name, _boosting.metric_value(loss, preds, dtrain.get_label(), dtrain.get_weight())

    custom_metric.loss = loss
    return custom_metric


def start_score(loss: Any, label: Any, weight: Any = None) -> float | list[float]:
    """``params["base_score"]`` for a custom objective: the constant raw prediction minimizing the
    weighted loss (``loss.fit_intercept_only``); a list of K floats for class-index labels."""
    score = _boosting.start_score(loss, label, weight)
    return score if isinstance(score, float) else [float(v) for v in np.ravel(score)]

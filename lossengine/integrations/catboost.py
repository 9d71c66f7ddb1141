"""CatBoost custom objectives, metrics and start scores from lossengine losses.

    import catboost
    from lossengine.integrations import catboost as lc

    focal = le.SigmoidFocalLoss(alpha=0.25, gamma=2.0)
    start = lc.start_score(focal, y, w)
    model = catboost.CatBoost({"loss_function": lc.objective(focal), "eval_metric": lc.metric(focal),
                               "iterations": 200})
    model.fit(catboost.Pool(X, y, weight=w, baseline=lc.baseline(start, len(y))))
    lc.add_start_score(model, start)           # predict() now includes it

``objective(loss)``: an object with CatBoost's Python objective interface. One prediction per
object (binary, regression): ``calc_ders_range(approxes, targets, weights)``, called with the
whole range as NumPy arrays, answered with one ``gradient_hessian`` pass (never a Python call
per object). CatBoost's derivatives are those of the log-likelihood, which it maximizes: the first
and second derivatives returned are minus the loss's gradient and Hessian (weighted, the Hessian
made positive as for XGBoost and LightGBM: see lossengine/integrations/_boosting.py). Multi-class
(approxes of K dimensions, class-index targets): CatBoost's interface, ``calc_ders_multi``, is one
call per object by design; it is supported for completeness and is slow (one ``gradient_hessian``
call per object, the Hessian's diagonal as CatBoost's matrix).

``metric(loss)``: CatBoost's Python metric interface (``evaluate`` over the whole range,
``is_max_optimal`` False, ``get_final_error``): the sample-weighted loss under the loss's
reduction, NaN when the weights sum to 0.

Start score: CatBoost does not boost from the average for custom objectives, so training starts at
0 unless the Pool carries a ``baseline``, which is not part of the model. ``start_score(loss,
label, weight=None)`` is the loss's ``fit_intercept_only`` (a float, or (K,) for multi-class);
``baseline(start, n)`` the Pool's baseline for n objects; ``add_start_score(model, start)`` adds it
to the model's bias (``set_scale_and_bias``), so ``predict`` includes it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _boosting

__all__ = ["objective", "metric", "start_score", "baseline", "add_start_score"]

_UNSET = object()


class Objective:
    """CatBoost's custom objective for a lossengine loss (see the module's docstring)."""

    def __init__(self, loss: Any, surrogate: Any = _UNSET, min_hessian: float = 1e-16) -> None:
        self.loss = _boosting.resolve(loss)
        self.surrogate = _boosting.default_surrogate(self.loss) if surrogate is _UNSET else surrogate
        self.min_hessian = min_hessian

    def _ders(self, preds: np.ndarray, targets: Any, weights: Any, out: tuple | None = None):
        grad, hess = _boosting.gradient_hessian(self.loss, preds, targets, weights, self.surrogate, self.min_hessian,
                                                out=out)
        np.negative(grad, out=grad)     # derivatives of the log-likelihood: minus the loss's
        np.negative(hess, out=hess)
        return grad, hess

    def calc_ders_range(self, approxes, targets, weights):
        # One (der1, der2) row per object, as the rows of one (n, 2) array (the transpose of a
        # (2, n) buffer the kernel writes both into): CatBoost reads row[0] and row[1]. A list of n
        # tuples took 1.3x the training time (100,000 rows, depth 6, 20 iterations, one thread), a
        # list of lists 1.6x; stacking two arrays was most of this method's time at 100,000 rows.
        preds = np.asarray(approxes, np.float64)
        ders = np.empty((2,) + preds.shape)
        self._ders(preds, targets, weights, out=(ders[0], ders[1]))
        return ders.T

    def calc_ders_multi(self, approx, target, weight):
        preds = np.asarray(approx, np.float64).reshape(1, -1)
        der1, der2 = self._ders(preds, np.asarray([target]), None if weight is None else np.asarray([weight]))
        return der1[0].tolist(), np.diag(der2[0]).tolist()


class Metric:
    """CatBoost's custom metric for a lossengine loss (see the module's docstring)."""

    def __init__(self, loss: Any) -> None:
        self.loss = _boosting.resolve(loss)

    def is_max_optimal(self) -> bool:
        return False

    def evaluate(self, approxes, target, weight):
        preds = np.asarray(approxes[0], np.float64) if len(approxes) == 1 else \
            np.ascontiguousarray(np.column_stack([np.asarray(a, np.float64) for a in approxes]))
        return _boosting.metric_sums(self.loss, preds, target, weight)

    def get_final_error(self, error: float, weight: float) -> float:
        return _boosting.final_value(self.loss, error, weight)


def objective(loss: Any, *, surrogate: Any = _UNSET, min_hessian: float = 1e-16) -> Objective:
    """``loss_function=`` for CatBoost: surrogate and min_hessian as for the XGBoost adapter."""
    return Objective(loss, surrogate, min_hessian)


def metric(loss: Any) -> Metric:
    """``eval_metric=`` (or ``custom_metric=[...]``) for CatBoost."""
    return Metric(loss)


def start_score(loss: Any, label: Any, weight: Any = None):
    """The constant raw prediction minimizing the weighted loss (``loss.fit_intercept_only``): a
    float, or a (K,) array for class-index labels."""
    return _boosting.start_score(loss, label, weight)


def baseline(start: Any, n: int) -> np.ndarray:
    """``catboost.Pool(baseline=...)`` for n objects starting at ``start``: (n,), or (n, K)."""
    return _boosting.start_rows(start, n)


def add_start_score(model, start: Any):
    """Add ``start`` to the model's bias (``set_scale_and_bias``), so ``model.predict`` includes the
    start score the training Pool's baseline supplied; returns the model. Call it once, after fit."""
    scale, bias = model.get_scale_and_bias()
    start = np.asarray(start, np.float64)
    bias = np.asarray(bias, np.float64) + start
    model.set_scale_and_bias(scale, float(bias) if bias.ndim == 0 else bias.tolist())
    return model

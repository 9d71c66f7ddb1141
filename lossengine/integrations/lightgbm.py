"""LightGBM custom objectives, metrics and start scores from lossengine losses.

    import lightgbm as lgb
    from lossengine.integrations import lightgbm as ll

    tweedie = le.HalfTweedieLoss(power=1.5)
    start = ll.start_score(tweedie, y, w)
    train_set = lgb.Dataset(X, y, weight=w, init_score=ll.init_score(start, len(y)))
    booster = lgb.train({"objective": ll.objective(tweedie), "verbose": -1}, train_set, 100,
                        feval=ll.metric(tweedie))
    ll.add_start_score(booster, start)          # predict() now includes it

``objective(loss, hessian="exact")`` -> ``fobj(preds, dataset) -> (grad, hess)`` (LightGBM >= 4 takes
it as ``params["objective"]``): the loss's per-sample gradient and Hessian at LightGBM's raw scores
(float64), the Dataset's labels as the target and its weights multiplied in. Binary and regression:
preds (N,); multi-class (``num_class`` K): preds (N, K) with class-index labels, grad and hess (N, K),
LightGBM 4's layout. ``hessian="library"``: LightGBM's built-in Hessian where it differs from the
exact one (multiclass's K / (K - 1) p (1 - p), poisson's exp(x + 0.7)); see
lossengine/integrations/_boosting.py for the surrogate, the weights and the floor.
``metric(loss)`` -> ``feval(preds, dataset) -> (name, value, is_higher_better=False)``.

Start score: LightGBM ignores ``boost_from_average`` for custom objectives, so training starts at 0
unless the Dataset carries an ``init_score``; and an init_score is not part of the model, so
``predict`` leaves it out. ``start_score(loss, label, weight=None)`` is the loss's
``fit_intercept_only`` at the labels (a float, or (K,) for multi-class); ``init_score(start, n)``
the Dataset's init_score for n rows (give validation Datasets theirs too); ``add_start_score(booster,
start)`` adds it to the first iteration's trees, as LightGBM does with its own boost_from_average,
so the model predicts with it.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _boosting

__all__ = ["objective", "metric", "start_score", "init_score", "add_start_score"]

_UNSET = object()


def _library():
    """LightGBM's native library (a ctypes handle): the OpenMP runtime its trees are grown on."""
    from lightgbm import basic

    return getattr(basic, "_LIB", None)


def _multiclass_factor(k: int) -> float:
    return k / (k - 1.0)      # LightGBM multiclass: h = K / (K - 1) p (1 - p) w


def objective(loss: Any, *, hessian: str = "exact", surrogate: Any = _UNSET, min_hessian: float = 1e-16) -> Callable:
    """``fobj(preds, dataset) -> (grad, hess)`` for ``lightgbm.train({"objective": fobj, ...})``;
    ``hessian``, ``surrogate`` and ``min_hessian`` as for lossengine.integrations.xgboost.objective
    ("library": LightGBM's built-in objective's Hessian)."""
    return _boosting.objective_function(loss, hessian, surrogate, min_hessian, _library, _multiclass_factor, _UNSET)


def metric(loss: Any) -> Callable:
    """``feval(preds, dataset) -> (name, value, False)`` for ``lightgbm.train(..., feval=...)``."""
    loss = _boosting.resolve(loss)

    def feval(preds: np.ndarray, dataset) -> tuple[str, float, bool]:
        return loss.name, _boosting.metric_value(loss, preds, dataset.get_label(), dataset.get_weight()), False

    feval.loss = loss
    return feval


def start_score(loss: Any, label: Any, weight: Any = None):
    """The constant raw score minimizing the weighted loss (``loss.fit_intercept_only``): a float,
    or a (K,) array for class-index labels."""
    return _boosting.start_score(loss, label, weight)


def init_score(start: Any, n: int) -> np.ndarray:
    """``lightgbm.Dataset(init_score=...)`` for n rows starting at ``start``: (n,), or (n, K)."""
    return _boosting.start_rows(start, n)


def add_start_score(booster, start: Any):
    """Add ``start`` to every leaf of the first iteration's tree(s) (one per class), so
    ``booster.predict`` includes the start score the training Dataset's init_score supplied;
    returns the booster. Call it once, after training."""
    start = np.atleast_1d(np.asarray(start, np.float64))
    trees = booster.dump_model()["tree_info"]
    if len(trees) < start.size:
        raise ValueError(f"start: {start.size} value(s) for a booster with {len(trees)} tree(s); "
                         f"train at least one iteration first")
    for k, value in enumerate(start):
        for leaf in range(trees[k]["num_leaves"]):
            booster.set_leaf_output(k, leaf, booster.get_leaf_output(k, leaf) + value)
    return booster

"""The adapters' start score and "library" Hessian, trained: with both, a lossengine objective
trains the library's built-in objective's model (the same predictions, to 1e-4), for XGBoost,
LightGBM and CatBoost; and the CatBoost objective and metric against the built-in Logloss and RMSE.
Small data, one thread: a few seconds each."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import lossengine as le
from lossengine.integrations import catboost as lc
from lossengine.integrations import lightgbm as ll
from lossengine.integrations import xgboost as lx

N = 600


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, 5))
    w = rng.uniform(0.5, 2.0, N)
    y_mc = ((X[:, 0] + 0.7 * rng.standard_normal(N) > 0).astype(int)
            + (X[:, 1] + 0.7 * rng.standard_normal(N) > 0.5).astype(int))
    y_bin = (X[:, 0] + X[:, 1] + 0.5 * rng.standard_normal(N) > 0.8).astype(float)     # ~25% positives
    y_count = rng.poisson(np.exp(0.5 * X[:, 0] + 0.3 * X[:, 1] + 0.5)).astype(float)
    y_reg = 2.0 * X[:, 0] + np.sin(X[:, 1]) + 0.3 * rng.standard_normal(N) + 3.0
    y_pos = np.exp(0.3 * X[:, 0] + 0.2 * X[:, 1]) * rng.gamma(2.0, 0.5, N)
    return X, w, {"multiclass": y_mc, "binary": y_bin, "count": y_count, "regression": y_reg, "positive": y_pos}


def _softmax(m):
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- XGBoost ---------------------------------------------------------------------------------------
XGB = {"max_depth": 3, "eta": 0.3, "tree_method": "exact", "nthread": 1}
XGB_CASES = [  # (built-in objective, its extra params, our loss, labels, extra params a custom objective needs)
    ("multi:softprob", {"num_class": 3}, le.CrossEntropyLoss(), "multiclass", {"num_class": 3}),
    ("binary:logistic", {}, le.BCEWithLogitsLoss(), "binary", {}),
    ("reg:tweedie", {}, le.HalfTweedieLoss(power=1.5), "count", {}),
    ("count:poisson", {}, le.HalfPoissonLoss(), "count", {"max_delta_step": 0.7}),
    ("reg:gamma", {}, le.HalfGammaLoss(), "positive", {}),
    # MSE's derivatives are twice half squared error's: the same Newton steps without an L2 term
    # or a minimum Hessian, which do not scale with them
    ("reg:squarederror", {"lambda": 0.0, "min_child_weight": 0.0}, le.MSELoss(), "regression",
     {"lambda": 0.0, "min_child_weight": 0.0}),
]


@pytest.mark.parametrize("builtin, extra, loss, labels, ours_extra", XGB_CASES, ids=[c[0] for c in XGB_CASES])
def test_xgboost_trains_the_builtin_model(builtin, extra, loss, labels, ours_extra):
    xgb = pytest.importorskip("xgboost")
    X, w, ys = _data()
    y = ys[labels]
    d = xgb.DMatrix(X, y, weight=w)
    reference = xgb.train(dict(XGB, objective=builtin, **extra), d, 15)       # boost_from_average: its own start
    params = dict(XGB, base_score=lx.start_score(loss, y, w), disable_default_eval_metric=1, **ours_extra)
    ours = xgb.train(params, d, 15, obj=lx.objective(loss, hessian="library"))
    margin, expected = ours.predict(d, output_margin=True), reference.predict(d, output_margin=True)
    if builtin == "multi:softprob":
        np.testing.assert_allclose(_softmax(margin), reference.predict(d), atol=1e-4)
    np.testing.assert_allclose(margin, expected, atol=1e-4, rtol=1e-4)


def test_xgboost_without_the_start_score_or_the_library_hessian_is_another_model():
    """The two choices are what makes the models equal (so the test above can fail)."""
    xgb = pytest.importorskip("xgboost")
    X, w, ys = _data()
    d = xgb.DMatrix(X, ys["multiclass"], weight=w)
    reference = xgb.train(dict(XGB, objective="multi:softprob", num_class=3), d, 15).predict(d)
    ce = le.CrossEntropyLoss()
    start = lx.start_score(ce, ys["multiclass"], w)
    for params, hessian in ((dict(base_score=[0.0] * 3), "library"), (dict(base_score=start), "exact")):
        model = xgb.train(dict(XGB, num_class=3, **params), d, 15, obj=lx.objective(ce, hessian=hessian))
        assert np.abs(_softmax(model.predict(d, output_margin=True)) - reference).max() > 1e-2


# -- LightGBM --------------------------------------------------------------------------------------
LGB = {"num_leaves": 8, "learning_rate": 0.3, "verbose": -1, "min_data_in_leaf": 5, "num_threads": 1,
       "deterministic": True}
LGB_CASES = [
    ("multiclass", {"num_class": 3}, le.CrossEntropyLoss(), "multiclass"),
    ("binary", {}, le.BCEWithLogitsLoss(), "binary"),
    ("tweedie", {}, le.HalfTweedieLoss(power=1.5), "count"),
    ("poisson", {}, le.HalfPoissonLoss(), "count"),
    ("gamma", {}, le.HalfGammaLoss(), "positive"),
    ("l2", {"min_sum_hessian_in_leaf": 0.0}, le.MSELoss(), "regression"),
]


@pytest.mark.parametrize("builtin, extra, loss, labels", LGB_CASES, ids=[c[0] for c in LGB_CASES])
def test_lightgbm_trains_the_builtin_model(builtin, extra, loss, labels):
    lgb = pytest.importorskip("lightgbm")
    X, w, ys = _data()
    y = ys[labels]
    reference = lgb.train(dict(LGB, objective=builtin, **extra), lgb.Dataset(X, y, weight=w), 15)
    start = ll.start_score(loss, y, w)
    train = lgb.Dataset(X, y, weight=w, init_score=ll.init_score(start, N))
    ours = ll.add_start_score(lgb.train(dict(LGB, objective=ll.objective(loss, hessian="library"), **extra), train, 15),
                              start)
    raw, expected = ours.predict(X, raw_score=True), reference.predict(X, raw_score=True)
    if builtin == "multiclass":     # the same probabilities; raw scores up to a per-row shift (softmax)
        np.testing.assert_allclose(_softmax(raw), reference.predict(X), atol=1e-4)
        raw, expected = raw - raw.mean(axis=1, keepdims=True), expected - expected.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(raw, expected, atol=1e-4, rtol=1e-4)


def test_lightgbm_start_score_is_not_in_the_model_until_added():
    lgb = pytest.importorskip("lightgbm")
    X, w, ys = _data()
    loss, y = le.HalfTweedieLoss(power=1.5), ys["count"]
    start = ll.start_score(loss, y, w)
    booster = lgb.train(dict(LGB, objective=ll.objective(loss)), lgb.Dataset(X, y, weight=w,
                                                                            init_score=ll.init_score(start, N)), 5)
    before = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(ll.add_start_score(booster, start).predict(X, raw_score=True), before + start,
                               rtol=1e-12, atol=1e-12)


# -- CatBoost --------------------------------------------------------------------------------------
CB = {"iterations": 15, "depth": 3, "learning_rate": 0.3, "random_seed": 0, "thread_count": 1,
      "bootstrap_type": "No", "random_strength": 0, "verbose": False, "leaf_estimation_iterations": 1,
      "leaf_estimation_method": "Newton", "boost_from_average": False,
      "allow_writing_files": False}


def _catboost():
    cb = pytest.importorskip("catboost")
    warnings.filterwarnings("ignore", message="Failed to import numba", category=UserWarning)
    return cb


def _raw(model, X):
    return model.predict(X, prediction_type="RawFormulaVal")


def test_catboost_logloss_is_bce_with_logits():
    cb = _catboost()
    X, w, ys = _data()
    y, bce = ys["binary"], le.BCEWithLogitsLoss()
    reference = cb.CatBoost(dict(CB, loss_function="Logloss", boost_from_average=True))
    reference.fit(cb.Pool(X, y, weight=w))
    start = lc.start_score(bce, y, w)
    assert reference.get_scale_and_bias()[1] == pytest.approx(start, rel=1e-6)      # its own start is ours
    ours = cb.CatBoost(dict(CB, loss_function=lc.objective(bce), eval_metric=lc.metric(bce)))
    ours.fit(cb.Pool(X, y, weight=w, baseline=lc.baseline(start, N)))
    lc.add_start_score(ours, start)
    np.testing.assert_allclose(_raw(ours, X), _raw(reference, X), atol=1e-4, rtol=1e-4)
    # without the start score: another model, and the same as Logloss started at 0
    at_zero = cb.CatBoost(dict(CB, loss_function=lc.objective(bce), eval_metric=lc.metric(bce)))
    at_zero.fit(cb.Pool(X, y, weight=w))
    assert np.abs(_raw(at_zero, X) - _raw(reference, X)).max() > 1e-2
    reference_at_zero = cb.CatBoost(dict(CB, loss_function="Logloss"))
    reference_at_zero.fit(cb.Pool(X, y, weight=w))
    np.testing.assert_allclose(_raw(at_zero, X), _raw(reference_at_zero, X), atol=1e-4, rtol=1e-4)


def test_catboost_rmse_is_mse():
    # MSE's derivatives are twice RMSE's (half squared error): Newton's leaf values are the same
    # without the L2 term, which is not scaled with them.
    cb = _catboost()
    X, w, ys = _data()
    y = ys["regression"]
    reference = cb.CatBoost(dict(CB, loss_function="RMSE", l2_leaf_reg=0))
    reference.fit(cb.Pool(X, y, weight=w))
    mse = le.MSELoss()
    ours = cb.CatBoost(dict(CB, loss_function=lc.objective(mse), eval_metric=lc.metric(mse), l2_leaf_reg=0))
    ours.fit(cb.Pool(X, y, weight=w))
    np.testing.assert_allclose(_raw(ours, X), _raw(reference, X), atol=1e-4, rtol=1e-4)


def test_catboost_metric_is_the_weighted_loss():
    cb = _catboost()
    X, w, ys = _data()
    y, focal = ys["binary"], le.SigmoidFocalLoss()
    model = cb.CatBoost(dict(CB, loss_function=lc.objective(focal), eval_metric=lc.metric(focal)))
    model.fit(cb.Pool(X, y, weight=w), eval_set=cb.Pool(X, y, weight=w))
    curve = next(iter(model.get_evals_result()["validation"].values()))
    per = le.SigmoidFocalLoss(reduction="none")(_raw(model, X), y)
    assert curve[-1] == pytest.approx(np.dot(w, per) / w.sum(), rel=1e-6)
    assert curve[-1] < curve[0]


def test_catboost_objective_signs_and_zero_weight_metric():
    rng = np.random.default_rng(8)
    x, y, w = rng.standard_normal(20), rng.standard_normal(20), rng.uniform(0, 2, 20)
    ders = lc.objective(le.MSELoss()).calc_ders_range(x, y, w)
    np.testing.assert_allclose(ders[:, 0], -2 * (x - y) * w, rtol=1e-12)       # log-likelihood: minus the loss's
    np.testing.assert_allclose(ders[:, 1], -2 * w, rtol=1e-12)
    der1, der2 = lc.objective(le.CrossEntropyLoss()).calc_ders_multi([0.1, 0.2, -0.3], 2.0, 1.5)
    p = _softmax(np.array([[0.1, 0.2, -0.3]]))[0]
    np.testing.assert_allclose(der1, -1.5 * (p - np.eye(3)[2]), rtol=1e-12)
    np.testing.assert_allclose(der2, np.diag(-1.5 * p * (1 - p)), rtol=1e-12)
    metric = lc.metric(le.MSELoss())
    assert metric.is_max_optimal() is False
    error, weight = metric.evaluate((x,), y, np.zeros(20))
    assert np.isnan(metric.get_final_error(error, weight))
    with pytest.raises(ValueError, match="labels: 1 NaN label"):
        lc.objective(le.MSELoss()).calc_ders_range(x, np.where(np.arange(20) == 3, np.nan, y), None)


def test_catboost_multiclass_trains_from_the_start_score():
    # CatBoost's multi-class Python interface is per object (calc_ders_multi): a short run.
    cb = _catboost()
    X, w, ys = _data()
    y, ce = ys["multiclass"], le.CrossEntropyLoss()
    start = lc.start_score(ce, y, w)
    model = cb.CatBoost(dict(CB, iterations=8, loss_function=lc.objective(ce), eval_metric=lc.metric(ce),
                             classes_count=3))
    model.fit(cb.Pool(X, y, weight=w, baseline=lc.baseline(start, N)), eval_set=cb.Pool(X, y, weight=w,
                                                                                        baseline=lc.baseline(start, N)))
    raw = _raw(lc.add_start_score(model, start), X)
    per = le.CrossEntropyLoss(reduction="none")
    curve = next(iter(model.get_evals_result()["validation"].values()))
    assert curve[-1] == pytest.approx(np.dot(w, per(raw, y)) / w.sum(), rel=1e-6)
    at_start = np.dot(w, per(np.tile(start, (N, 1)), y)) / w.sum()
    assert curve[-1] < 0.9 * at_start and (np.diff(curve) < 0).all()

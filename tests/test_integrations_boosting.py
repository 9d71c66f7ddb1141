"""lossengine.integrations.xgboost / .lightgbm: objectives and metrics from lossengine losses, trained
end to end against the libraries' built-in objectives (same predictions where the built-in computes
the same gradient and Hessian; the same convergence where it deliberately scales the Hessian)."""
from __future__ import annotations

import numpy as np
import pytest

import lossengine as le
from lossengine.integrations import lightgbm as ll
from lossengine.integrations import xgboost as lx


def _data(seed=0, n=600):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    w = rng.uniform(0.5, 2.0, n)
    y_reg = 2.0 * X[:, 0] + np.sin(X[:, 1]) + 0.3 * rng.standard_normal(n)
    y_bin = (X[:, 0] + X[:, 1] + 0.5 * rng.standard_normal(n) > 0).astype(float)
    y_mc = ((X[:, 0] + 0.7 * rng.standard_normal(n) > 0).astype(int)
            + (X[:, 1] + 0.7 * rng.standard_normal(n) > 0.5).astype(int))
    return X, w, y_reg, y_bin, y_mc


def _softmax_logloss(margin, y, w):
    m = margin - margin.max(axis=1, keepdims=True)
    logp = m - np.log(np.exp(m).sum(axis=1, keepdims=True))
    return float(np.dot(w, -logp[np.arange(len(y)), y]) / w.sum())


# -- the callables themselves ----------------------------------------------------------------------
class _FakeData:
    def __init__(self, label, weight=None):
        self.label, self.weight = label, weight

    def get_label(self):
        return self.label

    def get_weight(self):
        return np.array([]) if self.weight is None else self.weight


def test_objective_weights_float32_and_surrogate():
    rng = np.random.default_rng(1)
    preds = rng.standard_normal(50).astype(np.float32)            # XGBoost's dtype
    y = rng.standard_normal(50).astype(np.float32)
    w = rng.uniform(0.5, 2.0, 50).astype(np.float32)
    g, h = lx.objective(le.MSELoss())(preds, _FakeData(y, w))
    assert g.dtype == h.dtype == np.float32 and g.shape == (50,)
    np.testing.assert_allclose(g, 2 * (preds - y) * w, rtol=1e-6)
    np.testing.assert_allclose(h, 2 * w, rtol=1e-6)
    g, h = ll.objective("l1_loss")(preds.astype(np.float64), _FakeData(y))     # a registry name
    np.testing.assert_array_equal(h, 1.0)                       # the declared surrogate, not 0
    g, h = ll.objective(le.L1Loss, surrogate=None, min_hessian=0.25)(preds.astype(np.float64), _FakeData(y))
    np.testing.assert_array_equal(h, 0.25)                      # the true 0, floored
    g, h = lx.objective(le.PinballLoss(quantile=0.9))(preds, _FakeData(y))
    np.testing.assert_array_equal(h, 1.0)


def test_objective_multiclass_layout_and_errors():
    rng = np.random.default_rng(2)
    preds = rng.standard_normal((20, 3))
    y = rng.integers(0, 3, 20).astype(np.float32)
    g, h = ll.objective(le.CrossEntropyLoss())(preds, _FakeData(y))
    p = np.exp(preds) / np.exp(preds).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g, p - np.eye(3)[y.astype(int)], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h, p * (1 - p), rtol=1e-12)
    with pytest.raises(ValueError, match="whole class indices"):
        ll.objective(le.CrossEntropyLoss())(preds, _FakeData(y + 0.5))
    with pytest.raises(IndexError, match=r"class indices must lie in \[0, 3\)"):
        ll.objective(le.CrossEntropyLoss())(preds, _FakeData(y + 3))
    with pytest.raises(TypeError, match="no second derivative"):
        lx.objective(le.NLLLoss())
    with pytest.raises(ValueError, match="sample weights"):
        lx.objective(le.MSELoss())(preds[:, 0], _FakeData(y, np.ones(3)))


def test_weights_are_applied_before_the_hessian_floor():
    # A zero-weight sample's Hessian is the floor, not 0 (and not the floor times 0); weights are
    # multiplied into the exact Hessian, then floored, as XGBoost's own objectives do.
    preds, y = np.array([0.0, 30.0, 0.0]), np.array([1.0, 0.0, 0.0])
    w = np.array([0.0, 2.0, 3.0])
    g, h = lx.objective(le.BCEWithLogitsLoss(), min_hessian=1e-6)(preds, _FakeData(y, w))
    s = 1 / (1 + np.exp(-preds))
    np.testing.assert_allclose(h, np.maximum(w * s * (1 - s), 1e-6), rtol=1e-12)
    assert h[0] == 1e-6 and h[1] == 1e-6                     # 2 * 9.4e-14 floored after weighting
    np.testing.assert_allclose(g, w * (s - y), rtol=1e-12)


@pytest.mark.parametrize("module", [lx, ll])
def test_negative_weights_and_nan_labels_are_refused(module):
    preds, y = np.zeros(4), np.array([0.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="sample weights: 1 negative weight"):
        module.objective(le.BCEWithLogitsLoss())(preds, _FakeData(y, np.array([1.0, -1.0, 1.0, 1.0])))
    with pytest.raises(ValueError, match="sample weights: NaN or inf"):
        module.objective(le.BCEWithLogitsLoss())(preds, _FakeData(y, np.array([1.0, np.nan, 1.0, 1.0])))
    with pytest.raises(ValueError, match="labels: 1 NaN label"):
        module.objective(le.BCEWithLogitsLoss())(preds, _FakeData(np.array([0.0, np.nan, 1.0, 0.0])))
    with pytest.raises(ValueError, match="labels: 1 NaN label"):
        module.metric(le.BCEWithLogitsLoss())(preds, _FakeData(np.array([0.0, np.nan, 1.0, 0.0])))
    with pytest.raises(ValueError, match="labels: 1 NaN label"):
        module.start_score(le.BCEWithLogitsLoss(), np.array([0.0, np.nan, 1.0, 0.0]))
    with pytest.raises(ValueError, match="sample weights: 1 negative weight"):
        module.start_score(le.BCEWithLogitsLoss(), y, np.array([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="hessian must be 'exact'"):
        module.objective(le.MSELoss(), hessian="approximate")


def test_a_zero_total_weight_metric_is_nan():
    preds, y = np.zeros(3), np.ones(3)
    assert np.isnan(lx.metric(le.MSELoss())(preds, _FakeData(y, np.zeros(3)))[1])
    assert np.isnan(ll.metric(le.MSELoss())(preds, _FakeData(y, np.zeros(3)))[1])
    assert ll.metric(le.MSELoss(reduction="sum"))(preds, _FakeData(y, np.zeros(3)))[1] == 0.0


def test_library_hessians():
    rng = np.random.default_rng(6)
    preds = rng.standard_normal((30, 4))
    y = rng.integers(0, 4, 30).astype(np.float32)
    w = rng.uniform(0.0, 2.0, 30)
    p = np.exp(preds) / np.exp(preds).sum(axis=1, keepdims=True)
    _, h = lx.objective(le.CrossEntropyLoss(), hessian="library")(preds, _FakeData(y, w))
    np.testing.assert_allclose(h, np.maximum(2 * p * (1 - p) * w[:, None], 1e-16), rtol=1e-12)
    _, h = ll.objective(le.CrossEntropyLoss(), hessian="library")(preds, _FakeData(y, w))
    np.testing.assert_allclose(h, 4 / 3 * p * (1 - p) * w[:, None], rtol=1e-12)
    x, counts = preds[:, 0], rng.poisson(2.0, 30).astype(float)
    for module in (lx, ll):
        g, h = module.objective(le.HalfPoissonLoss(), hessian="library")(x, _FakeData(counts, w))
        np.testing.assert_allclose(h, np.exp(x + 0.7) * w, rtol=1e-12)
        np.testing.assert_allclose(g, (np.exp(x) - counts) * w, rtol=1e-12)
        # the built-ins whose Hessian is the exact one: "library" changes nothing
        for loss, target in ((le.BCEWithLogitsLoss(), (counts > 2).astype(float)), (le.HalfTweedieLoss(), counts),
                             (le.MSELoss(), counts), (le.SigmoidFocalLoss(), (counts > 2).astype(float))):
            exact = module.objective(loss)(x, _FakeData(target, w))
            library = module.objective(loss, hessian="library")(x, _FakeData(target, w))
            np.testing.assert_array_equal(exact[1], library[1])


def test_metric_is_the_weighted_loss():
    rng = np.random.default_rng(3)
    preds, y, w = rng.standard_normal(40), rng.standard_normal(40), rng.uniform(0.5, 2, 40)
    name, value = lx.metric(le.HuberLoss())(preds, _FakeData(y, w))
    per = le.HuberLoss(reduction="none")(preds, y)
    assert name == "huber_loss" and value == pytest.approx(np.dot(w, per) / w.sum(), rel=1e-12)
    name, value, higher = ll.metric(le.HuberLoss(reduction="sum"))(preds, _FakeData(y, w))
    assert value == pytest.approx(np.dot(w, per), rel=1e-12) and higher is False


# -- XGBoost, trained --------------------------------------------------------------------------------
XGB = {"max_depth": 3, "eta": 0.3, "tree_method": "exact", "nthread": 1}


def test_xgboost_regression_grows_the_builtin_trees():
    xgb = pytest.importorskip("xgboost")
    X, w, y, _, _ = _data()
    d = xgb.DMatrix(X, y, weight=w)
    # MSE's gradient and Hessian are twice squared error's: with no L2 term and no Hessian minimum
    # the split gains and leaf values are the same.
    p = dict(XGB, **{"lambda": 0.0, "min_child_weight": 0.0, "base_score": 0.0})
    builtin = xgb.train(dict(p, objective="reg:squarederror"), d, 15)
    ours = xgb.train(p, d, 15, obj=lx.objective(le.MSELoss()))
    np.testing.assert_allclose(ours.predict(d), builtin.predict(d), rtol=1e-5, atol=1e-5)


def test_xgboost_binary_grows_the_builtin_trees():
    xgb = pytest.importorskip("xgboost")
    X, w, _, y, _ = _data()
    d = xgb.DMatrix(X, y, weight=w)
    builtin = xgb.train(dict(XGB, objective="binary:logistic", base_score=0.5), d, 15)
    res = {}
    ours = xgb.train(dict(XGB, base_score=0.0, disable_default_eval_metric=1), d, 15,
                     obj=lx.objective(le.BCEWithLogitsLoss()), custom_metric=lx.metric(le.BCEWithLogitsLoss()),
                     evals=[(d, "train")], evals_result=res, verbose_eval=False)
    margin = ours.predict(d, output_margin=True)
    np.testing.assert_allclose(margin, builtin.predict(d, output_margin=True), rtol=1e-5, atol=1e-5)
    expected = np.dot(w, np.logaddexp(0, margin) - y * margin) / w.sum()
    assert res["train"]["binary_cross_entropy_with_logits"][-1] == pytest.approx(expected, rel=1e-5)


def test_xgboost_multiclass_converges_like_softprob():
    xgb = pytest.importorskip("xgboost")
    X, w, _, _, y = _data()
    d = xgb.DMatrix(X, y, weight=w)
    p = dict(XGB, num_class=3, base_score=0.0)
    r1, r2 = {}, {}
    xgb.train(dict(p, objective="multi:softprob"), d, 30, evals=[(d, "t")], evals_result=r1, verbose_eval=False)
    ours = xgb.train(dict(p, disable_default_eval_metric=1), d, 30, obj=lx.objective(le.CrossEntropyLoss()),
                     custom_metric=lx.metric(le.CrossEntropyLoss()), evals=[(d, "t")], evals_result=r2,
                     verbose_eval=False)
    curve, builtin = np.array(r2["t"]["cross_entropy"]), np.array(r1["t"]["mlogloss"])
    assert curve[-1] == pytest.approx(_softmax_logloss(ours.predict(d, output_margin=True), y, w), rel=1e-5)
    assert (np.diff(curve) < 0).all()
    # softprob doubles the Hessian diagonal (smaller steps): ours is at least as far along, and not far off
    assert curve[-1] <= builtin[-1] * 1.02 and curve[-1] >= 0.5 * builtin[-1]


# -- LightGBM, trained -------------------------------------------------------------------------------
LGB = {"num_leaves": 8, "learning_rate": 0.3, "verbose": -1, "boost_from_average": False,
       "min_data_in_leaf": 5, "num_threads": 1, "deterministic": True}


def test_lightgbm_regression_grows_the_builtin_trees():
    lgb = pytest.importorskip("lightgbm")
    X, w, y, _, _ = _data()
    ds = lgb.Dataset(X, y, weight=w, free_raw_data=False)
    p = dict(LGB, lambda_l2=0.0, min_sum_hessian_in_leaf=0.0)
    builtin = lgb.train(dict(p, objective="l2"), ds, 15)
    ours = lgb.train(dict(p, objective=ll.objective(le.MSELoss())), ds, 15)
    np.testing.assert_allclose(ours.predict(X, raw_score=True), builtin.predict(X, raw_score=True),
                               rtol=1e-6, atol=1e-6)


def test_lightgbm_binary_grows_the_builtin_trees():
    lgb = pytest.importorskip("lightgbm")
    X, w, _, y, _ = _data()
    ds = lgb.Dataset(X, y, weight=w, free_raw_data=False)
    builtin = lgb.train(dict(LGB, objective="binary"), ds, 15)
    ours = lgb.train(dict(LGB, objective=ll.objective(le.BCEWithLogitsLoss())), ds, 15)
    np.testing.assert_allclose(ours.predict(X, raw_score=True), builtin.predict(X, raw_score=True),
                               rtol=1e-6, atol=1e-6)


def test_lightgbm_multiclass_converges_like_multiclass():
    lgb = pytest.importorskip("lightgbm")
    X, w, _, _, y = _data()
    ds = lgb.Dataset(X, y, weight=w, free_raw_data=False)
    r1, r2 = {}, {}
    lgb.train(dict(LGB, objective="multiclass", num_class=3), ds, 30, valid_sets=[ds],
              callbacks=[lgb.record_evaluation(r1)])
    ours = lgb.train(dict(LGB, objective=ll.objective(le.CrossEntropyLoss()), num_class=3, metric="None"), ds, 30,
                     valid_sets=[ds], feval=ll.metric(le.CrossEntropyLoss()), callbacks=[lgb.record_evaluation(r2)])
    curve, builtin = np.array(r2["training"]["cross_entropy"]), np.array(r1["training"]["multi_logloss"])
    assert curve[-1] == pytest.approx(_softmax_logloss(ours.predict(X, raw_score=True), y, w), rel=1e-6)
    assert (np.diff(curve) < 0).all()
    assert curve[-1] <= builtin[-1] * 1.05 and curve[-1] >= 0.5 * builtin[-1]


def test_lightgbm_tweedie_objective_trains():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(4)
    X = rng.standard_normal((600, 4))
    y = rng.poisson(np.exp(0.5 * X[:, 0] + 0.3 * X[:, 1])).astype(float)
    ds = lgb.Dataset(X, y, free_raw_data=False)
    loss = le.HalfTweedieLoss(power=1.5)
    r = {}
    lgb.train(dict(LGB, objective=ll.objective(loss), metric="None", learning_rate=0.1), ds, 30, valid_sets=[ds],
              feval=ll.metric(loss), callbacks=[lgb.record_evaluation(r)])
    curve = np.array(r["training"]["half_tweedie_loss"])
    assert (np.diff(curve) < 0).all() and curve[-1] < curve[0]

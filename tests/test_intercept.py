"""fit_intercept_only (scikit-learn's name and meaning) on every loss with a Hessian, weighted, and
gradient_hessian's sample_weight: the returned constant is a minimizer of the weighted summed loss
(no perturbation of any coordinate lowers it; smooth losses: the summed gradient is 0), closed forms
where they exist, plugins served by the base classes with no new obligation."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import lossengine as le
from lossengine import _intercept, registry
from lossengine.domains import domain_of
from lossengine.extending import NumpyElementwiseLoss



def _with_hessian():
    """Every registered loss with a Hessian: the built-ins and the installed plugins (the Cauchy
    NumPy plugin, non-convex; the compiled pseudo-Huber)."""
    classes = [registry.get(name) for name in registry.names()]
    return [cls for cls in classes if isinstance(cls, type) and cls().has_hessian]


WITH_HESSIAN = _with_hessian()


def _unbounded(cls, target, w) -> bool:
    """KLDiv is linear in the input; hinge embedding (x where y = 1, max(0, margin - x) where
    y = -1) decreases without bound as x -> -inf when the positives outweigh the negatives."""
    if cls.__name__ == "HingeEmbeddingLoss":
        return w[target == 1].sum() > w[target == -1].sum()
    return cls.__name__ == "KLDivLoss"


def _target(cls, rng, shape=(240,)):
    if cls.decomposes == "elements":
        return domain_of(cls, "target").sample(rng, shape, np.float64)
    if cls.__name__ in ("TverskyLoss", "DiceLoss"):
        return rng.uniform(0, 1, (60, 2, 4)).round()
    if cls.__name__ == "MultiLabelSoftMarginLoss":
        return (rng.uniform(0, 1, (240, 4)) < [0.1, 0.3, 0.5, 0.9]).astype(float)
    return rng.choice(4, 240, p=[0.1, 0.2, 0.3, 0.4])


def _objective(loss, theta, target, w, **others):
    """sum_i w_i loss_i at the constant theta, the input laid out as fit_intercept_only lays it."""
    theta = np.asarray(theta, np.float64)
    if target.dtype.kind in "iu":
        x = np.broadcast_to(theta, (target.shape[0], theta.size)).copy()
    else:
        x = np.broadcast_to(theta, target.shape).copy()
    others = dict(getattr(loss, "intercept_arguments", {}), **others)
    others = {k: np.broadcast_to(np.asarray(v, np.float64), target.shape) for k, v in others.items()}
    by_name = dict(others, target=target)
    arrays = tuple(x if a == loss.arguments[0] else by_name[a] for a in loss.arguments)
    return _intercept.weighted_loss(loss, arrays, w)


def _assert_minimizer(loss, theta, target, w, **others):
    best = _objective(loss, theta, target, w, **others)
    theta = np.asarray(theta, np.float64)
    for k in np.ndindex(theta.shape):
        for delta in (1e-3, -1e-3, 1e-1, -1e-1):
            moved = theta.copy()
            moved[k] += delta * max(1.0, abs(theta[k]))
            moved = np.clip(moved, *_intercept._bounds(loss))      # within the input's domain (Dice's [0, 1])
            other = _objective(loss, moved, target, w, **others)
            assert best <= other + 1e-12 * abs(other), (type(loss).__name__, k, delta, best, other)


@pytest.mark.parametrize("cls", WITH_HESSIAN, ids=lambda c: c.__name__)
def test_fit_intercept_only_minimizes_the_weighted_loss(cls):
    rng = np.random.default_rng(zlib.crc32(cls.__name__.encode()))
    loss = cls()
    target = _target(cls, rng)
    w = rng.uniform(0.2, 3.0, target.shape[0])
    if _unbounded(cls, target, w):
        with pytest.raises(ValueError, match="no finite intercept"):
            loss.fit_intercept_only(target, w)
        return
    theta = loss.fit_intercept_only(target, w)
    one_output = (target.dtype.kind == "f" and target.ndim == 1) or cls.__name__ in ("TverskyLoss", "DiceLoss")
    expected_shape = () if one_output else (4,)
    assert np.shape(theta) == expected_shape
    assert isinstance(theta, float) or theta.dtype == np.float64
    _assert_minimizer(loss, theta, target, w)
    # the weights matter: with other weights the minimizer moves (all of these targets vary)
    if cls.__name__ not in ("MarginRankingLoss", "TverskyLoss", "DiceLoss"):
        other = loss.fit_intercept_only(target, rng.uniform(0.2, 3.0, target.shape[0]))
        assert not np.allclose(other, theta, rtol=1e-9, atol=1e-12)


SMOOTH = ["MSELoss", "BCEWithLogitsLoss", "SigmoidFocalLoss", "LogCoshLoss", "HalfPoissonLoss", "HalfGammaLoss",
          "HalfTweedieLoss", "PoissonNLLLoss", "GaussianNLLLoss", "SoftMarginLoss", "CrossEntropyLoss",
          "SoftmaxFocalLoss", "Poly1CrossEntropyLoss", "MultiLabelSoftMarginLoss", "HuberLoss", "SmoothL1Loss"]


@pytest.mark.parametrize("name", SMOOTH)
def test_the_weighted_gradient_sums_to_zero_at_the_intercept(name):
    cls = getattr(le, name)
    rng = np.random.default_rng(7)
    loss, target = cls(), _target(cls, rng)
    w = rng.uniform(0.2, 3.0, target.shape[0])
    theta = np.asarray(loss.fit_intercept_only(target, w))
    x = np.broadcast_to(theta, (target.shape[0], 4) if target.dtype.kind in "iu" else target.shape).copy()
    args = (x, target) if name != "GaussianNLLLoss" else (x, target, np.ones_like(target))
    g, _ = loss.gradient_hessian(*args, sample_weight=w)
    assert np.all(np.abs(g.sum(axis=0)) <= 1e-9 * w.sum()), g.sum(axis=0)


def test_closed_forms():
    rng = np.random.default_rng(1)
    y, w = rng.gamma(2.0, size=501), rng.uniform(0.5, 2.0, 501)
    mean = np.average(y, weights=w)
    assert le.MSELoss().fit_intercept_only(y, w) == pytest.approx(mean, rel=1e-14)
    assert le.HalfTweedieLoss(power=1.5).fit_intercept_only(y, w) == pytest.approx(np.log(mean), rel=1e-14)
    assert le.HalfGammaLoss().fit_intercept_only(y) == pytest.approx(np.log(y.mean()), rel=1e-14)
    assert le.L1Loss().fit_intercept_only(y) == np.median(y)                 # odd count: the middle value
    assert le.L1Loss().fit_intercept_only(y[:500]) == pytest.approx(np.median(y[:500]), rel=1e-15)   # even
    assert le.PinballLoss(quantile=0.9).fit_intercept_only(y) == np.quantile(y, 0.9, method="inverted_cdf")
    b = (y > 2).astype(float)
    p = np.average(b, weights=w)
    assert le.BCEWithLogitsLoss().fit_intercept_only(b, w) == pytest.approx(np.log(p / (1 - p)), rel=1e-13)
    # an option array set (pos_weight): no closed form declared for it, Newton finds the optimum
    # p = 3 sum(w y) / (3 sum(w y) + sum(w (1 - y)))
    pos = 3 * np.dot(w, b)
    q = pos / (pos + np.dot(w, 1 - b))
    assert le.BCEWithLogitsLoss(pos_weight=np.array(3.0)).fit_intercept_only(b, w) == pytest.approx(
        np.log(q / (1 - q)), rel=1e-12)
    # all-zero labels: scikit-learn's clip (10 eps inside the link's range), finite
    assert le.BCEWithLogitsLoss().fit_intercept_only(np.zeros(10)) == pytest.approx(
        np.log(10 * np.finfo(float).eps), rel=1e-6)
    # a weight per sample and per output: one value per column of an (N, K) target
    y2 = rng.standard_normal((300, 3)) + [0.0, 5.0, -2.0]
    w2 = rng.uniform(0.5, 2.0, 300)
    np.testing.assert_allclose(le.MSELoss().fit_intercept_only(y2, w2), np.average(y2, axis=0, weights=w2), rtol=1e-13)
    np.testing.assert_allclose(le.HuberLoss().fit_intercept_only(y2, w2), np.average(y2, axis=0, weights=w2), atol=0.1)


def test_class_priors():
    rng = np.random.default_rng(2)
    t = rng.choice(3, 400, p=[0.2, 0.3, 0.5])
    w = rng.uniform(0.5, 2.0, 400)
    prior = np.bincount(t, weights=w) / w.sum()
    got = le.CrossEntropyLoss().fit_intercept_only(t, w)
    np.testing.assert_allclose(got, np.log(prior) - np.log(prior).mean(), rtol=1e-13)
    # n_classes: a class never seen gets the clipped (finite, very negative) score
    got = le.CrossEntropyLoss().fit_intercept_only(t, w, n_classes=4)
    assert got.shape == (4,) and np.isfinite(got).all() and got[3] < got[:3].min() - 20
    # class weights and label smoothing move the optimum; ignore_index drops samples
    for options in ({"weight": np.array([2.0, 1.0, 0.5])}, {"label_smoothing": 0.3}, {"ignore_index": 2}):
        loss = le.CrossEntropyLoss(**options)
        _assert_minimizer(loss, loss.fit_intercept_only(t, w), t, w)
    # positions at the default ignore_index (-100) are left out, not refused
    with_ignored = np.concatenate([t, [-100, -100]])
    np.testing.assert_allclose(le.CrossEntropyLoss().fit_intercept_only(with_ignored, np.concatenate([w, [5.0, 5.0]])),
                               np.log(prior) - np.log(prior).mean(), rtol=1e-13)
    # integer 0/1 labels of an elementwise loss are labels, not class indices
    assert le.BCEWithLogitsLoss().fit_intercept_only(np.array([0, 1, 1])) == pytest.approx(np.log(2.0), rel=1e-14)
    # class-probability targets: the weighted mean distribution
    probs = rng.dirichlet([1, 2, 3], 400)
    expected = np.log(np.average(probs, axis=0, weights=w))
    np.testing.assert_allclose(le.CrossEntropyLoss().fit_intercept_only(probs, w), expected - expected.mean(),
                               rtol=1e-12)
    for options in ({"weight": np.array([2.0, 1.0, 0.5])}, {"label_smoothing": 0.3}):
        loss = le.CrossEntropyLoss(**options)
        _assert_minimizer(loss, loss.fit_intercept_only(probs, w), probs, w)


def test_hinge_embedding_either_way():
    y = np.array([1.0, -1.0, -1.0, 1.0])
    loss = le.HingeEmbeddingLoss(margin=0.5)
    assert loss.fit_intercept_only(y, [1.0, 2.0, 2.0, 1.0]) == pytest.approx(0.5)      # negatives outweigh: margin
    with pytest.raises(ValueError, match="no finite intercept minimizes it"):
        loss.fit_intercept_only(y, [2.0, 1.0, 1.0, 2.0])


def test_other_arguments_by_keyword():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(200)
    var = rng.uniform(0.5, 2.0, 200)
    loss = le.GaussianNLLLoss()
    assert loss.fit_intercept_only(y) == pytest.approx(y.mean(), rel=1e-12)              # var = 1
    assert loss.fit_intercept_only(y, var=var) == pytest.approx(np.average(y, weights=1 / var), rel=1e-12)
    with pytest.raises(TypeError, match="unexpected argument"):
        loss.fit_intercept_only(y, variance=var)


class _PseudoHuber(NumpyElementwiseLoss):
    """A plugin written to the minimum contract, plus the optional element_hessian (no intercept
    declared, no sample_inputs)."""
    name = "pseudo_huber_intercept_test"

    def element_loss(self, x, y):
        return np.sqrt(1 + (x - y) ** 2) - 1

    def element_partials(self, x, y):
        d = x - y
        return (d / np.sqrt(1 + d * d),)

    def element_hessian(self, x, y):
        return (1 + (x - y) ** 2) ** -1.5


def test_a_plugin_gets_both_from_the_base_class():
    rng = np.random.default_rng(4)
    y = np.concatenate([rng.standard_normal(300), [40.0, 60.0]])
    w = rng.uniform(0.5, 2.0, y.size)
    loss = _PseudoHuber()
    theta = loss.fit_intercept_only(y, w)
    _assert_minimizer(loss, theta, y, w)
    g, h = loss.gradient_hessian(np.full(y.shape, theta), y, sample_weight=w)
    assert abs(g.sum()) <= 1e-10 * w.sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_hessian_sample_weight(dtype):
    rng = np.random.default_rng(5)
    x, y, w = rng.standard_normal((50, 3)).astype(dtype), rng.integers(0, 3, 50), rng.uniform(0, 2, 50)
    g0, h0 = le.CrossEntropyLoss().gradient_hessian(x, y)
    g, h = le.CrossEntropyLoss().gradient_hessian(x, y, sample_weight=w)
    assert g.dtype == h.dtype == dtype
    np.testing.assert_allclose(g, g0 * w[:, None].astype(dtype), rtol=1e-6)
    np.testing.assert_allclose(h, h0 * w[:, None].astype(dtype), rtol=1e-6)
    xe = x[:, 0].copy()
    for loss in (le.HalfTweedieLoss(), le.BCEWithLogitsLoss(pos_weight=np.array(2.0))):   # fast and general paths
        g0, h0 = loss.gradient_hessian(xe, y.astype(dtype) / 2)
        g, h = loss.gradient_hessian(xe, y.astype(dtype) / 2, sample_weight=w)
        np.testing.assert_allclose(g, g0 * w.astype(dtype), rtol=1e-6)
        np.testing.assert_allclose(h, h0 * w.astype(dtype), rtol=1e-6)
    out = (np.empty_like(xe), np.empty_like(xe))
    got = le.MSELoss().gradient_hessian(xe, xe * 0, out=out, sample_weight=w)
    assert got[0] is out[0] and np.allclose(out[1], 2 * w.astype(dtype))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(50,\)"):
        le.MSELoss().gradient_hessian(xe, xe, sample_weight=w[:3])
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        le.MSELoss().gradient_hessian(xe, xe, sample_weight=np.full(50, np.nan))
    with pytest.raises(TypeError, match="sample_weight must hold real numbers"):
        le.MSELoss().gradient_hessian(xe, xe, sample_weight=np.array(["a"] * 50))


def test_fit_intercept_only_refuses_bad_input():
    y = np.arange(5.0)
    with pytest.raises(ValueError, match="non-negative"):
        le.MSELoss().fit_intercept_only(y, [1, 1, -1, 1, 1])
    with pytest.raises(ValueError, match="sums to 0"):
        le.MSELoss().fit_intercept_only(y, np.zeros(5))
    with pytest.raises(ValueError, match="NaN or inf"):
        le.MSELoss().fit_intercept_only(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="one or more samples"):
        le.MSELoss().fit_intercept_only(np.array([]))
    with pytest.raises(IndexError, match="out of range for n_classes=2"):
        le.CrossEntropyLoss().fit_intercept_only(np.array([0, 1, 2]), n_classes=2)
    with pytest.raises(TypeError, match="has_hessian is False"):
        le.NLLLoss().fit_intercept_only(np.array([0, 1]))
    with pytest.raises(TypeError, match="n_classes is for class-index targets"):
        le.MSELoss().fit_intercept_only(y, n_classes=3)


@pytest.mark.parametrize("loss", [le.MSELoss(), le.CrossEntropyLoss()], ids=["elementwise", "classification"])
def test_bad_sample_weights_are_refused_before_out_is_written(loss):
    # The weights are checked before the kernel runs: a refused call leaves the caller's out= as it was.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    target = rng.standard_normal((6, 4)) if isinstance(loss, le.MSELoss) else rng.integers(0, 4, 6)
    out = (np.full((6, 4), 7.0), np.full((6, 4), 7.0))
    for bad, match in ((np.ones(5), r"shape \(6,\)"), (np.array([1.0, np.nan, 1, 1, 1, 1]), "finite")):
        with pytest.raises(ValueError, match=match):
            loss.gradient_hessian(x, target, out=out, sample_weight=bad)
        assert (out[0] == 7.0).all() and (out[1] == 7.0).all()
    w = rng.uniform(0.5, 2.0, 6)
    g, h = loss.gradient_hessian(x, target, sample_weight=w)
    g1, h1 = loss.gradient_hessian(x, target)
    np.testing.assert_array_equal(g, g1 * w[:, None])
    np.testing.assert_array_equal(h, h1 * w[:, None])

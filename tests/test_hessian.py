"""gradient_hessian: the contract (shapes, dtypes, out=, errors), the plugin routes' optional
second-derivative hooks, and the validator catching a wrong Hessian."""
from __future__ import annotations

import numpy as np
import pytest

import lossengine as le
from lossengine import _elementwise
from lossengine.validation import check


def test_every_builtin_elementwise_loss_has_a_hessian():
    for cls in le.losses.elementwise.LOSSES:
        assert cls().has_hessian, cls.__name__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_hessian_is_the_unreduced_loss_whatever_the_reduction(dtype):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((70_001,)).astype(dtype), rng.standard_normal(70_001).astype(dtype)
    for reduction in ("mean", "sum", "none"):
        g, h = le.LogCoshLoss(reduction=reduction).gradient_hessian(x, y)
        assert g.dtype == h.dtype == dtype and g.shape == h.shape == x.shape
        d = x.astype(np.float64) - y
        np.testing.assert_allclose(g, np.tanh(d), rtol=1e-6 if dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(h, 1.0 / np.cosh(d) ** 2, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_gradient_hessian_is_deterministic_across_threads():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((300, 300)), rng.gamma(2.0, size=(300, 300))
    with le.threads(1):
        g1, h1 = le.HalfTweedieLoss().gradient_hessian(x, y)
    with le.threads(2):
        g2, h2 = le.HalfTweedieLoss().gradient_hessian(x, y)
    assert g1.tobytes() == g2.tobytes() and h1.tobytes() == h2.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tweedie_special_powers_are_poisson_and_gamma_bit_for_bit(dtype):
    # The power's case is chosen once per call (the driver's VARIANTS), not per element: p = 1 and
    # p = 2 run HalfPoisson's and HalfGamma's very math; every power vectorizes.
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(10_007).astype(dtype), rng.gamma(2.0, size=10_007).astype(dtype)
    for power, twin in ((1.0, le.HalfPoissonLoss), (2.0, le.HalfGammaLoss)):
        tweedie, other = le.HalfTweedieLoss(power=power, reduction="none"), twin(reduction="none")
        for ours, theirs in ((tweedie(x, y), other(x, y)), (tweedie.gradient_hessian(x, y), other.gradient_hessian(x, y)),
                             (tweedie.forward_backward(x, y)[1], other.forward_backward(x, y)[1])):
            assert np.asarray(ours).tobytes() == np.asarray(theirs).tobytes(), power
    # p = 0 is 0.5 (exp(x) - y)^2 with scikit-learn's forms of the derivatives.
    g, h = le.HalfTweedieLoss(power=0.0).gradient_hessian(x, y)
    e = np.exp(x.astype(np.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(g, e * (e - y), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(h, e * (2 * e - y), rtol=rtol, atol=rtol)


def test_gradient_hessian_fast_path_is_the_general_path():
    # ElementwiseKernel.fast_hessian (the common call in compiled code) gives the general path's bits,
    # fills out=, and leaves everything else (domain errors, other layouts) to the general path.
    from lossengine.base import FusedLoss
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(9_000), rng.uniform(size=9_000)
    for loss in (le.MSELoss(), le.BCEWithLogitsLoss(), le.HalfTweedieLoss(power=1.5), le.BCELoss()):
        xx = 1 / (1 + np.exp(-x)) if isinstance(loss, le.BCELoss) else x
        assert loss._kernel_for_call().fast_hessian((xx, y), loss._fast_extra_ones(), None, None, 1, 1 << 62) is not None
        general = FusedLoss.gradient_hessian(loss, xx, y)
        out = (np.empty_like(xx), np.empty_like(xx))
        assert loss.gradient_hessian(xx, y, out=out) == out
        for a, b in zip(general, out):
            assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        le.BCELoss().gradient_hessian(np.full(3, 2.0), np.zeros(3))     # outside [0, 1]: the general path's error
    shared = np.empty(9_000)
    with pytest.raises(ValueError, match="overlap"):
        le.MSELoss().gradient_hessian(x, y, out=(shared, shared))


def test_gradient_hessian_out_and_layouts():
    rng = np.random.default_rng(2)
    x = np.asfortranarray(rng.standard_normal((4, 6)))
    y = rng.standard_normal((6, 4)).T.astype(">f8")
    y.setflags(write=False)
    expected = le.MSELoss().gradient_hessian(np.ascontiguousarray(x), np.ascontiguousarray(y, "<f8"))
    out = (np.empty((4, 6)), np.empty((4, 6)))
    got = le.MSELoss().gradient_hessian(x, y, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(out[0], expected[0])
    np.testing.assert_array_equal(out[1], 2.0)


def test_gradient_hessian_errors():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="out: the gradient array"):
        le.MSELoss().gradient_hessian(x, x, out=(np.empty(3, np.float32), np.empty(3)))
    with pytest.raises(ValueError, match="out: the hessian array"):
        le.MSELoss().gradient_hessian(x, x, out=(np.empty(3), np.empty(4)))
    buf = np.empty(3)
    with pytest.raises(ValueError, match="must not overlap"):
        le.MSELoss().gradient_hessian(x, x, out=(buf, buf))
    with pytest.raises(TypeError, match="out must be a tuple"):
        le.MSELoss().gradient_hessian(x, x, out=np.empty(3))
    with pytest.raises(ValueError, match="target"):
        le.MSELoss().gradient_hessian(x, np.zeros(4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        le.BCELoss().gradient_hessian(np.array([2.0]), np.array([1.0]))
    with pytest.raises(TypeError, match="takes 2 arrays"):
        le.MSELoss().gradient_hessian(x)


def test_inputs_unmodified():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(10), rng.uniform(0, 1, 10)
    x0, y0 = x.copy(), y.copy()
    le.SigmoidFocalLoss().gradient_hessian(x, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_tweedie_refuses_powers_between_0_and_1():
    with pytest.raises(ValueError, match="power"):
        le.HalfTweedieLoss(power=0.5)


# -- the plugin routes' optional hook ----------------------------------------------------------
class Quartic(le.NumpyElementwiseLoss):
    """(x - y)^4 with its second derivative."""
    name = "test_quartic_hessian"

    def element_loss(self, x, y):
        return (x - y) ** 4

    def element_partials(self, x, y):
        return (4.0 * (x - y) ** 3,)

    def element_hessian(self, x, y):
        return 12.0 * (x - y) ** 2


class QuarticWrongHessian(Quartic):
    def element_hessian(self, x, y):
        return 6.0 * (x - y) ** 2          # half the true value


class QuarticNoHessian(Quartic):
    element_hessian = None


def test_numpy_plugin_hessian_hook_is_optional_and_checked():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(5), rng.standard_normal(5)
    g, h = Quartic().gradient_hessian(x, y)
    np.testing.assert_allclose(h, 12.0 * (x - y) ** 2)
    assert check(Quartic).ok
    report = check(QuarticWrongHessian)
    assert not report.ok
    assert all(f.check == "hessian_vs_finite_differences" for f in report.failures), report
    assert check(QuarticNoHessian).ok       # no hook: no obligation
    with pytest.raises(TypeError, match="no second derivative"):
        QuarticNoHessian().gradient_hessian(x, y)


ELEMENT, CHUNK = _elementwise._selftest_capsules()


class CompiledWithHessian(le.CompiledElementwiseLoss):
    """params[0] (x - y)^2 + params[1] w, compiled inside lossengine, with its second derivative."""
    name = "test_compiled_hessian"
    arguments = ("input", "target", "weight")
    differentiable = ("input", "target", "weight")
    element_function = ELEMENT
    chunk_function = CHUNK
    hessian_function = _elementwise._selftest_hessian_capsule()

    def element_params(self):
        return (1.5, 0.25)


class CompiledWrongHessian(CompiledWithHessian):
    def element_params(self):
        return (1.5, 0.25)

    def gradient_hessian(self, *arrays, out=None):      # a Hessian off by a factor: must be caught
        g, h = super().gradient_hessian(*arrays, out=out)
        return g, 1.5 * h


def test_compiled_plugin_hessian_hook():
    rng = np.random.default_rng(5)
    x, y, w = rng.standard_normal(70_001), rng.standard_normal(70_001), rng.uniform(size=70_001)
    g, h = CompiledWithHessian().gradient_hessian(x, y, w)
    np.testing.assert_allclose(g, 3.0 * (x - y))
    np.testing.assert_array_equal(h, 3.0)
    assert check(CompiledWithHessian).ok
    assert not check(CompiledWrongHessian).ok
    assert not le.CompiledElementwiseLoss.hessian_function
    with pytest.raises(TypeError, match="hessian_function must be a PyCapsule"):
        _elementwise.Plugin(ELEMENT, None, np.zeros(2), 3, CHUNK)


def test_pxd_declares_the_hessian_capsule_name():
    from pathlib import Path
    pxd = (Path(le.__file__).parent / "elementwise_api.pxd").read_text()
    assert f'"{_elementwise.PLUGIN_HESSIAN_CAPSULE_NAME}"' in pxd

"""Regression tests for the defects issue #15's adversarial probe found. Each expected value is the
mathematics torch 2.13 follows (checked against live torch when it is installed)."""
import math

import numpy as np
import pytest

import lossengine as le

NAN = float("nan")


def _torch_grad(fn, arrays, idx=0, grad_output=None):
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=(i == idx)) if np.asarray(a).dtype.kind == "f"
          else torch.tensor(a) for i, a in enumerate(arrays)]
    value = fn(*ts)
    go = torch.full_like(value, 1.0 if grad_output is None else grad_output)
    value.backward(go)
    return value.detach().numpy(), ts[idx].grad.numpy()


# -- threads: refused when set, never a crash at call time -----------------------------------------
@pytest.mark.parametrize("n", [0, 1025, 60000, 100000, 2**31 - 1, 2**31, 2**64])
def test_thread_count_out_of_range_is_refused_when_set(n):
    before = le.get_num_threads()
    with pytest.raises(ValueError, match="number of threads must be between 1 and 1024"):
        le.set_num_threads(n)
    with pytest.raises(ValueError, match="number of threads must be between 1 and 1024"):
        with le.threads(n):
            pass
    assert le.get_num_threads() == before
    x = np.ones(100_000)
    assert le.MSELoss()(x, x) == 0.0      # the kernel still runs (in parallel) afterwards


# -- huge Python ints: ValueError naming the argument -----------------------------------------------
def test_huge_int_grad_output_is_a_value_error():
    with pytest.raises(ValueError, match="grad_output must fit in a double"):
        le.MSELoss().backward(np.ones(3), np.zeros(3), grad_output=10**400)


@pytest.mark.parametrize("cls, option", [(le.SmoothL1Loss, "beta"), (le.HuberLoss, "delta"),
                                         (le.PoissonNLLLoss, "eps"), (le.GaussianNLLLoss, "eps"),
                                         (le.CrossEntropyLoss, "label_smoothing"),
                                         (le.HingeEmbeddingLoss, "margin"), (le.MultiMarginLoss, "margin"),
                                         (le.CTCLoss, "blank")])
def test_huge_int_option_is_a_value_error_naming_it(cls, option):
    with pytest.raises(ValueError, match=option):
        cls(**{option: 10**400})


# -- the upstream gradient is folded in before a partial can overflow ------------------------------
def test_mse_gradient_finite_where_2_diff_overflows():
    grad = le.MSELoss().backward(np.array([1e308, 0.0, 0.0]), np.zeros(3))
    assert grad[0] == pytest.approx(2.0 * (1e308 / 3.0), rel=1e-15) and math.isfinite(grad[0])
    _, expected = _torch_grad(lambda a, b: __import__("torch").nn.functional.mse_loss(a, b),
                              [np.array([1e308, 0.0, 0.0]), np.zeros(3)])
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_gaussian_nll_gradient_finite_at_a_denormal_var():
    n = 150_000
    x, var = np.ones(n), np.full(n, 1e-310)
    grad = le.GaussianNLLLoss(eps=0.0).backward(x, np.zeros(n), var)
    expected = (0.5 / n) / 1e-310 * 2.0       # autograd's order: (g / 2) / var, then times 2 diff
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_multi_margin_weight_near_the_float_maximum_stays_finite():
    # z = margin - x_t + x_j = 0.1 on both other classes; p = 2: d/dx_j = 2 z (g / C) w[t]
    x, t = np.array([[0.95, 0.05, 0.05]]), np.array([0])
    grad = le.MultiMarginLoss(p=2, weight=np.array([1e308, 1.0, 1.0])).backward(x, t, grad_output=10.0)
    z = 1.0 - 0.95 + 0.05
    np.testing.assert_allclose(grad[0, 1:], 2 * z * (10.0 / 3) * 1e308, rtol=1e-12)
    assert np.all(np.isfinite(grad))


# -- non-finite values stay where torch keeps them -------------------------------------------------
@pytest.mark.parametrize("unused_weight", [NAN, math.inf, 1e308])
def test_cross_entropy_unused_class_weight_does_not_leak(unused_weight):
    x, t = np.zeros((2, 3)), np.array([2, 2])
    weight = np.array([unused_weight, 1e308 if unused_weight == 1e308 else 1.0, 1.0])
    value, grad = le.CrossEntropyLoss(weight=weight).forward_backward(x, t)
    assert value == pytest.approx(math.log(3.0), rel=1e-15)
    np.testing.assert_allclose(grad, [[1 / 6, 1 / 6, -1 / 3]] * 2, rtol=1e-14)


def test_multi_margin_nan_weight_of_unused_class_does_not_leak():
    x, t = np.array([[0.0, 0.0, 5.0]] * 2), np.array([2, 2])
    grad = le.MultiMarginLoss(weight=np.array([NAN, 1.0, 1.0])).backward(x, t)
    np.testing.assert_array_equal(grad, np.zeros((2, 3)))


def test_hinge_embedding_nan_grad_output_masked_on_the_inactive_branch():
    grad = le.HingeEmbeddingLoss(reduction="none").backward(np.array([0.5, 2.0]), np.array([-1.0, -1.0]),
                                                            grad_output=NAN)
    assert math.isnan(grad[0]) and grad[1] == 0.0      # torch's where(): the masked branch is 0


@pytest.mark.parametrize("loss, x, t", [
    (le.MultiMarginLoss(), np.array([[5.0, 0.2, 0.3]]), np.array([0])),
    (le.MultiLabelMarginLoss(), np.array([[5.0, 0.2, 0.3]]), np.array([[0, -1, 0]])),
])
def test_margin_losses_nan_grad_output_reaches_every_class(loss, x, t):
    # torch computes the row's gradient for grad_output 1 and multiplies by grad_output last
    assert np.isnan(loss.backward(x, t, grad_output=NAN)).all()


def test_cross_entropy_minus_inf_probability_target_matches_torch():
    value, grad = le.CrossEntropyLoss().forward_backward(np.array([[0.1, 0.2]]), np.array([[-np.inf, 1.0]]))
    assert value == -np.inf and math.isnan(grad[0, 0]) and grad[0, 1] == -np.inf


# -- empty inputs: the README's promises -----------------------------------------------------------
@pytest.mark.parametrize("loss, target", [
    (le.CrossEntropyLoss(label_smoothing=0.5, reduction="sum"), np.zeros(0, np.int64)),
    (le.CrossEntropyLoss(), np.zeros((0, 0))),
    (le.MultiMarginLoss(), np.zeros(0, np.int64)),
    (le.MultiLabelMarginLoss(), np.zeros((0, 0), np.int64)),
    (le.MultiLabelSoftMarginLoss(), np.zeros((0, 0))),
])
def test_zero_size_class_axis_is_refused_even_without_rows(loss, target):
    with pytest.raises(ValueError, match="input must have at least one class"):
        loss(np.zeros((0, 0)), target)


@pytest.mark.parametrize("var_shape", [(1, 3), (3,)])
def test_gaussian_nll_negative_var_refused_for_an_empty_input(var_shape):
    with pytest.raises(ValueError, match="var has negative entry"):
        le.GaussianNLLLoss()(np.zeros((0, 3)), np.zeros((0, 3)), -np.ones(var_shape))

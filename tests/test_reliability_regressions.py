"""Regression tests for what the property suite (tests/test_properties.py), the fuzz harness (fuzz/)
and the sanitizer build found, each as the shrunk, explicit case. A case of a defect issue #15
lists and the lead is fixing on main is a strict xfail naming the defect, paired with the entry of
the same name in reliability_cases.KNOWN_DEFECTS (tests/reliability_cases.py): when the fix lands the xfail turns into a failure
(XPASS, strict), and both the mark and the KNOWN_DEFECTS entry are removed."""
import numpy as np
import pytest

import lossengine as le

BUILTIN_NAMES = [cls.name for cls in le.losses.BUILTIN_LOSSES]


@pytest.mark.xfail(strict=True, raises=OverflowError,
                   reason="issue #15 defect: grad_output=10**400 (an int beyond a double) raises OverflowError "
                          "(KNOWN_DEFECTS['grad_output_huge_int'])")
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_grad_output_huge_int_is_value_error(name):
    # Shrunk by hypothesis from test_result_or_clean_error_and_inputs_unmodified, for every loss.
    cls = le.registry.get(name)
    arrays = cls.sample_inputs(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="grad_output"):
        cls().backward(*arrays, grad_output=10 ** 400)


@pytest.mark.xfail(strict=True, reason="issue #15 defect: MSE folds the 1/N scale in after 2 * diff, which "
                                       "overflows (KNOWN_DEFECTS['scale_folded_after_overflow'])")
def test_mse_gradient_near_max_double_is_finite():
    # Shrunk by hypothesis from test_equal_to_torch_where_torch_is_finite_on_extreme_values; torch
    # 2.13 gives 2 * 1e308 / 15 = 1.3333e307 at the first element; lossengine inf.
    x = np.zeros((3, 5))
    x[0, 0] = 1e308
    g = le.MSELoss().backward(x, np.zeros((3, 5)))
    assert g[0, 0] == pytest.approx(1e308 / 15 * 2, rel=1e-12)


@pytest.mark.xfail(strict=True, reason="found by the property suite, not in issue #15's list: CrossEntropy's "
                                       "probability-target kernel (_ce_prob) sums the weighted targets "
                                       "before combining (KNOWN_DEFECTS['ce_prob_target_sum_overflow'])")
def test_cross_entropy_probability_target_sum_overflow_matches_torch():
    # Shrunk from test_equal_to_torch_where_torch_is_finite_on_extreme_values. torch 2.13:
    # loss -sum_c t_c log p_c = 2 * 1e308 * log 2 / 2 = 6.93e307 ('mean' over 2 rows) and a zero
    # input gradient (log_softmax's backward gets g = -t / 2 already scaled); lossengine: t_sum =
    # 2e308 = inf, so the value is inf and the first row's gradient inf.
    x = np.zeros((2, 2))
    t = np.array([[1e308, 1e308], [0.5, 0.5]])
    value, grad = le.CrossEntropyLoss().forward_backward(x, t)
    assert value == pytest.approx(1e308 * np.log(2) + 0.5 * np.log(2), rel=1e-12)
    np.testing.assert_array_equal(grad, np.zeros((2, 2)))

"""Regression tests for what the property suite (tests/test_properties.py), the fuzz harness (fuzz/)
and the sanitizer build found, each as the shrunk, explicit case. A case of a defect issue #15
lists and the lead is fixing on main is a strict xfail naming the defect, paired with the entry of
the same name in reliability_cases.KNOWN_DEFECTS (tests/reliability_cases.py): when the fix lands the xfail turns into a failure
(XPASS, strict), and both the mark and the KNOWN_DEFECTS entry are removed."""
import numpy as np
import pytest

import lossengine as le

BUILTIN_NAMES = [cls.name for cls in le.losses.BUILTIN_LOSSES]


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_grad_output_huge_int_is_value_error(name):
    # Shrunk by hypothesis from test_result_or_clean_error_and_inputs_unmodified (issue #15, fixed
    # on main), for every built-in loss.
    cls = le.registry.get(name)
    arrays = cls.sample_inputs(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="grad_output"):
        cls().backward(*arrays, grad_output=10 ** 400)


def test_mse_gradient_near_max_double_is_finite():
    # Shrunk by hypothesis from test_equal_to_torch_where_torch_is_finite_on_extreme_values (issue
    # #15, fixed on main); torch 2.13 gives 2 * 1e308 / 15 = 1.3333e307 at the first element.
    x = np.zeros((3, 5))
    x[0, 0] = 1e308
    g = le.MSELoss().backward(x, np.zeros((3, 5)))
    assert g[0, 0] == pytest.approx(1e308 / 15 * 2, rel=1e-12)


def test_cross_entropy_probability_target_sum_overflow_matches_torch():
    # Shrunk from test_equal_to_torch_where_torch_is_finite_on_extreme_values (fixed). torch 2.13:
    # loss -sum_c t_c log p_c = 2 * 1e308 * log 2 / 2 = 6.93e307 ('mean' over 2 rows) and a zero
    # input gradient (log_softmax's backward gets g = -t / 2 already scaled); lossengine summed
    # t_sum = 2e308 = inf first, so the value was inf and the first row's gradient inf.
    x = np.zeros((2, 2))
    t = np.array([[1e308, 1e308], [0.5, 0.5]])
    value, grad = le.CrossEntropyLoss().forward_backward(x, t)
    assert value == pytest.approx(1e308 * np.log(2) + 0.5 * np.log(2), rel=1e-12)
    np.testing.assert_array_equal(grad, np.zeros((2, 2)))


def test_cross_entropy_minus_inf_probability_target_on_the_max_logit_is_minus_inf_as_torch():
    # Issue #15. torch 2.13: -sum_c t_c log p_c with t = -inf on the max logit (log p = -log s < 0)
    # is -inf; the gradient is [nan, -inf, -inf] (log_softmax's backward: inf - p * inf). lossengine
    # factored out t_sum * log s - sum_c t_c (x_c - m), where -inf * (x_max - m) = -inf * 0 = NaN.
    x = np.array([[3.0, 1.0, 0.0]])
    t = np.array([[-np.inf, 0.2, 0.3]])
    value, grad = le.CrossEntropyLoss().forward_backward(x, t)
    assert value == -np.inf
    assert np.isnan(grad[0, 0]) and (grad[0, 1:] == -np.inf).all(), grad


def test_cross_entropy_weighted_probability_target_near_max_double_is_finite():
    # Shrunk by hypothesis's "dev" profile from test_equal_to_torch_where_torch_is_finite_on_extreme_values
    # (issue #15). torch 2.13 computes -(log_softmax(x) * t * w) and autograd takes that product
    # apart as ((g / N) w) t: with t = 1e308 and w = 2 every factor stays finite. lossengine formed
    # w t = 2e308 = inf first (value and gradient inf/NaN). Expected values: torch 2.13.
    x = np.zeros((2, 4))
    x[0, 3] = np.log(4.5)                          # p_3 = 0.6: log p_3 * t * w stays below 1.8e308
    t = np.full((2, 4), 0.25)
    t[0] = [0.0, 0.0, 0.0, 1e308]
    value, grad = le.CrossEntropyLoss(weight=np.array([0.25, 0.5, 1.0, 2.0])).forward_backward(x, t)
    assert value == pytest.approx(5.108256237659906e307, rel=1e-12)
    np.testing.assert_allclose(grad[0], [1.3333333333333332e307] * 3 + [-3.999999999999999e307], rtol=1e-12)
    np.testing.assert_allclose(grad[1], [0.0859375, 0.0546875, -0.0078125, -0.1328125], rtol=1e-12)


def test_multi_margin_weighted_terms_near_max_double_sum_finite():
    # Shrunk by hypothesis's "dev" profile from test_equal_to_torch_where_torch_is_finite_on_extreme_values
    # (issue #15). torch 2.13 weights each hinge term before summing (h *= weight[target]): four
    # terms of 1e308 under a weight of 0.25 sum to 1e308, / C = 2e307. lossengine summed the terms
    # first (4e308 = inf), then weighted. Expected values: torch 2.13.
    x = np.zeros((1, 5))
    x[0, 0] = -1e308
    value, grad = le.MultiMarginLoss(weight=np.array([0.25, 1.0, 1.0, 1.0, 1.5])).forward_backward(x, np.array([0]))
    assert value == pytest.approx(2e307, rel=1e-12)
    np.testing.assert_allclose(grad, [[-0.2, 0.05, 0.05, 0.05, 0.05]], rtol=1e-12)


def test_weighted_bce_backward_equals_forward_backward_wherever_the_arrays_lie():
    # Found as a flaky golden test (test_parity_elementwise: "backward() != fused d/dtarget" by one
    # ulp, about 1 run in 5). With three operands GCC guarded the float64 math loop, which writes
    # the input's gradient in place, by merged run-time alias checks that failed for some array
    # addresses; those chunks ran the scalar loop, whose scalar log differs from libmvec's vector
    # log in the last bit. About 2% of calls differed; 500 fresh allocations at shifting addresses.
    rng = np.random.default_rng(3)
    keep = []
    for trial in range(500):
        n = int(rng.integers(5, 200))
        x, y, w = rng.uniform(0.01, 0.99, n), rng.uniform(0, 1, n), rng.uniform(0.5, 2, n)
        keep.append(np.empty(int(rng.integers(1, 40))))      # moves the next allocations
        loss = le.BCELoss(weight=w)
        _, (gx, gt) = loss.forward_backward(x, y, wrt=("input", "target"))
        np.testing.assert_array_equal(loss.backward(x, y, wrt="target"), gt, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(loss.backward(x, y, wrt="input"), gx, err_msg=f"trial {trial}")


def test_multi_margin_p2_gradient_near_max_double_is_finite():
    # Shrunk from test_equal_to_torch_where_torch_is_finite_on_extreme_values. torch 2.13: the
    # value is inf (z^2 overflows) but the gradient 2 (1 + 1e308) / 15 = 1.3333e307 is finite.
    x = np.zeros((3, 5))
    x[0, 1] = 1e308
    g = le.MultiMarginLoss(p=2).backward(x, np.zeros(3, np.int64))
    assert g[0, 1] == pytest.approx(1e308 / 15 * 2, rel=1e-12)
    assert g[0, 0] == pytest.approx(-1e308 / 15 * 2, rel=1e-12)


def test_ctc_gradient_of_a_nan_sample_is_nan_not_uninitialized_memory():
    # Shrunk from test_layouts_bit_identical_to_contiguous (the Fortran copy received other bytes
    # of freed memory than the C-contiguous call). torch 2.13: loss NaN for sample 0 and a NaN
    # gradient on its rows; the other samples are unaffected.
    log_probs, targets, input_lengths, target_lengths = le.CTCLoss.sample_inputs(np.random.default_rng(0), np.float64)
    log_probs = np.array(log_probs)
    log_probs[0, 0, 0] = np.nan
    clean = le.CTCLoss(reduction="none").backward(np.where(np.isnan(log_probs), -1.0, log_probs), targets,
                                                  input_lengths, target_lengths)
    np.random.default_rng(1).standard_normal(10 ** 5)   # churn the heap so np.empty returns used memory
    g = le.CTCLoss(reduction="none").backward(log_probs, targets, input_lengths, target_lengths)
    T0 = int(input_lengths[0])
    assert np.isnan(g[:T0, 0]).all(), g[:T0, 0]
    np.testing.assert_array_equal(g[:, 1:], clean[:, 1:])


@pytest.mark.parametrize("name", ["triplet_margin_loss", "triplet_margin_with_distance_loss"])
def test_triplet_losses_take_0d_arrays_as_torch(name):
    torch = pytest.importorskip("torch")
    a, p, n = np.array(0.12573022), np.array(-0.13210486), np.array(0.64042265)
    expected = getattr(torch.nn.functional, name)(*map(torch.tensor, (a, p, n))).item()
    assert le.registry.get(name)()(a, p, n) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["triplet_margin_loss", "triplet_margin_with_distance_loss"])
def test_triplet_distance_near_max_double_matches_torch(name):
    # Shrunk by hypothesis: torch 2.13 gives ||a - p + eps|| - ||a - n + eps|| + 1 = 9.9999999e307.
    a, p, n = np.array([1e308]), np.array([1e300]), np.array([1e308])
    assert le.registry.get(name)()(a, p, n) == pytest.approx(1e308 - 1e300, rel=1e-12)


def test_numpy_plugin_value_is_bit_identical_for_a_fortran_input():
    # Shrunk from test_layouts_bit_identical_to_contiguous[cauchy_loss]: NumpyElementwiseLoss's work
    # copies kept the caller's memory order, and NumPy's pairwise sum follows memory order, so a
    # Fortran input's 'mean' differed from the C-contiguous one's in the last bit.
    class HalfSquare(le.NumpyElementwiseLoss):
        name = "half_square_layout_probe"
        arguments = ("input", "target")

        def element_loss(self, x, t):
            return 0.5 * (x - t) ** 2

        def element_partials(self, x, t):
            return (x - t,)

    for shape in [(4, 5), (37, 19), (257, 129)]:   # each differed in the last bit before the fix
        rng = np.random.default_rng(0)
        x, t = rng.standard_normal(shape), rng.standard_normal(shape)
        fx, ft = np.asfortranarray(x), np.asfortranarray(t)
        for reduction in ("mean", "sum"):
            crit = HalfSquare(reduction=reduction)
            assert crit(fx, ft).tobytes() == crit(x, t).tobytes(), (shape, reduction)


def test_triplet_cosine_distance_of_rows_whose_norms_overflow_is_the_true_one():
    # Found after the triplet rescaling (not in issue #15's list). torch 2.13's cosine_similarity
    # divides by norms that overflow to inf: cosine 0 (distance 1), and NaN where the dot overflows
    # too; lossengine gave NaN for a = [1e308, 1, 2], n = [3e307, -1, 1]. The cosine is invariant to
    # scaling each row, so a row whose squares overflow is rescaled by its largest |v|: the value is
    # the unscaled problem's and each gradient that problem's divided by the scale. A documented
    # deviation where torch's norms are inf (KNOWN_DEFECTS['triplet_distance_finite_where_torch_overflows']).
    rng = np.random.default_rng(1)
    loss = le.TripletMarginWithDistanceLoss(distance_function="cosine", reduction="sum")
    wrt = ("anchor", "positive", "negative")
    rows = [rng.standard_normal((4, 7)) for _ in range(3)]
    value, grads = loss.forward_backward(*rows, wrt=wrt)
    for scale in (1e160, 1e300):
        big_value, big_grads = loss.forward_backward(*(r * scale for r in rows), wrt=wrt)
        assert big_value == pytest.approx(value, rel=1e-14)
        for g, big in zip(grads, big_grads):
            np.testing.assert_allclose(big * scale, g, rtol=1e-13, atol=1e-15)
    value, grads = loss.forward_backward(np.array([1e308, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]),
                                         np.array([3e307, -1.0, 1.0]), wrt=wrt)
    cos_ap = 1.0 / np.sqrt(14.0)          # a . p / (|a| |p|) with a = 1e308 e_1 to 1e-308 relative
    assert value == pytest.approx(1.0 + (1.0 - cos_ap) - 0.0, rel=1e-14)   # cos(a, n) = 1 to 1e-16
    assert all(np.isfinite(g).all() for g in grads)

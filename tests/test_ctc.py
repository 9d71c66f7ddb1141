"""CTCLoss: parity with torch 2.13 (committed golden values, and live when torch is installed), a
brute-force oracle over every alignment, the true gradient and how it relates to torch's, the
log-space fallback, the validator on batched variants the registered samples do not cover, edge
cases, and the input validation torch does not do."""
import itertools
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
from lossengine.losses.ctc import CTCLoss

GOLDEN = np.load(Path(__file__).parent / "golden" / "ctc.npz")
CASES = sorted({key.split(".")[0] for key in GOLDEN.files})
REDUCTIONS = ("none", "mean", "sum")


def golden(case: str) -> dict:
    return {key.split(".", 1)[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(case + ".")}


def tolerances(dtype) -> dict:
    return dict(rtol=1e-12, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=1e-5, atol=5e-6)


def through_log_softmax(grad, log_probs):
    """log_softmax's backward: a gradient wrt log-probabilities taken to the logits they came from."""
    g = np.asarray(grad, np.float64)
    return g - np.exp(np.asarray(log_probs, np.float64)) * g.sum(-1, keepdims=True)


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def random_batch(rng, T=12, N=5, C=6, S=5, blank=0, dtype=np.float64):
    labels = np.array([c for c in range(C) if c != blank])
    targets = rng.choice(labels, size=(N, S))
    targets[0, 1] = targets[0, 0]
    target_lengths = rng.integers(0, S + 1, size=N)
    target_lengths[0] = S
    input_lengths = rng.integers(S + 1, T + 1, size=N)
    input_lengths[-1] = T
    return log_softmax(rng.standard_normal((T, N, C)) * 2).astype(dtype), targets, input_lengths, target_lengths


def concatenated(targets, target_lengths):
    return np.concatenate([t[:n] for t, n in zip(targets, target_lengths)]).astype(np.int64)


# -- parity with torch: committed golden values ------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES)
def test_matches_torch_golden(case, reduction):
    d = golden(case)
    x = d["x"]
    loss = CTCLoss(blank=int(d["blank"]), reduction=reduction, zero_infinity=bool(d["zero_infinity"]),
                   from_logits=bool(d["from_logits"]))
    grad_output = d["upstream"] if reduction == "none" else 0.7
    value, grad = loss.forward_backward(x, d["targets"], d["input_lengths"], d["target_lengths"],
                                        grad_output=grad_output)
    tol = tolerances(x.dtype)
    assert np.asarray(value).dtype == x.dtype and grad.dtype == x.dtype and grad.shape == x.shape
    np.testing.assert_allclose(value, d[f"value_{reduction}"], **tol)
    assert np.array_equal(np.signbit(value), np.signbit(d[f"value_{reduction}"]))   # torch's -0.0
    expected = d[f"grad_{reduction}"]
    if d["from_logits"]:
        np.testing.assert_allclose(grad, expected, **tol)                 # both wrt the logits
    else:
        # torch's gradient assumes log_softmax; ours is the true one: equal once taken to the logits.
        np.testing.assert_allclose(through_log_softmax(grad, x), through_log_softmax(expected, x), **tol)


def test_golden_file_is_small_and_covers_every_feature():
    assert (Path(__file__).parent / "golden" / "ctc.npz").stat().st_size < 1_000_000
    assert {"padded_f64", "concatenated_f64", "padded_f32", "blank5_f64", "blank2_f64", "logits_f32",
            "padded_zero_infinity_f64", "unbatched_f64", "underflow_f64", "misaligned_f64"} <= set(CASES)


# -- an independent oracle: every alignment enumerated -------------------------------------------
def brute_force(log_probs, target, blank):
    """-log p and its true gradient wrt log_probs (T, C), summing over all C^T paths."""
    T, C = log_probs.shape
    p, dp = 0.0, np.zeros((T, C))
    for path in itertools.product(range(C), repeat=T):
        collapsed = [c for i, c in enumerate(path) if c != blank and (i == 0 or path[i - 1] != c)]
        if collapsed == list(target):
            w = np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
            p += w
            for t, c in enumerate(path):
                dp[t, c] += w
    return -np.log(p), -dp / p


@pytest.mark.parametrize("target, T, blank", [
    ([1, 2], 4, 0), ([1, 1], 3, 0), ([1, 1], 5, 0), ([2, 2, 2], 5, 0), ([], 3, 0), ([0, 2], 4, 1),
    ([1], 1, 0), ([2, 1, 2], 6, 0),
])
def test_matches_brute_force_over_every_alignment(target, T, blank):
    rng = np.random.default_rng(len(target) * 10 + T)
    lp = log_softmax(rng.standard_normal((T, 3)) * 1.5)
    expected_value, expected_grad = brute_force(lp, target, blank)
    loss = CTCLoss(blank=blank, reduction="sum")
    value, grad = loss.forward_backward(lp, np.array(target, np.int64), T, len(target))
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-14)


# -- the gradient: true, and torch's -------------------------------------------------------------
def test_gradient_is_minus_the_occupation_and_differs_from_torchs_by_exp_log_probs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    lp, targets, il, tl = random_batch(rng)
    grad = CTCLoss(reduction="sum").backward(lp, targets, il, tl)
    x = torch.tensor(lp, requires_grad=True)
    torch.nn.functional.ctc_loss(x, torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
                                 reduction="sum").backward()
    live = np.arange(lp.shape[0])[:, None, None] < il[None, :, None]
    # torch's is exp(log_probs) - gamma where ours is -gamma (rows past the input length: 0 in both) ...
    np.testing.assert_allclose(x.grad.numpy(), np.where(live, grad + np.exp(lp), 0.0), atol=1e-13)
    # ... so they disagree as gradients wrt log_probs, and agree through log_softmax's backward.
    assert not np.allclose(x.grad.numpy(), grad, atol=1e-3)
    np.testing.assert_allclose(through_log_softmax(grad, lp), x.grad.numpy(), atol=1e-13)
    # -gamma per row sums to -1 (each step is spent in exactly one state).
    np.testing.assert_allclose(grad.sum(-1), np.where(live[..., 0], -1.0, 0.0), atol=1e-13)


def test_from_logits_is_log_softmax_then_ctc_with_the_gradient_wrt_the_logits():
    rng = np.random.default_rng(4)
    _, targets, il, tl = random_batch(rng)
    logits = rng.standard_normal((12, 5, 6)) * 3 + 1.0
    value, grad = CTCLoss(from_logits=True).forward_backward(logits, targets, il, tl)
    lp = log_softmax(logits)
    value_lp, grad_lp = CTCLoss().forward_backward(lp, targets, il, tl)
    np.testing.assert_allclose(value, value_lp, rtol=1e-13)
    np.testing.assert_allclose(grad, through_log_softmax(grad_lp, lp), atol=1e-14)


# -- the validator on what the registered samples do not cover ----------------------------------
class UnequalTargetLengths(CTCLoss):
    # 'mean' is not the summed loss over one number when target lengths differ (mean_denominator
    # says so); its gradient is tested against 'none' below instead.
    reductions = ("none", "sum")

    @classmethod
    def sample_inputs(cls, rng, dtype):
        return cls._draw(rng, dtype, T=10, N=4, C=5, S=5, target_lengths=np.array([5, 2, 0, 3]))


class ConcatenatedTargets(CTCLoss):
    @classmethod
    def sample_inputs(cls, rng, dtype):
        lp, targets, il, tl = CTCLoss.sample_inputs(rng, dtype)
        return lp, concatenated(targets, tl), il, tl

    @classmethod
    def large_sample_inputs(cls, rng, dtype):
        lp, targets, il, tl = CTCLoss.large_sample_inputs(rng, dtype)
        return lp, concatenated(targets, tl), il, tl


class Unbatched(CTCLoss):
    @classmethod
    def sample_inputs(cls, rng, dtype):
        lp, targets, il, tl = CTCLoss.sample_inputs(rng, dtype)
        return lp[:, 0], targets[0, :tl[0]].copy(), il[0], tl[0]


@pytest.mark.parametrize("variant", [UnequalTargetLengths, ConcatenatedTargets, Unbatched],
                         ids=lambda c: c.__name__)
def test_validator_passes_batched_variants(variant):
    report = le.check(variant)
    assert report.ok, str(report)
    assert any(name.startswith("gradient_vs_finite_differences") for name in report.checks_run)


def test_large_sample_inputs_are_large_enough_to_run_in_parallel():
    from lossengine._threads import PARALLEL_MIN_ELEMENTS
    lp, targets, il, tl = CTCLoss.large_sample_inputs(np.random.default_rng(0), np.float64)
    assert np.sum(il * (2 * tl + 1)) + lp.size >= PARALLEL_MIN_ELEMENTS     # the kernel's work measure
    assert np.isfinite(CTCLoss()(lp, targets, il, tl))


def test_mean_divides_each_sample_by_its_clamped_target_length():
    rng = np.random.default_rng(6)
    lp, targets, il, tl = random_batch(rng, N=6)
    tl[1] = 0
    weights = 1.0 / (len(tl) * np.maximum(tl, 1))
    per_sample = CTCLoss(reduction="none")(lp, targets, il, tl)
    value, grad = CTCLoss(reduction="mean").forward_backward(lp, targets, il, tl, grad_output=0.3)
    np.testing.assert_allclose(value, np.sum(per_sample * weights), rtol=1e-13)
    np.testing.assert_allclose(grad, CTCLoss(reduction="none").backward(lp, targets, il, tl,
                                                                        grad_output=0.3 * weights), rtol=1e-13)
    with pytest.raises(ValueError, match="divides each sample's loss by its own target length"):
        CTCLoss().mean_denominator(lp, targets, il, tl)
    assert CTCLoss().mean_denominator(lp, targets, il, np.full(len(tl), 3)) == 3.0 * len(tl)


# -- the two recursions -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [{}, {"blank": 3}, {"from_logits": True}, {"zero_infinity": True}])
def test_rescaled_and_log_space_recursions_agree(options, dtype):
    rng = np.random.default_rng(7)
    lp, targets, il, tl = random_batch(rng, T=40, N=6, C=7, S=12, blank=options.get("blank", 0), dtype=dtype)
    il[2] = 3                                                   # infeasible
    default = CTCLoss(reduction="none", **options)
    forced = CTCLoss(reduction="none", **options)
    forced._log_space = True
    v1, g1 = default.forward_backward(lp, targets, il, tl)
    v2, g2 = forced.forward_backward(lp, targets, il, tl)
    np.testing.assert_allclose(v1, v2, rtol=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-12 if dtype == np.float64 else 1e-6, atol=1e-13)


def test_long_sequences_stay_exact():
    # T = 2000 steps: p underflows double by far (log p ~ -5000), which rescaling absorbs.
    rng = np.random.default_rng(8)
    lp, targets, il, tl = random_batch(rng, T=2000, N=2, C=10, S=60)
    forced = CTCLoss(reduction="none")
    forced._log_space = True
    value, grad = CTCLoss(reduction="none").forward_backward(lp, targets, il, tl)
    assert np.all(value > 2000)
    np.testing.assert_allclose(value, forced(lp, targets, il, tl), rtol=1e-13)
    np.testing.assert_allclose(grad, forced.backward(lp, targets, il, tl), atol=1e-12)


# -- edge cases ----------------------------------------------------------------------------------
def test_infeasible_and_empty_samples_follow_torch():
    lp = log_softmax(np.random.default_rng(9).standard_normal((5, 4, 4)))
    targets = np.array([[1, 1, 2], [1, 2, 3], [0, 0, 0], [2, 0, 0]])
    il = np.array([3, 5, 0, 0])           # [1, 1, 2] needs 4 steps; input length 0 twice
    tl = np.array([3, 3, 0, 1])
    value, grad = CTCLoss(reduction="none").forward_backward(lp, targets, il, tl)
    assert value[0] == np.inf and np.isfinite(value[1]) and value[3] == np.inf
    assert value[2] == 0.0 and np.signbit(value[2])          # torch: -(log-likelihood 0)
    assert np.all(np.isnan(grad[:3, 0])) and np.all(grad[3:, 0] == 0)   # NaN on t < T_n, as torch
    assert np.all(grad[:, 2:] == 0)                           # input length 0: nothing depends on it
    value, grad = CTCLoss(reduction="none", zero_infinity=True).forward_backward(lp, targets, il, tl)
    np.testing.assert_array_equal(value[[0, 2, 3]], 0.0)
    assert np.all(grad[:, 0] == 0) and np.all(np.isfinite(grad))
    assert CTCLoss(reduction="sum")(lp, targets, il, tl) == np.inf


def test_repeated_labels_need_a_blank_between():
    lp = log_softmax(np.random.default_rng(10).standard_normal((3, 1, 3)))
    loss = CTCLoss(reduction="none")
    assert loss(lp, np.array([[1, 1]]), [2], [2])[0] == np.inf
    assert np.isfinite(loss(lp, np.array([[1, 1]]), [3], [2])[0])
    np.testing.assert_allclose(loss(lp, np.array([[1, 1]]), [3], [2])[0],
                               -(lp[0, 0, 1] + lp[1, 0, 0] + lp[2, 0, 1]), rtol=1e-14)


def test_empty_batch_time_and_single_class():
    empty = np.zeros((6, 0, 4))
    assert CTCLoss(reduction="none")(empty, np.zeros((0, 2), np.int64), [], []).shape == (0,)
    assert CTCLoss(reduction="sum")(empty, np.zeros((0, 2), np.int64), [], []) == 0.0
    assert np.isnan(CTCLoss()(empty, np.zeros((0, 2), np.int64), [], []))
    assert CTCLoss().backward(empty, np.zeros(0, np.int64), [], []).shape == (6, 0, 4)
    no_time = np.zeros((0, 2, 4))
    value, grad = CTCLoss(reduction="none").forward_backward(no_time, np.array([[1], [1]]), [0, 0], [0, 1])
    np.testing.assert_array_equal(value, [0.0, np.inf])
    assert grad.shape == (0, 2, 4)
    lp = np.log(np.full((4, 2, 1), 1.0))         # only the blank: every target is empty
    np.testing.assert_allclose(CTCLoss(reduction="none")(lp - 0.5, np.zeros((2, 0), np.int64), [4, 2], [0, 0]),
                               [2.0, 1.0], rtol=1e-15)


def test_unbatched_scalars_lists_and_functional():
    rng = np.random.default_rng(11)
    lp, targets, il, tl = random_batch(rng)
    value = CTCLoss(reduction="none")(lp[:, 0], targets[0], int(il[0]), int(tl[0]))
    assert isinstance(value, np.ndarray) and value.shape == ()
    batched = CTCLoss(reduction="none")(lp, targets, il, tl)
    assert value == batched[0]
    assert CTCLoss(reduction="none")(lp[:, 0], targets[:1], [il[0]], (tl[0],)) == batched[0]
    assert CTCLoss().backward(lp[:, 0], targets[0], il[0], tl[0]).shape == lp[:, 0].shape
    for reduction in REDUCTIONS:
        np.testing.assert_array_equal(
            le.functional.ctc_loss(lp, targets.tolist(), tuple(il), list(tl), blank=0, reduction=reduction),
            CTCLoss(reduction=reduction)(lp, targets, il, tl))
    assert le.registry.get("ctc_loss") is le.CTCLoss


def test_padding_is_never_read():
    rng = np.random.default_rng(12)
    lp, targets, il, tl = random_batch(rng)
    tl[1] = 2
    other = targets.copy()
    other[1, 2:] = [-7, 99, 0]
    np.testing.assert_array_equal(CTCLoss(reduction="none")(lp, targets, il, tl),
                                  CTCLoss(reduction="none")(lp, other, il, tl))


# -- validation: ValueError / IndexError / TypeError naming the argument and the sample ----------
LP = log_softmax(np.random.default_rng(13).standard_normal((6, 3, 5)))
TARGETS = np.array([[1, 2, 3], [2, 2, 4], [1, 0, 0]])
IL = np.array([6, 6, 4])
TL = np.array([3, 3, 1])


def _with(**changes):
    args = dict(log_probs=LP, targets=TARGETS, input_lengths=IL, target_lengths=TL)
    args.update(changes)
    return tuple(args.values())


def _set(a, index, value):
    a = np.array(a, copy=True)
    a[index] = value
    return a


@pytest.mark.parametrize("args, error, match", [
    (_with(targets=_set(TARGETS, (1, 2), 5)), IndexError, r"targets\[1, 2\] = 5 is out of range \(sample 1\): labels must lie in \[0, 5\)"),
    (_with(targets=_set(TARGETS, (2, 0), -1)), IndexError, r"targets\[2, 0\] = -1 is out of range \(sample 2\)"),
    (_with(targets=_set(TARGETS, (1, 0), 0)), ValueError, r"targets\[1, 0\] = 0 is the blank label \(sample 1\)"),
    (_with(targets=np.array([1, 2, 3, 2, 2, 7, 1])), IndexError, r"targets\[5\] \(sample 1's label 2\) = 7 is out of range"),
    (_with(targets=np.array([1, 2, 3, 2, 2, 4])), ValueError, r"target_lengths\[:3\] sum to 7, more than the 6 labels of the 1-D \(concatenated\) targets \(sample 2\)"),
    (_with(targets=np.array([1, 2, 3, 2, 2, 4, 1, 1])), ValueError, r"target_lengths sum to 7, but the 1-D \(concatenated\) targets hold 8"),
    (_with(target_lengths=[3, 9, 1], targets=np.arange(1, 9) % 4 + 1), ValueError, r"target_lengths\[:2\] sum to 12, more than the 8 labels"),
    (_with(input_lengths=[6, -1, 4]), ValueError, r"input_lengths\[1\] = -1 is negative \(sample 1\)"),
    (_with(input_lengths=[6, 6, 7]), ValueError, r"input_lengths\[2\] = 7 exceeds the 6 time steps of log_probs \(sample 2\)"),
    (_with(target_lengths=[3, -2, 1]), ValueError, r"target_lengths\[1\] = -2 is negative \(sample 1\)"),
    (_with(target_lengths=[3, 4, 1]), ValueError, r"target_lengths\[1\] = 4 exceeds the padded targets' length 3 \(sample 1\)"),
    (_with(input_lengths=[6, 6]), ValueError, r"input_lengths must have shape \(3,\)"),
    (_with(target_lengths=[[3, 3, 1]]), ValueError, r"target_lengths must have shape \(3,\)"),
    (_with(targets=TARGETS[:2]), ValueError, r"padded targets must have one row per sample: shape \(3, S\), got \(2, 3\)"),
    (_with(targets=TARGETS[None]), ValueError, r"targets must be padded \(N, S\) or concatenated 1-D"),
    (_with(targets=TARGETS.astype(np.float64)), TypeError, r"targets must hold integers, got dtype float64"),
    (_with(input_lengths=np.array([6.0, 6.0, 4.0])), TypeError, r"input_lengths must hold integers"),
    (_with(target_lengths=np.array([True, True, False])), TypeError, r"target_lengths must hold integers, got dtype bool"),
    (_with(log_probs=LP.astype(np.int64)), TypeError, r"log_probs must be a floating-point array"),
    (_with(log_probs=LP[0, 0]), ValueError, r"log_probs must be \(T, N, C\), or \(T, C\) for one unbatched sample"),
    (_with(input_lengths=np.array([6, 6, 2**64 - 1], np.uint64)), ValueError, r"input_lengths\[2\] = 18446744073709551615 does not fit"),
])
def test_bad_inputs_are_refused_naming_the_argument_and_sample(args, error, match):
    with pytest.raises(error, match=match):
        CTCLoss()(*args)
    with pytest.raises(error, match=match):
        CTCLoss(reduction="none").forward_backward(*args)


def test_bad_options_and_blank_out_of_range():
    with pytest.raises(ValueError, match=r"blank = 5 must be a class index in \[0, 5\)"):
        CTCLoss(blank=5)(*_with(targets=TARGETS % 4 + 1))
    with pytest.raises(ValueError, match="blank must be a non-negative class index, got -1"):
        CTCLoss(blank=-1)
    with pytest.raises(TypeError, match="blank must be an integer class index, got bool"):
        CTCLoss(blank=True)
    with pytest.raises(TypeError, match="zero_infinity must be a bool, got int"):
        CTCLoss(zero_infinity=1)
    with pytest.raises(TypeError, match="from_logits must be a bool"):
        CTCLoss(from_logits="yes")
    with pytest.raises(ValueError, match="reduction must be one of"):
        CTCLoss(reduction="batchmean")
    with pytest.raises(ValueError, match="wrt: 'targets' is not differentiable for CTCLoss"):
        CTCLoss().backward(*_with(), wrt="targets")
    with pytest.raises(ValueError, match=r"input_lengths must have shape \(\) or \(1,\) for an unbatched"):
        CTCLoss()(LP[:, 0], TARGETS[0], [6, 6], 3)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_bad_label_deep_in_a_large_batch_is_found_before_anything_runs(threads):
    rng = np.random.default_rng(14)
    lp, targets, il, tl = random_batch(rng, T=50, N=64, C=6, S=8)
    targets[60, 3] = 6
    tl[60] = 8
    with le.threads(threads), pytest.raises(IndexError, match=r"targets\[60, 3\] = 6 is out of range \(sample 60\)"):
        CTCLoss().forward_backward(lp, targets, il, tl)


# -- live torch, random configurations -----------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_matches_live_torch(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(100 + seed)
    dtype = (np.float64, np.float32)[seed % 2]
    C = int(rng.integers(2, 9))
    blank = int(rng.integers(0, C)) if seed % 3 else 0
    T, N, S = int(rng.integers(1, 30)), int(rng.integers(1, 7)), int(rng.integers(0, 8))
    labels = [c for c in range(C) if c != blank]
    targets = rng.choice(labels, size=(N, S)) if S else np.zeros((N, 0), np.int64)
    tl = rng.integers(0, S + 1, size=N)
    il = rng.integers(0, T + 1, size=N)
    lp = log_softmax(rng.standard_normal((T, N, C)) * 2).astype(dtype)
    if seed % 4 == 1:
        targets = concatenated(targets, tl)
    zero_infinity = bool(seed % 5 == 2)
    for reduction in REDUCTIONS:
        value, grad = CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity).forward_backward(
            lp, targets, il, tl, grad_output=0.9)
        x = torch.tensor(lp, requires_grad=True)
        expected = torch.nn.functional.ctc_loss(x, torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
                                                blank=blank, reduction=reduction, zero_infinity=zero_infinity)
        (expected.sum() * 0.9).backward()
        tol = tolerances(dtype)
        np.testing.assert_allclose(value, expected.detach().numpy(), **tol)
        np.testing.assert_allclose(through_log_softmax(grad, lp), through_log_softmax(x.grad.numpy(), lp), **tol)


# -- from_logits: each frame shifted by its max before the log-sum-exp ------------------------------
def _ctc_case():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 2, 5))
    return logits, np.array([[1, 2], [3, 3]]), np.array([6, 6]), np.array([2, 2])


@pytest.mark.parametrize("offset", [1e8, 1e16, 1e300, -1e300])
def test_ctc_from_logits_is_exact_at_any_offset(offset):
    logits, targets, input_lengths, target_lengths = _ctc_case()
    shifted = logits + offset               # the input as rounded; its rows' differences are exact
    exact = shifted - shifted.max(axis=-1, keepdims=True)
    loss = le.CTCLoss(from_logits=True, reduction="none")
    value, grad = loss.forward_backward(shifted, targets, input_lengths, target_lengths)
    expected_value, expected_grad = loss.forward_backward(exact, targets, input_lengths, target_lengths)
    # The old fold of max + log-sum-exp into one shift: 1e-9 relative at 1e8, 15% at 1e16, a negative
    # loss at 1e300.
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(grad, expected_grad)
    assert np.all(value > 0)


def test_ctc_from_logits_matches_torch_at_a_large_offset():
    torch = pytest.importorskip("torch")
    logits, targets, input_lengths, target_lengths = _ctc_case()
    shifted = logits + 1e16
    x = torch.tensor(shifted, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.ctc_loss(x.log_softmax(-1), torch.tensor(targets), torch.tensor(input_lengths),
                                            torch.tensor(target_lengths), reduction="sum")
    expected.backward()
    value, grad = le.CTCLoss(from_logits=True, reduction="sum").forward_backward(
        shifted, targets, input_lengths, target_lengths)
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-10, atol=1e-14)


# -- a NaN sample -----------------------------------------------------------------------------------
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

"""The classification family against torch (live when installed, else the committed golden values),
plus its error contract, input layouts and thread determinism."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

import _tolerance as tolerance
import lossengine as le

GOLDEN = Path(__file__).parent / "golden" / "classification.npz"
CLASSES = {"CrossEntropyLoss": le.CrossEntropyLoss, "NLLLoss": le.NLLLoss,
           "MultiMarginLoss": le.MultiMarginLoss, "MultiLabelMarginLoss": le.MultiLabelMarginLoss,
           "MultiLabelSoftMarginLoss": le.MultiLabelSoftMarginLoss}


def assert_close(actual, expected, dtype, what=""):
    # tests/_tolerance.py's rule. Elements that cancel to ~0 (p_t - 1 with p_t ~ 1) carry the
    # rounding of the row's larger terms, the array's largest element at most (no floor of 1).
    expected = np.asarray(expected)
    finite = np.abs(expected[np.isfinite(expected)].astype(np.float64))
    tolerance.assert_close(actual, expected, tolerance.RTOL[np.dtype(dtype)], what, float(np.max(finite, initial=0.0)))


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_reference(torch, fn, x, target, options, grad_output, target_grad):
    kw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in options.items()}
    X = torch.tensor(x, requires_grad=True)
    T = torch.tensor(target, requires_grad=target_grad)
    value = fn(X, T, **kw)
    value.backward(torch.tensor(np.asarray(grad_output, dtype=x.dtype)).expand(value.shape))
    return value.detach().numpy(), X.grad.numpy(), (T.grad.numpy() if target_grad else None)


def check_against(loss, x, target, grad_output, expected, dtype, target_grad):
    value, grad_input, grad_target = expected
    if target_grad:
        got_value, (gx, gt) = loss.forward_backward(x, target, grad_output=grad_output, wrt=("input", "target"))
        assert_close(gt, grad_target, dtype, "gradient wrt target")
        assert gt.dtype == dtype
    else:
        got_value, gx = loss.forward_backward(x, target, grad_output=grad_output)
    assert_close(got_value, value, dtype, "value")
    assert_close(gx, grad_input, dtype, "gradient wrt input")
    assert np.asarray(got_value).dtype == dtype and gx.dtype == dtype
    # The fused pass and the separate calls agree (the torch comparison above is the oracle).
    assert_close(loss(x, target), value, dtype, "forward")
    assert_close(loss.backward(x, target, grad_output=grad_output), grad_input, dtype, "backward")


# -- live torch parity ----------------------------------------------------------------------------
CE_SHAPES = [(7,), (6, 5), (4, 5, 3), (3, 4, 2, 3)]


# A single position (a (C,) input) is either ignored or not: "ignored" (half the positions) needs more.
CE_TARGETS = [(shape, kind) for shape in CE_SHAPES for kind in ("index", "ignored", "probabilities")
              if not (kind == "ignored" and len(shape) == 1)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, target_kind", CE_TARGETS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_torch(torch, dtype, shape, reduction, label_smoothing, weighted, target_kind):
    rng = np.random.default_rng(1)
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    options = {"reduction": reduction, "label_smoothing": label_smoothing}
    if weighted:
        options["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    if target_kind == "probabilities":
        target = np.moveaxis(rng.dirichlet(np.ones(C), size=tshape), -1, 0 if len(shape) == 1 else 1).astype(dtype)
    else:
        target = rng.integers(0, C, size=tshape)
        if target_kind == "ignored":
            options["ignore_index"] = C + 3       # outside [0, C): torch allows it
            target.flat[::2] = C + 3
    grad_output = 0.7 if reduction != "none" else rng.uniform(0.5, 1.5, tshape).astype(dtype)
    expected = torch_reference(torch, torch.nn.functional.cross_entropy, x, target, options, grad_output,
                               target_kind == "probabilities")
    check_against(le.CrossEntropyLoss(**options), x, target, grad_output, expected, dtype,
                  target_kind == "probabilities")
    assert_close(le.functional.cross_entropy(x, target, **options), expected[0], dtype, "functional")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_nll_matches_torch(torch, dtype, shape, reduction, weighted, ignore):
    rng = np.random.default_rng(2)
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    x = rng.standard_normal(shape).astype(dtype)
    target = rng.integers(0, C, size=tshape)
    options = {"reduction": reduction}
    if weighted:
        options["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    if ignore:
        options["ignore_index"] = 1
        target.flat[::2] = 1
    grad_output = 1.3 if reduction != "none" else rng.uniform(0.5, 1.5, tshape).astype(dtype)
    expected = torch_reference(torch, torch.nn.functional.nll_loss, x, target, options, grad_output, False)
    check_against(le.NLLLoss(**options), x, target, grad_output, expected, dtype, False)
    assert_close(le.functional.nll_loss(x, target, **options), expected[0], dtype, "functional")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(), (5,), (6, 5)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 1.0, False), (1, 0.4, True), (2, 2.5, True)])
def test_multi_margin_matches_torch(torch, dtype, shape, reduction, p, margin, weighted):
    rng = np.random.default_rng(3)
    C = shape[-1] if shape else 1
    x = rng.standard_normal(shape).astype(dtype)
    target = rng.integers(0, C, size=shape[:1] if len(shape) == 2 else ())
    options = {"p": p, "margin": margin, "reduction": reduction}
    if weighted:
        options["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    grad_output = 0.9 if reduction != "none" else rng.uniform(0.5, 1.5, target.shape).astype(dtype)
    expected = torch_reference(torch, torch.nn.functional.multi_margin_loss, x, target, options, grad_output, False)
    check_against(le.MultiMarginLoss(**options), x, target, grad_output, expected, dtype, False)
    assert_close(le.functional.multi_margin_loss(x, target, **options), expected[0], dtype, "functional")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5,), (8, 6)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multilabel_margin_matches_torch(torch, dtype, shape, reduction):
    rng = np.random.default_rng(4)
    C = shape[-1]
    x = rng.standard_normal(shape).astype(dtype)
    target = np.full(shape, -1)
    for k, row in enumerate(target.reshape(-1, C)):
        n = k % C
        row[:n] = rng.choice(C, size=n, replace=False)
        row[n + 1:] = rng.integers(0, C, size=C - n - 1)    # after the first -1: listed, not used
    if len(shape) == 2:
        target[1, :4] = [2, 2, 0, -1]                         # a repeated class counts twice
    grad_output = 0.8 if reduction != "none" else rng.uniform(0.5, 1.5, shape[:-1]).astype(dtype)
    options = {"reduction": reduction}
    expected = torch_reference(torch, torch.nn.functional.multilabel_margin_loss, x, target, options,
                               grad_output, False)
    check_against(le.MultiLabelMarginLoss(**options), x, target, grad_output, expected, dtype, False)
    assert_close(le.functional.multilabel_margin_loss(x, target, **options), expected[0], dtype, "functional")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5,), (6, 4), (2, 3, 4)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weight_kind", [None, "classes", "rows"])
def test_multilabel_soft_margin_matches_torch(torch, dtype, shape, reduction, weight_kind):
    rng = np.random.default_rng(5)
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    y = rng.uniform(0.0, 1.0, shape).astype(dtype)
    options = {"reduction": reduction}
    if weight_kind == "classes":
        options["weight"] = rng.uniform(0.2, 2.0, shape[-1]).astype(dtype)
    elif weight_kind == "rows":
        options["weight"] = rng.uniform(0.2, 2.0, shape[:1] + (1,) * (len(shape) - 1)).astype(dtype)
    grad_output = 0.6 if reduction != "none" else rng.uniform(0.5, 1.5, shape[:-1]).astype(dtype)
    expected = torch_reference(torch, torch.nn.functional.multilabel_soft_margin_loss, x, y, options,
                               grad_output, True)
    check_against(le.MultiLabelSoftMarginLoss(**options), x, y, grad_output, expected, dtype, True)
    assert_close(le.functional.multilabel_soft_margin_loss(x, y, **options), expected[0], dtype, "functional")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_rows_match_torch(torch, dtype):
    # Enough positions for several blocks and both threads, long rows (vector loop + tail), and a
    # K-dimensional input whose class axis is strided.
    rng = np.random.default_rng(6)
    for shape in [(300, 1003), (9, 37, 41)]:
        x = (4 * rng.standard_normal(shape)).astype(dtype)
        target = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
        for ls in (0.0, 0.1):
            options = {"label_smoothing": ls}
            expected = torch_reference(torch, torch.nn.functional.cross_entropy, x, target, options, 1.0, False)
            for n in (1, 2):
                with le.threads(n):
                    check_against(le.CrossEntropyLoss(**options), x, target, 1.0, expected, dtype, False)


def test_all_ignored_mean_is_nan_with_zero_gradient(torch):
    x = np.random.default_rng(7).standard_normal((3, 4))
    target = np.array([5, 5, 5])
    for cls, fn, opts in [(le.CrossEntropyLoss, torch.nn.functional.cross_entropy, {"label_smoothing": 0.2}),
                          (le.NLLLoss, torch.nn.functional.nll_loss, {})]:
        expected = torch_reference(torch, fn, x, target, dict(opts, ignore_index=5), 1.0, False)
        assert np.isnan(expected[0]) and not expected[1].any()
        value, grad = cls(ignore_index=5, **opts).forward_backward(x, target)
        assert np.isnan(value)
        np.testing.assert_array_equal(grad, expected[1])


def test_empty_batch_mean_is_nan(torch):
    x, target = np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(target)).item()
    assert np.isnan(expected)
    assert np.isnan(le.CrossEntropyLoss()(x, target))
    assert le.CrossEntropyLoss(reduction="sum")(x, target) == 0.0
    assert le.CrossEntropyLoss().backward(x, target).shape == (0, 4)


# -- golden values (no torch needed) -------------------------------------------------------------
def _golden_cases():
    data = np.load(GOLDEN)
    manifest = json.loads(str(data["manifest"]))
    assert manifest["cases"], "the golden file holds no cases"
    return data, manifest["cases"]


def test_golden_values():
    data, cases = _golden_cases()
    kinds = set()
    for i, case in enumerate(cases):
        dtype = np.dtype(case["dtype"]).type
        options = dict(case["options"])
        if case["weighted"]:
            options["weight"] = data[f"{i}.weight"]
        loss = CLASSES[case["loss"]](**options)
        x, target = data[f"{i}.input"], data[f"{i}.target"]
        target_grad = f"{i}.grad_target" in data
        expected = (data[f"{i}.value"], data[f"{i}.grad_input"],
                    data[f"{i}.grad_target"] if target_grad else None)
        grad_output = data[f"{i}.grad_output"]
        if grad_output.ndim == 0:
            grad_output = float(grad_output)
        try:
            check_against(loss, x, target, grad_output, expected, dtype, target_grad)
        except AssertionError as exc:
            raise AssertionError(f"golden case {i} {case}: {exc}") from None
        kinds.add(case["loss"])
    assert kinds == set(CLASSES)


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("cls,opts", [(le.CrossEntropyLoss, {}), (le.NLLLoss, {}),
                                      (le.CrossEntropyLoss, {"label_smoothing": 0.1, "weight": np.ones(4)})])
def test_out_of_range_class_index_is_an_index_error(n_threads, cls, opts):
    x = np.zeros((50000, 4), np.float32)        # big enough for the threaded path
    for bad_at, bad in [(40000, 4), (3, -1), (49999, 99)]:
        target = np.zeros(50000, np.int64)
        target[bad_at] = bad
        target[bad_at + 1:] = 7                  # later bad values must not be the one reported
        with le.threads(n_threads), pytest.raises(IndexError, match=rf"Target {bad} .*position \({bad_at},\)"):
            cls(**opts).forward_backward(x, target)


def test_index_errors_for_other_shapes_and_losses():
    with pytest.raises(IndexError, match=r"Target 3 .*position \(1, 2\)"):
        le.CrossEntropyLoss()(np.zeros((2, 3, 4)), np.array([[0, 1, 2, 0], [0, 0, 3, 0]]))
    with pytest.raises(IndexError, match=r"Target 5 .*position \(\)"):
        le.NLLLoss()(np.zeros(4), 5)
    with pytest.raises(IndexError, match=r"Target 4 .*position \(1,\)"):
        le.MultiMarginLoss()(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(IndexError, match=r"Target -100 "):
        le.MultiMarginLoss()(np.zeros((2, 4)), np.array([0, -100]))   # no ignore_index here
    # torch checks every entry of a multilabel target, also after the first -1.
    with pytest.raises(IndexError, match=r"Target 9 .*position \(0, 2\)"):
        le.MultiLabelMarginLoss()(np.zeros((1, 4)), np.array([[1, -1, 9, 2]]))
    with pytest.raises(IndexError, match=r"Target -2 .*position \(0, 1\)"):
        le.MultiLabelMarginLoss()(np.zeros((1, 4)), np.array([[1, -2, 0, 2]]))


def test_type_errors_name_the_argument():
    x = np.zeros((3, 4))
    with pytest.raises(TypeError, match="target .*integer class indices"):
        le.NLLLoss()(x, np.zeros(3))
    with pytest.raises(TypeError, match="target .*probabilities of the input's shape"):
        le.CrossEntropyLoss()(x, np.zeros(3))
    with pytest.raises(TypeError, match="target has the input's shape .*float"):
        le.CrossEntropyLoss()(x, np.zeros((3, 4), np.int64))
    with pytest.raises(TypeError, match="input must be a floating-point array"):
        le.CrossEntropyLoss()(np.zeros((3, 4), np.int64), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="target must be an array of integer"):
        le.MultiMarginLoss()(x, np.zeros(3, bool))
    with pytest.raises(TypeError, match="target must be a floating-point array"):
        le.MultiLabelSoftMarginLoss()(x, np.zeros((3, 4), np.int64))
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        le.CrossEntropyLoss(label_smoothing="0.1")
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        le.CrossEntropyLoss(ignore_index=1.5)
    with pytest.raises(TypeError, match="CrossEntropyLoss takes 2 arrays"):
        le.CrossEntropyLoss().forward(x)


def test_value_errors():
    x = np.zeros((3, 4))
    t = np.zeros(3, np.int64)
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        le.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="p must be one of 1, 2, got 3"):
        le.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="weight should be defined either for all 4 classes"):
        le.CrossEntropyLoss(weight=np.ones(3))(x, t)
    with pytest.raises(ValueError, match=r"takes class-index targets of shape \(3,\)"):
        le.CrossEntropyLoss()(x, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        le.NLLLoss()(np.float64(1.0), 0)
    with pytest.raises(ValueError, match="vector .* or a matrix"):
        le.MultiMarginLoss()(np.zeros((2, 3, 4)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="ignore_index is not supported"):
        le.CrossEntropyLoss(ignore_index=0)(x, np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="'target' is not differentiable .* class indices"):
        le.CrossEntropyLoss().backward(x, t, wrt="target")
    with pytest.raises(ValueError, match="'target' is not differentiable"):
        le.NLLLoss().backward(x, t, wrt=("input", "target"))
    with pytest.raises(ValueError, match="'weights' is not an argument"):
        le.CrossEntropyLoss().backward(x, t, wrt="weights")
    with pytest.raises(ValueError, match="grad_output must be a scalar"):
        le.CrossEntropyLoss().backward(x, t, grad_output=np.ones(3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        le.NLLLoss(reduction="batchmean")


def test_nll_loss_2d_is_a_warning_alias():
    with pytest.warns(FutureWarning, match="NLLLoss2d is deprecated"):
        loss = le.NLLLoss2d(reduction="sum")
    x = np.log(np.full((2, 3, 2, 2), 1 / 3))
    target = np.zeros((2, 2, 2), np.int64)
    # -log(1/3) per position, 8 positions: math, not our own code.
    np.testing.assert_allclose(loss(x, target), 8 * np.log(3), rtol=1e-14)
    assert "NLLLoss2d" not in [type(c).__name__ for c in map(le.registry.get, le.registry.names())]


# -- layouts and inputs --------------------------------------------------------------------------
def _layouts(x):
    yield "fortran", np.asfortranarray(x)
    yield "strided", np.repeat(x, 2, axis=-1)[..., ::2]
    ro = x.copy()
    ro.flags.writeable = False
    yield "read-only", ro
    yield "big-endian", x.astype(x.dtype.newbyteorder(">"))
    yield "list", x.tolist()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layouts_give_the_same_results(dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 6)).astype(dtype)
    idx = rng.integers(0, 6, 5)
    probs = rng.dirichlet(np.ones(6), 5).astype(dtype)
    # Oracle: the log-softmax written out in NumPy, in float64.
    x64 = x.astype(np.float64)
    logp = x64 - x64.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    expected_idx = -logp[np.arange(5), idx].mean()
    expected_prob = -(probs * logp).sum(1).mean()
    soft = np.exp(logp)
    onehot = np.eye(6)[idx]
    for label, xl in _layouts(x):
        v, g = le.CrossEntropyLoss().forward_backward(xl, idx)
        assert_close(v, expected_idx, dtype, label)
        assert_close(g, (soft - onehot) / 5, dtype, label)
        # A list carries no dtype: NumPy reads it as float64.
        assert g.dtype == (np.float64 if label == "list" else dtype) and g.shape == x.shape
        for tl_label, tl in _layouts(probs):
            v = le.CrossEntropyLoss()(xl, tl)
            assert_close(v, expected_prob, dtype, f"{label}/{tl_label}")
    for label, il in [("int8", idx.astype(np.int8)), ("uint16", idx.astype(np.uint16)),
                      ("big-endian", idx.astype(">i8")), ("strided", np.repeat(idx, 2)[::2]),
                      ("list", idx.tolist())]:
        assert_close(le.NLLLoss()(logp, il), expected_idx, np.float64, label)
    before = (x.copy(), idx.copy())
    le.CrossEntropyLoss(label_smoothing=0.1).forward_backward(x, idx)
    assert np.array_equal(x, before[0]) and np.array_equal(idx, before[1])


def test_zero_dim_and_one_dim_inputs():
    x = np.array([1.0, 2.0, 0.5])
    lse = np.log(np.exp(x).sum())
    v = le.CrossEntropyLoss(reduction="none")(x, 1)
    assert isinstance(v, np.ndarray) and v.shape == ()
    np.testing.assert_allclose(v, lse - 2.0, rtol=1e-14)
    # multi_margin on a 0-d input: one class, nothing to compare with, loss 0 (torch too).
    assert le.MultiMarginLoss()(np.float64(3.0), 0) == 0.0
    assert le.MultiMarginLoss(reduction="none")(x, np.array([1])).shape == (1,)


def test_grad_output_array_for_none():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 3, 2))
    t = rng.integers(0, 3, (4, 2))
    loss = le.CrossEntropyLoss(reduction="none")
    base = loss.backward(x, t, grad_output=1.0)
    go = rng.uniform(0.5, 2.0, (4, 2))
    # linearity: each position's gradient scales with its own grad_output.
    np.testing.assert_allclose(loss.backward(x, t, grad_output=go), base * go[:, None, :], rtol=1e-14)
    np.testing.assert_allclose(loss.backward(x, t, grad_output=go[:, :1]), base * go[:, None, :1], rtol=1e-14)


# -- threads -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_bits(dtype):
    rng = np.random.default_rng(10)
    cases = [
        (le.CrossEntropyLoss(label_smoothing=0.1, weight=rng.uniform(0.5, 1.5, 100)),
         rng.standard_normal((20000, 100)), rng.integers(0, 100, 20000)),
        (le.CrossEntropyLoss(), rng.standard_normal((64, 10, 300)), rng.dirichlet(np.ones(10), (64, 300)).transpose(0, 2, 1)),
        (le.NLLLoss(ignore_index=3), rng.standard_normal((50000, 10)), rng.integers(0, 10, 50000)),
        (le.MultiMarginLoss(p=2), rng.standard_normal((20000, 20)), rng.integers(0, 20, 20000)),
        (le.MultiLabelSoftMarginLoss(), rng.standard_normal((20000, 20)), rng.uniform(0, 1, (20000, 20))),
    ]
    for loss, x, t in cases:
        x = x.astype(dtype)
        if t.dtype.kind == "f":
            t = np.ascontiguousarray(t, dtype)
        runs = []
        for n in (1, 2, 1):
            with le.threads(n):
                v, g = loss.forward_backward(x, t)
            runs.append((np.asarray(v).tobytes(), g.tobytes()))
        assert runs[0] == runs[1] == runs[2], type(loss).__name__
        assert np.isfinite(v)


def test_concurrent_calls_from_python_threads():
    import concurrent.futures
    rng = np.random.default_rng(11)
    inputs = [(rng.standard_normal((3000, 50)), rng.integers(0, 50, 3000)) for _ in range(8)]
    loss = le.CrossEntropyLoss(label_smoothing=0.05)
    expected = [loss.forward_backward(x, t) for x, t in inputs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda xt: loss.forward_backward(*xt), inputs * 3))
    for (v, g), (ev, eg) in zip(got, itertools.cycle(expected)):
        assert v == ev and np.array_equal(g, eg)


# -- extreme and non-finite values, as torch 2.13 computes them -------------------------------------
def test_multi_margin_weight_near_the_float_maximum_stays_finite():
    # z = margin - x_t + x_j = 0.1 on both other classes; p = 2: d/dx_j = 2 z (g / C) w[t]
    x, t = np.array([[0.95, 0.05, 0.05]]), np.array([0])
    grad = le.MultiMarginLoss(p=2, weight=np.array([1e308, 1.0, 1.0])).backward(x, t, grad_output=10.0)
    z = 1.0 - 0.95 + 0.05
    np.testing.assert_allclose(grad[0, 1:], 2 * z * (10.0 / 3) * 1e308, rtol=1e-12)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("unused_weight", [np.nan, math.inf, 1e308])
def test_cross_entropy_unused_class_weight_does_not_leak(unused_weight):
    x, t = np.zeros((2, 3)), np.array([2, 2])
    weight = np.array([unused_weight, 1e308 if unused_weight == 1e308 else 1.0, 1.0])
    value, grad = le.CrossEntropyLoss(weight=weight).forward_backward(x, t)
    assert value == pytest.approx(math.log(3.0), rel=1e-15)
    np.testing.assert_allclose(grad, [[1 / 6, 1 / 6, -1 / 3]] * 2, rtol=1e-14)


def test_multi_margin_nan_weight_of_unused_class_does_not_leak():
    x, t = np.array([[0.0, 0.0, 5.0]] * 2), np.array([2, 2])
    grad = le.MultiMarginLoss(weight=np.array([np.nan, 1.0, 1.0])).backward(x, t)
    np.testing.assert_array_equal(grad, np.zeros((2, 3)))


@pytest.mark.parametrize("loss, x, t", [
    (le.MultiMarginLoss(), np.array([[5.0, 0.2, 0.3]]), np.array([0])),
    (le.MultiLabelMarginLoss(), np.array([[5.0, 0.2, 0.3]]), np.array([[0, -1, 0]])),
])
def test_margin_losses_nan_grad_output_reaches_every_class(loss, x, t):
    # torch computes the row's gradient for grad_output 1 and multiplies by grad_output last
    assert np.isnan(loss.backward(x, t, grad_output=np.nan)).all()


@pytest.mark.parametrize("x, t", [([[0.1, 0.2]], [[-np.inf, 1.0]]), ([[3.0, 1.0, 0.0]], [[-np.inf, 0.2, 0.3]])],
                         ids=["two classes", "on the max logit"])
def test_cross_entropy_minus_inf_probability_target_is_minus_inf_as_torch(x, t):
    # torch 2.13: -sum_c t_c log p_c with t = -inf on a class whose log p < 0 is -inf; the gradient is
    # NaN there and -inf on the other classes (log_softmax's backward: inf - p * inf). On the max logit,
    # lossengine once factored out t_sum * log s - sum_c t_c (x_c - m): -inf * (x_max - m) = -inf * 0 = NaN.
    value, grad = le.CrossEntropyLoss().forward_backward(np.array(x), np.array(t))
    assert value == -np.inf
    assert np.isnan(grad[0, 0]) and (grad[0, 1:] == -np.inf).all(), grad


def test_cross_entropy_probability_target_sum_overflow_matches_torch():
    # Shrunk from test_equal_to_torch_where_torch_is_finite_on_extreme_values. torch 2.13:
    # loss -sum_c t_c log p_c = 2 * 1e308 * log 2 / 2 = 6.93e307 ('mean' over 2 rows) and a zero
    # input gradient (log_softmax's backward gets g = -t / 2 already scaled); lossengine summed
    # t_sum = 2e308 = inf first, so the value was inf and the first row's gradient inf.
    x = np.zeros((2, 2))
    t = np.array([[1e308, 1e308], [0.5, 0.5]])
    value, grad = le.CrossEntropyLoss().forward_backward(x, t)
    assert value == pytest.approx(1e308 * np.log(2) + 0.5 * np.log(2), rel=1e-12)
    np.testing.assert_array_equal(grad, np.zeros((2, 2)))


def test_cross_entropy_weighted_probability_target_near_max_double_is_finite():
    # Shrunk by hypothesis's "dev" profile from test_equal_to_torch_where_torch_is_finite_on_extreme_values.
    # torch 2.13 computes -(log_softmax(x) * t * w) and autograd takes that product apart as
    # ((g / N) w) t: with t = 1e308 and w = 2 every factor stays finite. lossengine formed
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
    # Shrunk by hypothesis's "dev" profile from test_equal_to_torch_where_torch_is_finite_on_extreme_values.
    # torch 2.13 weights each hinge term before summing (h *= weight[target]): four terms of 1e308
    # under a weight of 0.25 sum to 1e308, / C = 2e307. lossengine summed the terms first
    # (4e308 = inf), then weighted. Expected values: torch 2.13.
    x = np.zeros((1, 5))
    x[0, 0] = -1e308
    value, grad = le.MultiMarginLoss(weight=np.array([0.25, 1.0, 1.0, 1.0, 1.5])).forward_backward(x, np.array([0]))
    assert value == pytest.approx(2e307, rel=1e-12)
    np.testing.assert_allclose(grad, [[-0.2, 0.05, 0.05, 0.05, 0.05]], rtol=1e-12)


def test_multi_margin_p2_gradient_near_max_double_is_finite():
    # Shrunk from test_equal_to_torch_where_torch_is_finite_on_extreme_values. torch 2.13: the
    # value is inf (z^2 overflows) but the gradient 2 (1 + 1e308) / 15 = 1.3333e307 is finite.
    x = np.zeros((3, 5))
    x[0, 1] = 1e308
    g = le.MultiMarginLoss(p=2).backward(x, np.zeros(3, np.int64))
    assert g[0, 1] == pytest.approx(1e308 / 15 * 2, rel=1e-12)
    assert g[0, 0] == pytest.approx(-1e308 / 15 * 2, rel=1e-12)


# -- empty inputs: the README's promises -------------------------------------------------------------
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

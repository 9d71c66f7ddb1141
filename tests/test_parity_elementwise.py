"""torch parity of the elementwise family: values and gradients, torch 2.13 CPU, quirks included.

Two layers:
  * golden tests (no torch needed): tests/golden/elementwise.npz, written by
    tests/golden/make_elementwise_golden.py, holds torch's values and autograd gradients for every
    loss x option combination x reduction x dtype over random, edge-value, broadcast, 0-d and empty
    inputs. Test ids read ``<loss>-<options>-<inputs>-<reduction>[-go=...]-<dtype>``.
  * live tests (skipped without torch): fresh random inputs for every loss x option x reduction x
    dtype, compared with torch autograd at run time, plus a large input (the threaded path).

Tolerances: float64 rtol 1e-12, float32 rtol 1e-5 (torch computes float32 in float32, lossengine in
double). The absolute tolerance is tiny (denormal level) for element values and gradients; for a
reduced value it is rtol * (sum of |element losses| / denominator), the magnitude at which
cancellation between positive and negative element losses (KLDiv, PoissonNLL, GaussianNLL) happens.
NaN and +-inf must appear at exactly the same positions.

One deliberate deviation from torch is documented rather than matched: torch's soft_margin_loss
overflows (inf value, NaN gradient) for -x*y > log(max float) (~709.8 float64, ~88.7 float32);
lossengine's is stable. The golden reference holds the exact value there (see the generator), and
test_soft_margin_torch_overflow_is_a_deliberate_deviation is a strict xfail showing torch's result.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import lossengine as le

_GEN_PATH = Path(__file__).parent / "golden" / "make_elementwise_golden.py"
_spec = importlib.util.spec_from_file_location("make_elementwise_golden", _GEN_PATH)
gold = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gold)

RTOL = {"float64": 1e-12, "float32": 1e-5}
# Absolute floor: below the smallest normal number of each dtype, so only denormal-level noise
# (e.g. torch's exp(-740) = 4e-322 against a kernel's exact 0) is forgiven.
ATOL_FLOOR = {"float64": 1e-300, "float32": 1e-37}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def assert_matches(actual, expected, dtype: str, what: str, *, atol=None) -> None:
    """Same dtype, shape, NaN and +-inf positions; finite elements within
    |ours - torch| <= max(atol, ATOL_FLOOR) + rtol * |torch|, ``atol`` a scalar or per-element array."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    bad = nan_a != nan_e
    assert not bad.any(), (
        f"{what}: NaN positions differ at {np.argwhere(bad).tolist()}: ours {actual[bad].tolist()}, "
        f"torch {expected[bad].tolist()}")
    inf_a = np.where(np.isinf(actual), np.sign(actual), 0)
    inf_e = np.where(np.isinf(expected), np.sign(expected), 0)
    bad = inf_a != inf_e
    assert not bad.any(), (
        f"{what}: inf positions differ at {np.argwhere(bad).tolist()}: ours {actual[bad].tolist()}, "
        f"torch {expected[bad].tolist()}")
    finite = np.isfinite(expected)
    a64 = actual.astype(np.float64)
    e64 = expected.astype(np.float64)
    floor = np.maximum(ATOL_FLOOR[dtype], 0.0 if atol is None else np.asarray(atol, np.float64))
    allowed = np.broadcast_to(floor, e64.shape) + RTOL[dtype] * np.abs(e64)
    err = np.zeros(e64.shape)
    err[finite] = np.abs(a64[finite] - e64[finite])
    bad = err > allowed
    if bad.any():
        idx = np.argwhere(bad)[:8].tolist()
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(bad, err / np.abs(e64), 0.0)
        rows = "; ".join(
            f"{tuple(i)}: ours {a64[tuple(i)]!r} torch {e64[tuple(i)]!r} "
            f"(rel {rel[tuple(i)]:.3g}, allowed abs {allowed[tuple(i)]:.3g})" for i in idx)
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements differ beyond "
                             f"rtol={RTOL[dtype]:g}: {rows}")


def _sum_to(arr: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a loss-shaped array over the axes an argument of ``shape`` was broadcast along."""
    lead = arr.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and arr.shape[lead + i] != 1)
    return arr.sum(axis=axes, keepdims=True).reshape(shape) if axes else arr.reshape(shape)


def magnitudes(loss: str, options: dict, arrays: dict, option_arrays: dict, var_float) -> dict:
    """Per element of the loss, the sum of the absolute values of the terms torch adds up for the
    value and for each partial derivative (float64; 0 where not finite).

    This is "the largest magnitude where cancellation occurs": rounding in either implementation is
    relative to these terms, not to their (possibly tiny) sum. A term c * log(z) whose argument z is
    itself rounded (torch's float32 x + eps, x / (1 - x), 2 pi y) counts as |c| (|log z| + 1):
    rounding z moves log z by ~u absolutely. Quantities with no cancellation beyond a single
    correctly rounded subtraction get 0 (pure rtol).
    """
    f64 = np.float64
    x = np.asarray(arrays["input"], f64)
    shape = x.shape
    bc = lambda a: np.broadcast_to(np.asarray(a, f64), shape)  # noqa: E731
    y = bc(arrays["target"])
    zero = np.zeros(shape)
    one = np.ones(shape)
    w = bc(option_arrays["weight"]) if "weight" in option_arrays else one
    with np.errstate(all="ignore"):
        if loss in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss"):
            m = {"value": zero, "input": zero, "target": zero}
        elif loss == "binary_cross_entropy":
            lx, l1x = np.log(x), np.log1p(-x)
            # target: torch's -logit(x) = -log(x / (1 - x)), a log of a twice-rounded argument
            m = {"value": w * (np.abs(y - 1) * np.minimum(-l1x, 100) + np.abs(y) * np.minimum(-lx, 100)),
                 "input": w * (np.abs(x) + np.abs(y)) / np.maximum(x * (1 - x), 1e-12),
                 "target": 2 * w}
        elif loss == "binary_cross_entropy_with_logits":
            p = bc(option_arrays["pos_weight"]) if "pos_weight" in option_arrays else one
            ls = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
            lsn = np.minimum(-x, 0) - np.log1p(np.exp(-np.abs(x)))
            sig = 1.0 / (1.0 + np.exp(-x))
            py = np.abs(p * y)
            m = {"value": w * (np.abs(1 - y) * np.abs(x) + np.abs(ls) * (1 + np.abs(p - 1) * np.abs(y))),
                 "input": w * ((py + 1 + np.abs(y)) * sig + py),
                 "target": w * (np.abs(lsn) + np.abs(ls) * np.abs(p))}
        elif loss == "kl_div":
            t = y
            if options.get("log_target"):
                e = np.exp(t)
                m = {"value": e * (np.abs(t) + np.abs(x)), "input": e,
                     "target": e * (np.abs(t) + np.abs(x) + 1)}
            else:
                m = {"value": np.abs(t * np.log(t)) + np.abs(t * x), "input": np.abs(t),
                     "target": np.abs(np.log(t)) + 1 + np.abs(x)}
        elif loss == "poisson_nll_loss":
            if options.get("log_input", True):
                ex = np.exp(x)
                m = {"value": ex + np.abs(y * x), "input": ex + np.abs(y), "target": np.abs(x)}
            else:
                xe = x + options.get("eps", 1e-8)
                m = {"value": np.abs(x) + np.abs(y) * (np.abs(np.log(xe)) + 1), "input": 1 + np.abs(y / xe),
                     "target": np.abs(np.log(xe)) + 1}
            if options.get("full"):
                big = y > 1
                m["value"] = m["value"] + np.where(
                    big, np.abs(y * np.log(y)) + y + 0.5 * (np.abs(np.log(2 * np.pi * y)) + 1), 0)
                m["target"] = m["target"] + np.where(big, np.abs(np.log(y)) + 2 + 0.5 / y, 0)
        elif loss == "gaussian_nll_loss":
            if var_float is not None:
                v = np.full(shape, var_float)
            else:
                v = np.asarray(arrays["var"], f64)
                if v.shape != shape and v.ndim and v.shape == shape[:-1]:
                    v = v[..., None]
                v = np.broadcast_to(v, shape)
            v = np.maximum(v, options.get("eps", 1e-6))
            d = np.abs(x - y)
            r = d / v
            m = {"value": 0.5 * (np.abs(np.log(v)) + d * r) + (0.5 * np.log(2 * np.pi) if options.get("full") else 0),
                 "input": r, "target": r, "var": 0.5 * (1 / v + r * r)}
        elif loss == "hinge_embedding_loss":
            # target outside {1, -1}: max(0, margin - x) + x, both terms (a single term otherwise)
            both = (y != 1) & (y != -1)
            m = {"value": np.where(both, np.maximum(options["margin"] - x, 0) + np.abs(x), 0), "input": zero}
        else:
            raise KeyError(loss)
    return {k: np.nan_to_num(np.broadcast_to(v, shape).astype(f64), nan=0.0, posinf=0.0, neginf=0.0)
            for k, v in m.items()}


def tolerances(loss, options, reduction, dtype, arrays, option_arrays, var_float, grad_output):
    """Absolute tolerances: rtol x the cancellation magnitudes, through the reduction / upstream."""
    mags = magnitudes(loss, options, arrays, option_arrays, var_float)
    shape = np.shape(arrays["input"])
    denom = gold.denominator(reduction, shape)
    rt = RTOL[dtype]
    go = np.abs(np.asarray(grad_output, np.float64))
    if reduction == "none":
        upstream = np.broadcast_to(go, shape)
        value_atol = rt * mags["value"]
    else:
        upstream = np.broadcast_to(go / denom if denom else 0.0, shape)
        value_atol = rt * mags["value"].sum() / denom if denom else 0.0
    grad_atol = {}
    for name in gold.differentiable(loss, var_float):
        arg_shape = np.shape(arrays[name])
        if loss == "gaussian_nll_loss" and name == "var" and arg_shape != shape and len(arg_shape) \
                and arg_shape == shape[:-1]:
            per = _sum_to(rt * upstream * mags[name], arg_shape + (1,)).reshape(arg_shape)
        else:
            per = _sum_to(rt * upstream * mags[name], arg_shape)
        grad_atol[name] = per
    return value_atol, grad_atol


def make_criterion(loss: str, options: dict, reduction: str, option_arrays: dict):
    cls = getattr(le, gold.LOSSES[loss]["cls"])
    return cls(reduction=reduction, **gold.scalar_options(options), **option_arrays)


def call_arguments(loss: str, arrays: dict, var_float) -> list:
    return [var_float if (name == "var" and var_float is not None) else arrays[name]
            for name in gold.LOSSES[loss]["args"]]


def check_against(loss, options, reduction, dtype, arrays, option_arrays, var_float, grad_output,
                  expected_value, expected_grads, label):
    """Run lossengine's fused, forward-only and backward-only paths and compare them with torch."""
    crit = make_criterion(loss, options, reduction, option_arrays)
    args = call_arguments(loss, arrays, var_float)
    wrt = gold.differentiable(loss, var_float)
    value, grads = crit.forward_backward(*args, wrt=wrt, grad_output=grad_output)
    assert len(grads) == len(wrt), f"{label}: {len(grads)} gradients for wrt={wrt}"
    if reduction != "none":
        assert isinstance(value, np.generic), f"{label}: reduced value is {type(value).__name__}"
    value_atol, grad_atol = tolerances(loss, options, reduction, dtype, arrays, option_arrays,
                                       var_float, grad_output)
    assert_matches(value, expected_value, dtype, f"{label}: value", atol=value_atol)
    for name, g in zip(wrt, grads):
        assert_matches(g, expected_grads[name], dtype, f"{label}: d/d{name}", atol=grad_atol[name])
    # The unfused entry points give the same bits as the fused pass.
    np.testing.assert_array_equal(crit(*args), value, err_msg=f"{label}: forward() != fused value")
    separate = crit.backward(*args, wrt=wrt, grad_output=grad_output)
    for name, g, s in zip(wrt, grads, separate):
        np.testing.assert_array_equal(s, g, err_msg=f"{label}: backward() != fused d/d{name}")
    single = crit.backward(*args, wrt=wrt[0], grad_output=grad_output)
    np.testing.assert_array_equal(single, grads[0], err_msg=f"{label}: backward(wrt={wrt[0]!r})")
    # The functional form computes the same value.
    kwargs = dict(gold.scalar_options(options), **option_arrays)
    fvalue = getattr(le.functional, loss)(*args, reduction=reduction, **kwargs)
    np.testing.assert_array_equal(fvalue, value, err_msg=f"{label}: le.functional.{loss}")


# ---------------------------------------------------------------------------------------------
# The loss table itself
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", list(gold.LOSSES))
def test_loss_table_matches_lossengine(loss):
    """The generator's arguments / differentiable lists are lossengine's (and torch's)."""
    spec = gold.LOSSES[loss]
    cls = getattr(le, spec["cls"])
    assert cls.name == loss, f"{spec['cls']}.name is {cls.name!r}"
    assert tuple(cls.arguments) == spec["args"], f"{loss}: arguments {cls.arguments}"
    assert tuple(cls.differentiable) == spec["diff"], f"{loss}: differentiable {cls.differentiable}"
    assert set(cls.reductions) == set(spec["reductions"]), f"{loss}: reductions {cls.reductions}"


def test_every_elementwise_loss_is_covered():
    covered = {gold.LOSSES[name]["cls"] for name in gold.LOSSES}
    # MarginRankingLoss is elementwise in its kernel but ranks embeddings: its torch parity lives with
    # the embedding family's (tests/test_embedding.py, tests/golden/embedding.npz). Losses torch does
    # not have are held to their own references (tests/test_boosting_parity.py).
    family = {cls.__name__ for cls in le.losses.elementwise.LOSSES
              if cls.reference == "torch"} - {"MarginRankingLoss"}
    assert family == covered, f"not covered: {sorted(family - covered)}; unknown: {sorted(covered - family)}"


# ---------------------------------------------------------------------------------------------
# Golden tests (no torch)
# ---------------------------------------------------------------------------------------------
def _load_golden():
    with np.load(gold.GOLDEN_PATH, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        blobs = {dt: f[dt] for dt in gold.DTYPES}
    return meta, blobs


GOLDEN_META, GOLDEN_BLOBS = _load_golden()
GOLDEN_CASES = GOLDEN_META["cases"]


def _array(dtype: str, ref) -> np.ndarray:
    offset, shape = ref
    n = math.prod(shape)
    return GOLDEN_BLOBS[dtype][offset:offset + n].reshape(shape).copy()


def test_golden_file_is_complete():
    """Every loss x option x reduction x dtype has golden cases, edge values and gradients."""
    meta = GOLDEN_META
    assert meta["torch_version"].startswith("2.13"), meta["torch_version"]
    seen = set()
    for case in GOLDEN_CASES:
        s = meta["input_sets"][case["input_set"]]
        seen.add((s["loss"], gold.option_id(s["options"]), s["kind"], case["reduction"], s["dtype"]))
        assert set(case["grads"]) == set(gold.differentiable(s["loss"], s["var_float"])), case["id"]
    for loss, spec in gold.LOSSES.items():
        for options in spec["grid"]:
            for kind in ("random", "edge", "empty"):
                for reduction in spec["reductions"]:
                    for dtype in gold.DTYPES:
                        key = (loss, gold.option_id(options), kind, reduction, dtype)
                        assert key in seen, f"no golden case for {key}"
    assert gold.GOLDEN_PATH.stat().st_size < 1_000_000, "golden file over 1 MB"


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[c["id"] for c in GOLDEN_CASES])
def test_golden(case):
    s = GOLDEN_META["input_sets"][case["input_set"]]
    dtype = s["dtype"]
    arrays = {k: _array(dtype, v) for k, v in s["arguments"].items()}
    option_arrays = {k: _array(dtype, v) for k, v in s["option_arrays"].items()}
    go = case["grad_output"]
    go = go if isinstance(go, float) else _array(dtype, go)
    expected_grads = {k: _array(dtype, v) for k, v in case["grads"].items()}
    check_against(s["loss"], s["options"], case["reduction"], dtype, arrays, option_arrays,
                  s["var_float"], go, _array(dtype, case["value"]), expected_grads,
                  case["id"] + (f" [reference: {case['reference_note']}]" if case["reference_note"] else ""))


# ---------------------------------------------------------------------------------------------
# Live torch tests
# ---------------------------------------------------------------------------------------------
def _live_params():
    params = []
    for loss, spec in gold.LOSSES.items():
        for options in spec["grid"]:
            for reduction in spec["reductions"]:
                gos = ("go=scalar", "go=array") if reduction == "none" else ("",)
                for go_kind in gos:
                    for dtype in gold.DTYPES:
                        pid = "-".join(p for p in (loss, gold.option_id(options), reduction, go_kind, dtype) if p)
                        params.append(pytest.param(loss, options, reduction, go_kind, dtype, id=pid))
    return params


def _live_check(loss, options, reduction, go_kind, dtype, shape, target_shape=None, tag="live"):
    torch = pytest.importorskip("torch")
    # torch on one thread, restored after: torch's libgomp is the process's OpenMP runtime once torch
    # is imported, so its count is also lossengine's default for this thread (a leak made later tests
    # see one thread).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _live_compare(torch, loss, options, reduction, go_kind, dtype, shape, target_shape, tag)
    finally:
        torch.set_num_threads(before)


def _live_compare(torch, loss, options, reduction, go_kind, dtype, shape, target_shape, tag):
    rng = np.random.default_rng(gold.seed_for(tag, loss, gold.option_id(options), reduction, go_kind,
                                              dtype, shape, target_shape))
    arrays = gold.random_arguments(loss, options, shape, rng, target_shape=target_shape)
    var_float = 0.7 if loss == "gaussian_nll_loss" and options["var_shape"] == "float" else None
    option_arrays = gold.option_arrays(options, shape, rng)
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    option_arrays = {k: v.astype(dtype) for k, v in option_arrays.items()}
    if go_kind == "go=array":
        go = rng.uniform(-2.0, 2.0, shape).astype(dtype)
    else:
        go = 0.625 if reduction == "mean" else (-1.75 if reduction == "none" else 2.25)
    ref = gold.torch_reference(loss, options, reduction, arrays, option_arrays, var_float, go, dtype)
    assert ref["note"] is None, f"random inputs hit torch's soft-margin overflow: {ref['note']}"
    check_against(loss, options, reduction, dtype, arrays, option_arrays, var_float, go,
                  ref["value"], ref["grads"], f"{tag} {loss} {options} {reduction}")


@pytest.mark.parametrize("loss, options, reduction, go_kind, dtype", _live_params())
def test_live_torch(loss, options, reduction, go_kind, dtype):
    _live_check(loss, options, reduction, go_kind, dtype, (4, 5))


@pytest.mark.parametrize("loss, options, reduction, go_kind, dtype", [
    p for p in _live_params() if p.values[0] in gold.BCAST_TARGET])
def test_live_torch_broadcast_target(loss, options, reduction, go_kind, dtype):
    _live_check(loss, options, reduction, go_kind, dtype, (3, 2, 5), target_shape=(2, 5), tag="bcast")


@pytest.mark.parametrize("shape", [(200, 200), (37, 113)], ids=["40000", "4181"])
@pytest.mark.parametrize("loss, options, reduction, go_kind, dtype", [
    p for p in _live_params() if p.values[1] == gold.LOSSES[p.values[0]]["grid"][-1]
    and p.values[3] != "go=scalar"])
def test_live_torch_large(loss, options, reduction, go_kind, dtype, shape):
    """40,000 elements: above PARALLEL_MIN_ELEMENTS, so the threaded, multi-block path runs;
    4,181 elements: one full reduction block plus a ragged tail (no multiple of any chunk size)."""
    _live_check(loss, options, reduction, go_kind, dtype, shape, tag="large")


# ---------------------------------------------------------------------------------------------
# The deliberate soft-margin deviation
# ---------------------------------------------------------------------------------------------
# x*y = -800 overflows torch's exp(-x*y) in both dtypes; -100 in float32 only.
_OVERFLOW_XY = {"float64": np.array([-800.0, 800.0, -1e4]), "float32": np.array([-100.0, 100.0, -800.0])}
_OVERFLOW_Y = np.array([1.0, -1.0, 1.0])


@pytest.mark.parametrize("dtype", gold.DTYPES)
def test_soft_margin_is_exact_where_torch_overflows(dtype):
    x = _OVERFLOW_XY[dtype].astype(dtype)
    y = _OVERFLOW_Y.astype(dtype)
    value, grad = le.SoftMarginLoss(reduction="none").forward_backward(x, y, grad_output=1.0)
    # log(1 + exp(t)) = t + log1p(exp(-t)) = t to double precision for t >= 100; d/dx = -y.
    assert_matches(value, (-(x * y)).astype(dtype), dtype, "soft margin value")
    assert_matches(grad, (-y).astype(dtype), dtype, "soft margin gradient")


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="deliberate deviation: " + le.SoftMarginLoss.deviations["torch_overflow"])
@pytest.mark.parametrize("dtype", gold.DTYPES)
def test_soft_margin_torch_overflow_is_a_deliberate_deviation(dtype):
    torch = pytest.importorskip("torch")
    x = _OVERFLOW_XY[dtype].astype(dtype)
    y = _OVERFLOW_Y.astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.soft_margin_loss(xt, torch.tensor(y), reduction="none")
    (grad,) = torch.autograd.grad(out, xt, torch.ones_like(out))
    value, ours = le.SoftMarginLoss(reduction="none").forward_backward(x, y, grad_output=1.0)
    assert_matches(value, out.detach().numpy(), dtype, "soft margin value vs raw torch")
    assert_matches(ours, grad.numpy(), dtype, "soft margin gradient vs raw torch")


# ---------------------------------------------------------------------------------------------
# Domain errors: where torch refuses the inputs, lossengine raises ValueError (and vice versa)
# ---------------------------------------------------------------------------------------------
_DOMAIN_CASES = [
    # (id, loss, input, target, var)
    ("bce-input-above-1", "binary_cross_entropy", [0.5, 1.5], [0.0, 1.0], None),
    ("bce-input-below-0", "binary_cross_entropy", [-1e-300, 0.5], [0.0, 1.0], None),
    ("bce-input-nan", "binary_cross_entropy", [math.nan, 0.5], [0.0, 1.0], None),
    ("bce-target-above-1", "binary_cross_entropy", [0.3, 0.6], [1.5, 0.5], None),
    ("bce-target-below-0", "binary_cross_entropy", [0.3, 0.6], [-0.5, 0.5], None),
    ("bce-target-nan", "binary_cross_entropy", [0.3, 0.6], [math.nan, 0.5], None),
    ("bce-in-range", "binary_cross_entropy", [0.0, 1.0], [1.0, 0.0], None),
    # torch checks element by element (input, then target) and reports the first failure in order
    ("bce-target-bad-before-input-bad", "binary_cross_entropy", [0.5, 1.5], [1.5, 0.5], None),
    ("bce-input-bad-before-target-bad", "binary_cross_entropy", [1.5, 0.5], [0.5, 1.5], None),
    ("gaussian-var-negative", "gaussian_nll_loss", [0.3, 0.6], [0.0, 1.0], [1.0, -1e-300]),
    ("gaussian-var-float-negative", "gaussian_nll_loss", [0.3, 0.6], [0.0, 1.0], -0.5),
    ("gaussian-var-zero", "gaussian_nll_loss", [0.3, 0.6], [0.0, 1.0], [0.0, -0.0]),
]


@pytest.mark.parametrize("dtype", gold.DTYPES)
@pytest.mark.parametrize("case_id, loss, x, y, var", _DOMAIN_CASES, ids=[c[0] for c in _DOMAIN_CASES])
def test_domain_errors_match_torch(case_id, loss, x, y, var, dtype):
    torch = pytest.importorskip("torch")
    spec = gold.LOSSES[loss]
    x, y = np.array(x, dtype), np.array(y, dtype)
    args = [x, y] + ([] if var is None else [var if isinstance(var, float) else np.array(var, dtype)])
    targs = [torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args]
    try:
        getattr(torch.nn, spec["cls"])()(*targs)
        torch_error = None
    except (RuntimeError, ValueError) as exc:
        torch_error = str(exc)
    crit = getattr(le, spec["cls"])()
    for call in (lambda: crit(*args), lambda: crit.forward_backward(*args)):
        if torch_error is None:
            call()
        else:
            with pytest.raises(ValueError, match=re.escape(torch_error.splitlines()[0])):    # torch's words
                call()


# -- extreme and non-finite values: the upstream gradient folded in before a partial can overflow -----
@pytest.mark.parametrize("shape", [(3,), (3, 5)], ids=str)
def test_mse_gradient_finite_where_2_diff_overflows(shape):
    # (3, 5): shrunk by hypothesis from test_equal_to_torch_where_torch_is_finite_on_extreme_values.
    # torch 2.13 gives 2 * (1e308 / N) at the first element (1.3333e307 for N = 15).
    x = np.zeros(shape)
    x.flat[0] = 1e308
    grad = le.MSELoss().backward(x, np.zeros(shape))
    assert grad.flat[0] == pytest.approx(2.0 * (1e308 / x.size), rel=1e-15) and math.isfinite(grad.flat[0])
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.mse_loss(xt, torch.zeros(shape, dtype=torch.float64)).backward()
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12)


def test_gaussian_nll_gradient_finite_at_a_denormal_var():
    n = 150_000
    x, var = np.ones(n), np.full(n, 1e-310)
    grad = le.GaussianNLLLoss(eps=0.0).backward(x, np.zeros(n), var)
    expected = (0.5 / n) / 1e-310 * 2.0       # autograd's order: (g / 2) / var, then times 2 diff
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_hinge_embedding_nan_grad_output_masked_on_the_inactive_branch():
    grad = le.HingeEmbeddingLoss(reduction="none").backward(np.array([0.5, 2.0]), np.array([-1.0, -1.0]),
                                                            grad_output=np.nan)
    assert math.isnan(grad[0]) and grad[1] == 0.0      # torch's where(): the masked branch is 0


@pytest.mark.parametrize("var_shape", [(1, 3), (3,)])
def test_gaussian_nll_negative_var_refused_for_an_empty_input(var_shape):
    with pytest.raises(ValueError, match="var has negative entry"):
        le.GaussianNLLLoss()(np.zeros((0, 3)), np.zeros((0, 3)), -np.ones(var_shape))


def test_weighted_bce_backward_equals_forward_backward_wherever_the_arrays_lie():
    # Found as a flaky golden test (this file's: "backward() != fused d/dtarget" by one ulp, about
    # 1 run in 5). With three operands GCC guarded the float64 math loop, which writes
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

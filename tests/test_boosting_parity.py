"""Parity of the losses torch does not ship (SigmoidFocal, Pinball, the half deviances, LogCosh) with
their references, value, gradient and Hessian: committed golden values (tests/golden/boosting.npz,
written by tests/golden/make_boosting_golden.py from scikit-learn's ``_loss`` and torchvision's
formula under torch autograd) and, when the references are installed, live comparisons; plus
``gradient_hessian`` of the losses scikit-learn also has (squared error, binomial) against it."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import lossengine as le

_GEN_PATH = Path(__file__).parent / "golden" / "make_boosting_golden.py"
_spec = importlib.util.spec_from_file_location("make_boosting_golden", _GEN_PATH)
gold = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gold)

RTOL = {"float64": 1e-12, "float32": 2e-5}


def _close(actual, expected, dtype: str, what: str, scale=None):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    atol = (1e-15 if dtype == "float64" else 1e-6) * (1.0 + np.max(np.abs(expected)) if scale is None else scale)
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=atol, err_msg=what)


def _ours(cls: str, options: dict, x, y):
    loss = getattr(le, cls)(**options, reduction="none")
    value = loss(x, y)
    grad, hess = loss.gradient_hessian(x, y)
    return value, grad, hess


def _golden_cases():
    with np.load(gold.GOLDEN_PATH, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        return [(case, {k: f[f"{i}_{k}"] for k in ("x", "y", "value", "grad", "hess")})
                for i, case in enumerate(meta["cases"])]


GOLDEN = _golden_cases()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k", range(len(GOLDEN)),
                         ids=[f"{c['cls']}-{c['options']}" for c, _ in GOLDEN])
def test_golden(k, dtype):
    case, data = GOLDEN[k]
    x, y = data["x"].astype(dtype), data["y"].astype(dtype)
    value, grad, hess = _ours(case["cls"], case["options"], x, y)
    assert value.dtype == grad.dtype == hess.dtype == np.dtype(dtype)
    if dtype == "float32":   # the reference at the float32-rounded inputs, not at the float64 ones
        if not _have(case["reference"]):
            pytest.skip(f"{case['reference']} not installed (float32 needs the live reference)")
        data = dict(zip(("value", "grad", "hess"), gold.reference(case["cls"], case["options"], case["reference"],
                                                                   x.astype(np.float64), y.astype(np.float64))))
    for what in ("value", "grad", "hess"):
        _close({"value": value, "grad": grad, "hess": hess}[what], data[what], dtype, f"{case['cls']} {what}")


_REFERENCE_MODULE = {"sklearn": "sklearn", "torchvision": "torch", "formula": "torch"}


def _have(reference: str) -> bool:
    return importlib.util.find_spec(_REFERENCE_MODULE[reference]) is not None


def test_every_non_torch_elementwise_loss_has_golden_data():
    non_torch = {cls.__name__ for cls in le.losses.elementwise.LOSSES if cls.reference != "torch"}
    assert non_torch == {c["cls"] for c, _ in GOLDEN}


@pytest.mark.parametrize("k", range(len(gold.CASES)), ids=[f"{c}-{o}" for c, o, _ in gold.CASES])
def test_live_reference(k):
    cls, options, ref = gold.CASES[k]
    pytest.importorskip(_REFERENCE_MODULE[ref])
    rng = np.random.default_rng(100 + k)
    x, y = gold.inputs(cls, 100 + k)
    expected = gold.reference(cls, options, ref, x, y)
    for what, a, e in zip(("value", "grad", "hess"), _ours(cls, options, x, y), expected):
        _close(a, e, "float64", f"{cls} {what}")


@pytest.mark.parametrize("cls", gold.NON_TORCH, ids=lambda c: c.__name__)
def test_generator_serves_a_loss_from_its_declaration_alone(cls):
    """The generator's route for a loss it has no picked inputs or listed cases for: inputs from the
    declared domains, the configurations the validator checks, the reference the class declares."""
    pytest.importorskip(_REFERENCE_MODULE[cls.reference])
    for k, options in enumerate(le.validation._option_sets(cls)):
        x, y = gold.domain_inputs(cls.__name__, np.random.default_rng(200 + k))
        expected = gold.reference(cls.__name__, options, cls.reference, x, y)
        for what, a, e in zip(("value", "grad", "hess"), _ours(cls.__name__, options, x, y), expected):
            _close(a, e, "float64", f"{cls.__name__} {options} {what}")


def test_focal_target_gradient_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    x, y = gold.inputs("SigmoidFocalLoss", 7)
    yt = torch.tensor(y, requires_grad=True)
    value = gold.torchvision_sigmoid_focal_loss(torch, torch.tensor(x), yt, 0.25, 2.0)
    (expected,) = torch.autograd.grad(value.sum(), yt)
    got = le.SigmoidFocalLoss(reduction="sum").backward(x, y, wrt="target")
    _close(got, expected.numpy(), "float64", "focal target gradient")


@pytest.mark.parametrize("ours, theirs, factor", [
    ("MSELoss", "HalfSquaredError", 2.0),
    ("BCEWithLogitsLoss", "HalfBinomialLoss", 1.0),
])
def test_gradient_hessian_matches_sklearn(ours, theirs, factor):
    sk = pytest.importorskip("sklearn._loss.loss")
    rng = np.random.default_rng(5)
    x = 3.0 * rng.standard_normal(1000)
    y = rng.integers(0, 2, 1000).astype(np.float64) if "Binomial" in theirs else rng.standard_normal(1000)
    g, h = getattr(le, ours)().gradient_hessian(x, y)
    g_ref, h_ref = getattr(sk, theirs)().gradient_hessian(y_true=y, raw_prediction=x)
    _close(g, factor * g_ref, "float64", "gradient")
    _close(h, factor * h_ref, "float64", "hessian")


# -- the row losses torch does not have: golden and live, against their formulas in torch -------------
def _row_golden():
    with np.load(gold.GOLDEN_PATH, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        return [((cls, options), {k: f[f"row{i}_{k}"] for k in ("x", "y", "value", "grad", "hess")})
                for i, (cls, options) in enumerate(meta["row_cases"])]


ROW_GOLDEN = _row_golden()


def _row_ours(cls: str, options: dict, x, t):
    options = dict(options)
    if "weight" in options:
        options["weight"] = np.array(options["weight"])
    loss = getattr(le, cls)(**options, reduction="none")
    value = loss(x, t)
    grad, hess = loss.gradient_hessian(x, t)
    return value, grad, hess


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k", range(len(ROW_GOLDEN)), ids=[f"{c}-{o}" for (c, o), _ in ROW_GOLDEN])
def test_row_golden(k, dtype):
    (cls, options), data = ROW_GOLDEN[k]
    x, t = data["x"].astype(dtype), data["y"]
    if t.dtype.kind == "f":
        t = t.astype(dtype)
    got = _row_ours(cls, options, x, t)
    if dtype == "float32":
        pytest.importorskip("torch")
        data = dict(zip(("value", "grad", "hess"), gold.row_reference(cls, options, x.astype(np.float64),
                                                                       np.asarray(t, np.float64) if t.dtype.kind == "f" else t)))
    for what, a in zip(("value", "grad", "hess"), got):
        assert a.dtype == np.dtype(dtype)
        _close(a, data[what], dtype, f"{cls} {what}")


def test_every_new_row_loss_has_golden_data():
    assert {c for (c, _), _ in ROW_GOLDEN} == {"SoftmaxFocalLoss", "Poly1CrossEntropyLoss", "DiceLoss", "TverskyLoss"}


@pytest.mark.parametrize("k", range(len(gold.ROW_CASES)), ids=[f"{c}-{o}" for c, o in gold.ROW_CASES])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_row_live_reduced(k, reduction):
    """The reductions against the formula's: 'mean' over the weights of non-ignored positions
    (SoftmaxFocal, Poly1) or over samples (Dice, Tversky); gradients by torch autograd."""
    torch = pytest.importorskip("torch")
    cls, options = gold.ROW_CASES[k]
    x, t = gold.row_inputs(cls, 900 + k)
    xt = torch.tensor(x, requires_grad=True)
    per = gold.torch_row_formula(torch, cls, options, xt, torch.tensor(t))
    if reduction == "sum" or cls in ("DiceLoss", "TverskyLoss"):
        ref = per.sum() if reduction == "sum" else per.mean()
    else:
        ignore = options.get("ignore_index", -100)
        w = np.ones(4) if options.get("weight") is None else np.array(options["weight"])
        ref = per.sum() / float(w[t[t != ignore]].sum())
    (g_ref,) = torch.autograd.grad(ref, xt)
    kwargs = dict(options)
    if "weight" in kwargs:
        kwargs["weight"] = np.array(kwargs["weight"])
    value, g = getattr(le, cls)(**kwargs, reduction=reduction).forward_backward(x, t)
    _close(value, ref.detach().numpy(), "float64", "value")
    _close(g, g_ref.numpy(), "float64", "gradient")

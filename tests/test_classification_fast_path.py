"""The classification fast path (RowKernel.fast, taken for (N, C) scores and (N,) int64 class indices
as plain C-contiguous native arrays) gives bit-identical results to the general path, and every call
it does not cover falls through to the general path's checks and messages."""
import numpy as np
import pytest

import lossengine as le
from lossengine.base import FusedLoss
from lossengine.losses.classification import LOSSES

INDEX_LOSSES = [cls for cls in LOSSES if cls.index_kernel is not None]


def _inputs(dtype, rng, n=37, classes=11, ignore_index=None):
    x = rng.standard_normal((n, classes)).astype(dtype)
    t = rng.integers(0, classes, n)
    if ignore_index is not None:
        t[::5] = ignore_index
    return x, t


def _configs(cls):
    yield {}
    for options in getattr(cls, "check_options", ()):
        options = dict(options)
        if "weight" in options:
            options["weight"] = np.linspace(0.5, 2.0, 11)
        if options.get("ignore_index", -100) >= 0:
            options["ignore_index"] = 3
        yield options


def test_the_index_target_losses_have_the_fast_path():
    assert {c.__name__ for c in INDEX_LOSSES} >= {"CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"}


@pytest.mark.parametrize("cls", INDEX_LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fast_path_equals_general_path(cls, dtype, reduction):
    for options in _configs(cls):
        loss = cls(reduction=reduction, **options)
        x, t = _inputs(dtype, np.random.default_rng(1), ignore_index=options.get("ignore_index"))
        ref_value, ref_grad = FusedLoss.forward_backward(loss, x, t, grad_output=0.5)   # caches the weights
        assert loss._fast((x, t), True, 0.5, None) is not None, f"{options}: the plain call should be fast"
        value, grad = loss.forward_backward(x, t, grad_output=0.5)
        assert value == ref_value and type(value) is type(ref_value), options
        np.testing.assert_array_equal(grad, ref_grad, err_msg=str(options))
        assert grad.dtype == ref_grad.dtype and grad.shape == x.shape
        out = np.empty_like(grad)
        assert loss.backward(x, t, grad_output=0.5, out=out) is out
        np.testing.assert_array_equal(out, ref_grad)
        value, got = loss.forward_backward(x, t, grad_output=0.5, out=out)
        assert got is out and value == ref_value
        assert loss(x, t) == FusedLoss.forward(loss, x, t) == loss.forward(x, t)


def test_weights_cached_for_one_dtype_only_fall_through_for_the_other():
    loss = le.CrossEntropyLoss(weight=np.linspace(0.5, 2.0, 11))
    x, t = _inputs(np.float64, np.random.default_rng(4))
    loss(x, t)                                      # general path: caches the float64 weights
    assert loss._fast((x, t), True, 1.0, None) is not None
    x32 = x.astype(np.float32)
    assert loss._fast((x32, t), True, 1.0, None) is None
    value, grad = loss.forward_backward(x32, t)     # caches the float32 weights, rounded to float32
    assert loss._fast((x32, t), True, 1.0, None) is not None
    fast_value, fast_grad = loss.forward_backward(x32, t)
    assert fast_value == value
    np.testing.assert_array_equal(fast_grad, grad)


def _read_only(shape):
    out = np.empty(shape)
    out.flags.writeable = False
    return out


# Each case: (x, t, rng) -> (x, t, loss, keyword arguments) of a call the fast path does not take.
_CE = le.CrossEntropyLoss()
OTHER_CALLS = {
    "fortran": lambda x, t, rng: (np.asfortranarray(x), t, _CE, {}),
    "strided": lambda x, t, rng: (np.repeat(x, 2, axis=1)[:, ::2], t, _CE, {}),
    "big-endian": lambda x, t, rng: (x.astype(">f8"), t, _CE, {}),
    "int32 target": lambda x, t, rng: (x, t.astype(np.int32), _CE, {}),
    "list": lambda x, t, rng: (x.tolist(), t, _CE, {}),
    "1-d": lambda x, t, rng: (x[0], t[0], _CE, {}),
    "3-d": lambda x, t, rng: (x.reshape(3, 4, 2), rng.integers(0, 4, (3, 2)), _CE, {}),
    "probabilities": lambda x, t, rng: (x, rng.dirichlet(np.ones(4), 6), _CE, {}),
    "int grad_output": lambda x, t, rng: (x, t, _CE, {"grad_output": 2}),
    "wrt": lambda x, t, rng: (x, t, _CE, {"wrt": "input"}),
    "none": lambda x, t, rng: (x, t, le.CrossEntropyLoss(reduction="none"), {}),
    "empty": lambda x, t, rng: (np.zeros((0, 4)), np.zeros(0, np.int64), _CE, {}),
    "overlapping out": lambda x, t, rng: (x, t, _CE, {"out": x}),
    "read-only out": lambda x, t, rng: (x, t, _CE, {"out": _read_only(x.shape)}),
    "float64 out": lambda x, t, rng: (x.astype(np.float32), t, _CE, {"out": np.empty(x.shape)}),
}


@pytest.mark.parametrize("case", OTHER_CALLS)
def test_other_calls_fall_through_to_the_general_path(case):
    rng = np.random.default_rng(2)
    x, t, loss, kwargs = OTHER_CALLS[case](*_inputs(np.float64, rng, n=6, classes=4), rng)
    out = kwargs.get("out")
    if case not in ("list", "int grad_output", "wrt"):     # (wrt: decided by the caller)
        assert loss._fast((x, t), True, 1.0, out) is None
    if out is not None:
        error = TypeError if case == "float64 out" else ValueError
        with pytest.raises(error, match="shares memory with an input|read-only|does not cast"):
            loss.backward(x, t, **kwargs)
        return
    value, grad = loss.forward_backward(x, t, **kwargs)
    ref = FusedLoss.forward_backward(loss, np.asarray(x, np.float64), np.asarray(t), **kwargs)
    np.testing.assert_allclose(np.asarray(value, np.float64), ref[0], rtol=1e-12)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-12)


@pytest.mark.parametrize("cls", INDEX_LOSSES, ids=lambda c: c.__name__)
def test_an_invalid_target_is_still_reported_by_position(cls):
    x, t = _inputs(np.float32, np.random.default_rng(3), n=5, classes=4)
    t[3] = 4
    with pytest.raises(IndexError, match=r"Target 4 is out of bounds at position \(3,\)"):
        cls().forward_backward(x, t)
    with pytest.raises(IndexError, match=r"Target 4 is out of bounds at position \(3,\)"):
        cls()(x, t)

"""The elementwise fast path (ElementwiseKernel.run_pair) computes exactly what the general path
does, and hands everything it does not cover back to it."""
import numpy as np
import pytest

import lossengine as le
from lossengine.losses import elementwise


FAST = [cls for cls in elementwise.LOSSES if elementwise._takes_fast_path(cls)]


def test_the_common_losses_take_it():
    assert {le.MSELoss, le.L1Loss, le.HuberLoss, le.SmoothL1Loss} <= set(FAST)
    assert le.BCELoss not in FAST and le.BCEWithLogitsLoss not in FAST   # weight: an operand option
    assert le.GaussianNLLLoss not in FAST    # three arguments


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fast_equals_general(cls, dtype, reduction):
    x, y = (np.ascontiguousarray(a) for a in cls.sample_inputs(np.random.default_rng(3), dtype))
    loss = cls(reduction=reduction)
    loss.forward_backward(x, y)                              # builds the kernel
    kernel = loss._kernel_object
    fast = kernel.run_pair(x, y, None, 2.5, reduction == "mean", 1, 1 << 30)
    assert fast is not None
    # the general path: a strided view of the same values, which run_pair refuses
    strided = np.repeat(x, 2, axis=-1)[..., ::2]
    assert kernel.run_pair(strided, y, None, 2.5, reduction == "mean", 1, 1 << 30) is None
    general = loss.forward_backward(strided, y, grad_output=2.5)
    value, grad = loss.forward_backward(x, y, grad_output=2.5)
    assert type(value) is type(general[0]) and value.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(value, general[0])
    np.testing.assert_array_equal(grad, general[1])
    np.testing.assert_array_equal(fast[1], grad)
    out = np.empty_like(x)
    assert loss.backward(x, y, grad_output=2.5, out=out) is out
    np.testing.assert_array_equal(out, grad)


def test_run_pair_refuses_what_it_does_not_cover():
    loss = le.MSELoss()
    x = np.random.default_rng(0).normal(size=(8, 6))
    y = np.random.default_rng(1).normal(size=(8, 6))
    loss.forward_backward(x, y)
    k = loss._kernel_object
    run = lambda *a, out=None: k.run_pair(*a, out, 1.0, True, 1, 1 << 30)  # noqa: E731
    assert run(x, y) is not None
    assert run(x, y.astype(np.float32)) is None                 # mixed dtypes
    assert run(x[:, ::2], y[:, ::2]) is None                    # not contiguous
    assert run(x, y.reshape(6, 8)) is None                      # shapes differ
    assert run(x.astype(">f8"), y.astype(">f8")) is None         # byte-swapped
    assert run(x.astype(np.int64), y.astype(np.int64)) is None   # not float
    assert run(x, y, out=np.empty((8, 6), np.float32)) is None
    assert run(x, y, out=x) is None and run(x, y, out=y) is None  # overlap
    ro = np.empty_like(x)
    ro.flags.writeable = False
    assert run(x, y, out=ro) is None
    assert run(x[:0], y[:0]) is None                             # empty: the general path's NaN


def test_domain_errors_still_raised_after_the_kernel_is_cached():
    loss = le.BCEWithLogitsLoss()
    x = np.zeros(4)
    loss.forward_backward(x, x)
    bce = le.BCELoss()       # not on the fast path, but the general path still checks its domain
    bce.forward_backward(np.full(4, 0.5), np.full(4, 0.5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        bce.forward_backward(np.full(4, 2.0), np.full(4, 0.5))


def test_option_change_rebuilds_the_kernel_used_by_the_fast_path():
    loss = le.HuberLoss(delta=1.0)
    x, y = np.array([0.0, 3.0]), np.array([0.0, 0.0])
    loss.forward_backward(x, y)
    loss.delta = 0.5
    value, grad = loss.forward_backward(x, y)
    np.testing.assert_allclose(value, le.HuberLoss(delta=0.5).forward_backward(x[::-1][::-1].copy(), y)[0])
    np.testing.assert_allclose(grad, [0.0, 0.25])

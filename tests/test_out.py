"""out= on backward / forward_backward (gradients) and loss_out= / forward(out=) ('none' values), for
every built-in loss (elementwise, classification, CTC) and for plugins built on each base class:
the same numbers as without out, written into and returned as the caller's arrays, any valid layout
accepted, and every misuse (shape, dtype, overlap with an input or another out, read-only, the wrong
count or reduction) a clear error that leaves the out arrays and the inputs untouched."""
import tracemalloc

import numpy as np
import pytest

import lossengine as le
from lossengine.losses import BUILTIN_LOSSES


class PlainSquares(le.Loss):
    """A plugin on the bare Loss contract: its own forward and backward, no out handling."""
    name = "test_out_plain_squares"
    differentiable = ("input", "target")

    def forward(self, x, y):
        v = (np.asarray(x, np.float64) - y) ** 2
        return v if self.reduction == "none" else (v.mean() if self.reduction == "mean" else v.sum())

    def backward(self, x, y, grad_output=1.0, wrt=None):
        d = 2.0 * (np.asarray(x, np.float64) - y) * grad_output
        if self.reduction == "mean":
            d = d / np.size(x)
        return tuple(d if name == "input" else -d for name in wrt)


class NumpySquares(le.NumpyElementwiseLoss):
    name = "test_out_numpy_squares"
    differentiable = ("input", "target")

    def element_loss(self, x, y):
        return (x - y) ** 2

    def element_partials(self, x, y):
        return 2.0 * (x - y), -2.0 * (x - y)


CLASSES = BUILTIN_LOSSES + (PlainSquares, NumpySquares)


def inputs(cls, dtype=np.float64, seed=0):
    return cls.sample_inputs(np.random.default_rng(seed), dtype)


def configurations(cls):
    """(loss, arrays, wrt) for each reduction; wrt every differentiable argument that has a gradient
    for these samples (class-index targets have none)."""
    for reduction in cls.reductions:
        loss = cls(reduction=reduction)
        for dtype in (np.float64, np.float32):
            arrays = inputs(cls, dtype)
            wrt = tuple(name for name in cls.differentiable
                        if np.issubdtype(np.asarray(arrays[cls.arguments.index(name)]).dtype, np.floating))
            yield loss, arrays, wrt


def ids(cls):
    return cls.__name__


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_out_gives_the_same_numbers_in_the_callers_arrays(cls):
    for loss, arrays, wrt in configurations(cls):
        value, grads = loss.forward_backward(*arrays, wrt=wrt)
        outs = tuple(np.full_like(g, np.nan) for g in grads)
        loss_out = np.full_like(value, np.nan) if loss.reduction == "none" else None
        before = [np.array(a, copy=True) for a in arrays]
        value2, grads2 = loss.forward_backward(*arrays, wrt=wrt, out=outs, loss_out=loss_out)
        assert all(g2 is o for g2, o in zip(grads2, outs))
        for g, g2 in zip(grads, grads2):
            np.testing.assert_array_equal(g2, g)
        if loss_out is not None:
            assert value2 is loss_out
        np.testing.assert_array_equal(value2, value)
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b)
        # backward with one array for the first name, and forward(out=) for 'none'
        out = np.full_like(grads[0], np.nan)
        assert loss.backward(*arrays, wrt=wrt[0], out=out) is out
        np.testing.assert_array_equal(out, grads[0])
        out = np.full_like(grads[0], np.nan)
        assert loss.backward(*arrays, out=out) is out
        np.testing.assert_array_equal(out, loss.backward(*arrays))
        if loss.reduction == "none":
            value_out = np.full_like(value, np.nan)
            assert loss.forward(*arrays, out=value_out) is value_out
            np.testing.assert_array_equal(value_out, value)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_out_in_any_writeable_layout(cls):
    """Strided (every other element of a larger array) and Fortran-ordered out arrays are filled."""
    for loss, arrays, wrt in configurations(cls):
        value, grad = loss.forward_backward(*arrays, wrt=wrt[0])
        wide = np.full(grad.shape[:-1] + (2 * grad.shape[-1],) if grad.ndim else (), np.nan, grad.dtype)
        strided = wide[..., ::2] if grad.ndim else wide
        assert loss.backward(*arrays, wrt=wrt[0], out=strided) is strided
        np.testing.assert_array_equal(strided, grad)
        fortran = np.asfortranarray(np.full_like(grad, np.nan))
        loss.backward(*arrays, wrt=wrt[0], out=fortran)
        np.testing.assert_array_equal(fortran, grad)


def _error(fn, exc, *words):
    with pytest.raises(exc) as info:
        fn()
    for word in words:
        assert word in str(info.value), str(info.value)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_bad_out_is_a_clear_error_and_touches_nothing(cls):
    loss = cls(reduction="none" if "none" in cls.reductions else cls.reductions[0])
    arrays = inputs(cls)
    grad = loss.backward(*arrays)
    first = cls.arguments.index(cls.differentiable[0])
    fresh = lambda: np.full_like(grad, 7.0)  # noqa: E731

    wrong_shape = np.full(grad.shape + (2,), 7.0, grad.dtype)
    _error(lambda: loss.backward(*arrays, out=wrong_shape), ValueError, "out", "shape")
    assert np.all(wrong_shape == 7.0)
    wrong_dtype = fresh().astype(np.float32)
    _error(lambda: loss.backward(*arrays, out=wrong_dtype), TypeError, "out", "dtype")
    assert np.all(wrong_dtype == 7.0)
    _error(lambda: loss.backward(*arrays, out=grad.tolist()), TypeError, "out")
    read_only = fresh()
    read_only.flags.writeable = False
    _error(lambda: loss.backward(*arrays, out=read_only), ValueError, "out", "read-only")

    # out overlapping an input: the input itself, and a view into it
    source = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in arrays]
    keep = np.array(source[first], copy=True)
    _error(lambda: loss.backward(*source, out=source[first]), ValueError, "out", "shares memory", "input")
    np.testing.assert_array_equal(source[first], keep)

    # a tuple that does not match wrt, and two gradients in one array
    _error(lambda: loss.backward(*arrays, out=(fresh(), fresh())), TypeError, "out", "wrt")
    if len(cls.differentiable) > 1 and np.issubdtype(np.asarray(arrays[1]).dtype, np.floating):
        wrt = cls.differentiable[:2]
        grads = loss.backward(*arrays, wrt=wrt)
        one = np.zeros_like(grads[0])
        _error(lambda: loss.backward(*arrays, wrt=wrt, out=(one, one)), ValueError, "out[1]", "out[0]")
        _error(lambda: loss.backward(*arrays, wrt=wrt, out=one), TypeError, "out", "tuple")

    if "none" in cls.reductions:
        value = loss.forward(*arrays)
        bad_value = np.full(np.shape(value) + (3,), 7.0, value.dtype)
        _error(lambda: loss.forward(*arrays, out=bad_value), ValueError, "out", "shape")
    reduced = [r for r in cls.reductions if r != "none"]
    if reduced:
        mean = cls(reduction=reduced[0])
        _error(lambda: mean.forward_backward(*arrays, loss_out=np.zeros(3)), ValueError, "loss_out", "none")


def test_value_out_sharing_a_gradient_out_is_refused():
    loss = le.MSELoss(reduction="none")
    x, y = inputs(le.MSELoss)
    buf = np.zeros_like(x)
    _error(lambda: loss.forward_backward(x, y, out=buf, loss_out=buf), ValueError, "loss_out", "share memory")


def test_out_overlapping_grad_output_is_refused():
    loss = le.MSELoss(reduction="none")
    x, y = inputs(le.MSELoss)
    g = np.ones_like(x)
    _error(lambda: loss.backward(x, y, grad_output=g, out=g), ValueError, "grad_output")


def test_broadcast_argument_gradient_into_out():
    """The gradient wrt a broadcast target is reduced back to its shape: out has that shape."""
    loss = le.PoissonNLLLoss()
    x = np.random.default_rng(1).uniform(0.5, 2.0, size=(4, 5))
    y = np.random.default_rng(2).uniform(0.5, 2.0, size=(5,))
    expected = loss.backward(x, y, wrt="target")
    out = np.empty(5)
    assert loss.backward(x, y, wrt="target", out=out) is out
    np.testing.assert_array_equal(out, expected)
    _error(lambda: loss.backward(x, y, wrt="target", out=np.empty((4, 5))), ValueError, "out", "(5,)")


def test_out_follows_the_result_dtype_of_each_argument():
    loss = le.MSELoss()
    x = np.arange(6, dtype=np.float32)
    y = np.arange(6, dtype=np.float64)
    expected = loss.backward(x, y, wrt="target")
    assert expected.dtype == np.float64      # the target's dtype, computed in float32: a cast
    out = np.empty(6, expected.dtype)
    np.testing.assert_array_equal(loss.backward(x, y, wrt="target", out=out), expected)


@pytest.mark.parametrize("make", [
    lambda rng: (le.MSELoss(), rng.normal(size=200_000), rng.normal(size=200_000)),
    lambda rng: (le.CrossEntropyLoss(), rng.normal(size=(2000, 100)), rng.integers(0, 100, 2000)),
], ids=["mse", "cross_entropy"])
def test_out_allocates_no_gradient_sized_memory(make):
    """The kernel writes into a C-contiguous out of the compute dtype directly: a training step with
    out allocates nothing of the gradient's size (numpy reports its allocations to tracemalloc)."""
    loss, x, y = make(np.random.default_rng(0))
    out = np.empty_like(x)
    loss.forward_backward(x, y, out=out)
    tracemalloc.start()
    try:
        loss.forward_backward(x, y, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 4, peak
    tracemalloc.start()
    try:
        loss.forward_backward(x, y)
        _, peak_without = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_without >= x.nbytes     # the check above could fail: without out a gradient is allocated

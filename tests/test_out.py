"""out= on backward / forward_backward (and value_out / forward's out for reduction='none'): the
result lands in the caller's array, is identical to the allocating call, and every misuse is a
clear error. Over every registered loss, plus a plugin written to the bare contract."""
import numpy as np
import pytest

import lossengine as le

LOSSES = sorted(le.registry.names())


def _inputs(cls, dtype=np.float64):
    return cls.sample_inputs(np.random.default_rng(7), dtype)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_receives_every_gradient_exactly(name, dtype):
    cls = le.registry.get(name)
    loss = cls()
    arrays = _inputs(cls, dtype)
    wrt = tuple(cls.differentiable)
    expected_value, expected = loss.forward_backward(*arrays, wrt=wrt)
    outs = tuple(np.full_like(g, np.nan) for g in expected)
    value, grads = loss.forward_backward(*arrays, wrt=wrt, out=outs)
    assert all(g is o for g, o in zip(grads, outs))
    for g, e in zip(grads, expected):
        np.testing.assert_array_equal(g, e)
    np.testing.assert_array_equal(value, expected_value)
    single = np.full_like(expected[0], np.nan)
    assert loss.backward(*arrays, out=single) is single
    np.testing.assert_array_equal(single, expected[0])


@pytest.mark.parametrize("name", LOSSES)
def test_value_out_for_reduction_none(name):
    cls = le.registry.get(name)
    arrays = _inputs(cls)
    loss = cls(reduction="none")
    expected = loss(*arrays)
    value_out = np.full_like(expected, np.nan)
    assert loss.forward(*arrays, out=value_out) is value_out
    np.testing.assert_array_equal(value_out, expected)
    value_out[...] = np.nan
    value, _ = loss.forward_backward(*arrays, value_out=value_out)
    assert value is value_out
    np.testing.assert_array_equal(value_out, expected)


@pytest.mark.parametrize("name", LOSSES)
def test_out_misuse_is_a_clear_error(name):
    cls = le.registry.get(name)
    arrays = _inputs(cls)
    loss = cls(reduction="mean")            # (a plugin's default may be 'none', as torchvision's focal loss)
    grad = loss.backward(*arrays)
    with pytest.raises(ValueError, match="out has shape"):
        loss.backward(*arrays, out=np.empty(grad.shape + (2,)))
    with pytest.raises(TypeError, match="out has dtype float32; the gradient wrt .* is float64"):
        loss.backward(*arrays, out=np.empty(grad.shape, np.float32))
    with pytest.raises(TypeError, match="out must be a NumPy array"):
        loss.backward(*arrays, out=[0.0] * grad.size)
    with pytest.raises(ValueError, match="out is read-only"):
        ro = np.empty_like(grad)
        ro.flags.writeable = False
        loss.backward(*arrays, out=ro)
    first = cls.arguments.index(cls.differentiable[0])
    if arrays[first].shape == grad.shape and arrays[first].dtype == grad.dtype:
        aliased = np.array(arrays[first])
        call = list(arrays)
        call[first] = aliased
        with pytest.raises(ValueError, match="shares memory with an input"):
            loss.backward(*call, out=aliased)
    with pytest.raises(ValueError, match="value_out .* is for reduction='none'"):
        loss.forward_backward(*arrays, value_out=np.empty(1))


def test_out_tuple_must_match_wrt():
    x, y = np.zeros(3), np.ones(3)
    loss = le.MSELoss()
    with pytest.raises(ValueError, match="one array per name in wrt \\(2\\), got 1"):
        loss.backward(x, y, wrt=("input", "target"), out=(np.empty(3),))
    with pytest.raises(TypeError, match="out must be a tuple of 2 arrays"):
        loss.backward(x, y, wrt=("input", "target"), out=np.empty(3))
    shared = np.empty(3)
    with pytest.raises(ValueError, match="shares memory with another out array"):
        loss.backward(x, y, wrt=("input", "target"), out=(shared, shared))


def test_non_contiguous_out_is_filled_by_copy():
    x, y = np.random.default_rng(0).standard_normal((2, 4, 3))
    out = np.empty((3, 4)).T                      # Fortran order: not written by the kernel directly
    result = le.MSELoss().backward(x, y, out=out)
    assert result is out
    np.testing.assert_array_equal(out, le.MSELoss().backward(x, y))


class BareContract(le.Loss):
    """A plugin written strictly to the contract: backward takes wrt as a tuple and returns a tuple."""
    name = "test_out_bare"
    arguments = ("input", "target")
    differentiable = ("input", "target")

    def forward(self, x, y):
        return np.float64(np.sum((np.asarray(x) - y) ** 2))

    def backward(self, x, y, grad_output=1.0, wrt=None):
        d = 2 * (np.asarray(x, float) - y) * grad_output
        return tuple(d if n == "input" else -d for n in wrt)


def test_plugin_written_to_the_contract_gets_out_from_the_base_class():
    x, y = np.array([1.0, 2.0]), np.array([0.5, 0.0])
    out = np.empty(2)
    assert BareContract(reduction="sum").backward(x, y, out=out) is out
    np.testing.assert_array_equal(out, [1.0, 4.0])
    a, b = np.empty(2), np.empty(2)
    value, grads = BareContract(reduction="sum").forward_backward(x, y, wrt=("input", "target"), out=(a, b))
    assert grads[0] is a and grads[1] is b and value == 4.25
    np.testing.assert_array_equal(b, [-1.0, -4.0])

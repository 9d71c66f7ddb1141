"""The elementwise fast path (ElementwiseKernel.fast, taken for plain C-contiguous arrays of one
dtype and shape) gives bit-identical results to the general path, and every call it does not cover
falls through to the general path's checks and messages."""
import numpy as np
import pytest

import lossengine as le
from lossengine.base import FusedLoss
from lossengine.losses.elementwise import LOSSES


def _arrays(cls, dtype, rng):
    return tuple(np.ascontiguousarray(a) for a in cls.sample_inputs(rng, dtype))


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fast_path_equals_general_path(cls, dtype, reduction):
    arrays = _arrays(cls, dtype, np.random.default_rng(1))
    shapes = {a.shape for a in arrays}
    loss = cls(reduction=reduction)
    taken = loss._fast(arrays, True, 0.5, None)
    if len(shapes) > 1 or any(getattr(loss, n) is not None for n in loss.operand_options):
        assert taken is None
        return
    assert taken is not None, "the plain call should take the fast path"
    value, grad = loss.forward_backward(*arrays, grad_output=0.5)
    ref_value, ref_grad = FusedLoss.forward_backward(loss, *arrays, grad_output=0.5)
    assert value == ref_value and type(value) is type(ref_value)
    np.testing.assert_array_equal(grad, ref_grad)
    assert grad.dtype == ref_grad.dtype
    out = np.empty_like(grad)
    assert loss.backward(*arrays, grad_output=0.5, out=out) is out
    np.testing.assert_array_equal(out, ref_grad)
    assert loss(*arrays) == FusedLoss.forward(loss, *arrays)


@pytest.mark.parametrize("case", ["fortran", "strided", "big-endian", "mixed dtypes", "int grad_output",
                                  "list", "wrt", "none", "empty", "overlapping out"])
def test_other_calls_fall_through_to_the_general_path(case):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 4, 3))
    loss, kwargs = le.MSELoss(), {}
    if case == "fortran":
        x = np.asfortranarray(x)
    elif case == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    elif case == "big-endian":
        x = x.astype(">f8")
    elif case == "mixed dtypes":
        y = y.astype(np.float32)
    elif case == "int grad_output":
        kwargs = {"grad_output": 2}
    elif case == "list":
        x = x.tolist()
    elif case == "wrt":
        kwargs = {"wrt": "target"}
    elif case == "none":
        loss = le.MSELoss(reduction="none")
    elif case == "empty":
        x, y = np.zeros((0, 3)), np.zeros((0, 3))
    elif case == "overlapping out":
        kwargs = {"out": x}
    if case not in ("overlapping out", "list", "int grad_output", "wrt"):   # (wrt: decided by the caller)
        assert loss._fast((x, y), True, 1.0, None) is None
    if case == "overlapping out":
        with pytest.raises(ValueError, match="shares memory with an input"):
            loss.backward(x, y, **kwargs)
        return
    value, grad = loss.forward_backward(x, y, **kwargs)
    ref = FusedLoss.forward_backward(loss, np.asarray(x, np.float64), np.asarray(y, np.float64), **kwargs)
    # The same kernel on the same float64 numbers (the layout, byte order, dtype mix and kind of
    # container are undone before it runs): the same bits, as the classification twin checks.
    assert np.asarray(value).tobytes() == np.asarray(ref[0]).tobytes(), (value, ref[0])
    assert grad.dtype == ref[1].dtype and grad.tobytes() == ref[1].tobytes()


def test_domain_errors_still_name_the_element():
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        le.BCELoss().forward_backward(np.array([0.5, 1.5]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="var has negative entry"):
        le.GaussianNLLLoss()(np.zeros(3), np.zeros(3), -np.ones(3))


def test_compiled_plugins_take_the_fast_path_too():
    from test_plugins import SelfTest
    loss = SelfTest(reduction="sum")
    arrays = tuple(np.random.default_rng(3).standard_normal((3, 5, 4)))
    assert loss._fast(arrays, True, 1.0, None) is not None
    value, grad = loss.forward_backward(*arrays)
    ref_value, ref_grad = FusedLoss.forward_backward(loss, *arrays)
    assert value == ref_value
    np.testing.assert_array_equal(grad, ref_grad)
    loss.scale = 3.0                     # element_params read per call: the change is seen
    assert loss(*arrays) != value

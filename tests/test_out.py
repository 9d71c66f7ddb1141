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


# -- the overlap rule: no output shares memory with anything the call reads -----------------------
HESSIAN_LOSSES = [n for n in LOSSES if getattr(le.registry.get(n)(), "has_hessian", False)]


@pytest.mark.parametrize("name", ["log_cosh_loss", "half_poisson_loss", "mse_loss"])
def test_gradient_hessian_out_overlapping_the_input_is_refused(name):
    # The probe: the gradient one element past the input it overwrote as it went (LogCosh off
    # by 0.22, HalfPoisson by 2382).
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(1000), np.abs(rng.standard_normal(1000))
    buf = np.empty(1001)
    buf[:1000] = x
    before = buf.copy()
    loss = le.registry.get(name)()
    with pytest.raises(ValueError, match=r"out: the gradient array shares memory with an input array \('input'\)"):
        loss.gradient_hessian(buf[:1000], y, out=(buf[1:], np.empty(1000)))
    with pytest.raises(ValueError, match=r"out: the hessian array shares memory with an input array \('target'\)"):
        loss.gradient_hessian(x, buf[:1000], out=(np.empty(1000), buf[1:]))
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("name", HESSIAN_LOSSES)
def test_gradient_hessian_out_overlap_refused_for_every_loss(name):
    cls = le.registry.get(name)
    arrays = _inputs(cls)
    loss = cls()
    grad, _ = loss.gradient_hessian(*arrays)
    first = np.array(arrays[0])
    if first.shape == grad.shape and first.dtype == grad.dtype:
        with pytest.raises(ValueError, match="out: the gradient array shares memory with an input array"):
            loss.gradient_hessian(first, *arrays[1:], out=(first, np.empty_like(grad)))


def _misaligned(shape, dtype):
    raw = np.zeros(int(np.prod(shape)) * np.dtype(dtype).itemsize + 1, np.uint8)
    arr = raw[1:].view(dtype).reshape(shape)
    assert not arr.flags.aligned
    return arr


@pytest.mark.parametrize("name", HESSIAN_LOSSES)
@pytest.mark.parametrize("layout", ["misaligned", "strided", "fortran"])
def test_gradient_hessian_accepts_any_writable_out(name, layout):
    # Refused before with the kernel's "operand must be a C-contiguous, aligned, native array of
    # type number 12", which named no argument; backward accepts the same arrays.
    cls = le.registry.get(name)
    arrays = _inputs(cls)
    expected = cls().gradient_hessian(*arrays)
    shape, dtype = expected[0].shape, expected[0].dtype
    if layout == "misaligned":
        out = (_misaligned(shape, dtype), _misaligned(shape, dtype))
    elif layout == "strided":
        out = tuple(np.full(shape + (2,), np.nan, dtype)[..., 0] for _ in range(2))
    else:
        out = tuple(np.asfortranarray(np.full(shape, np.nan, dtype)) for _ in range(2))
    got = cls().gradient_hessian(*arrays, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(out[0], expected[0])
    np.testing.assert_array_equal(out[1], expected[1])


def test_gradient_hessian_out_dtype_and_type_named():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="out: the gradient array must be a float64 array of shape \\(3,\\), "
                                         "got >f8"):
        le.MSELoss().gradient_hessian(x, x, out=(np.empty(3, ">f8"), np.empty(3)))
    with pytest.raises(TypeError, match="out: the hessian array must be a NumPy array, got list"):
        le.MSELoss().gradient_hessian(x, x, out=(np.empty(3), [0.0] * 3))


def _none_loss(name):
    cls = le.registry.get(name)
    return (cls, cls(reduction="none")) if "none" in cls.reductions else (cls, None)


@pytest.mark.parametrize("name", LOSSES)
def test_out_overlapping_grad_output_is_refused(name):
    # MSE 'none' with grad_output inside out was off by 13.4; triplet, cosine embedding and
    # cross-entropy were wrong the same way.
    cls, loss = _none_loss(name)
    if loss is None:
        pytest.skip("no reduction='none'")
    arrays = _inputs(cls)
    value, grad = loss.forward_backward(*arrays)
    buf = np.ones(max(grad.size, np.size(value), 1), grad.dtype)
    grad_output = buf[:np.size(value)].reshape(np.shape(value))
    out = buf[:grad.size].reshape(grad.shape)
    with pytest.raises(ValueError, match="out shares memory with grad_output"):
        loss.backward(*arrays, grad_output=grad_output, out=out)
    with pytest.raises(ValueError, match="out shares memory with grad_output"):
        loss.forward_backward(*arrays, grad_output=grad_output, out=out)
    np.testing.assert_array_equal(buf, 1.0)


def _option_array_cases():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 3)), rng.random((4, 3))
    scores, classes = rng.standard_normal((1, 3)), np.array([2])
    return [
        ("BCEWithLogits weight", le.BCEWithLogitsLoss(weight=np.ones((4, 3))), (x, y), "weight"),
        ("BCEWithLogits pos_weight", le.BCEWithLogitsLoss(pos_weight=np.full((4, 3), 2.0)), (x, y), "pos_weight"),
        ("BCE weight", le.BCELoss(weight=np.ones((4, 3))), (y * 0.5 + 0.25, y), "weight"),
        ("cross-entropy weight", le.CrossEntropyLoss(weight=np.array([1.0, 2.0, 3.0])), (scores, classes), "weight"),
        ("NLL weight", le.NLLLoss(weight=np.array([1.0, 2.0, 3.0])), (scores, classes), "weight"),
        ("multi-margin weight", le.MultiMarginLoss(weight=np.array([1.0, 2.0, 3.0])), (scores, classes), "weight"),
        ("multilabel soft margin weight", le.MultiLabelSoftMarginLoss(weight=np.array([1.0, 2.0, 3.0])),
         (scores, np.array([[0.0, 1.0, 1.0]])), "weight"),
    ]


@pytest.mark.parametrize("case", _option_array_cases(), ids=lambda c: c[0])
def test_out_overlapping_an_option_array_is_refused(case):
    # BCEWithLogitsLoss(weight=w).backward(x, y, out=loss.weight) overwrote the weight for every later call.
    _, loss, arrays, option = case
    held = getattr(loss, option)
    before = held.copy()
    grad = loss.backward(*arrays)
    out = held.reshape(grad.shape)
    assert np.shares_memory(out, held)
    for call in (lambda: loss.backward(*arrays, out=out), lambda: loss.forward_backward(*arrays, out=out)):
        with pytest.raises(ValueError, match=f"out shares memory with the loss's option '{option}'"):
            call()
    np.testing.assert_array_equal(getattr(loss, option), before)
    np.testing.assert_array_equal(loss.backward(*arrays), grad)


def test_value_out_overlapping_grad_output_or_an_option_is_refused():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal(5), rng.random(5)
    loss = le.BCEWithLogitsLoss(weight=np.ones(5), reduction="none")
    go = np.ones(5)
    with pytest.raises(ValueError, match="value_out shares memory with grad_output"):
        loss.forward_backward(x, y, grad_output=go, value_out=go)
    with pytest.raises(ValueError, match="out shares memory with the loss's option 'weight'"):
        loss.forward(x, y, out=loss.weight)


def test_plugin_out_overlapping_grad_output_is_refused():
    x, y = np.array([1.0, 2.0]), np.array([0.5, 0.0])
    go = np.ones(2)
    with pytest.raises(ValueError, match="out shares memory with grad_output"):
        BareContract(reduction="none").backward(x, y, grad_output=go, out=go)

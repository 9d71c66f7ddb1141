"""Input handling shared by every loss: errors (type and message), dtypes, layouts, grad_output, wrt.

Oracles are independent of the kernels: NumPy formulas, or the result on a canonical C-contiguous
float64 copy of the same values.
"""
import numpy as np
import pytest

import lossengine as le
from lossengine.losses import BUILTIN_LOSSES

RNG = np.random.default_rng(1234)
X = RNG.standard_normal((6, 7))
Y = RNG.standard_normal((6, 7))


def mse_oracle(x, y):
    return np.mean((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2)


# -- type errors name the argument ---------------------------------------------------------------
@pytest.mark.parametrize("bad, what", [
    (np.arange(42).reshape(6, 7), "int64"),
    (X.astype(np.complex128), "complex128"),
    (np.full((6, 7), "a"), "<U1"),
    (np.empty((6, 7), dtype=object), "object"),
    (X > 0, "bool"),
])
@pytest.mark.parametrize("position", ["input", "target"])
def test_non_float_argument_is_type_error_naming_it(bad, what, position):
    args = (bad, Y) if position == "input" else (X, bad)
    with pytest.raises(TypeError, match=rf"^{position} must be a floating-point array.*{what}"):
        le.MSELoss()(*args)


def test_ragged_list_is_type_error():
    with pytest.raises(TypeError, match="^input must be a floating-point array"):
        le.L1Loss()([[1.0, 2.0], [3.0]], [1.0, 2.0])


def test_wrong_number_of_arrays_is_type_error():
    with pytest.raises(TypeError, match=r"MSELoss takes 2 arrays \(input, target\), got 3"):
        le.MSELoss()(X, Y, Y)
    with pytest.raises(TypeError, match=r"GaussianNLLLoss takes 3 arrays \(input, target, var\), got 2"):
        le.GaussianNLLLoss()(X, Y)


# -- value errors --------------------------------------------------------------------------------
def test_shape_mismatch_is_value_error_not_broadcast():
    with pytest.raises(ValueError, match=r"target must have the same shape as input: target has shape \(6, 1\), input has shape \(6, 7\)"):
        le.MSELoss()(X, Y[:, :1])


def test_broadcasting_argument_must_not_enlarge_the_loss():
    with pytest.raises(ValueError, match=r"target of shape \(2, 6, 7\) does not broadcast"):
        le.KLDivLoss()(X, np.abs(np.stack([Y, Y])))


@pytest.mark.parametrize("cls, kwargs, match", [
    (le.MSELoss, {"reduction": "avg"}, r"reduction must be one of 'none', 'mean', 'sum'; got 'avg'"),
    (le.KLDivLoss, {"reduction": "batchsum"}, r"'batchmean'; got 'batchsum'"),
    (le.SmoothL1Loss, {"beta": -1.0}, r"beta must be >= 0, got -1.0"),
    (le.HuberLoss, {"delta": 0.0}, r"delta must be > 0, got 0.0"),
    (le.PoissonNLLLoss, {"eps": -1e-3}, r"eps must be >= 0"),
])
def test_bad_options_are_value_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_non_numeric_option_is_type_error():
    with pytest.raises(TypeError, match="beta must be a real number, got str"):
        le.SmoothL1Loss(beta="1")


@pytest.mark.parametrize("threads", [1, 2])
def test_bce_input_outside_unit_interval_is_value_error(threads):
    x = np.full(100_000, 0.5)
    x[77_777] = 1.5  # far into the array: found in whichever thread's block holds it
    with le.threads(threads), pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        le.BCELoss()(x, np.zeros_like(x))
    x[77_777] = np.nan
    with le.threads(threads), pytest.raises(ValueError, match="between 0 and 1"):
        le.BCELoss().backward(x, np.zeros_like(x))


def test_gaussian_nll_negative_var_and_bad_var_shape():
    with pytest.raises(ValueError, match="var has negative entry/entries"):
        le.GaussianNLLLoss()(X, Y, -np.ones_like(X))
    with pytest.raises(ValueError, match="var has negative entry/entries"):
        le.GaussianNLLLoss()(X, Y, -1.0)
    with pytest.raises(ValueError, match=r"var is of incorrect size: got \(6, 3\)"):
        le.GaussianNLLLoss()(X, Y, np.ones((6, 3)))


def test_grad_output_rules():
    loss = le.MSELoss()
    with pytest.raises(ValueError, match=r"grad_output must be a scalar for reduction='mean'.*shape \(6, 7\)"):
        loss.backward(X, Y, grad_output=np.ones((6, 7)))
    with pytest.raises(ValueError, match=r"grad_output of shape \(3,\) does not broadcast to the loss's shape \(6, 7\)"):
        le.MSELoss(reduction="none").backward(X, Y, grad_output=np.ones(3))
    with pytest.raises(TypeError, match="grad_output must be real-valued"):
        loss.backward(X, Y, grad_output=1j)
    # A broadcastable grad_output for 'none' is the same as its materialized form.
    row = RNG.uniform(size=7)
    none = le.MSELoss(reduction="none")
    np.testing.assert_array_equal(none.backward(X, Y, grad_output=row),
                                  none.backward(X, Y, grad_output=np.broadcast_to(row, X.shape).copy()))
    np.testing.assert_allclose(none.backward(X, Y, grad_output=row), 2 * (X - Y) * row, rtol=1e-15)


def test_wrt_rules():
    loss = le.MSELoss()
    with pytest.raises(ValueError, match=r"wrt: 'weight' is not an argument of MSELoss; its arguments are input, target"):
        loss.backward(X, Y, wrt=("weight",))
    with pytest.raises(ValueError, match=r"wrt: 'target' is not differentiable for SoftMarginLoss"):
        le.SoftMarginLoss().backward(X, np.sign(Y), wrt="target")
    with pytest.raises(ValueError, match="wrt must name at least one argument"):
        loss.backward(X, Y, wrt=())
    gx, gy = loss.backward(X, Y, wrt=("input", "target"))
    gy_only = loss.backward(X, Y, wrt="target")
    np.testing.assert_allclose(gx, 2 * (X - Y) / X.size, rtol=1e-15)
    np.testing.assert_array_equal(gy, -gx)
    np.testing.assert_array_equal(gy_only, gy)
    gy2, gx2 = loss.backward(X, Y, wrt=["target", "input"])
    np.testing.assert_array_equal(gx2, gx)
    np.testing.assert_array_equal(gy2, gy)


# -- dtypes --------------------------------------------------------------------------------------
def test_result_dtypes_follow_the_input():
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    value = le.MSELoss()(x32, y32)
    assert isinstance(value, np.float32)
    assert le.MSELoss(reduction="none")(x32, y32).dtype == np.float32
    # Other float arguments are cast to the input's dtype; each gradient keeps its argument's dtype.
    value, (gx, gy) = le.MSELoss().forward_backward(x32, Y, wrt=("input", "target"))
    assert isinstance(value, np.float32) and gx.dtype == np.float32 and gy.dtype == np.float64
    np.testing.assert_allclose(value, mse_oracle(x32, Y.astype(np.float32)), rtol=1e-6)
    half = le.MSELoss()(X.astype(np.float16), Y.astype(np.float16))
    assert isinstance(half, np.float32)


def test_empty_inputs_follow_torch():
    empty = np.empty((0, 3))
    assert np.isnan(le.MSELoss()(empty, empty))
    assert le.MSELoss(reduction="sum")(empty, empty) == 0.0
    assert le.MSELoss(reduction="none")(empty, empty).shape == (0, 3)
    assert le.MSELoss().backward(empty, empty).shape == (0, 3)


def test_zero_dim_and_python_inputs():
    assert le.MSELoss()(np.float64(3.0), 1.0) == 4.0
    assert le.L1Loss()([1.0, -2.0], [0.0, 0.0]) == 1.5
    g = le.MSELoss(reduction="sum").backward(3.0, 1.0)
    assert g.shape == () and g == 4.0


# -- layouts ------------------------------------------------------------------------------------
def _unaligned(a):
    """The same values in a C-contiguous array whose data pointer is off by one byte."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned or a.dtype.itemsize == 1
    return out


def _strided(a):
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _readonly(a):
    out = a.copy()
    out.flags.writeable = False
    return out


LAYOUTS = {
    "fortran": np.asfortranarray,
    "strided": _strided,
    "negative_strides": lambda a: np.flip(np.flip(a).copy()),
    "readonly": _readonly,
    "big_endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "unaligned": _unaligned,
    "list": lambda a: a.tolist(),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("cls", BUILTIN_LOSSES, ids=lambda c: c.__name__)
def test_every_layout_gives_the_canonical_result(layout, cls):
    canonical = [np.ascontiguousarray(a) for a in cls.sample_inputs(np.random.default_rng(5), np.float64)]
    given = [LAYOUTS[layout](a) for a in canonical]
    before = [np.array(g, copy=True) for g in given]
    loss = cls(reduction="none")
    value, grads = loss.forward_backward(*given, wrt=cls.differentiable)
    ref_value, ref_grads = loss.forward_backward(*canonical, wrt=cls.differentiable)
    np.testing.assert_array_equal(value, ref_value)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_array_equal(g, r)
        assert g.dtype.isnative
    for g, b in zip(given, before):
        np.testing.assert_array_equal(np.asarray(g), b)  # never modified


def test_layouts_against_a_numpy_oracle():
    for name, make in LAYOUTS.items():
        value = le.MSELoss(reduction="none")(make(X), make(Y))
        np.testing.assert_allclose(value, (X - Y) ** 2, rtol=1e-15, err_msg=name)
    value = le.MSELoss(reduction="none")(X.astype(">f4"), Y.astype(">f4"))
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, (X.astype(np.float32) - Y.astype(np.float32)) ** 2, rtol=1e-6)


# -- edge cases found in review: each once crashed or misreported ---------------------------------
@pytest.mark.parametrize("cls, target", [
    (le.CrossEntropyLoss, np.full(3, -100)),          # every target ignored
    (le.NLLLoss, np.full(3, -100)),
    (le.CrossEntropyLoss, np.zeros((3, 0))),          # probability targets
    (le.MultiLabelSoftMarginLoss, np.zeros((3, 0))),
])
def test_zero_classes_is_a_value_error_naming_input(cls, target):
    with pytest.raises(ValueError, match="input must have at least one class"):
        cls()(np.zeros((3, 0)), target)


@pytest.mark.parametrize("cls", [le.CrossEntropyLoss, le.NLLLoss, le.MultiMarginLoss])
def test_zero_classes_with_a_class_index_is_an_index_error(cls):
    with pytest.raises(IndexError, match="out of bounds"):
        cls()(np.zeros((3, 0)), np.zeros(3, np.int64))


def test_uint64_indices_beyond_int64_are_reported_not_wrapped():
    x = RNG.standard_normal((4, 5))
    t = np.array([0, 1, 2, 2**64 - 1], np.uint64)
    with pytest.raises(IndexError, match=r"target value 18446744073709551615 at position \(3,\) is out of bounds"):
        le.CrossEntropyLoss(ignore_index=-1)(x, t)
    with pytest.raises(IndexError, match="18446744073709551615"):
        le.MultiLabelMarginLoss()(x, np.array([[0, 1, 2, 2**64 - 1, 3]] * 4, np.uint64))


def test_ignore_index_must_fit_int64():
    with pytest.raises(ValueError, match="ignore_index must fit in a 64-bit signed integer"):
        le.CrossEntropyLoss(ignore_index=2**70)
    with pytest.raises(ValueError, match="ignore_index must fit"):
        le.NLLLoss(ignore_index=np.uint64(2**64 - 1))


@pytest.mark.parametrize("wrt", [5, b"input", {"input"}])
def test_wrt_of_the_wrong_type_is_a_value_error(wrt):
    with pytest.raises(ValueError, match="wrt must be None, an argument name or a tuple of names"):
        le.MSELoss().backward(X, Y, wrt=wrt)


# -- numerical stability -------------------------------------------------------------------------
def test_logit_losses_are_finite_at_extreme_logits():
    x = np.array([1e4, -1e4, 800.0, -800.0])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    value, (gx, gy) = le.BCEWithLogitsLoss(reduction="none", pos_weight=np.array([2.0])).forward_backward(
        x, y, wrt=("input", "target"))
    # Exact: log(1 + e^|x|) = |x| to double precision here; pos_weight 2 doubles the positive term.
    np.testing.assert_allclose(value, [1e4, 2e4, 800.0, 1600.0], rtol=1e-15)
    np.testing.assert_allclose(gx, [1.0, -2.0, 1.0, -2.0], rtol=1e-15)
    assert np.all(np.isfinite(gy))
    sm = le.SoftMarginLoss(reduction="none")
    v, g = sm.forward_backward(np.array([1e4, -1e4]), np.array([-1.0, -1.0]))
    np.testing.assert_allclose(v, [1e4, 0.0], atol=0, rtol=1e-15)
    np.testing.assert_allclose(g, [1.0, 0.0], atol=1e-300)


# -- torch 2.13's functional weight for l1/mse/huber ---------------------------------------------
def test_functional_weight_follows_torch_reductions():
    w = RNG.uniform(0.5, 2.0, X.shape)
    sq, ab = (X - Y) ** 2, np.abs(X - Y)
    np.testing.assert_allclose(le.functional.mse_loss(X, Y, weight=w), (sq * w).sum() / w.sum(), rtol=1e-13)
    np.testing.assert_allclose(le.functional.l1_loss(X, Y, weight=w, reduction="sum"), (ab * w).sum(), rtol=1e-13)
    np.testing.assert_allclose(le.functional.l1_loss(X, Y, weight=w, reduction="none"), ab * w, rtol=1e-15)
    huber = np.where(ab < 1.0, 0.5 * sq, ab - 0.5)
    np.testing.assert_allclose(le.functional.huber_loss(X, Y, weight=w), (huber * w).mean(), rtol=1e-13)
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        le.functional.mse_loss(X, Y, weight=w[:, :1])


def test_functional_weight_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    w = RNG.uniform(0.5, 2.0, X.shape)
    t = [torch.from_numpy(a) for a in (X, Y, w)]
    for reduction in ("none", "mean", "sum"):
        for name in ("l1_loss", "mse_loss", "huber_loss"):
            ours = getattr(le.functional, name)(X, Y, weight=w, reduction=reduction)
            theirs = getattr(F, name)(t[0], t[1], weight=t[2], reduction=reduction).numpy()
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=f"{name} {reduction}")


# -- huge Python ints: a ValueError naming the argument ---------------------------------------------
@pytest.mark.parametrize("name", [cls.name for cls in BUILTIN_LOSSES])
def test_grad_output_huge_int_is_value_error(name):
    # Shrunk by hypothesis from test_result_or_clean_error_and_inputs_unmodified, for every built-in loss.
    cls = le.registry.get(name)
    arrays = cls.sample_inputs(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="grad_output must fit in a double"):
        cls().backward(*arrays, grad_output=10 ** 400)


@pytest.mark.parametrize("cls, option", [(le.SmoothL1Loss, "beta"), (le.HuberLoss, "delta"),
                                         (le.PoissonNLLLoss, "eps"), (le.GaussianNLLLoss, "eps"),
                                         (le.CrossEntropyLoss, "label_smoothing"),
                                         (le.HingeEmbeddingLoss, "margin"), (le.MultiMarginLoss, "margin"),
                                         (le.CTCLoss, "blank")])
def test_huge_int_option_is_a_value_error_naming_it(cls, option):
    with pytest.raises(ValueError, match=option):
        cls(**{option: 10**400})


# -- error messages that say what torch would do ----------------------------------------------------
@pytest.mark.parametrize("target_shape, torch_does", [((3, 5), "they do not broadcast either"),
                                                      ((4,), "torch would broadcast them")])
def test_shape_mismatch_message_states_what_torch_does(target_shape, torch_does):
    with pytest.raises(ValueError) as info:
        le.MSELoss()(np.zeros((3, 4)), np.zeros(target_shape))
    message = str(info.value)
    assert f"target has shape {target_shape}" in message and "input has shape (3, 4)" in message
    assert torch_does in message


def test_bce_outside_unit_interval_suggests_logits():
    with pytest.raises(ValueError, match="did you pass logits\\? BCEWithLogitsLoss takes them"):
        le.BCELoss()(np.array([2.0, -1.0]), np.array([1.0, 0.0]))


# -- layouts of a NumPy plugin's inputs -------------------------------------------------------------
def test_numpy_plugin_value_is_bit_identical_for_a_fortran_input():
    # Shrunk from test_layouts_bit_identical_to_contiguous[cauchy_loss]: NumpyElementwiseLoss's work
    # copies kept the caller's memory order, and NumPy's pairwise sum follows memory order, so a
    # Fortran input's 'mean' differed from the C-contiguous one's in the last bit.
    class HalfSquare(le.NumpyElementwiseLoss):
        name = "half_square_layout_probe"
        arguments = ("input", "target")

        def element_loss(self, x, t):
            return 0.5 * (x - t) ** 2

        def element_partials(self, x, t):
            return (x - t,)

    for shape in [(4, 5), (37, 19), (257, 129)]:   # each differed in the last bit before the fix
        rng = np.random.default_rng(0)
        x, t = rng.standard_normal(shape), rng.standard_normal(shape)
        fx, ft = np.asfortranarray(x), np.asfortranarray(t)
        for reduction in ("mean", "sum"):
            crit = HalfSquare(reduction=reduction)
            assert crit(fx, ft).tobytes() == crit(x, t).tobytes(), (shape, reduction)

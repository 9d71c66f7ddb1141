"""lossengine.integrations.jax beyond reverse mode: forward mode (jvp, jacfwd), second derivatives
(hessian, grad of grad, Hessian-vector products) against the same losses written in JAX (optax or
jax.numpy), in float64; lossengine's errors as one short message; shapes from the declared rule.
Skipped when JAX or optax is absent."""
import numpy as np
import pytest

import lossengine as le

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy
from lossengine.integrations import jax as lejax  # noqa: E402
from lossengine.integrations.jax import wrap  # noqa: E402

DEFAULT_ROUTE = lejax._BACKEND


@pytest.fixture(autouse=True, params=["default route", "pure_callback"])
def x64(request, monkeypatch):
    """Every test in float64, through wrap's default route (the FFI handler where it is installed)
    and through the pure_callback fallback."""
    if request.param == "pure_callback":
        monkeypatch.setattr(lejax, "_BACKEND", lejax._Callback())
    with jax.enable_x64(True):
        yield


def test_the_ffi_handler_is_used_where_it_is_required():
    # CI sets this after installing ./jaxffi: the FFI tests must not silently skip there.
    import os
    if os.environ.get("LOSSENGINE_REQUIRE_JAX_FFI") == "1":
        assert DEFAULT_ROUTE.name == "ffi", lejax._FFI_UNAVAILABLE


def close(a, b, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


class LogTargetLoss(le.NumpyElementwiseLoss):
    """0.5 (input - log target)^2: targets must be > 0, so an all-zero target is refused."""
    name = "log_target_test_loss"
    arguments = ("input", "target")
    differentiable = ("input", "target")

    @staticmethod
    def _check(y):
        if np.any(y <= 0):
            raise ValueError("target must be > 0 (log target)")

    def element_loss(self, x, y):
        self._check(y)
        return 0.5 * (x - np.log(y)) ** 2

    def element_partials(self, x, y):
        self._check(y)
        r = x - np.log(y)
        return r, -r / y

    def element_hessian(self, x, y):
        return np.ones_like(x)


def _data(seed=0, shape=(6, 5)):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(shape))
    y01 = jnp.asarray(rng.integers(0, 2, shape).astype(np.float64))
    y = jnp.asarray(rng.standard_normal(shape))
    pos = jnp.asarray(rng.uniform(0.5, 2.0, shape))
    t = jnp.asarray(rng.integers(0, shape[-1], shape[0]))
    p = jax.nn.softmax(jnp.asarray(rng.standard_normal(shape)))
    return x, y01, y, pos, t, p


def _cases():
    """(name, wrapped loss, JAX-native loss, the other arguments): value functions of the input."""
    x, y01, y, pos, t, p = _data()
    return [
        ("bce_with_logits mean", wrap(le.BCEWithLogitsLoss()),
         lambda a, b: optax.sigmoid_binary_cross_entropy(a, b).mean(), (y01,)),
        ("mse sum", wrap(le.MSELoss(reduction="sum")), lambda a, b: jnp.sum((a - b) ** 2), (y,)),
        ("huber none", wrap(le.HuberLoss(reduction="none")), lambda a, b: optax.huber_loss(a, b, delta=1.0), (y,)),
        ("poisson_nll mean", wrap(le.PoissonNLLLoss()), lambda a, b: jnp.mean(jnp.exp(a) - b * a), (pos,)),
        ("log-target plugin mean", wrap(LogTargetLoss()), lambda a, b: jnp.mean(0.5 * (a - jnp.log(b)) ** 2), (pos,)),
        ("cross_entropy indices mean", wrap(le.CrossEntropyLoss()),
         lambda a, b: optax.softmax_cross_entropy_with_integer_labels(a, b).mean(), (t,)),
        ("cross_entropy probabilities none", wrap(le.CrossEntropyLoss(reduction="none")),
         lambda a, b: optax.softmax_cross_entropy(a, b), (p,)),
    ]


# Built inside each test, under x64 (module-level arrays would be float32).
NAMES = ["bce_with_logits mean", "mse sum", "huber none", "poisson_nll mean", "log-target plugin mean",
         "cross_entropy indices mean", "cross_entropy probabilities none"]
HESSIAN_CASES = ["bce_with_logits mean", "mse sum", "huber none", "poisson_nll mean", "log-target plugin mean"]


@pytest.mark.parametrize("name", NAMES)
def test_jvp_and_jacfwd_match_jax_native(name):
    _, f, reference, rest = {case[0]: case for case in _cases()}[name]
    x = _data()[0]
    v = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape))
    value, tangent = jax.jvp(lambda a: f(a, *rest), (x,), (v,))
    ref_value, ref_tangent = jax.jvp(lambda a: reference(a, *rest), (x,), (v,))
    close(value, ref_value)
    close(tangent, ref_tangent)
    close(jax.jacfwd(f)(x, *rest), jax.jacfwd(reference)(x, *rest))
    close(jax.jit(jax.jacfwd(f))(x, *rest), jax.jacfwd(reference)(x, *rest))
    # reverse mode from the same rule (the tangent map transposed) agrees with forward mode
    close(jax.jacrev(f)(x, *rest), jax.jacfwd(reference)(x, *rest))


def test_jvp_along_every_differentiable_argument():
    x, y01, y, pos, t, p = _data(2)
    tx, tp = (jnp.asarray(np.random.default_rng(3).standard_normal(x.shape)) for _ in range(2))
    f = wrap(le.CrossEntropyLoss(label_smoothing=0.0))
    reference = lambda a, b: optax.softmax_cross_entropy(a, b).mean()     # noqa: E731
    close(jax.jvp(f, (x, p), (tx, tp))[1], jax.jvp(reference, (x, p), (tx, tp))[1])
    g = wrap(LogTargetLoss(reduction="none"))
    native = lambda a, b: 0.5 * (a - jnp.log(b)) ** 2                     # noqa: E731
    close(jax.jvp(g, (x, pos), (tx, tp))[1], jax.jvp(native, (x, pos), (tx, tp))[1])
    close(jax.jacfwd(g, argnums=1)(x, pos), jax.jacfwd(native, argnums=1)(x, pos))


@pytest.mark.parametrize("name", HESSIAN_CASES)
def test_hessian_grad_of_grad_and_hvps_match_jax_native(name):
    _, f, reference, rest = {case[0]: case for case in _cases()}[name]
    x = _data()[0]
    v = jnp.asarray(np.random.default_rng(4).standard_normal(x.shape))
    weights = jnp.asarray(np.random.default_rng(5).uniform(0.5, 1.5, x.shape))
    scalar = (lambda g: (lambda a: jnp.sum(weights * g(a, *rest)))) if name.endswith("none") \
        else (lambda g: (lambda a: g(a, *rest)))
    ours, theirs = scalar(f), scalar(reference)
    close(jax.hessian(ours)(x), jax.hessian(theirs)(x))
    close(jax.jit(jax.hessian(ours))(x), jax.hessian(theirs)(x))
    # grad of grad (reverse over reverse) and HVPs: forward over reverse, reverse over reverse
    gg = lambda g: jax.grad(lambda a: jnp.sum(jnp.sin(jax.grad(g)(a))))       # noqa: E731
    close(gg(ours)(x), gg(theirs)(x))
    close(jax.jvp(jax.grad(ours), (x,), (v,))[1], jax.jvp(jax.grad(theirs), (x,), (v,))[1])
    hvp = lambda g: jax.grad(lambda a: jnp.vdot(jax.grad(g)(a), v))(x)         # noqa: E731
    close(jax.jit(lambda: hvp(ours))(), hvp(theirs))


def test_second_derivatives_say_what_is_supported():
    x, y01, y, pos, t, p = _data(6)
    ce = wrap(le.CrossEntropyLoss())
    assert np.isfinite(jax.grad(ce)(x, t)).all()                 # first order is fine
    with pytest.raises(TypeError, match="CrossEntropyLoss has no diagonal second derivative.*elementwise losses "
                                        "with gradient_hessian"):
        jax.hessian(ce)(x, t)
    bce = wrap(le.BCEWithLogitsLoss())
    with pytest.raises(TypeError, match="second derivatives involving 'target' are not available"):
        jax.hessian(bce, argnums=(0, 1))(x, y01)
    with pytest.raises(TypeError, match="third derivatives are not available"):
        jax.jacfwd(jax.hessian(bce))(x, y01)

    class NoHessian(LogTargetLoss):                              # a plugin written without element_hessian
        element_hessian = None
    with pytest.raises(TypeError, match="NoHessian has no diagonal second derivative in lossengine "
                                        r"\(has_hessian is False"):
        jax.hessian(wrap(NoHessian()))(x, pos)


def test_a_non_differentiable_float_argument_is_refused_by_name():
    rng = np.random.default_rng(7)
    a, b = (jnp.asarray(rng.standard_normal((4, 3))) for _ in range(2))
    target = jnp.asarray([1.0, -1.0, 1.0, -1.0])
    f = wrap(le.CosineEmbeddingLoss())
    assert "target" not in le.CosineEmbeddingLoss.differentiable
    with pytest.raises(TypeError, match="CosineEmbeddingLoss is not differentiable wrt 'target'"):
        jax.jvp(f, (a, b, target), (a, b, target))


# -- errors: lossengine's own, one short message ------------------------------------------------------
def test_eager_errors_are_lossengine_exceptions():
    x = jnp.zeros((4, 3))
    bad = jnp.asarray([0, 1, 7, 2])
    f = wrap(le.CrossEntropyLoss())
    with pytest.raises(IndexError, match=r"Target 7 is out of bounds at position \(2,\)") as info:
        f(x, bad)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        jax.grad(f)(x, bad)
    with pytest.raises(ValueError, match=r"target must be > 0 \(log target\)"):
        jax.value_and_grad(wrap(LogTargetLoss()))(x, jnp.zeros((4, 3)))


def test_errors_under_jit_are_one_short_message():
    if lejax._BACKEND.name != "ffi":
        pytest.skip("pure_callback cannot shorten XLA's error (its message holds a traceback): the FFI handler "
                    "(lossengine_jaxffi) does")
    x = jnp.zeros((4, 3))
    f = jax.jit(jax.value_and_grad(wrap(le.CrossEntropyLoss())))
    with pytest.raises(jax.errors.JaxRuntimeError, match="Target 7 is out of bounds") as info:
        jax.block_until_ready(f(x, jnp.asarray([0, 1, 7, 2])))
    message = str(info.value)
    assert "Traceback" not in message and "IndexError" in message and len(message.splitlines()) == 1, message


# -- shapes: from the declared rule, never from running the loss --------------------------------------
def test_a_loss_that_refuses_zeros_is_wrapped_with_reduction_none():
    x, y01, y, pos, t, p = _data(8)
    f = wrap(LogTargetLoss(reduction="none"))
    native = lambda a, b: 0.5 * (a - jnp.log(b)) ** 2                 # noqa: E731
    close(f(x, pos), native(x, pos))
    close(jax.jit(f)(x, pos), native(x, pos))
    weights = jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)
    close(jax.grad(lambda a: jnp.sum(weights * f(a, pos)))(x), jax.grad(lambda a: jnp.sum(weights * native(a, pos)))(x))


def test_value_shapes_follow_the_declared_rule(monkeypatch):
    calls = []
    for cls, method in [(le.CTCLoss, "_compute"), (le.CrossEntropyLoss, "_compute"), (le.CrossEntropyLoss, "_fast"),
                        (le.TripletMarginLoss, "_compute")]:          # every way these losses compute
        monkeypatch.setattr(cls, method, lambda self, *a, **k: calls.append(1) / 0)
    rng = np.random.default_rng(9)
    log_probs = jnp.asarray(rng.standard_normal((7, 3, 5)))
    targets, lengths, target_lengths = jnp.ones((3, 2), int), jnp.full(3, 7), jnp.full(3, 2)
    for loss, shape in [(le.CTCLoss(reduction="none"), (3,)), (le.CTCLoss(), ()),
                        (le.CrossEntropyLoss(reduction="none"), (7, 5)),
                        (le.TripletMarginLoss(reduction="none"), (7, 3))]:
        arrays = (log_probs, targets, lengths, target_lengths) if isinstance(loss, le.CTCLoss) else \
            (log_probs,) * len(loss.arguments) if "triplet" in loss.name else (log_probs, jnp.ones((7, 5), int))
        assert jax.eval_shape(wrap(loss), *arrays).shape == shape
    assert calls == []


def test_ctc_reduction_none_differentiates_in_reverse_mode():
    rng = np.random.default_rng(10)
    log_probs = jax.nn.log_softmax(jnp.asarray(rng.standard_normal((8, 2, 4))), axis=-1)
    targets, lengths, target_lengths = jnp.asarray([[1, 2], [3, 3]]), jnp.asarray([8, 6]), jnp.asarray([2, 2])
    loss = le.CTCLoss(reduction="none")
    cot = jnp.asarray([0.5, 2.0])
    grad = jax.grad(lambda a: jnp.sum(cot * wrap(loss)(a, targets, lengths, target_lengths)))(log_probs)
    expected = loss.backward(np.asarray(log_probs), np.asarray(targets), np.asarray(lengths),
                             np.asarray(target_lengths), grad_output=np.asarray(cot))
    close(grad, expected)
    with pytest.raises(TypeError, match=r"CTCLoss\(reduction='none'\) is differentiable in reverse mode only"):
        jax.jvp(lambda a: wrap(loss)(a, targets, lengths, target_lengths), (log_probs,), (log_probs,))


def test_info_says_which_route_wrap_takes():
    if lejax._BACKEND is not DEFAULT_ROUTE:
        pytest.skip("info reports the route of a fresh process")
    import os
    import subprocess
    import sys
    root = str(__import__("pathlib").Path(le.__file__).parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    out = subprocess.run([sys.executable, "-m", "lossengine", "info"], capture_output=True, text=True, cwd="/", env=env)
    assert out.returncode == 0, out.stderr
    assert f"jax calls:        {lejax.describe_backend()}" in out.stdout.splitlines()
    env["LOSSENGINE_JAX_FFI"] = "0"
    out = subprocess.run([sys.executable, "-m", "lossengine", "info"], capture_output=True, text=True, cwd="/", env=env)
    assert "jax calls:        jax.pure_callback fallback (LOSSENGINE_JAX_FFI=0)" in out.stdout.splitlines()


def test_jax_int32_class_indices_take_the_compiled_fast_path(monkeypatch):
    # JAX's integers are int32 unless x64 is on; the fast path takes int64 indices, so wrap widens them.
    general = []
    compute = le.CrossEntropyLoss._compute
    monkeypatch.setattr(le.CrossEntropyLoss, "_compute",
                        lambda self, *a, **k: general.append(1) or compute(self, *a, **k))
    x, y01, y, pos, t, p = _data(11)
    x32, t32 = x.astype(jnp.float32), t.astype(jnp.int32)
    value, grad = jax.jit(jax.value_and_grad(wrap(le.CrossEntropyLoss())))(x32, t32)
    native = lambda a: optax.softmax_cross_entropy_with_integer_labels(a, t32).mean()     # noqa: E731
    ref_value, ref_grad = jax.value_and_grad(native)(x32)
    close(value, ref_value, rtol=1e-6)
    close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    assert general == []


class MinimalSquare(le.Loss):
    """A plugin written to the minimum: forward and backward, nothing else declared."""
    name = "minimal_square_test_loss"
    arguments = ("input", "target")
    differentiable = ("input",)

    def forward(self, x, y):
        d = (np.asarray(x) - np.asarray(y)) ** 2
        return d.mean() if self.reduction == "mean" else d.sum() if self.reduction == "sum" else d

    def backward(self, x, y, grad_output=1.0, wrt=None):
        g = 2 * (np.asarray(x) - np.asarray(y)) * np.asarray(grad_output)
        return (g / g.size if self.reduction == "mean" else g,)


def test_a_minimal_plugin_is_served_and_none_without_a_shape_rule_is_refused():
    x, y01, y, pos, t, p = _data(12)
    f = wrap(MinimalSquare())
    native = lambda a: jnp.mean((a - y) ** 2)                                 # noqa: E731
    close(jax.jit(jax.value_and_grad(f))(x, y)[1], jax.grad(native)(x))
    close(jax.jacfwd(f)(x, y), jax.jacfwd(native)(x))
    with pytest.raises(TypeError, match=r"MinimalSquare with reduction='none' declares no rule for its value's shape"):
        wrap(MinimalSquare(reduction="none"))(x, y)


class WritesIntoItsInput(MinimalSquare):
    def forward(self, x, y):
        x += 1.0                                                    # a bug: inputs are never to be modified
        return super().forward(x, y)


def test_inputs_reach_the_loss_read_only():
    x = jnp.arange(6.0)
    before = np.array(x)
    with pytest.raises(ValueError, match="read-only"):
        jax.block_until_ready(wrap(WritesIntoItsInput())(x, x))
    close(x, before, rtol=0, atol=0)


def test_vmap_nested_and_unbatched_arguments():
    rng = np.random.default_rng(13)
    x = jnp.asarray(rng.standard_normal((3, 4, 6, 5)))
    t = jnp.asarray(rng.integers(0, 5, (4, 6)))                        # batched over the inner vmap only
    ce = wrap(le.CrossEntropyLoss())
    native = lambda a, b: optax.softmax_cross_entropy_with_integer_labels(a, b).mean()   # noqa: E731
    inner = lambda f: jax.vmap(f, in_axes=(0, 0))                      # noqa: E731
    outer = lambda f: jax.jit(jax.vmap(inner(f), in_axes=(0, None)))   # noqa: E731
    close(outer(ce)(x, t), outer(native)(x, t))
    close(outer(jax.grad(ce))(x, t), outer(jax.grad(native))(x, t))
    # a batch axis that is not the leading one, a 'none' loss, and a batch of one
    huber = wrap(le.HuberLoss(reduction="none"))
    y = jnp.asarray(rng.standard_normal((6, 2, 5)))
    ref = jax.vmap(lambda a, b: optax.huber_loss(a, b), in_axes=(1, 1))(y, y[::-1])
    close(jax.vmap(huber, in_axes=(1, 1))(y, y[::-1]), ref)
    close(jax.vmap(huber)(y[:1], y[:1] * 2), jax.vmap(lambda a, b: optax.huber_loss(a, b))(y[:1], y[:1] * 2))


def test_a_wrapped_loss_nobody_holds_is_freed():
    if lejax._BACKEND.name != "ffi":
        pytest.skip("JAX's own caches of compiled primitives hold pure_callback's callback (and so the loss)")
    import gc
    import weakref
    x, y = jnp.ones(5), jnp.zeros(5)
    refs = []
    for _ in range(3):                        # wrap in a loop, as a training step might
        loss = le.MSELoss()
        refs.append(weakref.ref(loss))
        f = wrap(loss)
        f(x, y), jax.grad(f)(x, y), jax.jit(jax.value_and_grad(f))(x, y), jax.hessian(f)(x, y)
        del loss, f
    gc.collect()
    assert all(r() is None for r in refs)


def test_reduction_none_derivatives_wrt_a_broadcast_argument():
    rng = np.random.default_rng(14)
    x = jnp.asarray(rng.standard_normal((2, 3)))
    target = jnp.asarray(rng.uniform(0.2, 1.0, (1, 3)))                 # broadcasts over the rows
    f = wrap(le.KLDivLoss(reduction="none"))
    native = lambda a, b: b * (jnp.log(b) - a)                          # noqa: E731
    weights = jnp.asarray(rng.uniform(0.5, 1.5, (2, 3)))
    for g in (f, native):
        assert g(x, target).shape == (2, 3)
    grads = jax.grad(lambda a, b: jnp.sum(weights * f(a, b)), argnums=(0, 1))(x, target)
    ref = jax.grad(lambda a, b: jnp.sum(weights * native(a, b)), argnums=(0, 1))(x, target)
    close(grads[0], ref[0])
    close(grads[1], ref[1])
    close(jax.jacfwd(f, argnums=1)(x, target), jax.jacfwd(native, argnums=1)(x, target))

"""lossengine.integrations: JAX (wrap: a custom_jvp over the FFI handler or pure_callback; more in
test_jax.py) and Dask (chunked forward/backward on real schedulers, including a dask.distributed
LocalCluster). Skipped when the library is absent."""
import subprocess
import sys

import numpy as np
import pytest

import lossengine as le


def test_importing_lossengine_imports_neither_jax_nor_dask():
    code = "import sys, lossengine, lossengine.integrations; print('jax' in sys.modules, 'dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env={"PYTHONPATH": str(__import__("pathlib").Path(le.__file__).parents[1])})
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_info_lists_the_integrations():
    from lossengine import integrations
    versions = integrations.available()
    assert set(versions) == {"jax", "dask", "xgboost", "lightgbm", "catboost"}     # every integration's library
    out = subprocess.run([sys.executable, "-m", "lossengine", "info"], capture_output=True, text=True, cwd="/",
                         env={"PYTHONPATH": str(__import__("pathlib").Path(le.__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    for name, version in versions.items():
        assert f"{name + ':':18}{version or 'not installed'} (lossengine.integrations.{name})" in out.stdout


def test_gpu_arrays_are_refused_with_a_cpu_message():
    class FakeCuda:
        __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}
    with pytest.raises(TypeError, match="input is a GPU array.*runs on the CPU"):
        le.MSELoss()(FakeCuda(), np.zeros(3))


def test_gpu_arrays_are_refused_wherever_an_array_enters():
    class FakeDLPackGpu:                     # a torch CUDA tensor's protocol: device type 2 (kDLCUDA)
        def __dlpack_device__(self):
            return (2, 0)

        def __array__(self, dtype=None, copy=None):
            raise AssertionError("a GPU array must be refused before any conversion")
    class FakeCuda:
        __cuda_array_interface__ = {"shape": (4,), "typestr": "<i8", "data": (0, False), "version": 3}
    with pytest.raises(TypeError, match="input is a GPU array.*runs on the CPU"):
        le.BCEWithLogitsLoss().forward_backward(FakeDLPackGpu(), np.zeros(3))
    with pytest.raises(TypeError, match="target is a GPU array.*runs on the CPU"):
        le.CrossEntropyLoss()(np.zeros((4, 3)), FakeCuda())
    with pytest.raises(TypeError, match="target is a GPU array.*runs on the CPU"):
        le.MSELoss()(np.zeros(3), FakeDLPackGpu())


def test_array_likes_with_dunder_array_are_accepted():
    class ArrayLike:
        def __array__(self, dtype=None, copy=None):
            return np.arange(3.0)
    assert le.MSELoss()(ArrayLike(), np.zeros(3)) == pytest.approx(5.0 / 3)


# -- JAX ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jax_modules():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    from lossengine.integrations.jax import wrap
    return jax, jax.numpy, optax, wrap


def test_jax_value_and_gradient_agree_with_optax(jax_modules):
    jax, jnp, optax, wrap = jax_modules
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((16, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, (16, 5)), jnp.float32)
    t = jnp.asarray(rng.integers(0, 5, 16))
    cases = [
        (wrap(le.BCEWithLogitsLoss()), lambda a: optax.sigmoid_binary_cross_entropy(a, y).mean(), (y,)),
        (wrap(le.CrossEntropyLoss()), lambda a: optax.softmax_cross_entropy_with_integer_labels(a, t).mean(), (t,)),
        (wrap(le.HuberLoss(reduction="sum")), lambda a: optax.huber_loss(a, y).sum(), (y,)),
    ]
    for f, reference, rest in cases:
        value, grad = jax.value_and_grad(f)(x, *rest)
        ref_value, ref_grad = jax.value_and_grad(reference)(x)
        assert value.dtype == jnp.float32 and grad.dtype == jnp.float32 and grad.shape == x.shape
        np.testing.assert_allclose(value, ref_value, rtol=1e-5)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)
        jitted = jax.jit(jax.value_and_grad(f))(x, *rest)
        np.testing.assert_allclose(jitted[1], grad, rtol=1e-6)


def test_jax_reduction_none_and_probability_targets(jax_modules):
    jax, jnp, optax, wrap = jax_modules
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((6, 4)))
    y = jnp.asarray(rng.standard_normal((6, 4)))
    weights = jnp.arange(4.0, dtype=x.dtype)
    f = wrap(le.MSELoss(reduction="none"))
    grad = jax.grad(lambda a: (f(a, y) * weights).sum())(x)
    np.testing.assert_allclose(grad, 2 * (x - y) * weights, rtol=1e-6)
    p = jax.nn.softmax(y)
    ce = wrap(le.CrossEntropyLoss())
    gx, gp = jax.grad(ce, argnums=(0, 1))(x, p)
    ref = jax.grad(lambda a, b: optax.softmax_cross_entropy(a, b).mean(), argnums=(0, 1))(x, p)
    np.testing.assert_allclose(gx, ref[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gp, ref[1], rtol=1e-5, atol=1e-7)


def test_jax_vmap_reduces_within_each_batch_element(jax_modules):
    jax, jnp, optax, wrap = jax_modules
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((8, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, (8, 5)), jnp.float32)
    f = wrap(le.BCEWithLogitsLoss())
    np.testing.assert_allclose(jax.vmap(f)(x, y), optax.sigmoid_binary_cross_entropy(x, y).mean(axis=1), rtol=1e-6)
    per_row = jax.vmap(jax.grad(f))(x, y)
    ref = jax.vmap(jax.grad(lambda a, b: optax.sigmoid_binary_cross_entropy(a, b).mean()))(x, y)
    np.testing.assert_allclose(per_row, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_jax_narrow_floats_keep_their_dtype(jax_modules, dtype):
    jax, jnp, optax, wrap = jax_modules
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.standard_normal((16, 5)), dtype)
    y = jnp.asarray(rng.integers(0, 2, (16, 5)), dtype)
    value, grad = jax.jit(jax.value_and_grad(wrap(le.BCEWithLogitsLoss())))(x, y)
    assert value.dtype == x.dtype and grad.dtype == x.dtype and grad.shape == x.shape
    ref_value, ref_grad = jax.value_and_grad(
        lambda a: optax.sigmoid_binary_cross_entropy(a, y.astype(jnp.float32)).mean())(x.astype(jnp.float32))
    # Computed in float32 and rounded once to the narrow type: within one of its ulps (float16
    # 2**-10, bfloat16 2**-7) of float32's result, plus float32's own rounding.
    ulp = float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(np.float32(value), ref_value, rtol=ulp)
    np.testing.assert_allclose(np.asarray(grad, np.float32), ref_grad, rtol=ulp, atol=1e-6 * np.abs(ref_grad).max())


def test_jax_float64_matches_lossengine_exactly(jax_modules):
    jax, jnp, optax, wrap = jax_modules
    rng = np.random.default_rng(8)
    x, var = rng.standard_normal((2, 7, 3))
    y = rng.standard_normal((7, 3))
    loss = le.GaussianNLLLoss(reduction="sum")
    expected_value, expected = loss.forward_backward(x, y, np.abs(var), wrt=("input", "target", "var"))
    with jax.enable_x64(True):
        f = jax.jit(jax.value_and_grad(wrap(loss), argnums=(0, 1, 2)))
        value, grads = f(jnp.asarray(x), jnp.asarray(y), jnp.asarray(np.abs(var)))
        assert value.dtype == jnp.float64 and all(g.dtype == jnp.float64 for g in grads)
        np.testing.assert_allclose(value, expected_value, rtol=1e-14)
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(g, e, rtol=1e-14)
        # the cotangent scales the kept gradient: grad of 3 * loss
        g3 = jax.grad(lambda a: 3.0 * wrap(loss)(a, jnp.asarray(y), jnp.asarray(np.abs(var))))(jnp.asarray(x))
        np.testing.assert_allclose(g3, 3.0 * expected[0], rtol=1e-14)


def test_jax_eager_calls_run_one_kernel_pass_each(jax_modules, monkeypatch):
    jax, jnp, optax, wrap = jax_modules
    calls = []
    # every kernel pass, value-only or fused: the general path's _run, or a fast path that ran
    run, fast = le.MSELoss._run, le.MSELoss._fast
    monkeypatch.setattr(le.MSELoss, "_run", lambda self, *a, **k: calls.append(1) or run(self, *a, **k))
    monkeypatch.setattr(le.MSELoss, "_fast",
                        lambda self, *a, **k: (lambda r: r if r is None else calls.append(1) or r)(fast(self, *a, **k)))
    f = jax.value_and_grad(wrap(le.MSELoss()))
    x, y = jnp.ones(5), jnp.zeros(5)
    f(x, y)
    calls.clear()
    for _ in range(3):
        f(x, y)
    assert len(calls) == 3            # one fused pass per call: no second pass for the value's shape


def test_jax_jit_of_vmap_of_grad_with_class_indices(jax_modules):
    jax, jnp, optax, wrap = jax_modules
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.standard_normal((3, 8, 4)), jnp.float32)
    t = jnp.asarray(rng.integers(0, 4, (3, 8)))
    per_batch = jax.jit(jax.vmap(jax.grad(wrap(le.CrossEntropyLoss(label_smoothing=0.1)))))(x, t)
    ref = jax.vmap(jax.grad(lambda a, b: optax.softmax_cross_entropy(
        a, optax.smooth_labels(jax.nn.one_hot(b, 4), 0.1)).mean()))(x, t)
    np.testing.assert_allclose(per_batch, ref, rtol=1e-5, atol=1e-7)


def test_jax_wrap_refuses_a_class_and_counts_arguments(jax_modules):
    jax, jnp, optax, wrap = jax_modules
    with pytest.raises(TypeError, match="wrap\\(MSELoss\\(\\)\\)"):
        wrap(le.MSELoss)
    with pytest.raises(TypeError, match="takes 2 arrays"):
        wrap(le.MSELoss())(jnp.zeros(3))


# -- Dask ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_modules():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    from lossengine.integrations import dask as led
    return dask, da, led


def _data(rng):
    x, y = rng.standard_normal((2, 1000, 7))
    scores = rng.standard_normal((1000, 5))
    target = rng.integers(0, 5, 1000)
    target[::9] = -100
    return x, y, scores, target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_dask_elementwise_matches_numpy_for_any_chunking(dask_modules, reduction):
    dask, da, led = dask_modules
    x, y, _, _ = _data(np.random.default_rng(3))
    loss = le.SmoothL1Loss(reduction=reduction, beta=0.5)
    go = np.full(x.shape, 0.5) if reduction == "none" else 0.5
    expected_value, expected = loss.forward_backward(x, y, grad_output=go, wrt=("input", "target"))
    for chunks in [(300, 4), (1000, 7), (64, 1)]:
        X = da.from_array(x, chunks=chunks)
        Y = da.from_array(y, chunks=(250, 7))                      # rechunked to X's chunks
        value, (gx, gy) = led.forward_backward(loss, X, Y, grad_output=go, wrt=("input", "target"))
        assert gx.chunks == X.chunks and gy.chunks == X.chunks
        v, a, b = dask.compute(value, gx, gy, scheduler="threads")
        np.testing.assert_allclose(v, expected_value, rtol=1e-13)
        np.testing.assert_array_equal(a, expected[0])             # the gradient depends on nothing else
        np.testing.assert_array_equal(b, expected[1])


def test_dask_per_element_options_are_chunked_with_the_arguments(dask_modules):
    dask, da, led = dask_modules
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 7))
    y = (rng.random((200, 7)) < 0.5).astype(np.float64)
    loss = le.BCEWithLogitsLoss(weight=rng.random((200, 7)), pos_weight=np.arange(1.0, 8.0))
    value, grad = led.forward_backward(loss, da.from_array(x, chunks=(60, 3)), da.from_array(y, chunks=(60, 3)))
    v, g = dask.compute(value, grad, scheduler="sync")
    expected_value, expected = loss.forward_backward(x, y)
    np.testing.assert_allclose(v, expected_value, rtol=1e-13)
    np.testing.assert_array_equal(g, expected)
    with pytest.raises(ValueError, match="pos_weight of shape \\(3,\\) does not broadcast"):
        led.forward(le.BCEWithLogitsLoss(pos_weight=np.ones(3)), da.from_array(x, chunks=60), y)


@pytest.mark.parametrize("loss", [le.CrossEntropyLoss(), le.CrossEntropyLoss(weight=np.arange(1.0, 6.0),
                                                                            label_smoothing=0.1),
                                  le.NLLLoss(reduction="sum"), le.CrossEntropyLoss(reduction="none")],
                         ids=repr)
def test_dask_classification_over_row_chunks(dask_modules, loss):
    dask, da, led = dask_modules
    _, _, scores, target = _data(np.random.default_rng(4))
    X = da.from_array(scores, chunks=(128, 2))                    # the class axis is made one chunk
    T = da.from_array(target, chunks=300)
    value, grad = led.forward_backward(loss, X, T)
    expected_value, expected = loss.forward_backward(scores, target)
    v, g = dask.compute(value, grad, scheduler="sync")
    np.testing.assert_allclose(v, expected_value, rtol=1e-13)
    np.testing.assert_array_equal(g, expected)


class _RowSquaredNorm(le.Loss):
    """A loss over rows of embeddings, declared "feature-rows" (as the embedding family is): per row,
    w * |input - target|^2 over the last axis; a loss outside the built-in families plugs into the Dask
    integration by its declaration alone."""
    arguments = ("input", "target", "w")
    differentiable = ("input", "target")
    decomposes = "feature-rows"

    def forward(self, x, t, w):
        per_row = np.asarray(w) * ((np.asarray(x) - t) ** 2).sum(axis=-1)
        return per_row if self.reduction == "none" else getattr(per_row, self.reduction)()

    def backward(self, x, t, w, grad_output=1.0, wrt=None):
        names, single = self._resolve_wrt(wrt)
        per_row = np.asarray(grad_output) * np.asarray(w)
        if self.reduction == "mean":
            per_row = per_row / np.prod(np.shape(x)[:-1])
        gx = 2 * per_row[..., None] * (np.asarray(x) - t)
        grads = {"input": gx, "target": -gx}
        return grads[names[0]] if single else tuple(grads[n] for n in names)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_dask_feature_rows_losses_plug_in_by_declaration(dask_modules, reduction):
    dask, da, led = dask_modules
    rng = np.random.default_rng(10)
    x, t = rng.standard_normal((2, 90, 6))
    w = rng.random(90)
    loss = _RowSquaredNorm(reduction)
    go = rng.random(90) if reduction == "none" else 2.0
    X, T, W = da.from_array(x, chunks=(20, 2)), da.from_array(t, chunks=(45, 6)), da.from_array(w, chunks=30)
    value, (gx, gt) = led.forward_backward(loss, X, T, W, grad_output=go, wrt=("input", "target"))
    assert gx.chunks == ((20, 20, 20, 20, 10), (6,)) and gt.chunks == gx.chunks
    assert value.shape == (() if reduction == "mean" else (90,))
    v, a, b = dask.compute(value, gx, gt, scheduler="threads")
    np.testing.assert_allclose(v, loss.forward(x, t, w), rtol=1e-13)
    np.testing.assert_allclose(a, loss.backward(x, t, w, grad_output=go), rtol=1e-13)
    np.testing.assert_allclose(b, -a, rtol=0)


@pytest.mark.parametrize("loss", [le.CosineEmbeddingLoss(margin=0.2), le.TripletMarginLoss(reduction="sum"),
                                  le.TripletMarginLoss(reduction="none", swap=True)], ids=repr)
def test_dask_embedding_losses_over_row_chunks(dask_modules, loss):
    dask, da, led = dask_modules
    rng = np.random.default_rng(12)
    rows = list(rng.standard_normal((2 if loss.arguments[-1] == "target" else 3, 300, 8)))
    if loss.arguments[-1] == "target":
        rows.append(np.where(rng.random(300) < 0.5, 1.0, -1.0))
    chunked = [da.from_array(a, chunks=(70,) + a.shape[1:]) for a in rows]
    wrt = tuple(loss.differentiable)
    value, grads = led.forward_backward(loss, *chunked, wrt=wrt)
    assert all(g.chunks == chunked[0].chunks for g in grads)
    v, g = dask.compute(value, grads, scheduler="threads")
    expected_value, expected = loss.forward_backward(*rows, wrt=wrt)
    np.testing.assert_allclose(v, expected_value, rtol=1e-13)
    for a, b in zip(g, expected):
        np.testing.assert_array_equal(a, b)


def test_dask_value_is_identical_across_schedulers_and_worker_counts(dask_modules):
    dask, da, led = dask_modules
    _, _, scores, target = _data(np.random.default_rng(5))
    loss = le.CrossEntropyLoss(label_smoothing=0.2)
    value, grad = led.forward_backward(loss, da.from_array(scores, chunks=(100, 5)), da.from_array(target, chunks=100))
    # One process pool only (each costs seconds to start); the distributed scheduler is tested below and,
    # with worker processes, by the README's LocalCluster example (tests/test_readme.py).
    results = {(s, w): dask.compute(value, grad, scheduler=s, num_workers=w)
               for s, w in (("sync", 1), ("threads", 1), ("threads", 2), ("processes", 2))}
    first = next(iter(results.values()))
    for key, (v, g) in results.items():
        assert v == first[0], key                                 # bit-identical
        np.testing.assert_array_equal(g, first[1])


def test_dask_on_a_local_cluster_larger_than_one_chunk(dask_modules):
    dask, da, led = dask_modules
    distributed = pytest.importorskip("dask.distributed")
    rng = np.random.default_rng(6)
    x = rng.standard_normal(200_000)
    y = (rng.random(200_000) < 0.5).astype(np.float64)
    X, Y = da.from_array(x, chunks=50_000), da.from_array(y, chunks=50_000)
    loss = le.BCEWithLogitsLoss()
    value, grad = led.forward_backward(loss, X, Y)
    v_sync = value.compute(scheduler="sync")
    # In-process workers keep the test fast; worker processes run in the README example's test.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        v, g = dask.compute(value, grad)
    assert v == v_sync                                            # bit-identical to the sync scheduler
    expected_value, expected = loss.forward_backward(x, y)
    np.testing.assert_allclose(v, expected_value, rtol=1e-13)
    np.testing.assert_array_equal(g, expected)


def test_dask_refuses_what_does_not_split(dask_modules):
    dask, da, led = dask_modules
    with pytest.raises(TypeError, match="CTCLoss does not split over chunks"):
        led.forward(le.CTCLoss(), da.zeros((5, 2, 3)), np.zeros((2, 2)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="target must have the shape of input"):
        led.forward(le.MSELoss(), da.zeros((4, 3)), da.zeros((4, 1)))
    class FakeCuda:
        __cuda_array_interface__ = {"shape": (4, 3), "typestr": "<f8", "data": (0, False), "version": 3}
    with pytest.raises(TypeError, match="target is a GPU array.*runs on the CPU"):
        led.forward(le.MSELoss(), da.zeros((4, 3)), FakeCuda())


# -- Dask: a zero 'mean' denominator is NaN, as in memory -------------------------------------------
@pytest.mark.parametrize("case", ["every target ignored", "empty"])
def test_dask_zero_denominator_gives_what_memory_gives(case):
    da = pytest.importorskip("dask.array")
    from lossengine.integrations import dask as le_dask
    if case == "empty":
        loss, arrays, chunks = le.MSELoss(), (np.zeros(0), np.zeros(0)), (1, 1)
    else:
        loss = le.CrossEntropyLoss()
        arrays, chunks = (np.random.default_rng(0).standard_normal((6, 3)), np.full(6, -100)), ((3, 3), 3)
    lazy = [da.from_array(a, chunks=c) for a, c in zip(arrays, chunks)]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = le_dask.forward(loss, *lazy).compute()
        grad = le_dask.backward(loss, *lazy).compute()
        assert np.isnan(value) and np.isnan(loss(*arrays))
        np.testing.assert_array_equal(grad, loss.backward(*arrays))

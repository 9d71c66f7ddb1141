"""LinearCrossEntropyLoss: torch parity (cross_entropy of F.linear, float32/64, bias or not, every
reduction, label smoothing, ignored targets, N not a multiple of the chunk), its bad inputs, out=,
Dask and JAX, and the memory claim (the (N, V) logits are never materialized) in a subprocess."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import lossengine as le
from lossengine.losses import linear

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-6)}


def _problem(rng, n, d, v, dtype, ignored=(), bias=True):
    x = rng.standard_normal((n, d)).astype(dtype)
    w = (rng.standard_normal((v, d)) / np.sqrt(d)).astype(dtype)
    b = (0.3 * rng.standard_normal(v)).astype(dtype) if bias else None
    t = rng.integers(0, v, n)
    t[list(ignored)] = -100
    return x, w, t, b


def _torch_reference(x, w, t, b, reduction, label_smoothing, grad_output):
    """Value and gradients (input, weight, bias) of torch's materialized F.linear + F.cross_entropy."""
    X, W = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    B = None if b is None else torch.tensor(b, requires_grad=True)
    value = F.cross_entropy(F.linear(X, W, B), torch.tensor(t), reduction=reduction,
                            label_smoothing=label_smoothing)
    value.backward(torch.tensor(grad_output, dtype=value.dtype))
    grads = [X.grad.numpy(), W.grad.numpy()] + ([] if B is None else [B.grad.numpy()])
    return value.detach().numpy(), grads


def _assert_matches_torch(x, w, t, b, reduction, label_smoothing, grad_output, **options):
    dtype = x.dtype.type
    loss = le.LinearCrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing, **options)
    wrt = ("input", "weight") + (() if b is None else ("bias",))
    arrays = (x, w, t) if b is None else (x, w, t, b)
    value, grads = loss.forward_backward(*arrays, grad_output=grad_output, wrt=wrt)
    ref_value, ref_grads = _torch_reference(x, w, t, b, reduction, label_smoothing, grad_output)
    np.testing.assert_allclose(value, ref_value, **TOL[dtype])
    assert np.asarray(value).dtype == dtype
    for name, got, ref in zip(wrt, grads, ref_grads):
        assert got.dtype == dtype and got.shape == ref.shape, name
        scale = np.max(np.abs(ref))
        np.testing.assert_allclose(got, ref, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * scale, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_matches_torch_linear_then_cross_entropy(dtype, bias, reduction, label_smoothing):
    # 37 rows in chunks of 8 (the last one 5 rows), three targets ignored.
    rng = np.random.default_rng(1)
    x, w, t, b = _problem(rng, 37, 12, 19, dtype, ignored=(0, 8, 36), bias=bias)
    grad_output = rng.uniform(0.5, 1.5, 37) if reduction == "none" else 0.7
    _assert_matches_torch(x, w, t, b, reduction, label_smoothing, grad_output, chunk_size=8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_automatic_chunks_match_torch(dtype, monkeypatch):
    # The automatic chunk at MIN_ROWS rows (a chunk budget shrunk to 50 classes, so torch's reference
    # stays small): 600 rows make three chunks, the last a partial one.
    v, itemsize = 50, np.dtype(dtype).itemsize
    monkeypatch.setattr(linear, "CHUNK_BYTES", linear.MIN_ROWS * v * itemsize)
    rows = linear.chunk_rows(600, v, itemsize)
    assert rows == linear.MIN_ROWS and 600 % rows
    x, w, t, b = _problem(np.random.default_rng(2), 600, 6, v, dtype, ignored=(5, 599))
    _assert_matches_torch(x, w, t, b, "mean", 0.1, 1.3)


def test_every_target_ignored_matches_torch():
    # 'mean' over no targets: NaN, as torch's 0 / 0; the gradients are zero.
    x, w, t, b = _problem(np.random.default_rng(3), 6, 4, 5, np.float64, ignored=range(6))
    loss = le.LinearCrossEntropyLoss()
    value, (gx, gw, gb) = loss.forward_backward(x, w, t, b, wrt=("input", "weight", "bias"))
    ref_value, ref_grads = _torch_reference(x, w, t, b, "mean", 0.0, 1.0)
    assert np.isnan(value) and np.isnan(ref_value)
    for got, ref in zip((gx, gw, gb), ref_grads):
        np.testing.assert_array_equal(got, ref)


def test_no_rows():
    x, w, t, b = _problem(np.random.default_rng(4), 0, 3, 4, np.float64)
    value, (gx, gw, gb) = le.LinearCrossEntropyLoss(reduction="sum").forward_backward(
        x, w, t, b, wrt=("input", "weight", "bias"))
    assert value == 0 and gx.shape == (0, 3)
    np.testing.assert_array_equal(gw, np.zeros((4, 3)))
    np.testing.assert_array_equal(gb, np.zeros(4))


def test_chunking_does_not_change_the_result():
    x, w, t, b = _problem(np.random.default_rng(5), 50, 7, 11, np.float64, ignored=(3,))
    wrt = ("input", "weight", "bias")
    ref = le.LinearCrossEntropyLoss(label_smoothing=0.1).forward_backward(x, w, t, b, wrt=wrt)
    for chunk in (1, 3, 49, 50, 1000):
        got = le.LinearCrossEntropyLoss(label_smoothing=0.1, chunk_size=chunk).forward_backward(x, w, t, b, wrt=wrt)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-14)
        for g, r in zip(got[1], ref[1]):
            np.testing.assert_allclose(g, r, rtol=1e-13, atol=1e-16)
        assert np.shares_memory(got[1][0], x) is False


def test_passes_the_validator_and_is_served():
    report = le.check(le.LinearCrossEntropyLoss)
    assert report.ok, str(report)
    assert le.registry.get("linear_cross_entropy") is le.LinearCrossEntropyLoss
    x, w, t, b = _problem(np.random.default_rng(6), 9, 4, 6, np.float64)
    expected = le.LinearCrossEntropyLoss(ignore_index=2, label_smoothing=0.1)(x, w, t, b)
    assert le.functional.linear_cross_entropy(x, w, t, b, 2, "mean", 0.1) == expected
    assert le.functional.linear_cross_entropy(x, w, t, bias=b, ignore_index=2, label_smoothing=0.1,
                                              chunk_size=2) == pytest.approx(expected, rel=1e-14)
    assert le.functional.linear_cross_entropy(x, w, t) == le.LinearCrossEntropyLoss()(x, w, t, None)


def test_lossengine_list_shows_it():
    from lossengine.cli import main

    assert "linear_cross_entropy" in _cli_output(main, ["list"])


def _cli_output(main, argv):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            main(argv)
        except SystemExit as exit:
            assert not exit.code
    return buffer.getvalue()


def test_inputs_unmodified_and_out_arrays_filled():
    x, w, t, b = _problem(np.random.default_rng(7), 20, 5, 8, np.float32)
    before = [a.copy() for a in (x, w, t, b)]
    loss = le.LinearCrossEntropyLoss(chunk_size=6)
    wrt = ("input", "weight", "bias")
    expected = loss.backward(x, w, t, b, wrt=wrt)
    out = tuple(np.full_like(g, np.nan) for g in expected)
    got = loss.backward(x, w, t, b, wrt=wrt, out=out)
    for g, o, e in zip(got, out, expected):
        assert g is o
        np.testing.assert_array_equal(o, e)
    for a, before_a in zip((x, w, t, b), before):
        np.testing.assert_array_equal(a, before_a)
    values = np.full(20, np.nan, np.float32)
    le.LinearCrossEntropyLoss(reduction="none").forward(x, w, t, b, out=values)
    np.testing.assert_array_equal(values, le.LinearCrossEntropyLoss(reduction="none")(x, w, t, b))


def test_layouts_and_dtypes_of_the_arguments():
    # Fortran-ordered input, a transposed-view weight, int32 targets, a float64 bias with float32
    # input (computed in float32; the bias gradient comes back in the bias's dtype).
    x, w, t, b = _problem(np.random.default_rng(8), 13, 4, 7, np.float32)
    loss = le.LinearCrossEntropyLoss(chunk_size=5)
    wrt = ("input", "weight", "bias")
    value, grads = loss.forward_backward(x, w, t, b, wrt=wrt)
    value2, grads2 = loss.forward_backward(np.asfortranarray(x), np.ascontiguousarray(w.T).T, t.astype(np.int32),
                                           b.astype(np.float64), wrt=wrt)
    assert value2 == value
    np.testing.assert_array_equal(grads2[0], grads[0])
    np.testing.assert_array_equal(grads2[1], grads[1])
    assert grads2[2].dtype == np.float64
    np.testing.assert_array_equal(grads2[2], grads[2].astype(np.float64))


def test_pickles_after_use():
    x, w, t, b = _problem(np.random.default_rng(9), 5, 3, 4, np.float64)
    loss = le.LinearCrossEntropyLoss(label_smoothing=0.1)
    value = loss(x, w, t, b)
    assert pickle.loads(pickle.dumps(loss))(x, w, t, b) == value


# -- bad input: the argument named, what was expected said -------------------------------------------
X, W, T, B = _problem(np.random.default_rng(10), 4, 3, 5, np.float64)


@pytest.mark.parametrize("arrays, error, match", [
    ((X[0], W, T, B), ValueError, r"input must be a 2-D array \(N, D\)"),
    ((X, W[:, :2], T, B), ValueError, r"weight must have shape \(V, 3\)"),
    ((X, W[:0], T, B[:0]), ValueError, "weight must have at least one row"),
    ((X, W[0], T, B), ValueError, r"weight must be a 2-D array"),
    ((X, W, T.astype(np.float64), B), TypeError, "target must hold integer class indices"),
    ((X, W, T[:3], B), ValueError, r"target must have shape \(4,\)"),
    ((X, W, np.array([0, 5, 1, 2]), B), IndexError, r"Target 5 is out of bounds at position \(1,\)"),
    ((X, W, np.array([0, 1, -1, 2]), B), IndexError, r"Target -1 is out of bounds at position \(2,\)"),
    ((X, W, T, B[:4]), ValueError, r"bias must have shape \(5,\)"),
    ((X.astype(np.int64), W, T, B), TypeError, "input must be a floating-point array"),
    ((X, W, T, B.astype(np.int64)), TypeError, "bias must be a floating-point array"),
    ((X, W), TypeError, "takes 3 or 4 arrays"),
    ((X, W, T, B, B), TypeError, "takes 3 or 4 arrays"),
])
def test_bad_arguments_are_named(arrays, error, match):
    with pytest.raises(error, match=match):
        le.LinearCrossEntropyLoss().forward_backward(*arrays)


def test_bad_wrt_and_options_are_named():
    loss = le.LinearCrossEntropyLoss()
    with pytest.raises(ValueError, match="'bias' has no gradient in this call: no bias was given"):
        loss.backward(X, W, T, wrt="bias")
    with pytest.raises(ValueError, match="'target' is not differentiable"):
        loss.backward(X, W, T, B, wrt="target")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        le.LinearCrossEntropyLoss(chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be a positive integer"):
        le.LinearCrossEntropyLoss(chunk_size=2.0)
    with pytest.raises(ValueError, match="label_smoothing must be between"):
        le.LinearCrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(TypeError, match="takes from 1 to 4 positional arguments"):
        le.LinearCrossEntropyLoss(-100, "mean", 0.0, 4)          # chunk_size is keyword-only


# -- integrations ------------------------------------------------------------------------------------
def test_dask_chunks_rows_and_sums_the_parameter_gradients():
    da = pytest.importorskip("dask.array")
    from lossengine.integrations import dask as led

    x, w, t, b = _problem(np.random.default_rng(11), 50, 6, 9, np.float64, ignored=(1, 20))
    for reduction in ("mean", "sum", "none"):
        loss = le.LinearCrossEntropyLoss(reduction=reduction, label_smoothing=0.1)
        go = np.random.default_rng(12).uniform(0.5, 1.5, 50) if reduction == "none" else 0.7
        for with_bias in (True, False):
            arrays = (x, w, t, b) if with_bias else (x, w, t)
            wrt = ("input", "weight", "bias")[:3 if with_bias else 2]
            value, grads = loss.forward_backward(*arrays, grad_output=go, wrt=wrt)
            chunked = (da.from_array(x, chunks=(13, 6)), w, da.from_array(t, chunks=13)) + arrays[3:]
            d_value, d_grads = led.forward_backward(loss, *chunked, grad_output=go, wrt=wrt)
            np.testing.assert_allclose(d_value.compute(), value, rtol=1e-13)
            for name, got, ref in zip(wrt, d_grads, grads):
                assert got.shape == ref.shape, name
                np.testing.assert_allclose(got.compute(), ref, rtol=1e-12, atol=1e-15, err_msg=name)


def test_jax_wrap():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    from lossengine.integrations.jax import wrap

    x, w, t, b = _problem(np.random.default_rng(13), 10, 4, 6, np.float32)
    for reduction in ("mean", "none"):
        loss = le.LinearCrossEntropyLoss(reduction=reduction, label_smoothing=0.1)
        f = wrap(loss)
        value, grads = jax.value_and_grad(lambda x, w, b: jnp.sum(f(x, w, t, b)), argnums=(0, 1, 2))(x, w, b)
        go = 1.0 if reduction != "none" else np.ones(10, np.float32)
        ref_value, ref_grads = loss.forward_backward(x, w, t, b, grad_output=go, wrt=("input", "weight", "bias"))
        np.testing.assert_allclose(value, np.sum(ref_value), rtol=1e-6)
        for got, ref in zip(grads, ref_grads):
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


# -- the memory claim ----------------------------------------------------------------------------
MEMORY_PROBE = r"""
import json, resource, numpy as np
import lossengine as le
n, d, v = 8192, 256, 32768
rng = np.random.default_rng(0)
x = rng.standard_normal((n, d), dtype=np.float32)
w = rng.standard_normal((v, d), dtype=np.float32)
w *= np.float32(0.06)                       # in place: no temporary before the measurement
t = rng.integers(0, v, n)
# The call's growth: its peak (ru_maxrss, KiB) minus the memory in use when it starts (an earlier
# transient peak, an import's, must not hide the call's own).
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 1024
value, (gx, gw) = le.LinearCrossEntropyLoss().forward_backward(x, w, t, wrt=("input", "weight"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "value": float(value), "finite": bool(np.isfinite(gw).all())}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_peak_memory_stays_far_below_the_logits():
    # N=8192, D=256, V=32768 float32: the logits alone would be 1024 MB (and their gradient as much
    # again). The call's peak RSS growth, outputs included (grad_weight is 32 MB), stays under
    # 300 MB. In a fresh process, so ru_maxrss (the peak) is the probe's own.
    root = os.path.dirname(os.path.dirname(le.__file__))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Through a shell that forks the probe: a process spawned straight from this one would start with
    # this process's RSS as its ru_maxrss (Linux keeps the peak across fork and exec, vfork too).
    done = subprocess.run(["/bin/sh", "-c", '"$0" -c "$1"; exit $?', sys.executable, MEMORY_PROBE],
                          capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["finite"] and 9 < result["value"] < 12        # about log(32768) = 10.4
    assert result["growth_mb"] < 300, result


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_row_kernel_may_write_its_gradient_over_its_input(dtype, label_smoothing):
    # LinearCrossEntropyLoss turns each chunk's logits into their gradient in place: the row math must
    # read everything it needs from a row (the target's score, the smoothing sum) before it writes
    # the exps there. The same call with a separate gradient buffer is the reference.
    from lossengine import _classification
    from lossengine.losses.classification import _Layout

    rng = np.random.default_rng(14)
    x = rng.standard_normal((9, 300)).astype(dtype)
    t = rng.integers(0, 300, 9)
    t[4] = -100
    kernel = _classification.CrossEntropyIndex(label_smoothing, -100)
    one = np.ones(1, dtype)

    def run(logits, grad):
        layout = _Layout(None, "mean", 9, 300, 1, logits, None, t, (), np.dtype(dtype), None)
        return kernel.run(layout, grad, None, None, one, 0.5, _classification.MEAN_NONE, 2, 1)

    separate = np.empty_like(x)
    expected = run(x.copy(), separate)
    in_place = x.copy()
    assert run(in_place, in_place) == expected
    np.testing.assert_array_equal(in_place, separate)


def test_docs_softmax_layer_example_prints_what_it_claims(capsys):
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "linear-cross-entropy.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S)
                   if "le.LinearCrossEntropyLoss()" in b)
    namespace = {}
    exec(compile(example, "docs/linear-cross-entropy.md example", "exec"), namespace)
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == re.search(r"# (loss [0-9.]+, accuracy [0-9.]+)", example).group(1)
    # The loss it prints is torch's for the same layer (the last step's, before its update).
    W, b = namespace["W"] + 20.0 * namespace["grad_W"], namespace["b"] + 20.0 * namespace["grad_b"]
    reference = F.cross_entropy(F.linear(torch.from_numpy(namespace["H"]), torch.from_numpy(W), torch.from_numpy(b)),
                                torch.from_numpy(namespace["y"]))
    assert abs(float(namespace["loss"]) - reference.item()) < 1e-5


def test_chunk_values_whose_sum_overflows_give_inf_as_torch_does():
    # Two chunks of one row, each loss 1e308 (finite): their sum is past float64's range. math.fsum
    # raised OverflowError there (found by the torch property's extreme values); torch gives inf.
    x = np.ones((2, 1))
    w = np.array([[-1e308], [0.0]])
    t = np.array([0, 0])
    loss = le.LinearCrossEntropyLoss(reduction="sum", chunk_size=1)
    value, gx = loss.forward_backward(x, w, t)
    assert value == np.inf
    assert np.isfinite(gx).all()
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    expected = F.cross_entropy(F.linear(torch.tensor(x), torch.tensor(w)), torch.tensor(t), reduction="sum")
    assert float(expected) == np.inf


def test_jax_wrap_none_is_reverse_mode_only_with_a_clear_error():
    jax = pytest.importorskip("jax")
    from lossengine.integrations.jax import wrap

    x, w, t, b = _problem(np.random.default_rng(14), 10, 4, 6, np.float32)
    f = wrap(le.LinearCrossEntropyLoss(reduction="none"))
    with pytest.raises(TypeError, match="reverse mode only .*shared by every position"):
        jax.jvp(lambda x: f(x, w, t, b), (x,), (np.ones_like(x),))

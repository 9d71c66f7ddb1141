"""Threads: the API, bit-identical results for any thread count, safety under concurrent calls, and
that the build really has OpenMP."""
import os
import threading

import numpy as np
import pytest

import lossengine as le
from lossengine.cli import build_info
from lossengine.losses import BUILTIN_LOSSES

LARGE = 300_000  # well above the parallel threshold, many reduction blocks


def test_thread_count_api():
    before = le.get_num_threads()
    with le.threads(1):
        assert le.get_num_threads() == 1
        with le.threads(3):
            assert le.get_num_threads() == 3
        assert le.get_num_threads() == 1
    assert le.get_num_threads() == before
    le.set_num_threads(1)
    try:
        assert le.get_num_threads() == 1
    finally:
        le.set_num_threads(before)
    with pytest.raises(ValueError, match="number of threads must be between 1 and 1024, got 0"):
        le.set_num_threads(0)
    with pytest.raises(TypeError, match="number of threads must be an integer"):
        le.threads(1.5).__enter__()


def test_override_is_per_python_thread():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other():
        inside.wait()
        seen["other"] = le.get_num_threads()
        release.set()

    t = threading.Thread(target=other)
    t.start()
    default = le.get_num_threads()
    with le.threads(1):
        inside.set()
        release.wait()
    t.join()
    assert seen["other"] == default


def test_build_has_openmp():
    # A release once shipped loss kernels that had silently lost OpenMP: CI must prove it is on.
    if os.environ.get("LOSSENGINE_ALLOW_SERIAL_BUILD") == "1":
        pytest.skip("serial build explicitly allowed")
    info = build_info()
    assert info["openmp"] == "on", info
    assert "-fopenmp" in info["compile flags"]


def _large_inputs(cls, dtype):
    """Tile the class's sample inputs along axis 0 to LARGE elements (keeps them in the valid domain);
    a class whose arguments do not tile (CTC's lengths) provides large_sample_inputs, as for the validator."""
    if hasattr(cls, "large_sample_inputs"):
        return list(cls.large_sample_inputs(np.random.default_rng(3), dtype))
    arrays = [np.asarray(a) for a in cls.sample_inputs(np.random.default_rng(3), dtype)]
    reps = -(-LARGE // arrays[0].size)
    rng = np.random.default_rng(4)
    tiled = [np.concatenate([a] * reps, axis=0) if a.ndim else a for a in arrays]
    # Jitter the first argument so blocks differ: sums over identical blocks would hide ordering bugs.
    tiled[0] = (tiled[0] * (1 + 1e-3 * rng.uniform(size=tiled[0].shape))).astype(dtype)
    return tiled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [c for c in BUILTIN_LOSSES], ids=lambda c: c.__name__)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bit_identical_for_any_thread_count(cls, reduction, dtype):
    arrays = _large_inputs(cls, dtype)
    loss = cls(reduction=reduction)
    results = {}
    for n in (1, 2, 3):
        with le.threads(n):
            value, grads = loss.forward_backward(*arrays, grad_output=0.7, wrt=cls.differentiable)
        results[n] = [np.asarray(value), *grads]
    for n in (2, 3):
        for a, b in zip(results[1], results[n]):
            assert a.tobytes() == b.tobytes(), f"{cls.__name__} {reduction} {np.dtype(dtype).name}: 1 vs {n} threads"


def test_eight_python_threads_at_once_get_correct_results():
    rng = np.random.default_rng(8)
    jobs = [(rng.standard_normal(200_000), rng.standard_normal(200_000)) for _ in range(8)]
    expected = [((x - y) ** 2).mean() for x, y in jobs]
    expected_grad = [2 * (x - y) / x.size for x, y in jobs]
    barrier = threading.Barrier(8)
    results = [None] * 8
    errors = []

    def work(i):
        try:
            barrier.wait()
            for _ in range(5):
                results[i] = le.MSELoss().forward_backward(*jobs[i])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (value, grad), e, eg in zip(results, expected, expected_grad):
        np.testing.assert_allclose(value, e, rtol=1e-12)
        np.testing.assert_allclose(grad, eg, rtol=1e-14)


def test_info_names_the_kernel_variant_from_the_compile_flags():
    from lossengine.cli import _kernel_variant

    assert _kernel_variant(["-O3", "-march=native"]).startswith("native")
    assert _kernel_variant(["-O3", "-march=x86-64-v3"]).startswith("x86-64-v3")
    assert _kernel_variant(["-O3"]).startswith("baseline")
    assert build_info()["variant target"] == _kernel_variant(build_info()["compile flags"].split())

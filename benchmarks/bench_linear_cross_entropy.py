"""LinearCrossEntropyLoss's figures of record: cross_entropy(input @ weight.T, target) at N=4096, D=512,
V=32000 float32, value and gradients wrt input and weight, against

- torch: the materialized F.linear + F.cross_entropy + autograd (torch.autograd.grad), torch's threads
  set to lossengine's count;
- the computation's own limit: its three GEMMs alone (logits, grad_input, grad_weight), full size, with
  NumPy's BLAS (the one lossengine calls), into preallocated arrays;
- the row math alone: CrossEntropyLoss's kernel (the one LinearCrossEntropyLoss runs per chunk) over
  the full (N, V) logits, what the GEMMs are measured against;
- a pure-NumPy chunked baseline: the same row chunks as lossengine, with NumPy doing the row math
  (max, exp, sums, softmax - one-hot) instead of lossengine's kernel: what fusing buys;

and the peak memory (RSS growth of the call, each in a fresh process) at N=8192, D=256, V=32768 float32,
where the logits alone would be 1024 MB.

    python benchmarks/bench_linear_cross_entropy.py     # interleaved medians, ratios, memory; one run
    pytest benchmarks/bench_linear_cross_entropy.py --benchmark-enable

BLAS threads are NumPy's (OpenBLAS: OPENBLAS_NUM_THREADS, or threadpoolctl); the script prints which
BLAS and how many threads. Each engine's result is checked against lossengine's before anything is
timed. A call takes seconds: keep the repeat small on a shared machine.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lossengine as le
from lossengine.bench import interleaved_medians
from lossengine.losses import linear

N, D, V = 4096, 512, 32000
WRT = ("input", "weight")


def inputs(n=N, d=D, v=V):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((v, d), dtype=np.float32)
    w *= np.float32(1 / np.sqrt(d))
    return x, w, rng.integers(0, v, n)


def numpy_chunked(x, w, t, rows):
    """Mean cross-entropy of x @ w.T and its gradients, chunk by chunk, in NumPy alone."""
    n = x.shape[0]
    gx, gw, total = np.empty_like(x), np.zeros_like(w), 0.0
    for start in range(0, n, rows):
        xc, tc = x[start:start + rows], t[start:start + rows]
        logits = xc @ w.T
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        s = logits.sum(axis=1, keepdims=True, dtype=np.float64)
        rows_ = np.arange(len(tc))
        total += float(np.sum(np.log(s[:, 0]) - np.log(logits[rows_, tc].astype(np.float64))))
        logits *= (1.0 / (s * n)).astype(np.float32)
        logits[rows_, tc] -= np.float32(1.0 / n)
        gx[start:start + rows] = logits @ w
        gw += logits.T @ xc
    return np.float32(total / n), (gx, gw)


def engines():
    x, w, t = inputs()
    loss = le.LinearCrossEntropyLoss()
    rows = linear.chunk_rows(N, V, 4)
    ours = loss.forward_backward(x, w, t, wrt=WRT)
    logits, gx, gw = np.empty((N, V), np.float32), np.empty_like(x), np.empty_like(w)

    def three_gemms():
        np.matmul(x, w.T, out=logits)
        np.matmul(logits, w, out=gx)
        np.matmul(logits.T, x, out=gw)

    three_gemms()
    row_math = le.CrossEntropyLoss()
    found = {"lossengine": lambda: loss.forward_backward(x, w, t, wrt=WRT), "three GEMMs": three_gemms,
             "row math alone": lambda: row_math.forward_backward(logits, t),
             "numpy chunked": lambda: numpy_chunked(x, w, t, rows)}
    checks = {"numpy chunked": lambda r: (float(r[0]), r[1])}
    try:
        import torch
        torch.set_num_threads(le.get_num_threads())
        tx, tw, tt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_(), torch.from_numpy(t)
        F = torch.nn.functional

        def torch_call():
            value = F.cross_entropy(F.linear(tx, tw), tt)
            return value, torch.autograd.grad(value, (tx, tw))
        found["torch"] = torch_call
        checks["torch"] = lambda r: (r[0].item(), [g.numpy() for g in r[1]])
    except ImportError:
        pass
    for engine, convert in checks.items():
        value, grads = convert(found[engine]())
        np.testing.assert_allclose(value, ours[0], rtol=1e-5, err_msg=f"{engine} value")
        for g, o in zip(grads, ours[1]):
            np.testing.assert_allclose(g, o, rtol=1e-3, atol=1e-3 * np.abs(o).max(), err_msg=f"{engine} gradient")
    return found


MEMORY_PROBE = r"""
import json, resource, sys, numpy as np
sys.path.insert(0, {bench_dir!r})
from bench_linear_cross_entropy import inputs
engine = sys.argv[1]
x, w, t = inputs(8192, 256, 32768)
if engine == "torch":
    import torch
    F = torch.nn.functional
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    call = lambda: torch.autograd.grad(F.cross_entropy(F.linear(tx, tw), torch.from_numpy(t)), (tx, tw))
else:
    import lossengine as le
    call = lambda: le.LinearCrossEntropyLoss().forward_backward(x, w, t, wrt=("input", "weight"))
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 1024
call()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024))
"""


def peak_growth_mb(engine: str) -> float:
    """Peak RSS growth of one call at N=8192, D=256, V=32768 float32, in a fresh process."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(le.__file__))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Through a shell that forks the probe: spawned straight from this process, the probe would start
    # with this process's RSS as its ru_maxrss (Linux keeps the peak across fork and exec).
    done = subprocess.run(["/bin/sh", "-c", '"$0" -c "$1" "$2"; exit $?', sys.executable,
                           MEMORY_PROBE.format(bench_dir=here), engine],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("engine", ["lossengine", "torch", "three GEMMs", "row math alone", "numpy chunked"])
def test_forward_backward(benchmark, engine):
    found = engines()
    if engine not in found:
        pytest.skip(f"{engine} is not installed")
    benchmark.pedantic(found[engine], rounds=3, iterations=1)


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS unknown (threadpoolctl not installed)"
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}), {i['num_threads']} threads"
                     for i in info) or "no BLAS found"


if __name__ == "__main__":
    print(f"N={N} D={D} V={V} float32, mean, value + gradients wrt input and weight; lossengine "
          f"{le.get_num_threads()} threads, chunk {linear.chunk_rows(N, V, 4)} rows; NumPy BLAS: {_blas()}")
    med = interleaved_medians(engines(), repeat=int(os.environ.get("REPEAT", "3")), rounds=3)
    for name, seconds in med.items():
        print(f"{name:>14}: {seconds:6.2f} s   {seconds / med['lossengine']:5.2f}x lossengine   "
              f"{seconds / med['three GEMMs']:5.2f}x the three GEMMs")
    if sys.platform.startswith("linux"):
        for engine in ("lossengine", "torch"):
            print(f"peak RSS growth, N=8192 D=256 V=32768 float32, {engine}: {peak_growth_mb(engine):.0f} MB "
                  f"(the logits alone: {8192 * 32768 * 4 / 2 ** 20:.0f} MB)")

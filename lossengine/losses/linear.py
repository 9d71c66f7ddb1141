"""A vocabulary-sized output layer fused with its cross-entropy: ``LinearCrossEntropyLoss`` computes
``cross_entropy(input @ weight.T + bias, target)`` and its gradients wrt input, weight and bias without
ever holding the (N, V) logits.

Design
------
Rows go in chunks of ``rows`` (N x D input rows, V classes):

    logits[:n] = input[chunk] @ weight.T (+ bias)          GEMM 1, numpy.matmul
    loss, G = cross-entropy row math over logits[:n]       the classification family's compiled
                                                           CrossEntropyIndex kernel: log-sum-exp,
                                                           loss and the scaled softmax - one-hot,
                                                           G written over the logits in place
    grad_input[chunk] = G @ weight                         GEMM 2
    grad_weight += G.T @ input[chunk]                      GEMM 3
    grad_bias += column sums of G                          (float64 accumulator)

The row math is not new code: it is the very kernel ``CrossEntropyLoss`` runs (torch's formulas for
ignore_index and label smoothing, double sums over 8 lanes; on one thread here, see ROW_MATH_THREADS), called per
chunk with reduction 'sum' and the global gradient scale (grad_output / the count of non-ignored
targets for 'mean', known before the first chunk because it depends on the targets alone). So each
chunk's gradient rows are final as written, and the chunks' loss partials (doubles) are combined with
``math.fsum`` in chunk order.

BLAS: the three products are 3 x 2 N V D flops, everything else is O(N V). They go to the BLAS NumPy
already links (``numpy.matmul`` with ``out=`` into the chunk buffers, so no temporary of the chunk's
size is made), which is an optimized, threaded GEMM on every platform NumPy ships wheels for: no new
dependency and no build-time BLAS detection. ``grad_weight`` accumulates through one (V, D) buffer,
because ``matmul`` has no ``C += A @ B`` form; the add costs V D per chunk against the GEMM's
2 rows V D flops.

Chunk size: large, because each chunk is three BLAS calls and a threaded GEMM's cost grows with the
number of calls, not only with its flops: within each call the BLAS's threads share packed panels
and wait for one another (OpenBLAS: per block of the inner dimension, which is V for GEMM 2), so every
extra call adds synchronizations, and a descheduled thread stalls them all. Measured with
NumPy's OpenBLAS, 2 threads, on a 2-core machine shared with other jobs, V = 32000, D = 512, N = 2048,
forward and backward against the three full-size GEMMs in the same run: 256-row chunks 3.1x their
time, 512 rows 2.4x, 1024 rows 1.1x (G @ W alone in four 256-row calls: 7.6x one 1024-row call; with
one BLAS thread 1.07x: the cost is the threads' synchronization, which a loaded machine makes
expensive; the full problem at N = 4096 in the same run: 1048-row chunks 0.74x the time of 524-row
ones). A "few MB" chunk (64 rows at V = 32000) is therefore not used: ``rows = CHUNK_BYTES /
(V * itemsize)`` (128 MiB of logits), clamped to [MIN_ROWS, MAX_ROWS] and to N. It depends on the
shapes only, so every call on the same shapes chunks alike (the results are bit-identical for any
lossengine thread count). Peak extra memory: one chunk's logits (rows V values, which become their
gradient) plus the (V, D) accumulation buffer, independent of N. ``chunk_size=`` overrides the row count.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import _arrays, _classification
from .._reductions import reduction_of
from .._threads import PARALLEL_MIN_ELEMENTS
from ..base import FusedLoss, losses_defined_in
from ..declaration import Option, integer, real, reduction
from .classification import _Layout, _target

# Chunk sizing (see the design note): bytes of one chunk's logits, and the row count's bounds.
CHUNK_BYTES = 128 * 2 ** 20
MIN_ROWS = 256
MAX_ROWS = 8192
# The row math runs on the calling thread, between BLAS calls that use NumPy's BLAS threads. An OpenMP
# team there measured slower end to end, not faster: each pool's idle threads spin while the other
# works (N=4096, D=512, V=32000 float32, 2 cores, same run: 4.25-4.58 s with a 2-thread team, 2.93-3.14 s
# with none). The row math is under 10% of the work (0.08x the three GEMMs' time, measured).
ROW_MATH_THREADS = 1


def _parse_chunk_size(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer (rows per chunk) or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (rows per chunk) or None, got {value}")
    return int(value)


def chunk_size_option() -> Option:
    """``chunk_size``: rows per chunk, None for the automatic size (keyword-only)."""
    return Option("chunk_size", None, _parse_chunk_size, "integer", "> 0, or None: automatic", (2,),
                  keyword_only=True, kernel=False)


def chunk_rows(n_rows: int, classes: int, itemsize: int, chunk_size: int | None = None) -> int:
    """Rows per chunk for an (n_rows, classes) problem: ``chunk_size`` when given, else the automatic
    size (CHUNK_BYTES of logits, clamped to [MIN_ROWS, MAX_ROWS]); never more than n_rows (>= 1)."""
    if chunk_size is None:
        chunk_size = min(MAX_ROWS, max(MIN_ROWS, CHUNK_BYTES // max(1, classes * itemsize)))
    return max(1, min(chunk_size, n_rows))


class _Plan(NamedTuple):
    dtype: np.dtype
    loss_shape: tuple               # (N,)
    x: np.ndarray                   # (N, D), C-contiguous, compute dtype
    w: np.ndarray                   # (V, D), compute dtype
    b: np.ndarray | None            # (V,) or None
    idx: np.ndarray                 # (N,) int64
    rows: int                       # rows per chunk
    given: dict                     # argument name -> the array as given (gradients keep its dtype)


def _matrix(name: str, value: Any, what: str) -> np.ndarray:
    arr = _arrays.float_array(name, value)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array {what}, got shape {arr.shape}")
    return arr


class LinearCrossEntropyLoss(FusedLoss):
    """Cross-entropy of a linear layer's output, ``cross_entropy(input @ weight.T + bias, target)``
    (torch: ``F.cross_entropy(F.linear(input, weight, bias), target, ignore_index=..., reduction=...,
    label_smoothing=...)``), computed in row chunks so the (N, V) logits are never materialized.
    ``input`` (N, D), ``weight`` (V, D), ``target`` (N,) class indices in [0, V) or ignore_index, an
    optional ``bias`` (V,); differentiable wrt input, weight and bias. 'mean' divides by the number of
    non-ignored targets; 'none' gives the (N,) per-row losses. ``chunk_size`` (keyword-only): rows per
    chunk, None for the automatic size."""
    name = "linear_cross_entropy"
    arguments = ("input", "weight", "target", "bias")
    differentiable = ("input", "weight", "bias")
    options = (integer("ignore_index", -100, examples=(1,)), reduction(),
               real("label_smoothing", 0.0, ge=0.0, le=1.0, examples=(0.2,)), chunk_size_option())
    check_options = ({"ignore_index": 1, "label_smoothing": 0.1, "chunk_size": 2},)
    # Chunked execution (lossengine.integrations.dask): rows along the leading axis of input and
    # target; weight and bias are parameters every row shares, whole in each chunk, their gradients
    # the sum of the chunks'.
    decomposes: ClassVar[str] = "parameter-rows"
    shared_arguments: ClassVar[tuple[str, ...]] = ("weight", "bias")
    sample_shape = (5, 3)           # (N, D); V = SAMPLE_CLASSES
    SAMPLE_CLASSES: ClassVar[int] = 4
    _kernel_ce = None               # the compiled row kernel, built on first use (FusedLoss.__getstate__)

    # -- the contract's small parts --------------------------------------------------------------
    def _check_arity(self, arrays) -> None:
        if len(arrays) not in (3, 4):
            raise TypeError(f"{type(self).__name__} takes 3 or 4 arrays (input, weight, target, optional "
                            f"bias), got {len(arrays)}")

    def mean_denominator(self, input: Any, weight: Any, target: Any, bias: Any = None) -> float:
        """'mean' divides by the number of targets not equal to ignore_index (torch's cross-entropy)."""
        return float(np.count_nonzero(np.asarray(target) != self.ignore_index))

    @classmethod
    def sample_inputs(cls, rng: np.random.Generator, dtype: Any) -> tuple:
        n, d = cls.sample_shape
        return cls._draw(rng, dtype, n, d, cls.SAMPLE_CLASSES)

    @classmethod
    def large_sample_inputs(cls, rng: np.random.Generator, dtype: Any) -> tuple:
        # For the validator's large-input checks (summation precision, thread counts): more rows x
        # classes than the kernels' parallel cutoff, in one automatic chunk.
        return cls._draw(rng, dtype, 3 * MIN_ROWS + 17, 16, 128)

    @staticmethod
    def _draw(rng, dtype, n: int, d: int, v: int) -> tuple:
        x = rng.standard_normal((n, d)).astype(dtype)
        w = (rng.standard_normal((v, d)) / math.sqrt(d)).astype(dtype)
        b = (0.1 * rng.standard_normal(v)).astype(dtype)
        return x, w, rng.integers(0, v, n), b

    # -- the family's hooks (FusedLoss._compute) ---------------------------------------------------
    def _plan(self, arrays) -> _Plan:
        x = _matrix("input", arrays[0], "(N, D) of row features")
        dtype = _arrays.compute_dtype(x)
        n, d = x.shape
        w = _matrix("weight", arrays[1], f"(V, D) with D = {d}, the input's features")
        if w.shape[1] != d:
            raise ValueError(f"weight must have shape (V, {d}) (D = {d}, the input's features), got {w.shape}")
        if w.shape[0] == 0:
            raise ValueError("weight must have at least one row: it holds one row per class (V, D)")
        idx = self._targets(arrays[2], n, w.shape[0])
        given = {"input": x, "weight": w}
        b = None
        if len(arrays) > 3 and arrays[3] is not None:
            b = _arrays.float_array("bias", arrays[3])
            if b.shape != (w.shape[0],):
                raise ValueError(f"bias must have shape ({w.shape[0]},) (one value per class), got {b.shape}")
            given["bias"] = b
            b = _arrays.contiguous(b, dtype)
        rows = chunk_rows(n, w.shape[0], dtype.itemsize, self.chunk_size)
        return _Plan(dtype, (n,), _arrays.contiguous(x, dtype), _arrays.contiguous(w, dtype), b, idx, rows, given)

    def _targets(self, target: Any, n: int, classes: int) -> np.ndarray:
        t = _target(target)
        if t.dtype.kind == "f":
            raise TypeError(f"target must hold integer class indices (class-probability targets are not "
                            f"supported by {self.name}), got dtype {t.dtype}")
        idx = _arrays.index_array("target", t)
        if idx.shape != (n,):
            raise ValueError(f"target must have shape ({n},) (one class index per input row), got {idx.shape}")
        bad = np.flatnonzero(((idx < 0) | (idx >= classes)) & (idx != self.ignore_index))
        if bad.size:
            raise IndexError(f"Target {int(idx[bad[0]])} is out of bounds at position ({int(bad[0])},): class "
                             f"indices must lie in [0, {classes}) or equal ignore_index={self.ignore_index}")
        return idx

    def _grad_buffer(self, plan: _Plan, name: str) -> np.ndarray:
        if name == "input":
            return np.empty(plan.x.shape, plan.dtype)
        if name == "weight":
            return np.empty(plan.w.shape, plan.dtype)
        if plan.b is None:
            raise ValueError("wrt: 'bias' has no gradient in this call: no bias was given")
        return np.empty(plan.b.shape, plan.dtype)

    def _grad_result(self, plan: _Plan, name: str, grad: np.ndarray) -> np.ndarray:
        return grad.astype(_arrays.result_dtype(plan.given[name], plan.dtype), copy=False)

    def _row_kernel(self):
        kernel = self._kernel_ce
        if kernel is None:
            kernel = self._kernel_ce = _classification.CrossEntropyIndex(self.label_smoothing, self.ignore_index)
        return kernel

    def _run(self, plan: _Plan, grads: dict, loss_out, upstream, scale: float) -> float:
        x, w, b, idx, rows = plan.x, plan.w, plan.b, plan.idx, plan.rows
        n, classes = x.shape[0], w.shape[0]
        mode = reduction_of(self.reduction)       # 'mean': over the rows not ignored
        denom = mode.denominator(float(np.count_nonzero(idx != self.ignore_index))) if mode.divides else 1.0
        # Every target ignored: every row's gradient is 0 whatever the scale (torch's too).
        scale = mode.grad_scale(scale, denom) if denom else 0.0
        gx, gw, gb = grads.get("input"), grads.get("weight"), grads.get("bias")
        want_grad = bool(grads)
        logits = np.empty((rows, classes), plan.dtype)         # each chunk's logits, then their gradient
        w_sum = np.empty(w.shape, plan.dtype) if gw is not None and n > rows else None
        b_sum = np.zeros(classes, np.float64) if gb is not None else None
        per_row_upstream = upstream.size == n and n > 1
        kernel, layout = self._row_kernel(), _Layout(None, "mean", 0, classes, 1, logits, None, idx, (), plan.dtype, None)
        partials = []
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            xc, lc = x[start:stop], logits[:stop - start]
            np.matmul(xc, w.T, out=lc)                                  # GEMM 1: the chunk's logits
            if b is not None:
                lc += b
            gc = lc if want_grad else None                              # in place (the kernel allows it)
            value, _ = kernel.run(layout._replace(n_pos=stop - start, x=lc, idx=idx[start:stop]), gc, None,
                                  None if loss_out is None else loss_out[start:stop],
                                  upstream[start:stop] if per_row_upstream else upstream, scale,
                                  _classification.MEAN_NONE, ROW_MATH_THREADS, PARALLEL_MIN_ELEMENTS)
            partials.append(value)
            if gx is not None:
                np.matmul(gc, w, out=gx[start:stop])                    # GEMM 2
            if gw is not None:
                if start == 0:
                    np.matmul(gc.T, xc, out=gw)                         # GEMM 3, first chunk in place
                else:
                    np.matmul(gc.T, xc, out=w_sum)
                    gw += w_sum
            if b_sum is not None:
                b_sum += gc.sum(axis=0, dtype=np.float64)
        if n == 0 and gw is not None:
            gw.fill(0)
        if gb is not None:
            gb[...] = b_sum
        try:
            total = math.fsum(partials)
        except (OverflowError, ValueError):     # partials past the float range (inf, or inf - inf)
            total = float(np.sum(partials))     # what IEEE addition gives: inf or NaN, as torch's sum
        return mode.value(total, denom)


LOSSES = losses_defined_in(globals())      # this module's classes that declare a registry name
__all__ = ["LOSSES"] + [cls.__name__ for cls in LOSSES]

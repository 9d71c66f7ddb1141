"""lossengine losses over Dask arrays, chunk by chunk, on any Dask scheduler.

    import dask.array as da, lossengine as le
    from lossengine.integrations import dask as led

    x = da.random.standard_normal((10_000_000,), chunks=1_000_000)
    y = da.zeros_like(x)
    value, grad = led.forward_backward(le.MSELoss(), x, y)      # lazy: a 0-d Dask array, a Dask array
    value.compute(), grad.compute()

Which losses: those that split over chunks, as their class declares (``Loss.decomposes``): the
elementwise family ("elements": any chunking, all arguments of one shape, chunked alike — they are
rechunked to the first argument's chunks), the classification and embedding families ("rows": chunks
along the leading axis; the class or feature axis 1 and any trailing axes are made one chunk) and
losses over rows of embeddings with the features last ("feature-rows": chunks along the leading axis). For "rows" and
"feature-rows" every argument has one entry per row of the first (no broadcasting across chunks).
"parameter-rows" (LinearCrossEntropyLoss) is "feature-rows" with parameters: the arguments the class
names in ``shared_arguments`` (a weight, a bias) go whole to every chunk, and their gradients are the
sum of the chunks' gradients, added in chunk order.
Losses that do not split (CTC, plugins that do not declare it) are a TypeError.

How: each chunk runs the loss's fused kernel with reduction='sum' and reports its partial sum and its
share of the 'mean' denominator (its element count, or for weighted/ignoring cross-entropy and NLL
the sum of its targets' class weights). The value is the sum of the partials divided by the sum of
the denominators, both summed with ``math.fsum`` (exactly rounded, so the order the scheduler
delivers the chunks in cannot matter). Gradients need 'mean''s global scale before any chunk's
gradient is written: that scale, grad_output / denominator, is computed first (from the chunks'
denominators alone, without the loss values), then every chunk's gradient pass runs with it.

What is promised: for a given chunking, the value and every gradient are bit-identical whatever
the scheduler (threads, processes, distributed), the number of workers and the thread count. Across
chunkings, when 'mean' divides by a count (every elementwise loss, unweighted classification), the
gradients are bit-identical too, and equal to the unchunked call's (each element's gradient depends
only on its chunk's data and the global scale), and the value agrees to float tolerance (the chunk
sums round differently; a few ulp of the unchunked call). With a data-dependent 'mean' (class weights,
ignore_index) each chunk's share of the denominator is rounded once before the exact combination, so
gradients and value may differ in the last bits across chunkings and from the unchunked call
(measured: under 3e-14 relative in float64, 5e-7 in float32).
"""
from __future__ import annotations

import copy
import math
from typing import Any

import dask
import dask.array as da
import numpy as np

from .. import _arrays
from .._reductions import reduction_of
from ..base import DECOMPOSITION_AXES, Loss, positions_shape

__all__ = ["forward", "backward", "forward_backward"]

_VALUE_ONLY = object()      # ``wrt`` for forward(): no gradient


def forward(loss: Loss, *arrays: Any):
    """The loss value over Dask arrays: a 0-d Dask array (reduction='none': a Dask array of the loss's
    shape, chunked like the input)."""
    return _compute(loss, arrays, True, _VALUE_ONLY, 1.0)[0]


def backward(loss: Loss, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
    """Gradient(s) as Dask arrays chunked like their arguments; ``grad_output`` and ``wrt`` as for
    ``Loss.backward`` (for reduction='none' grad_output may be a Dask or NumPy array)."""
    return _compute(loss, arrays, False, wrt, grad_output)[1]


def forward_backward(loss: Loss, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
    """(value, gradient(s)) as Dask collections; each chunk's value and gradients come from one
    fused pass."""
    return _compute(loss, arrays, True, wrt, grad_output)


# -- the plan: chunks aligned per the loss's decomposition -------------------------------------------
def _aligned(loss: Loss, arrays: tuple) -> tuple[list, str]:
    kind = getattr(loss, "decomposes", None)
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a lossengine loss instance, got {type(loss).__name__}")
    if kind not in _KINDS:
        raise TypeError(f"{type(loss).__name__} does not split over chunks (Loss.decomposes is {kind!r}): "
                        f"compute it on NumPy arrays instead")
    if len(arrays) != len(loss.arguments):
        loss._check_arity(arrays)
    shared = _shared_arguments(loss, kind)
    if shared:
        arrays = _without_absent_trailing(arrays)
    for name, a in zip(loss.arguments, arrays):
        # A Dask array's chunks are of its _meta's type (a CuPy-backed array has a CuPy _meta).
        _arrays.require_host_memory(name, getattr(a, "_meta", a) if isinstance(a, da.Array) else a)
    xs = [a if isinstance(a, da.Array) else da.asarray(np.asarray(a)) for a in arrays]
    first = xs[0]
    if kind == "elements":
        for name, a in zip(loss.arguments[1:], xs[1:]):
            if a.shape != first.shape:
                raise ValueError(f"{name} must have the shape of {loss.arguments[0]} for chunked evaluation: "
                                 f"{name} has shape {a.shape}, {loss.arguments[0]} has shape {first.shape}")
        xs = [first] + [a.rechunk(first.chunks) for a in xs[1:]]
    else:
        if first.ndim <= 1:
            xs = [a.rechunk(-1) for a in xs]                 # one unbatched position
        else:
            first = first.rechunk({i: -1 for i in range(1, first.ndim)})
            rows = first.chunks[0]
            aligned = [first]
            for name, a in zip(loss.arguments[1:], xs[1:]):
                if name in shared:
                    aligned.append(a.rechunk(-1))           # whole in every chunk
                    continue
                if a.ndim == 0 or a.shape[0] != first.shape[0]:
                    raise ValueError(f"{name} must have one entry per row of {loss.arguments[0]} "
                                     f"({first.shape[0]}), got shape {a.shape}")
                aligned.append(a.rechunk({0: rows, **{i: -1 for i in range(1, a.ndim)}}))
            xs = aligned
    return xs, kind


def _blocks(xs: list) -> list[list]:
    """Per chunk (in the first argument's block order), the delayed block of every argument."""
    grids = [a.to_delayed() for a in xs]
    shape = grids[0].shape
    out = []
    for index in np.ndindex(*shape):
        out.append([g[index] if g.shape == shape else g.reshape(-1)[index[0] if g.size > 1 else 0] for g in grids])
    return out


def _with_reduction(loss: Loss, reduction: str) -> Loss:
    clone = copy.copy(loss)
    clone.reduction = reduction
    return clone


# Loss.decomposes -> the axis each position's loss reduces over, and the 'none' loss's shape over a
# block: one rule, kept on the Loss (base.py) so wrap's output shapes follow it too.
_KINDS = DECOMPOSITION_AXES
_loss_block_shape = positions_shape


def _shared_arguments(loss: Loss, kind: str) -> tuple:
    """The arguments every chunk receives whole ("parameter-rows": the class's ``shared_arguments``)."""
    return tuple(getattr(loss, "shared_arguments", ())) if kind == "parameter-rows" else ()


def _without_absent_trailing(arrays: tuple) -> tuple:
    """An optional trailing argument passed as None (a bias) is the same call without it."""
    while arrays and arrays[-1] is None:
        arrays = arrays[:-1]
    return arrays


def _sum_blocks(blocks) -> np.ndarray:
    """A shared argument's gradient: the chunks' gradients added in chunk order (a fixed order, so
    the bits do not depend on the scheduler)."""
    total = np.array(blocks[0], copy=True)
    for block in blocks[1:]:
        total += block
    return total


def _positions(kind: str, block_shape: tuple) -> int:
    return math.prod(_loss_block_shape(kind, block_shape))


def _option_operands(loss: Loss, kind: str, first: da.Array) -> tuple[tuple, list]:
    """Array options holding one value per element (ElementwiseLoss.operand_options: BCE's weight and
    pos_weight), as Dask arrays chunked like the first argument, so each chunk gets its own slice."""
    names, xs = [], []
    for name in getattr(loss, "operand_options", ()) if kind == "elements" else ():
        value = getattr(loss, name, None)
        if value is not None and np.size(value) > 1:
            _arrays.require_broadcastable(name, np.shape(value), first.shape)
            names.append(name)
            xs.append(da.broadcast_to(da.from_array(np.asarray(value)), first.shape).rechunk(first.chunks))
    return tuple(names), xs


# -- per-chunk work (runs on the workers) ------------------------------------------------------------
def _bind(loss: Loss, options: tuple, blocks: tuple) -> tuple[Loss, tuple]:
    """The chunk's loss and argument blocks: the per-element options (last in ``blocks``) set to the
    chunk's slice of them on a copy of the loss."""
    if not options:
        return loss, blocks
    n = len(blocks) - len(options)
    clone = copy.copy(loss)
    for name, block in zip(options, blocks[n:]):
        setattr(clone, name, block)
    return clone, blocks[:n]


def _chunk_denominator(loss: Loss, options: tuple, kind: str, *blocks) -> float:
    loss, blocks = _bind(loss, options, blocks)
    weighted = loss.mean_denominator(*blocks)
    return float(_positions(kind, np.shape(blocks[0])) if weighted is None else weighted)


def _chunk_sum(loss_sum: Loss, options: tuple, *blocks) -> float:
    loss_sum, blocks = _bind(loss_sum, options, blocks)
    return float(loss_sum(*blocks))


def _chunk_grads(loss: Loss, options: tuple, wrt: tuple, scale, grad_output, *blocks) -> tuple:
    loss, blocks = _bind(loss, options, blocks)
    go = grad_output if scale is None else scale
    return tuple(loss.backward(*blocks, grad_output=go, wrt=wrt))


def _none_value(loss: Loss, options: tuple, *blocks):
    loss, blocks = _bind(loss, options, blocks)
    return np.asarray(loss(*blocks))


def _fsum(partials) -> float:
    return math.fsum(partials)


# -- the driver ------------------------------------------------------------------------------------
def _compute(loss: Loss, arrays: tuple, want_value: bool, wrt: Any, grad_output: Any):
    xs, kind = _aligned(loss, arrays)
    names, single = ((), True) if wrt is _VALUE_ONLY else loss._resolve_wrt(wrt)
    dtype = _arrays.compute_dtype(np.empty(0, xs[0].dtype)) if xs[0].dtype.kind == "f" else np.dtype(np.float64)
    reduction = loss.reduction
    options, option_xs = _option_operands(loss, kind, xs[0])
    blocks = _blocks(xs + option_xs)
    block_shapes = [tuple(b) for b in _block_shapes(xs[0])]

    # 'mean' (and KLDiv's 'batchmean'): the global denominator, from shapes or the chunks' weights.
    mode = reduction_of(reduction)
    denominator = None
    if mode.divides == "positions" and _data_dependent_mean(loss):
        parts = [dask.delayed(_chunk_denominator)(loss, options, kind, *b) for b in blocks]
        denominator = dask.delayed(_fsum)(parts)
    elif mode.divides:
        denominator = float(mode.denominator(sum(_positions(kind, s) for s in block_shapes),
                                             batch=xs[0].shape[0] if xs[0].ndim else 1))

    value = None
    if want_value:
        if not mode.reduces:
            value = _assemble([da.from_delayed(dask.delayed(_none_value)(loss, options, *b),
                                               shape=_loss_block_shape(kind, s), dtype=dtype)
                               for b, s in zip(blocks, block_shapes)], xs[0], kind, loss_block=True)
        else:
            loss_sum = _with_reduction(loss, "sum")
            partials = [dask.delayed(_chunk_sum)(loss_sum, options, *b) for b in blocks]
            total = dask.delayed(_fsum)(partials)
            if denominator is not None:
                total = dask.delayed(_divide)(total, denominator)
            value = da.from_delayed(dask.delayed(_as_dtype)(total, dtype), shape=(), dtype=dtype)
    if not names:
        return value, None

    # Gradients: every chunk with the global scale.
    if not mode.reduces:
        go = grad_output
        if isinstance(go, (da.Array, np.ndarray)) and np.ndim(go) > 0:
            go_blocks = _loss_shaped_blocks(da.asarray(go), xs[0], kind)
            grads_per_block = [dask.delayed(_chunk_grads, nout=len(names))(loss, options, names, None, g, *b)
                               for g, b in zip(go_blocks, blocks)]
        else:
            grads_per_block = [dask.delayed(_chunk_grads, nout=len(names))(loss, options, names, None, go, *b)
                               for b in blocks]
    else:
        scale = _scalar_grad_output(grad_output)
        if denominator is not None:
            scale = dask.delayed(_divide)(scale, denominator)
        loss_sum = _with_reduction(loss, "sum")
        grads_per_block = [dask.delayed(_chunk_grads, nout=len(names))(loss_sum, options, names, scale, None, *b)
                           for b in blocks]
    results = []
    for k, name in enumerate(names):
        if loss.arguments.index(name) >= len(xs):
            raise ValueError(f"wrt: {name!r} has no gradient in this call: it was not given")
        arg = xs[loss.arguments.index(name)]
        gdtype = _arrays.result_dtype(np.empty(0, arg.dtype), dtype) if arg.dtype.kind == "f" else dtype
        if name in _shared_arguments(loss, kind):
            total = dask.delayed(_sum_blocks)([g[k] for g in grads_per_block])
            results.append(da.from_delayed(total, shape=arg.shape, dtype=gdtype))
            continue
        pieces = [da.from_delayed(g[k], shape=s, dtype=gdtype)
                  for g, s in zip(grads_per_block, _block_shapes(arg))]
        results.append(_assemble(pieces, arg, kind))
    return value, (results[0] if single else tuple(results))


def _data_dependent_mean(loss: Loss) -> bool:
    # Asked of the loss, not of its options: a loss whose 'mean' is not the plain count of positions
    # (torch's weighted / ignoring NLL and cross-entropy) says so by overriding mean_denominator,
    # and then each chunk reports its share of it (None from a chunk: its count of positions).
    return type(loss).mean_denominator is not Loss.mean_denominator


def _divide(a, b) -> float:
    # IEEE division, as the in-memory kernels divide: a zero denominator (every target ignored, an
    # empty array) gives NaN (or inf), as in memory and in torch, not ZeroDivisionError.
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def _as_dtype(v, dtype):
    return np.asarray(v, dtype=dtype)


def _scalar_grad_output(grad_output: Any) -> float:
    go = np.asarray(grad_output)
    if go.ndim != 0:
        raise ValueError(f"grad_output must be a scalar for a reduced loss; got an array of shape {go.shape}")
    return float(go)


def _block_shapes(x: da.Array) -> list[tuple]:
    return [tuple(c[i] for c, i in zip(x.chunks, index)) for index in np.ndindex(*x.numblocks)]


def _loss_shaped_blocks(go: da.Array, x: da.Array, kind: str) -> list:
    if kind == "elements":
        go = da.broadcast_to(go, x.shape).rechunk(x.chunks)
    elif x.ndim > 1:
        go = da.broadcast_to(go, _loss_block_shape(kind, x.shape)).rechunk({0: x.chunks[0], **{
            i: -1 for i in range(1, x.ndim - 1)}})
    else:
        go = go.rechunk(-1)
    return list(go.to_delayed().reshape(-1))


def _assemble(pieces: list, x: da.Array, kind: str, loss_block: bool = False) -> da.Array:
    """Blocks in x's block order back into one Dask array with x's block grid."""
    grid = x.numblocks
    if loss_block:
        grid = _loss_block_shape(kind, grid)
    if not grid:
        return pieces[0]
    nested = np.empty(grid, dtype=object)
    for index, piece in zip(np.ndindex(*grid), pieces):
        nested[index] = piece
    return da.block(nested.tolist())

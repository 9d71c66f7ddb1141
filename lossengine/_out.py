"""``out=``: results written into the caller's arrays (lossengine.base's forward, backward,
forward_backward and gradient_hessian take them): the arrays checked before anything is computed,
and the results delivered into them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from .base import Loss

# The overlap rule (docs/reliability.md): an output array may share no memory with anything the call
# reads -- a positional array, grad_output, an array the loss holds (its option arrays: weight,
# pos_weight, ...) -- nor with another output. Overlap is a ValueError naming both. Refusing, rather
# than computing through a temporary, because an out= that aliases an input is almost always a
# mistake (the caller would lose the input), and it keeps every kernel free to write as it reads.
# np.may_share_memory (bounds only) first: the exact np.shares_memory runs only for arrays whose
# bounds meet.
def reads(loss: "Loss", arrays: Sequence[Any], grad_output: Any = None) -> list[tuple[str, np.ndarray]]:
    """Every array a call reads, each with the name an overlap error gives it."""
    reads = [(f"an input array ({name!r})", a) for name, a in zip(loss.arguments, arrays)
             if isinstance(a, np.ndarray)]
    if isinstance(grad_output, np.ndarray):
        reads.append(("grad_output", grad_output))
    # The loss's own arrays: its public array attributes (declared option arrays and a plugin's alike).
    reads += [(f"the loss's option {name!r}", v) for name, v in vars(loss).items()
              if isinstance(v, np.ndarray) and not name.startswith("_")]
    return reads


def overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    return np.may_share_memory(a, b) and np.shares_memory(a, b)


def refuse_overlap(what: str, arr: np.ndarray, reads: Sequence[tuple[str, np.ndarray]]) -> None:
    for name, a in reads:
        if overlaps(arr, a):
            raise ValueError(f"{what} shares memory with {name}: the result would overwrite what the call reads")


def out_arrays(out: Any, names: tuple, single: bool, reads: Sequence[tuple[str, np.ndarray]]) -> tuple | None:
    """``out`` as one array per name in ``names`` (None when not given), checked for what can be
    checked before computing: its form, writability and the overlap rule (``reads``: reads)."""
    if out is None:
        return None
    if single:
        outs = (out,)
    elif isinstance(out, (tuple, list)):
        outs = tuple(out)
        if len(outs) != len(names):
            raise ValueError(f"out must hold one array per name in wrt ({len(names)}), got {len(outs)}")
    else:
        raise TypeError(f"out must be a tuple of {len(names)} arrays, one per name in wrt, "
                        f"got {type(out).__name__}")
    for k, arr in enumerate(outs):
        what = "out" if single else f"out[{k}]"
        check_out_array(what, arr, reads)
        for j, other in enumerate(outs[:k]):
            if overlaps(arr, other):
                raise ValueError(f"{what} shares memory with another out array (out[{j}])")
    return outs


def check_out_array(what: str, arr: Any, reads: Sequence[tuple[str, np.ndarray]]) -> None:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array, got {type(arr).__name__}")
    if not arr.flags.writeable:
        raise ValueError(f"{what} is read-only")
    refuse_overlap(what, arr, reads)


def deliver_one(result: np.ndarray, out: np.ndarray, what: str, of: str) -> np.ndarray:
    if result is out:
        return out
    result = np.asarray(result)
    if out.shape != result.shape:
        raise ValueError(f"{what} has shape {out.shape}; {of} has shape {result.shape}")
    if out.dtype != result.dtype:
        raise TypeError(f"{what} has dtype {out.dtype}; {of} is {result.dtype} (out= does not cast)")
    np.copyto(out, result)
    return out


def deliver(grads: Any, outs: tuple, names: tuple, single: bool) -> Any:
    """The gradients written into ``outs`` (unless the kernel wrote them there already)."""
    if single:
        return deliver_one(grads, outs[0], "out", f"the gradient wrt {names[0]!r}")
    return tuple(deliver_one(g, o, f"out[{k}]", f"the gradient wrt {n!r}")
                 for k, (g, o, n) in enumerate(zip(grads, outs, names)))


def hessian_out(out: Any, shape: tuple, dtype: np.dtype, reads: Sequence[tuple[str, np.ndarray]]) -> tuple:
    """gradient_hessian's ``out``: two writable arrays of the result's shape and dtype, neither
    overlapping what the call reads nor the other."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError("out must be a tuple (gradient, hessian) of two arrays")
    for what, arr in zip(("gradient", "hessian"), out):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"out: the {what} array must be a NumPy array, got {type(arr).__name__}")
        if arr.shape != shape or arr.dtype != dtype:
            raise ValueError(f"out: the {what} array must be a {dtype} array of shape {shape}, got "
                             f"{arr.dtype} of shape {arr.shape} (out= does not cast)")
        if not arr.flags.writeable:
            raise ValueError(f"out: the {what} array is read-only")
        refuse_overlap(f"out: the {what} array", arr, reads)
    if overlaps(*out):
        raise ValueError("out: the gradient and hessian arrays must not overlap")
    return out


def writable_in_place(arr: np.ndarray) -> bool:
    """Whether a kernel may write ``arr`` directly: C-contiguous, aligned, native byte order."""
    return arr.flags.c_contiguous and arr.flags.aligned and arr.dtype.isnative


def usable_directly(out: np.ndarray | None, buffer: np.ndarray, argument: Any) -> bool:
    """Whether the kernel may write into ``out`` in place of ``buffer``: the same shape and dtype
    (also the argument's, so the result is that array unchanged), C-contiguous and aligned."""
    return (out is not None and out.shape == buffer.shape and out.dtype == buffer.dtype
            and writable_in_place(out) and np.shape(argument) == buffer.shape
            and getattr(argument, "dtype", None) == buffer.dtype)

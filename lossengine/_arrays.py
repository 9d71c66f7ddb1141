"""The one place where user inputs become kernel inputs.

Everything the kernels assume is established here, under the GIL, before any kernel runs: dtypes
(float32/float64 computed natively; other floats cast to the input's dtype), C-contiguity and native
byte order (copies only where the given array lacks them), shapes (torch's rules, except that a
mismatch torch would broadcast with only a warning is a ValueError here) and index bounds.
Inputs are only ever read: a conversion that is not needed returns the caller's array itself, and
the kernels take it through const pointers.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

REDUCTIONS = ("none", "mean", "sum")


def converted(name: str, value: Any, expected: str) -> np.ndarray:
    """``np.asarray(value)``, or a TypeError naming ``name`` and what was ``expected`` (ragged nested
    lists and the like)."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be {expected}; could not convert it: {exc}") from None


def float_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a floating-point ndarray (any layout); TypeError naming ``name`` otherwise."""
    if type(value) is not np.ndarray:
        require_host_memory(name, value)
    arr = converted(name, value, "a floating-point array")
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array (float32 or float64), got dtype {arr.dtype}"
            + (" (cast it with .astype(np.float32) or np.float64)" if arr.dtype.kind in "iub" else "")
        )
    return arr


def require_host_memory(name: str, value: Any) -> None:
    """GPU arrays (CuPy, torch CUDA tensors, anything exposing __cuda_array_interface__ or a
    non-CPU DLPack device) are refused with what to do, not a confusing conversion error."""
    on_gpu = hasattr(value, "__cuda_array_interface__")
    if not on_gpu and hasattr(value, "__dlpack_device__") and not isinstance(value, np.ndarray):
        try:
            on_gpu = int(value.__dlpack_device__()[0]) != 1         # 1: kDLCPU
        except Exception:
            on_gpu = False
    if on_gpu:
        raise TypeError(f"{name} is a GPU array; lossengine runs on the CPU: move it to host memory first "
                        f"(e.g. cupy.asnumpy(a), tensor.cpu().numpy())")


FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
# A read-only one per dtype: the upstream-gradient operand of every reduced loss.
_ONE = {FLOAT32: np.ones(1, FLOAT32), FLOAT64: np.ones(1, FLOAT64)}
for _one in _ONE.values():
    _one.flags.writeable = False


def compute_dtype(first: np.ndarray) -> np.dtype:
    """The dtype a loss is computed in: the first float argument's, float16 widened to float32."""
    return FLOAT64 if first.dtype.itemsize >= 8 else FLOAT32


def one(dtype: np.dtype) -> np.ndarray:
    """A read-only 1-element array holding 1 (a broadcast operand)."""
    return _ONE[dtype]


def index_array(name: str, value: Any) -> np.ndarray:
    """Class indices: any integer dtype, as a native int64 C-contiguous array."""
    if type(value) is not np.ndarray:
        require_host_memory(name, value)
    arr = converted(name, value, "an integer array")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integer class indices, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8 and arr.size and arr.max() > np.iinfo(np.int64).max:
        # int64 would wrap these to negative values (even to an ignore_index); no class has them.
        position = np.unravel_index(int(np.argmax(arr > np.iinfo(np.int64).max)), arr.shape)
        raise IndexError(f"{name} value {int(arr[position])} at position {tuple(int(i) for i in position)} "
                         f"is out of bounds")
    return contiguous(arr, np.dtype(np.int64))


def contiguous(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """C-contiguous, aligned, native byte order, ``dtype``; the same object when it already is."""
    return np.require(arr, dtype=dtype, requirements=("C", "A"))


def operand(name: str, arr: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A kernel operand for a loss of ``shape``: C-contiguous with the loss's size (any shape: the
    kernel reads it flat), or one element that broadcasts."""
    if arr.shape == shape:
        if arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.aligned and arr.dtype.isnative:
            return arr
        return contiguous(arr, dtype)
    require_broadcastable(name, arr.shape, shape)
    if arr.size == 1:
        return contiguous(arr, dtype).reshape(1)
    return contiguous(np.broadcast_to(arr, shape), dtype)


def require_broadcastable(name: str, shape: tuple, to: tuple) -> None:
    try:
        if np.broadcast_shapes(shape, to) == to:
            return
    except ValueError:
        pass
    raise ValueError(f"{name} of shape {shape} does not broadcast to the loss's shape {to}")


def require_same_shapes(names: Sequence[str], arrays: Sequence[np.ndarray], broadcasting: Sequence[str]) -> None:
    """Every argument after the first, except those in ``broadcasting``, has the first's shape."""
    for name, arr in zip(names[1:], arrays[1:]):
        if name not in broadcasting:
            require_same_shape(name, arr, names[0], arrays[0])


def require_same_shape(name: str, arr: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    if arr.shape != ref.shape:
        try:
            np.broadcast_shapes(arr.shape, ref.shape)
            torch_does = "torch would broadcast them with a UserWarning; lossengine refuses"
        except ValueError:
            torch_does = "they do not broadcast either"
        raise ValueError(
            f"{name} must have the same shape as {ref_name}: {name} has shape {arr.shape}, "
            f"{ref_name} has shape {ref.shape} ({torch_does})"
        )


def check_reduction(reduction: Any, allowed: Sequence[str] = REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, allowed))}; got {reduction!r}")
    return reduction


def grad_output_operand(grad_output: Any, reduction: str, loss_shape: tuple,
                        dtype: np.dtype) -> tuple[float, np.ndarray]:
    """Split grad_output into a scalar scale and a kernel operand (1 or n elements).

    Reduced losses take a scalar. 'none' takes a scalar or an array broadcastable to the loss's shape.
    """
    if type(grad_output) is float:
        return grad_output, _ONE[dtype]
    if isinstance(grad_output, int):
        try:
            return float(grad_output), _ONE[dtype]
        except OverflowError:
            raise ValueError(f"grad_output must fit in a double, got an integer with "
                             f"{len(str(abs(grad_output)))} digits") from None
    go = converted("grad_output", grad_output, "a real number or array")
    if go.dtype.kind not in "fiub":
        raise TypeError(f"grad_output must be real-valued, got dtype {go.dtype}")
    if go.ndim == 0:
        return float(go), _ONE[dtype]
    if reduction != "none":
        raise ValueError(
            f"grad_output must be a scalar for reduction={reduction!r} (the loss is a scalar); "
            f"got an array of shape {go.shape}"
        )
    return 1.0, operand("grad_output", go, loss_shape, dtype)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient over the axes along which an argument of ``shape`` was broadcast."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def result_dtype(arg: np.ndarray, compute: np.dtype) -> np.dtype:
    """A gradient keeps its argument's dtype when that is float32/float64, else the compute dtype."""
    if arg.dtype.kind == "f" and arg.dtype.itemsize in (4, 8):
        return np.dtype(arg.dtype.newbyteorder("="))
    return compute

"""lossengine losses inside JAX programs: ``wrap(loss)`` is a JAX function whose forward and backward
call lossengine's kernels through ``jax.pure_callback``, with a ``jax.custom_vjp`` so ``jax.grad``,
``jax.value_and_grad``, ``jax.jit`` and ``jax.vmap`` work through it.

    import jax, jax.numpy as jnp, lossengine as le
    from lossengine.integrations.jax import wrap

    bce = wrap(le.BCEWithLogitsLoss())
    grad_w = jax.grad(lambda w: bce(X @ w, y))(w)

How: for a reduced loss ('mean', 'sum') the forward pass runs lossengine's fused ``forward_backward``
once, keeping the gradients (for grad_output 1) as residuals; the backward pass only scales them by the
incoming cotangent — one kernel pass for value and gradient, as lossengine computes them. For
reduction='none' the backward pass calls ``backward`` with the cotangent array as grad_output.
Arguments lossengine does not differentiate (class indices, lengths) get a zero cotangent.

Under ``jax.vmap`` the callback runs once per batch element (``vmap_method="sequential"``): a reduced
loss reduces within each element, exactly as the unbatched function would. The callback leaves XLA,
so it costs a host round trip per call (measured in the README); inside jit it is still one call.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _arrays
from ..base import Loss

__all__ = ["wrap"]


def _struct(shape, dtype) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))


_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def _narrow(dtype) -> bool:
    """A JAX float dtype lossengine does not compute in natively (float16, bfloat16, float8s): the
    callback hands it over as float32 and casts the results back."""
    return bool(jnp.issubdtype(dtype, jnp.floating)) and np.dtype(dtype) not in _NATIVE


def _to_host(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.float32) if _narrow(a.dtype) else a


def _flat(value_and_grads) -> tuple:
    value, grads = value_and_grads
    return (value,) + tuple(grads)


def wrap(loss: Loss):
    """A JAX-callable ``f(*arrays)`` computing ``loss(*arrays)`` with lossengine, differentiable by
    JAX wrt the loss's differentiable arguments (dtypes and shapes preserved)."""
    if isinstance(loss, type):
        raise TypeError(f"wrap takes a loss instance, e.g. wrap({loss.__name__}()), not the class")
    if not isinstance(loss, Loss):
        raise TypeError(f"wrap takes a lossengine loss instance, got {type(loss).__name__}")
    arguments = tuple(loss.arguments)
    reduced = getattr(loss, "reduction", "mean") != "none"
    value_structs: dict = {}

    def wrt_of(arrays) -> tuple[int, ...]:
        # The differentiable arguments given as floats (an integer target is a class index).
        return tuple(k for k, name in enumerate(arguments)
                     if name in loss.differentiable and jnp.issubdtype(arrays[k].dtype, jnp.floating))

    def value_shape(arrays) -> jax.ShapeDtypeStruct:
        # A reduced value is a scalar of the compute dtype (the contract of Loss.forward). A 'none'
        # value's shape comes from lossengine itself, on zeros of the abstract shapes (valid for every
        # built-in's domain: class index 0, length 0, a clamped variance), once per signature: eager
        # calls would otherwise pay a second kernel pass each. A narrow float input keeps its dtype,
        # as every other JAX function does.
        key = tuple((tuple(a.shape), np.dtype(a.dtype)) for a in arrays)
        struct = value_structs.get(key)
        if struct is None:
            first = np.dtype(arrays[0].dtype)
            if _narrow(first):
                dtype = first
            else:
                dtype = _arrays.compute_dtype(np.empty(0, first)) if first.kind == "f" else np.dtype(np.float64)
            if reduced:
                shape = ()
            else:
                shape = np.shape(loss.forward(*[_to_host(np.zeros(a.shape, a.dtype)) for a in arrays]))
            struct = value_structs[key] = _struct(shape, dtype)
        return struct

    def host_call(method, structs, *arrays, **kwargs):
        # Runs on the host: lossengine on NumPy views of the JAX buffers, results in the declared dtypes.
        out = method(*[_to_host(a) for a in arrays], **kwargs)
        out = out if isinstance(out, tuple) else (out,)
        return tuple(np.asarray(r, s.dtype) for r, s in zip(out, structs))

    def grad_structs(arrays) -> tuple:
        return tuple(_struct(arrays[k].shape, arrays[k].dtype) for k in wrt_of(arrays))

    def callback(method, structs, *operands, **kwargs):
        return jax.pure_callback(functools.partial(host_call, method, structs, **kwargs), structs, *operands,
                                 vmap_method="sequential")

    @jax.custom_vjp
    def f(*arrays):
        return callback(loss.forward, (value_shape(arrays),), *arrays)[0]

    def f_fwd(*arrays):
        if not reduced:
            return f(*arrays), arrays
        wrt = tuple(arguments[k] for k in wrt_of(arrays))
        out = callback(lambda *a: _flat(loss.forward_backward(*a, wrt=wrt)),
                       (value_shape(arrays),) + grad_structs(arrays), *arrays)
        return out[0], (arrays, out[1:])

    def f_bwd(residual, cotangent):
        if reduced:
            arrays, grads = residual
            grads = tuple(g * cotangent.astype(g.dtype) for g in grads)
        else:
            arrays = residual
            wrt = tuple(arguments[k] for k in wrt_of(arrays))
            grads = callback(lambda go, *a: loss.backward(*a, grad_output=go, wrt=wrt),
                             grad_structs(arrays), cotangent, *arrays)
        result: list[Any] = [None] * len(arrays)
        for k, g in zip(wrt_of(arrays), grads):
            result[k] = g
        return tuple(result)

    f.defvjp(f_fwd, f_bwd)

    def call(*arrays):
        if len(arrays) != len(arguments):
            raise TypeError(f"{type(loss).__name__} takes {len(arguments)} arrays ({', '.join(arguments)}), "
                            f"got {len(arrays)}")
        return f(*[jnp.asarray(a) for a in arrays])

    call.__name__ = f"{type(loss).__name__}_jax"
    call.__doc__ = f"{loss!r} as a JAX function of ({', '.join(arguments)}), differentiable wrt " \
                   f"{', '.join(n for n in arguments if n in loss.differentiable)} (when given as floats)."
    return call

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

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..base import Loss

__all__ = ["wrap"]


def _struct(shape, dtype) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))


def wrap(loss: Loss):
    """A JAX-callable ``f(*arrays)`` computing ``loss(*arrays)`` with lossengine, differentiable by
    JAX wrt the loss's differentiable arguments (dtypes and shapes preserved)."""
    if isinstance(loss, type):
        raise TypeError(f"wrap takes a loss instance, e.g. wrap({loss.__name__}()), not the class")
    if not isinstance(loss, Loss):
        raise TypeError(f"wrap takes a lossengine loss instance, got {type(loss).__name__}")
    arguments = tuple(loss.arguments)
    reduced = getattr(loss, "reduction", "mean") != "none"

    def wrt_of(arrays) -> tuple[int, ...]:
        # The differentiable arguments given as floats (an integer target is a class index).
        return tuple(k for k, name in enumerate(arguments)
                     if name in loss.differentiable and np.dtype(arrays[k].dtype).kind == "f")

    def host_value(*arrays):
        return np.asarray(loss.forward(*[np.asarray(a) for a in arrays]))

    def value_shape(arrays) -> jax.ShapeDtypeStruct:
        # The value's shape and dtype from lossengine itself, on zeros of the abstract shapes (valid
        # for every built-in's domain: zeros are class index 0, length 0, a clamped variance).
        zeros = [np.zeros(a.shape, a.dtype) for a in arrays]
        value = np.asarray(loss.forward(*zeros))
        return _struct(value.shape, value.dtype)

    def host_value_and_grads(*arrays):
        wrt = tuple(arguments[k] for k in wrt_of(arrays))
        value, grads = loss.forward_backward(*[np.asarray(a) for a in arrays], wrt=wrt)
        return (np.asarray(value),) + tuple(np.asarray(g) for g in grads)

    def host_grads(cotangent, *arrays):
        wrt = tuple(arguments[k] for k in wrt_of(arrays))
        grads = loss.backward(*[np.asarray(a) for a in arrays], grad_output=np.asarray(cotangent), wrt=wrt)
        return tuple(np.asarray(g) for g in grads)

    def grad_structs(arrays) -> tuple:
        return tuple(_struct(arrays[k].shape, arrays[k].dtype) for k in wrt_of(arrays))

    @jax.custom_vjp
    def f(*arrays):
        return jax.pure_callback(host_value, value_shape(arrays), *arrays, vmap_method="sequential")

    def f_fwd(*arrays):
        if not reduced:
            return f(*arrays), arrays
        out = jax.pure_callback(host_value_and_grads, (value_shape(arrays),) + grad_structs(arrays), *arrays,
                                vmap_method="sequential")
        return out[0], (arrays, out[1:])

    def f_bwd(residual, cotangent):
        if reduced:
            arrays, grads = residual
            grads = tuple(g * cotangent.astype(g.dtype) for g in grads)
        else:
            arrays = residual
            grads = jax.pure_callback(host_grads, grad_structs(arrays), cotangent, *arrays,
                                      vmap_method="sequential")
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

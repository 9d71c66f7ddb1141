"""lossengine losses inside JAX programs: ``wrap(loss)`` is a JAX function computing the loss with
lossengine's kernels, differentiable by JAX in forward and reverse mode (``jax.jvp``, ``jacfwd``,
``grad``, ``value_and_grad``), twice for losses with a diagonal Hessian (``jax.hessian``,
grad-of-grad, Hessian-vector products), under ``jit`` and ``vmap``.

    import jax, jax.numpy as jnp, lossengine as le
    from lossengine.integrations.jax import wrap

    bce = wrap(le.BCEWithLogitsLoss())
    grad_w = jax.grad(lambda w: bce(X @ w, y))(w)

How the derivatives are defined (a ``jax.custom_jvp``, not a ``custom_vjp``): the JVP of the value is
<gradient, tangent>, with the gradients from lossengine's fused ``forward_backward`` (one kernel pass
for value and gradients, for the arguments whose tangent is not a symbolic zero). That expression is
linear in the tangent, so JAX transposes it for reverse mode: ``value_and_grad`` runs the same single
pass forward and only multiplies the kept gradient by the cotangent backward (XLA folds the multiply
by the constant 1 of ``jit(value_and_grad)``). One definition thus serves jvp, jacfwd, grad and vjp.
For reduction='none' the tangent of each loss position is the sum of gradient x tangent over the
elements it depends on, which the loss declares (``Loss.decomposes``: elements, rows, feature rows);
a 'none' loss that declares no decomposition keeps a reverse-only ``custom_vjp`` (``backward`` with
the cotangent as grad_output).

Second derivatives: the gradients are themselves a ``custom_jvp`` function whose JVP is the Hessian
times the tangent. lossengine has that Hessian where it is diagonal: ``gradient_hessian`` of an
elementwise loss (d^2 loss_i / d input_i^2), so grad-of-grad, ``jax.hessian`` and HVPs work wrt the
input; anything else (another argument, a row loss, a third derivative) raises a TypeError saying so.

Where the kernels run: through an XLA FFI custom call when the compiled handler
(``lossengine_jaxffi``, ``pip install ./jaxffi``) is installed; it hands XLA's buffers to lossengine
as NumPy views, without copies, and turns lossengine's ValueError/TypeError/IndexError into one short
XLA error. Otherwise through ``jax.pure_callback`` (copies in and out, a longer host round trip).
``backend()`` says which; ``LOSSENGINE_JAX_FFI=0`` forces the fallback. Either way a call outside
``jit`` re-raises lossengine's own exception. Under ``vmap`` the kernels run once per batch element
(a reduced loss reduces within each): in one custom call on views of the batched buffers (FFI), or
in XLA's loop of callbacks (``vmap_method="sequential"``, the fallback). Output shapes come
from the loss's declared rule (``Loss.value_shape``), never from running it.
"""
from __future__ import annotations

import os
import weakref
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .._reductions import reduction_of
from ..base import DECOMPOSITION_AXES, FusedLoss, Loss

# The decompositions whose 'none' value has a forward-mode derivative here: each position's tangent is
# a sum of gradient x tangent over the elements it reads (not "parameter-rows": see function()).
FORWARD_KINDS = ("elements", "rows", "feature-rows")

__all__ = ["wrap", "backend", "describe_backend"]

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))
# What lossengine raises for the caller's data; anything else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, TypeError, IndexError)


def _narrow(dtype) -> bool:
    """A JAX float dtype lossengine does not compute in natively (float16, bfloat16, float8s): it is
    computed in float32 and the results are cast back."""
    return bool(jnp.issubdtype(dtype, jnp.floating)) and np.dtype(dtype) not in _NATIVE


def _struct(shape, dtype) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))


# -- where the kernels run -----------------------------------------------------------------------------
# A host function ``host(ins, outs)`` runs lossengine on NumPy arrays ``ins`` and writes every result
# into the arrays ``outs`` (of the declared shapes and dtypes). The backend decides where those arrays
# live: XLA's own buffers (FFI) or copies (pure_callback).
class _RecentError:
    """The last lossengine error a host function raised, so that a call outside ``jit`` (where the
    failing kernel runs while ``wrap``'s function is still on the stack) re-raises it as itself. The
    host runs on an XLA thread, not the caller's, so this is process-wide; the message must match the
    XLA error's for the re-raise, so a concurrent failure elsewhere cannot be mistaken for this one."""
    exc: BaseException | None = None


# Integer dtypes JAX hands over that lossengine would widen to int64 anyway (class indices, lengths:
# JAX's integers are int32 unless x64 is on); widened here, where it is exact, the call can take the
# kernels' fast paths, which take int64 indices only. (uint64 is left to lossengine's own checks.)
_WIDENED = frozenset(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32))


def _widen(a: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) if a.dtype in _WIDENED else a


def _guarded(host: Callable) -> Callable:
    def run(ins, outs):
        try:
            host([_widen(a) for a in ins], outs)
        except _USER_ERRORS as exc:
            _RecentError.exc = exc
            raise
    return run


class _Callback:
    name = "pure_callback"

    def __call__(self, host: Callable, structs: list, operands: tuple) -> tuple:
        def run(*arrays):
            outs = [np.empty(s.shape, s.dtype) for s in structs]
            host([np.asarray(a) for a in arrays], outs)
            return tuple(outs)
        return jax.pure_callback(run, tuple(structs), *operands, vmap_method="sequential")


class _Ffi:
    """The ``lossengine_host`` XLA custom call: the handler (lossengine_jaxffi) looks the host function
    up by the ``slot`` attribute and calls it on NumPy views of the operand and result buffers.

    Its vmap rule is ``expand_dims``: one custom call for the whole batch, the batched operands with
    their batch axes leading and the others with axes of size 1 there (no copies, no broadcast), and
    the host runs the loss once per batch element on views (``_each_element``). The fallback's
    ``sequential`` rule is an XLA loop with one call per element, which slices every operand and
    stacks every result."""
    name = "ffi"
    target = "lossengine_host"

    def __init__(self, module):
        self.module = module
        jax.ffi.register_ffi_target(self.target, module.handler(), platform="cpu")

    def __call__(self, host: Callable, structs: list, operands: tuple) -> tuple:
        slot = getattr(host, "ffi_slot", None)
        if slot is None:
            slot = host.ffi_slot = self.module.register(_Slot(host))
        call = jax.ffi.ffi_call(self.target, tuple(structs), vmap_method="expand_dims")
        return tuple(call(*operands, slot=np.int64(slot), rank=np.int64(len(structs[0].shape))))


class _Slot:
    """What the handler's slot table holds for a host function: a weak reference to it. The table
    never shrinks (a compiled program may name a slot for as long as it lives), so it must not keep a
    wrapped loss alive: ``wrap(loss)`` in a loop would otherwise keep every loss and its host functions.
    A slot whose host is gone can only be reached by a program compiled for a function nobody holds."""
    __slots__ = ("host",)

    def __init__(self, host: Callable):
        self.host = weakref.ref(host)

    def __call__(self, ins: list, outs: list, rank: int) -> None:
        host = self.host()
        if host is None:
            raise RuntimeError("lossengine: the wrapped loss this compiled call was made for no longer exists")
        _each_element(host, ins, outs, rank)


def _each_element(host: Callable, ins: list, outs: list, rank: int) -> None:
    """``host`` on each element of a vmapped call: ``rank`` is the first result's unbatched rank, so its
    leading axes beyond that are the batch's; an operand's leading axes there are the batch's sizes or 1."""
    depth = outs[0].ndim - rank
    if depth == 0:
        return host(ins, outs)
    for index in np.ndindex(*outs[0].shape[:depth]):
        host([a[tuple(i if n > 1 else 0 for i, n in zip(index, a.shape[:depth])) + (...,)] for a in ins],
             [o[index + (...,)] for o in outs])


#: Why the FFI handler is not used (None when it is).
_FFI_UNAVAILABLE: str | None = None


def _choose_backend():
    global _FFI_UNAVAILABLE
    if os.environ.get("LOSSENGINE_JAX_FFI", "1") == "0":
        _FFI_UNAVAILABLE = "LOSSENGINE_JAX_FFI=0"
        return _Callback()
    try:
        import lossengine_jaxffi
        backend = _Ffi(lossengine_jaxffi)
    except ImportError:
        _FFI_UNAVAILABLE = "lossengine_jaxffi is not installed (pip install ./jaxffi)"
    except Exception as exc:          # a handler built for another jaxlib: XLA refuses to register it
        _FFI_UNAVAILABLE = f"lossengine_jaxffi could not be registered with XLA: {exc}"
    else:
        _FFI_UNAVAILABLE = None
        return backend
    return _Callback()


_BACKEND = _choose_backend()


def backend() -> str:
    """Where wrapped losses run: "ffi" (the compiled XLA FFI handler) or "pure_callback" (the fallback)."""
    return _BACKEND.name


def describe_backend() -> str:
    """``backend()`` in a sentence, with the reason for the fallback (``lossengine info`` prints it)."""
    if _BACKEND.name == "ffi":
        import lossengine_jaxffi
        return f"XLA FFI handler (lossengine_jaxffi {lossengine_jaxffi.__version__})"
    return f"jax.pure_callback fallback ({_FFI_UNAVAILABLE})"


def _reraising(fn: Callable, arrays: list):
    """``fn(*arrays)``, with a lossengine error its kernels raised re-raised as itself (one short
    message) instead of XLA's wrapper around it."""
    _RecentError.exc = None
    try:
        return fn(*arrays)
    except Exception as error:           # XLA's error: a JaxRuntimeError, or a ValueError outside jit
        exc = _RecentError.exc
        if exc is None or exc is error or str(exc) not in str(error):
            raise
        _RecentError.exc = None
        raise exc.with_traceback(None) from None


def _deliver(out: np.ndarray, result: Any) -> None:
    if result is not out:
        np.copyto(out, result, casting="unsafe")


def _broadcasts(shape: tuple, to: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, to) == tuple(to)
    except ValueError:
        return False


# -- the wrapper -----------------------------------------------------------------------------------------
def _check_loss(loss: Any) -> None:
    if isinstance(loss, type):
        raise TypeError(f"wrap takes a loss instance, e.g. wrap({loss.__name__}()), not the class")
    if not isinstance(loss, Loss):
        raise TypeError(f"wrap takes a lossengine loss instance, got {type(loss).__name__}")


class _Kernels:
    """The host functions of one wrapped loss, each made once (the FFI backend registers them by slot)."""

    def __init__(self, loss: Loss):
        self.loss = loss
        self.arguments = tuple(loss.arguments)
        self.fused = isinstance(loss, FusedLoss)
        self.value = _guarded(self._value)
        self.grad_hess = _guarded(self._grad_hess)
        # The host functions made per wrt, made once: the FFI route registers each by its identity.
        self.made: dict[tuple, Callable] = {}

    def _value(self, ins, outs):
        _deliver(outs[0], self.loss.forward(*ins))

    def value_grads(self, wrt: tuple) -> Callable:
        return self._once(self._value_grads, wrt)

    def backward(self, wrt: tuple) -> Callable:
        return self._once(self._backward, wrt)

    def _once(self, make: Callable, wrt: tuple) -> Callable:
        host = self.made.get((make.__name__, wrt))
        if host is None:
            host = self.made[(make.__name__, wrt)] = make(wrt)
        return host

    def _value_grads(self, wrt: tuple) -> Callable:
        loss, names = self.loss, tuple(self.arguments[k] for k in wrt)
        # wrt=None (the first differentiable argument) is the compiled fast path's call.
        default = names == tuple(loss.differentiable[:1])
        none = getattr(loss, "reduction", "mean") == "none"

        def host(ins, outs):
            grads_out = outs[1] if default else tuple(outs[1:])
            if self.fused:           # written by the kernel into the result buffers where it can
                value, grads = loss.forward_backward(*ins, wrt=None if default else names, out=grads_out,
                                                     value_out=outs[0] if none else None)
            else:
                value, grads = loss.forward_backward(*ins, wrt=None if default else names)
            _deliver(outs[0], value)
            for out, grad in zip(outs[1:], (grads,) if default else grads):
                _deliver(out, grad)
        return _guarded(host)

    def _backward(self, wrt: tuple) -> Callable:
        names = tuple(self.arguments[k] for k in wrt)

        def host(ins, outs):
            grads = self.loss.backward(*ins[1:], grad_output=ins[0], wrt=names)
            for out, grad in zip(outs, grads):
                _deliver(out, grad)
        return _guarded(host)

    def _grad_hess(self, ins, outs):
        if self.fused:
            self.loss.gradient_hessian(*ins, out=(outs[0], outs[1]))
        else:
            for out, result in zip(outs, self.loss.gradient_hessian(*ins)):
                _deliver(out, result)


def wrap(loss: Loss):
    """A JAX-callable ``f(*arrays)`` computing ``loss(*arrays)`` with lossengine, differentiable by
    JAX (forward and reverse mode; twice wrt the input where the loss's Hessian is diagonal) wrt the
    loss's differentiable arguments given as floats (dtypes and shapes preserved)."""
    _check_loss(loss)
    return _Wrapped(loss, _BACKEND).function()


class _Wrapped:
    def __init__(self, loss: Loss, run: Callable):
        self.loss, self.run, self.kernels = loss, run, _Kernels(loss)
        self.arguments = tuple(loss.arguments)
        self.title = type(loss).__name__
        self.reduced = getattr(loss, "reduction", "mean") != "none"
        self.kind = getattr(loss, "decomposes", None)

    # -- shapes and dtypes, from the declarations ---------------------------------------------------
    def value_struct(self, arrays) -> jax.ShapeDtypeStruct:
        shape = self.loss.value_shape(*[tuple(a.shape) for a in arrays])
        if shape is None:
            raise TypeError(f"wrap: {self.title} with reduction='none' declares no rule for its value's shape "
                            f"(Loss.decomposes is None and value_shape is not overridden), which JAX needs "
                            f"before running it; use reduction='mean' or 'sum', or declare decomposes")
        first = np.dtype(arrays[0].dtype)
        return _struct(shape, first if first in _NATIVE else jax.dtypes.canonicalize_dtype(np.float64))

    def grad_structs(self, arrays, wrt: tuple) -> list:
        return [_struct(arrays[k].shape, arrays[k].dtype) for k in wrt]

    def moving(self, primals, tangents) -> tuple:
        """The arguments a derivative is taken along: float, with a tangent that is not a symbolic zero."""
        moving = []
        for k, (p, t) in enumerate(zip(primals, tangents)):
            if isinstance(t, SymbolicZero) or not jnp.issubdtype(p.dtype, jnp.floating):
                continue
            if self.arguments[k] not in self.loss.differentiable:
                raise TypeError(f"{self.title} is not differentiable wrt {self.arguments[k]!r}; its "
                                f"differentiable arguments: {', '.join(self.loss.differentiable)}")
            moving.append(k)
        return tuple(moving)

    # -- the pieces JAX calls ------------------------------------------------------------------------
    def value(self, *arrays):
        return self.run(self.kernels.value, [self.value_struct(arrays)], arrays)[0]

    def value_grads(self, wrt: tuple, *arrays):
        out = self.run(self.kernels.value_grads(wrt), [self.value_struct(arrays)] + self.grad_structs(arrays, wrt),
                       arrays)
        return out[0], tuple(out[1:])

    def contract(self, primals, wrt: tuple, grads: tuple, tangents, value_struct) -> jax.Array:
        """The value's tangent: per loss position, the sum of gradient x tangent over what it depends on."""
        total = None
        for k, g in zip(wrt, grads):
            term = g * tangents[k].astype(g.dtype)
            term = jnp.sum(term) if self.reduced else self.per_position(term, k, primals, value_struct.shape)
            term = term.astype(value_struct.dtype)
            total = term if total is None else total + term
        return total

    def per_position(self, term, k: int, primals, shape: tuple):
        if term.shape == shape:
            return term
        axis = DECOMPOSITION_AXES.get(self.kind)
        if axis is not None and term.shape == primals[0].shape:
            return jnp.sum(term, axis=axis if term.ndim > 1 else None)
        raise TypeError(f"wrap: derivatives of {self.title}(reduction='none') wrt {self.arguments[k]!r} of shape "
                        f"{term.shape} are not supported: that argument is neither of the loss's shape {shape} "
                        f"nor of {self.arguments[0]}'s (a broadcast argument); use reduction='sum'")

    def value_jvp(self, primals, tangents):
        wrt = self.moving(primals, tangents)
        if not wrt:
            value = self.value(*primals)
            return value, jnp.zeros(value.shape, value.dtype)
        value, grads = self.value_grads_function(wrt, *primals)
        return value, self.contract(primals, wrt, grads, tangents, self.value_struct(primals))

    def value_grads_jvp(self, wrt: tuple, primals, tangents):
        moving = self.moving(primals, tangents)
        self.require_hessian(wrt, moving)
        value, grads = self.value_grads_function(wrt, *primals)
        value_tangent = self.contract(primals, wrt, grads, tangents, self.value_struct(primals))
        # d(gradient wrt input) = H t, H diagonal: the unreduced loss's d^2 loss_i / d input_i^2, divided
        # as the reduction divides the gradient.
        scale = 1.0 / self.denominator(tuple(primals[0].shape))
        hess = self.hessian_function(*primals)
        return (value, grads), (value_tangent, (hess * (scale * tangents[0].astype(hess.dtype)),))

    def denominator(self, shape: tuple) -> int:
        """What the reduction divides the summed loss by: the elementwise family's own rule ('mean': the
        element count, KLDiv's 'batchmean': the batch size), else the Reduction's ('mean': the element
        count, else 1, as NumpyElementwiseLoss divides)."""
        rule = getattr(self.loss, "_denominator", None)
        if rule is not None:
            return max(1, int(rule(shape)))
        mode = reduction_of(getattr(self.loss, "reduction", "mean"))
        return max(1, int(mode.denominator(int(np.prod(shape)))))

    def require_hessian(self, wrt: tuple, moving: tuple) -> None:
        supported = ("wrap supports second derivatives (jax.hessian, grad of grad, Hessian-vector products) "
                     "wrt the first argument, for losses whose Hessian is diagonal: elementwise losses with "
                     "gradient_hessian")
        if not (self.kind == "elements" and getattr(self.loss, "has_hessian", False)):
            raise TypeError(f"{self.title} has no diagonal second derivative in lossengine (has_hessian is "
                            f"{bool(getattr(self.loss, 'has_hessian', False))}, decomposes is {self.kind!r}); "
                            f"{supported}")
        if wrt != (0,) or moving != (0,):
            names = sorted({self.arguments[k] for k in wrt + moving} - {self.arguments[0]})
            raise TypeError(f"{self.title}: second derivatives involving {', '.join(map(repr, names))} are not "
                            f"available (lossengine's gradient_hessian is d^2 loss / d {self.arguments[0]}^2 "
                            f"only); {supported}")

    def hessian(self, *arrays):
        struct = _struct(arrays[0].shape, self.value_struct(arrays).dtype)
        return self.run(self.kernels.grad_hess, [struct, struct], arrays)[1]

    def hessian_jvp(self, primals, tangents):
        raise TypeError(f"{self.title}: third derivatives are not available in lossengine (wrap differentiates "
                        f"at most twice, through gradient_hessian)")

    # -- the reverse-only route: reduction='none' without a declared decomposition ------------------
    def vjp_fwd(self, *arrays):
        return self.value(*arrays), arrays

    def vjp_bwd(self, arrays, cotangent):
        wrt = tuple(k for k, name in enumerate(self.arguments)
                    if name in self.loss.differentiable and jnp.issubdtype(arrays[k].dtype, jnp.floating))
        if not wrt:                          # nothing differentiable was given as floats: no kernel call
            return (None,) * len(arrays)
        grads = self.run(self.kernels.backward(wrt), self.grad_structs(arrays, wrt), (cotangent,) + tuple(arrays))
        result: list[Any] = [None] * len(arrays)
        for k, g in zip(wrt, grads):
            result[k] = g
        return tuple(result)

    def broadcast(self, arrays: list) -> list:
        """For an elementwise reduction='none' loss, float arguments that broadcast to the first one's
        shape (``broadcast_arguments``) broadcast in JAX, before the kernels: each loss element's
        tangent needs the partials per element, which lossengine returns summed over the broadcast
        (its gradient has the argument's shape). Only same-rank (or 0-d) arguments: there NumPy's rule
        is the loss's; a lower-rank one may follow the loss's own (GaussianNLL's var of the input's
        shape without its last axis), so it is left to lossengine, differentiable in reduced form."""
        if self.reduced or self.kind != "elements":
            return arrays
        shape = arrays[0].shape
        broadcasting = getattr(self.loss, "broadcast_arguments", ())
        return [jnp.broadcast_to(a, shape)
                if k and self.arguments[k] in broadcasting and jnp.issubdtype(a.dtype, jnp.floating)
                and a.shape != shape and a.ndim in (0, len(shape)) and _broadcasts(a.shape, shape) else a
                for k, a in enumerate(arrays)]

    # -- assembly --------------------------------------------------------------------------------------
    def function(self) -> Callable:
        self.value_grads_function = jax.custom_jvp(self.value_grads, nondiff_argnums=(0,))
        self.value_grads_function.defjvp(self.value_grads_jvp, symbolic_zeros=True)
        self.hessian_function = jax.custom_jvp(self.hessian)
        self.hessian_function.defjvp(self.hessian_jvp)
        # 'none' through arguments every position shares ("parameter-rows": LinearCrossEntropyLoss's
        # weight and bias) has per-position tangents only through per-position Jacobians of those
        # arguments, which lossengine does not form: reverse mode (backward with the cotangent) only.
        reverse_only = not (self.reduced or self.kind in FORWARD_KINDS)
        if reverse_only:
            core = jax.custom_vjp(self.value)
            core.defvjp(self.vjp_fwd, self.vjp_bwd)
        else:
            core = jax.custom_jvp(self.value)
            core.defjvp(self.value_jvp, symbolic_zeros=True)
        arguments = self.arguments

        def run(arrays):
            try:
                return _reraising(core, arrays)
            except TypeError as exc:
                # JAX's own words for forward mode through a custom_vjp, said in lossengine's.
                if reverse_only and "forward-mode autodiff" in str(exc):
                    why = ("its arguments shared by every position (Loss.decomposes 'parameter-rows') have no "
                           "per-position derivatives in lossengine" if self.kind == "parameter-rows" else
                           "it declares no decomposition (Loss.decomposes), so which loss position each element "
                           "moves is unknown")
                    raise TypeError(
                        f"wrap: {self.title}(reduction='none') is differentiable in reverse mode only (jax.grad, "
                        f"vjp, jacrev): {why}; for jvp, jacfwd or hessian use reduction='sum' or 'mean'"
                    ) from None
                raise

        def call(*arrays):
            if len(arrays) != len(arguments):
                raise TypeError(f"{self.title} takes {len(arguments)} arrays ({', '.join(arguments)}), "
                                f"got {len(arrays)}")
            arrays = [jnp.asarray(a) for a in arrays]
            narrow = arrays[0].dtype if _narrow(arrays[0].dtype) else None
            arrays = [a.astype(jnp.float32) if _narrow(a.dtype) else a for a in arrays]
            value = run(self.broadcast(arrays))
            return value if narrow is None else value.astype(narrow)

        call.__name__ = f"{self.title}_jax"
        call.__doc__ = f"{self.loss!r} as a JAX function of ({', '.join(arguments)}), differentiable wrt " \
                       f"{', '.join(n for n in arguments if n in self.loss.differentiable)} (when given as floats)."
        return call

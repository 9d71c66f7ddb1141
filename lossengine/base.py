"""The Loss base class: the public calling contract every loss, built-in or plugin, follows.

A loss declares ``name`` (its registry key, the torch.nn.functional name), ``arguments`` (names of its
positional arrays, in order) and ``differentiable`` (the subset gradients exist for). It implements
``forward(*arrays)`` and ``backward(*arrays, grad_output=1.0, wrt=None)``; the base class supplies
``__call__``, ``forward_backward`` (built-in families override it with one fused pass), argument-count
and ``wrt`` checking, and ``sample_inputs`` for the validator.
"""
from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Sequence

import numpy as np

from . import _arrays
from .declaration import declared_options, make_init, options_repr
from .domains import domain_of


class Loss:
    """Base class of every loss. Subclasses set ``name``, ``arguments`` and ``differentiable``."""

    name: ClassVar[str] = ""
    arguments: ClassVar[tuple[str, ...]] = ("input", "target")
    differentiable: ClassVar[tuple[str, ...]] = ("input",)
    reductions: ClassVar[tuple[str, ...]] = _arrays.REDUCTIONS
    # Per-argument domains (lossengine.domains); an argument not named here is Real(). The default
    # sample_inputs draws from them, at ``sample_shape`` (a ClassIndex argument drops the class axis).
    domains: ClassVar[dict] = {}
    sample_shape: ClassVar[tuple[int, ...]] = (3, 5)
    # Deliberate, documented departures from the reference (torch), by a short key: what differs and
    # why. Tests take their exclusions from here (``deviations["key"]`` as the xfail reason) rather
    # than writing their own, so every exclusion is declared once, on the loss, and visible to users.
    deviations: ClassVar[dict[str, str]] = {}
    # True for classes whose backward/forward_backward take every public form of ``wrt`` themselves
    # (the built-in families, via FusedLoss._begin). Otherwise a subclass's own backward and
    # forward_backward are wrapped so the author always receives ``wrt`` as a tuple of names and
    # returns a tuple, while callers keep every public form (None, a name, a tuple of names).
    normalizes_wrt: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.normalizes_wrt:
            return
        for attr, wrap in (("backward", _public_backward), ("forward_backward", _public_forward_backward)):
            fn = cls.__dict__.get(attr)
            if fn is not None and not getattr(fn, "_normalizes_wrt", False):
                setattr(cls, attr, wrap(fn))
        fn = cls.__dict__.get("forward")
        if fn is not None and not getattr(fn, "_takes_out", False):
            cls.forward = _public_forward(fn)

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _arrays.check_reduction(reduction, self.reductions)

    # -- the public contract -------------------------------------------------------------------
    def __call__(self, *arrays: Any):
        return self.forward(*arrays)

    def forward(self, *arrays: Any):
        """The loss value: a NumPy scalar of the input's dtype, or an array for reduction='none'."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
        """Gradient(s) of sum(grad_output * loss) with respect to the arguments named by ``wrt``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None,
                         loss_out: Any = None):
        """(value, gradient(s)); built-in losses compute both in one fused pass."""
        if loss_out is not None:    # its own label, and not overlapping a gradient's out
            names, _ = self._resolve_wrt(wrt)
            _value_out(self, loss_out, "loss_out", arrays, grad_output, _grad_outs(out, names, arrays, grad_output))
        return (self.forward(*arrays, out=loss_out),
                self.backward(*arrays, grad_output=grad_output, wrt=wrt, out=out))

    # ``out=`` (gradients) and ``loss_out=`` / forward's ``out=`` ('none' values) for a class that
    # writes its own forward/backward: the author's results are checked against the out arrays and
    # copied in (FusedLoss has the kernels write into them directly). No obligation for authors.

    def mean_denominator(self, *arrays: Any) -> float | None:
        """What reduction='mean' divides the summed loss by, for these arrays; None means the number of
        elements of the 'none' loss. The validator checks 'mean' against 'sum' with it; losses whose
        'mean' is a weighted mean (torch's NLL and cross-entropy with class weights or ignore_index)
        override it."""
        return None

    @classmethod
    def sample_inputs(cls, rng: np.random.Generator, dtype: Any) -> tuple:
        """Valid positional arrays for the validator, drawn from ``rng``, of float dtype ``dtype``:
        by default one array per argument drawn from its declared domain (standard normal where
        none is declared) at ``sample_shape``."""
        return tuple(domain_of(cls, name).sample(rng, cls.sample_shape, dtype) for name in cls.arguments)

    # -- helpers for subclasses ----------------------------------------------------------------
    def _check_arity(self, arrays: Sequence[Any]) -> None:
        if len(arrays) != len(self.arguments):
            raise TypeError(
                f"{type(self).__name__} takes {len(self.arguments)} arrays "
                f"({', '.join(self.arguments)}), got {len(arrays)}"
            )

    @classmethod
    def _resolve_wrt(cls, wrt: Any) -> tuple[tuple[str, ...], bool]:
        """Normalize ``wrt`` to (names, single): single means return one array, not a tuple."""
        if wrt is None:
            return (cls.differentiable[0],), True
        single = isinstance(wrt, str)
        if not single and not isinstance(wrt, (tuple, list)):
            raise ValueError(f"wrt must be None, an argument name or a tuple of names; got {type(wrt).__name__}")
        names = (wrt,) if single else tuple(wrt)
        if not names:
            raise ValueError("wrt must name at least one argument")
        for name in names:
            if not isinstance(name, str) or name not in cls.arguments:
                raise ValueError(
                    f"wrt: {name!r} is not an argument of {cls.__name__}; "
                    f"its arguments are {', '.join(cls.arguments)}"
                )
            if name not in cls.differentiable:
                raise ValueError(
                    f"wrt: {name!r} is not differentiable for {cls.__name__}; "
                    f"differentiable arguments: {', '.join(cls.differentiable)}"
                )
        return names, single

    def _options_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._options_repr()})"


def _public_grads(grads: Any, names: tuple, single: bool) -> Any:
    """An author's gradients (a tuple, one per name asked) in the form the caller asked for: one array
    for ``wrt`` None or a name. A lone array for a one-name tuple is accepted as that tuple; anything
    else malformed is passed on unchanged, for the validator to report."""
    if len(names) == 1 and isinstance(grads, np.ndarray):
        grads = (grads,)
    elif isinstance(grads, list):
        grads = tuple(grads)
    if single and isinstance(grads, tuple) and len(grads) == 1:
        return grads[0]
    return grads


def _public_backward(fn):
    @functools.wraps(fn)
    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None):
        names, single = self._resolve_wrt(wrt)
        outs = _grad_outs(out, names, arrays, grad_output)
        grads = _public_grads(fn(self, *arrays, grad_output=grad_output, wrt=names), names, single)
        return grads if outs is None else _deliver_grads(outs, grads, single)
    backward._normalizes_wrt = True
    return backward


def _public_forward_backward(fn):
    @functools.wraps(fn)
    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None,
                         loss_out: Any = None):
        names, single = self._resolve_wrt(wrt)
        outs = _grad_outs(out, names, arrays, grad_output)
        value_out = _value_out(self, loss_out, "loss_out", arrays, grad_output, outs)
        result = fn(self, *arrays, grad_output=grad_output, wrt=names)
        if isinstance(result, tuple) and len(result) == 2:
            value, grads = result[0], _public_grads(result[1], names, single)
            if value_out is not None:
                value = _deliver("loss_out", value_out, value)
            return value, (grads if outs is None else _deliver_grads(outs, grads, single))
        return result
    forward_backward._normalizes_wrt = True
    return forward_backward


def _public_forward(fn):
    @functools.wraps(fn)
    def forward(self, *arrays: Any, out: Any = None):
        value_out = _value_out(self, out, "out", arrays, None, None)
        value = fn(self, *arrays)
        return value if value_out is None else _deliver("out", value_out, value)
    forward._takes_out = True
    return forward


# -- out= ---------------------------------------------------------------------------------------
# An out array must be a writeable ndarray of exactly the result's shape and dtype (no casting, as
# scikit-learn's gradient_out), and may not share memory with any input, grad_output or another out:
# a kernel writing into an operand it is still reading would return garbage. may_share_memory
# compares memory bounds only (O(1)); an interleaved view of the same buffer is refused too.

def _grad_outs(out: Any, names: tuple, arrays: Sequence[Any], grad_output: Any) -> tuple | None:
    """``out`` as a tuple with one array per name in ``wrt`` (None if not given), checked for type,
    writeability and aliasing; shapes and dtypes are checked against the results."""
    if out is None:
        return None
    outs = (out,) if isinstance(out, np.ndarray) else out
    if not isinstance(outs, (tuple, list)) or len(outs) != len(names):
        raise TypeError(f"out must be {'an array' if len(names) == 1 else 'a tuple of arrays'} matching wrt "
                        f"({', '.join(names)}): one gradient array per name; got {_describe(out)}")
    outs = tuple(outs)
    for k, o in enumerate(outs):
        label = "out" if len(outs) == 1 else f"out[{k}] (the gradient wrt {names[k]!r})"
        _check_out_array(label, o, arrays, grad_output)
        for j in range(k):
            if np.may_share_memory(o, outs[j]):
                raise ValueError(f"out[{k}] and out[{j}] share memory: each gradient needs its own array")
    return outs


def _value_out(loss: Loss, out: Any, label: str, arrays: Sequence[Any], grad_output: Any,
               grad_outs: tuple | None) -> np.ndarray | None:
    if out is None:
        return None
    if loss.reduction != "none":
        raise ValueError(f"{label} is only for reduction='none' (the per-element loss); with "
                         f"reduction={loss.reduction!r} the value is a scalar")
    _check_out_array(label, out, arrays, grad_output)
    for k, o in enumerate(grad_outs or ()):
        if np.may_share_memory(out, o):
            raise ValueError(f"{label} and out{'' if len(grad_outs) == 1 else f'[{k}]'} share memory: "
                             "the loss and each gradient need their own arrays")
    return out


def _check_out_array(label: str, o: Any, arrays: Sequence[Any], grad_output: Any) -> None:
    if type(o) is not np.ndarray:
        raise TypeError(f"{label} must be a numpy.ndarray, got {_describe(o)}")
    if not o.flags.writeable:
        raise ValueError(f"{label} is read-only: an out array must be writeable")
    for k, a in enumerate(arrays):
        if isinstance(a, np.ndarray) and np.may_share_memory(o, a):
            raise ValueError(f"{label} shares memory with input array {k}: an out array must not overlap "
                             "the arrays the loss reads")
    if isinstance(grad_output, np.ndarray) and np.may_share_memory(o, grad_output):
        raise ValueError(f"{label} shares memory with grad_output: an out array must not overlap the "
                         "arrays the loss reads")


def _check_out_spec(label: str, o: np.ndarray, shape: tuple, dtype: np.dtype) -> None:
    if o.dtype != dtype:
        raise TypeError(f"{label} must have dtype {dtype} (the result's, no casting), got {o.dtype}")
    if o.shape != tuple(shape):
        raise ValueError(f"{label} must have shape {tuple(shape)} (the result's), got {o.shape}")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def _is_same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` is ``b`` or a same-size contiguous view starting at the same address (the
    kernel wrote into ``b`` directly and the result is only reshaped)."""
    if a is b:
        return True
    return (a.dtype == b.dtype and a.size == b.size and a.flags.c_contiguous and b.flags.c_contiguous
            and a.ctypes.data == b.ctypes.data)


def _deliver(label: str, o: np.ndarray, result: Any) -> np.ndarray:
    result = np.asarray(result)
    _check_out_spec(label, o, result.shape, result.dtype)
    if not _is_same_memory(result, o):
        np.copyto(o, result, casting="no")
    return o


def _deliver_grads(outs: tuple, grads: Any, single: bool) -> Any:
    if single:
        return _deliver("out", outs[0], grads)
    grads = tuple(grads)
    return tuple(_deliver("out" if len(outs) == 1 else f"out[{k}]", o, g) for k, (o, g) in enumerate(zip(outs, grads)))


# ``wrt`` sentinel for FusedLoss._compute: the value only, no gradient.
FORWARD_ONLY = object()

# torch's deprecated constructor arguments: refused with a pointer to ``reduction``.
_DEPRECATED_REDUCTION_ARGS = ("size_average", "reduce")


class FusedLoss(Loss):
    """The compute skeleton every family shares: forward, backward and forward_backward are each one
    ``_compute``, a template method whose family hooks are

    ``_plan(arrays) -> plan``
        the arguments normalized for the kernel (through lossengine/_arrays.py); the plan has at
        least ``.dtype`` (the compute dtype) and ``.loss_shape`` (the 'none' loss's shape);
    ``_grad_layout(plan, name) -> (shape, dtype)``
        the C-contiguous array the kernel writes the gradient wrt ``name`` into (``_grad_buffer``
        allocates it; a family overriding ``_grad_buffer`` instead forgoes writing into ``out``);
    ``_run(plan, grads, loss_out, upstream, scale) -> float``
        one fused pass: fills ``loss_out`` ('none' with a value wanted, else None) and every buffer
        in ``grads`` (name -> buffer), and returns the reduced value; the gradient is that of
        sum(grad_output * loss), grad_output given as ``scale`` times the ``upstream`` operand;
    ``_grad_result(plan, name, grad) -> ndarray``
        the gradient as the caller receives it (the argument's shape and dtype);
    ``_grad_spec(plan, name) -> (shape, dtype)``
        that result's shape and dtype, before the kernel runs: what an ``out`` array must be.

    ``out=`` needs nothing more from a family: an ``out`` laid out as ``_grad_buffer``'s array
    (same size and dtype, C-contiguous) is handed to ``_run`` in its place, anything else valid gets
    ``_grad_result`` copied in.

    A subclass that declares ``options`` (lossengine.declaration) gets its ``__init__``, signature
    and ``repr`` from them; ``_options_parsed()`` runs after the options are stored.
    """

    options: ClassVar[tuple] = ()
    normalizes_wrt = True  # _begin resolves every public form of wrt

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "options" in cls.__dict__ and "__init__" not in cls.__dict__:
            cls.__init__ = make_init(cls)

    def __new__(cls, *args: Any, **kwargs: Any):
        deprecated = [k for k in _DEPRECATED_REDUCTION_ARGS if k in kwargs]
        if deprecated:
            raise TypeError(
                f"{cls.__name__}: {' and '.join(deprecated)} {'is' if len(deprecated) == 1 else 'are'} torch's "
                f"deprecated way to choose the reduction and is not supported; pass reduction='mean', "
                f"'sum' or 'none' instead (size_average=False means reduction='sum'; reduce=False, 'none')"
            )
        return super().__new__(cls)

    def _options_parsed(self) -> None:
        """Checks across options, after the generated __init__ stored them (none by default)."""

    def _options_repr(self) -> str:
        return options_repr(self) if declared_options(type(self)) else super()._options_repr()

    # -- the public contract, each one pass ------------------------------------------------------
    def __call__(self, *arrays: Any):
        return self._compute(arrays, True, FORWARD_ONLY, 1.0)[0]

    def forward(self, *arrays: Any, out: Any = None):
        """The loss value: a NumPy scalar of the input's dtype, or an array for reduction='none'
        (written into ``out`` when given: an array of the loss's shape and dtype)."""
        if out is None:     # (subclasses may override _compute with the four-argument form)
            return self._compute(arrays, True, FORWARD_ONLY, 1.0)[0]
        return self._compute(arrays, True, FORWARD_ONLY, 1.0, None, out)[0]

    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None):
        """Gradient(s) of sum(grad_output * loss) wrt the arguments named by ``wrt`` (None: the
        first differentiable argument; a name: that one; a tuple of names: a tuple, in that order).
        ``out``: the array (or a tuple of arrays matching ``wrt``) to write the gradient(s) into,
        each of exactly the result's shape and dtype, overlapping no input; it is returned."""
        if out is None:
            return self._compute(arrays, False, wrt, grad_output)[1]
        return self._compute(arrays, False, wrt, grad_output, out, None)[1]

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None,
                         loss_out: Any = None):
        """(value, gradient(s)) from one fused pass; ``grad_output``, ``wrt`` and ``out`` as for
        backward; ``loss_out`` receives the value for reduction='none'."""
        if out is None and loss_out is None:
            return self._compute(arrays, True, wrt, grad_output)
        return self._compute(arrays, True, wrt, grad_output, out, loss_out)

    # -- the skeleton ----------------------------------------------------------------------------
    def _compute(self, arrays, want_value: bool, wrt: Any, grad_output: Any, out: Any = None,
                 loss_out: Any = None):
        if len(arrays) != len(self.arguments):
            self._check_arity(arrays)
        names, single = ((), False) if wrt is FORWARD_ONLY else self._resolve_wrt(wrt)
        outs = _grad_outs(out, names, arrays, grad_output) if out is not None else None
        value_out = (_value_out(self, loss_out, "out" if not names else "loss_out", arrays, grad_output, outs)
                     if loss_out is not None else None)
        plan = self._plan(arrays)
        dtype = plan.dtype
        if names:
            scale, upstream = _arrays.grad_output_operand(grad_output, self.reduction, plan.loss_shape, dtype)
        else:
            scale, upstream = 1.0, _arrays.one(dtype)
        if outs is None:
            grads = {name: self._grad_buffer(plan, name) for name in names}
        else:
            grads = {name: self._out_buffer(plan, name, o, "out" if len(outs) == 1 else f"out[{k}]")
                     for k, (name, o) in enumerate(zip(names, outs))}
        loss_buffer = None
        if want_value and self.reduction == "none":
            loss_buffer = np.empty(plan.loss_shape, dtype)
            if value_out is not None:
                _check_out_spec("out" if not names else "loss_out", value_out, plan.loss_shape, dtype)
                if value_out.flags.c_contiguous and value_out.flags.aligned:
                    loss_buffer = value_out
        total = self._run(plan, grads, loss_buffer, upstream, scale)
        value = None
        if want_value:
            if loss_buffer is None:
                value = dtype.type(total)
            elif value_out is not None:
                value = _deliver("loss_out", value_out, loss_buffer)
            else:
                value = loss_buffer
        if not names:
            return value, None
        results = [self._grad_result(plan, name, grads[name]) for name in names]
        if outs is not None:
            results = [_deliver("out", o, r) for o, r in zip(outs, results)]
        return value, (results[0] if single else tuple(results))

    def _out_buffer(self, plan, name: str, o: np.ndarray, label: str) -> np.ndarray:
        """The buffer the kernel writes the gradient wrt ``name`` into when the caller gave ``o``:
        ``o`` itself when it is laid out as ``_grad_buffer``'s would be (the common case: nothing
        allocated, nothing copied), else a fresh buffer whose result ``_compute`` copies into ``o``."""
        layout = self._grad_layout(plan, name)
        shape, dtype = self._grad_spec(plan, name)
        _check_out_spec(label, o, shape, dtype)
        # Same dtype and size as the buffer: _grad_result can only reshape it (a reduction over
        # broadcast axes changes the size, a cast the dtype), so the kernel may write into ``o``.
        # Only when the buffer comes from _grad_layout (a family overriding _grad_buffer itself
        # may want something else, and gets the copy).
        if (layout[1] == dtype and math.prod(layout[0]) == o.size and o.flags.c_contiguous
                and o.flags.aligned and type(self)._grad_buffer is FusedLoss._grad_buffer):
            return o.reshape(layout[0])
        return self._grad_buffer(plan, name)

    def _grad_spec(self, plan, name: str) -> tuple:
        """(shape, dtype) of the gradient wrt ``name`` as the caller receives it (what ``out`` must
        be), known before the kernel runs; the default matches the default hooks."""
        return plan.loss_shape, plan.dtype

    def _plan(self, arrays):
        raise NotImplementedError(f"{type(self).__name__} does not implement _plan()")

    def _grad_buffer(self, plan, name: str) -> np.ndarray:
        return np.empty(*self._grad_layout(plan, name))

    def _grad_layout(self, plan, name: str) -> tuple:
        """(shape, dtype) of the C-contiguous buffer ``_grad_buffer`` allocates."""
        return plan.loss_shape, plan.dtype

    def _run(self, plan, grads: dict, loss_out, upstream, scale: float) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not implement _run()")

    def _grad_result(self, plan, name: str, grad: np.ndarray) -> np.ndarray:
        return grad

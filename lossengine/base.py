"""The Loss base class: the public calling contract every loss, built-in or plugin, follows.

A loss declares ``name`` (its registry key, the torch.nn.functional name), ``arguments`` (names of its
positional arrays, in order) and ``differentiable`` (the subset gradients exist for). It implements
``forward(*arrays)`` and ``backward(*arrays, grad_output=1.0, wrt=None)``; the base class supplies
``__call__``, ``forward_backward`` (built-in families override it with one fused pass), argument-count
and ``wrt`` checking, and ``sample_inputs`` for the validator.
"""
from __future__ import annotations

import functools
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

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
        """(value, gradient(s)); built-in losses compute both in one fused pass."""
        return self.forward(*arrays), self.backward(*arrays, grad_output=grad_output, wrt=wrt)

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
    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
        names, single = self._resolve_wrt(wrt)
        return _public_grads(fn(self, *arrays, grad_output=grad_output, wrt=names), names, single)
    backward._normalizes_wrt = True
    return backward


def _public_forward_backward(fn):
    @functools.wraps(fn)
    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
        names, single = self._resolve_wrt(wrt)
        result = fn(self, *arrays, grad_output=grad_output, wrt=names)
        if isinstance(result, tuple) and len(result) == 2:
            return result[0], _public_grads(result[1], names, single)
        return result
    forward_backward._normalizes_wrt = True
    return forward_backward


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
    ``_grad_buffer(plan, name) -> ndarray``
        the empty array the kernel writes the gradient wrt ``name`` into;
    ``_run(plan, grads, loss_out, upstream, scale) -> float``
        one fused pass: fills ``loss_out`` ('none' with a value wanted, else None) and every buffer
        in ``grads`` (name -> buffer), and returns the reduced value; the gradient is that of
        sum(grad_output * loss), grad_output given as ``scale`` times the ``upstream`` operand;
    ``_grad_result(plan, name, grad) -> ndarray``
        the gradient as the caller receives it (the argument's shape and dtype).

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

    def forward(self, *arrays: Any):
        """The loss value: a NumPy scalar of the input's dtype, or an array for reduction='none'."""
        return self._compute(arrays, True, FORWARD_ONLY, 1.0)[0]

    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
        """Gradient(s) of sum(grad_output * loss) wrt the arguments named by ``wrt`` (None: the
        first differentiable argument; a name: that one; a tuple of names: a tuple, in that order)."""
        return self._compute(arrays, False, wrt, grad_output)[1]

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None):
        """(value, gradient(s)) from one fused pass; ``grad_output`` and ``wrt`` as for backward."""
        return self._compute(arrays, True, wrt, grad_output)

    # -- the skeleton ----------------------------------------------------------------------------
    def _compute(self, arrays, want_value: bool, wrt: Any, grad_output: Any):
        if len(arrays) != len(self.arguments):
            self._check_arity(arrays)
        names, single = ((), False) if wrt is FORWARD_ONLY else self._resolve_wrt(wrt)
        plan = self._plan(arrays)
        dtype = plan.dtype
        if names:
            scale, upstream = _arrays.grad_output_operand(grad_output, self.reduction, plan.loss_shape, dtype)
        else:
            scale, upstream = 1.0, _arrays.one(dtype)
        grads = {name: self._grad_buffer(plan, name) for name in names}
        loss_out = np.empty(plan.loss_shape, dtype) if want_value and self.reduction == "none" else None
        total = self._run(plan, grads, loss_out, upstream, scale)
        value = None
        if want_value:
            value = loss_out if loss_out is not None else dtype.type(total)
        if not names:
            return value, None
        results = [self._grad_result(plan, name, grads[name]) for name in names]
        return value, (results[0] if single else tuple(results))

    # -- second derivatives (gradient boosting) ---------------------------------------------------
    # True where the family's kernel has the loss's second derivative (elementwise: per kernel).
    has_hessian: ClassVar[bool] = False
    # What boosting should use where the true second derivative is 0 (piecewise-linear losses: L1,
    # pinball, hinge): lossengine.integrations substitutes it for non-positive Hessians. None: the
    # Hessian is positive wherever the loss is convex, nothing to substitute.
    hessian_surrogate: ClassVar[float | None] = None

    def gradient_hessian(self, *arrays: Any, out: Any = None):
        """(gradient, hessian) of the unreduced loss ('none', whatever ``reduction`` is) wrt the input:
        per element d loss_i / d input_i and d^2 loss_i / d input_i^2 (row losses: the diagonal of
        each row's Hessian), as scikit-learn's ``_loss`` ``gradient_hessian``; one fused pass. Both
        have the input's shape and the compute dtype (float32 or float64). ``out=(gradient, hessian)``
        writes into those C-contiguous arrays of that shape and dtype instead. Where the true second
        derivative is 0 or undefined the loss's docstring says what is returned (see
        ``hessian_surrogate``)."""
        if not self.has_hessian:
            raise TypeError(f"{type(self).__name__} has no second derivative kernel (has_hessian is False)")
        if len(arrays) != len(self.arguments):
            self._check_arity(arrays)
        plan = self._plan(arrays)
        shape = self._hessian_shape(plan)
        if out is None:
            grad, hess = np.empty(shape, plan.dtype), np.empty(shape, plan.dtype)
        else:
            if not isinstance(out, tuple) or len(out) != 2:
                raise TypeError("out must be a tuple (gradient, hessian) of two arrays")
            for what, arr in zip(("gradient", "hessian"), out):
                if not (isinstance(arr, np.ndarray) and arr.shape == shape and arr.dtype == plan.dtype
                        and arr.flags.c_contiguous and arr.flags.writeable):
                    raise ValueError(f"out: the {what} array must be a writable C-contiguous {plan.dtype} "
                                     f"array of shape {shape}")
            grad, hess = out
            if np.shares_memory(grad, hess):
                raise ValueError("out: the gradient and hessian arrays must not overlap")
        self._run_hessian(plan, grad, hess)
        return grad, hess

    def _hessian_shape(self, plan) -> tuple:
        return plan.loss_shape

    def _run_hessian(self, plan, grad: np.ndarray, hess: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement _run_hessian()")

    def _plan(self, arrays):
        raise NotImplementedError(f"{type(self).__name__} does not implement _plan()")

    def _grad_buffer(self, plan, name: str) -> np.ndarray:
        return np.empty(plan.loss_shape, plan.dtype)

    def _run(self, plan, grads: dict, loss_out, upstream, scale: float) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not implement _run()")

    def _grad_result(self, plan, name: str, grad: np.ndarray) -> np.ndarray:
        return grad

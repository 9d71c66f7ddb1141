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

from . import _arrays, _intercept, _out
from .declaration import declared_options, make_init, options_repr
from .domains import domain_of


#: Loss.decomposes -> the axis of the first argument each position's loss reduces over (None: none).
#: "rows": classification scores (N, C, d1, ...), the class axis 1; "feature-rows": embeddings
#: (N, ..., D), the feature axis last; "parameter-rows": (N, D) rows through arguments every chunk
#: receives whole (LinearCrossEntropyLoss's weight and bias, whose gradients are summed over chunks).
#: All split along the leading axis only.
DECOMPOSITION_AXES = {"elements": None, "rows": 1, "feature-rows": -1, "parameter-rows": -1}


def positions_shape(kind: str, shape: tuple) -> tuple:
    """The 'none' loss's shape for a first argument of ``shape`` (or a block of it, or its block grid:
    the reduced axis is one chunk), for a loss that decomposes as ``kind``."""
    axis = DECOMPOSITION_AXES[kind]
    if axis is None:
        return tuple(shape)
    if len(shape) <= 1:
        return ()                                        # one unbatched position
    axis %= len(shape)
    return tuple(shape[:axis]) + tuple(shape[axis + 1:])


class Loss:
    """Base class of every loss. Subclasses set ``name``, ``arguments`` and ``differentiable``.

    What the validator and the integrations need from a class, it declares (defaults here, so a
    plugin that declares nothing keeps working): ``decomposes`` (how it splits over chunks),
    ``sample_layout`` (how sample draws join into large inputs), ``has_hessian`` (FusedLoss:
    whether ``gradient_hessian`` exists), ``class_index_targets`` (whether the target may hold
    class indices) and ``mean_denominator`` (a weighted 'mean'). Nothing inspects a family."""

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
    # How the loss splits over chunks of its arguments, for chunked execution
    # (lossengine.integrations.dask): "elements" (any chunking: each element's loss depends on that
    # element only), "rows" (along the leading axis only; the first argument's axis 1, classes, is
    # reduced), "feature-rows" (along the leading axis; the last axis, features, is reduced),
    # "parameter-rows" ("feature-rows" for the arguments not named in the class's ``shared_arguments``,
    # which go whole to every chunk and whose gradients are summed over the chunks), or None (it does
    # not split).
    decomposes: ClassVar[str | None] = None
    # How the validator may build large inputs (past the kernels' parallel cutoff) from sample draws:
    # "batch-rows" (every argument with the first one's leading axis is a batch of independent rows,
    # so draws of any batch size join along it: the elementwise and classification families), or
    # None (joined only when every draw gives every argument the same shape with that leading axis;
    # a class of another shape gives ``large_sample_inputs(rng, dtype)`` instead).
    sample_layout: ClassVar[str | None] = None
    # Whether the target may hold integer class indices (with an ``ignore_index`` option) into the
    # input's class axis: what boosting's labels and fit_intercept_only's class priors read
    # (lossengine.losses.classification.IndexTargetLoss sets it).
    class_index_targets: ClassVar[bool] = False

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

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None):
        """(value, gradient(s)); built-in losses compute both in one fused pass."""
        return self.forward(*arrays), self.backward(*arrays, grad_output=grad_output, wrt=wrt, out=out)

    def mean_denominator(self, *arrays: Any) -> float | None:
        """What reduction='mean' divides the summed loss by, for these arrays; None means the number of
        elements of the 'none' loss. The validator checks 'mean' against 'sum' with it; losses whose
        'mean' is a weighted mean (torch's NLL and cross-entropy with class weights or ignore_index)
        override it."""
        return None

    def value_shape(self, *shapes: tuple) -> tuple | None:
        """The value's shape for arguments of these shapes, from the declared structure alone (nothing
        is computed, no argument is looked at): () for 'mean' and 'sum'; for 'none', the first
        argument's shape without the axis ``decomposes`` reduces; None when the loss declares no
        decomposition (a family whose 'none' shape follows another rule overrides this)."""
        if getattr(self, "reduction", "mean") != "none":
            return ()
        kind = getattr(self, "decomposes", None)
        return positions_shape(kind, shapes[0]) if kind in DECOMPOSITION_AXES and shapes else None

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
        outs = _out.out_arrays(out, names, single, _out.reads(self, arrays, grad_output))
        grads = _public_grads(fn(self, *arrays, grad_output=grad_output, wrt=names), names, single)
        return grads if outs is None else _out.deliver(grads, outs, names, single)
    backward._normalizes_wrt = True
    return backward


def _public_forward_backward(fn):
    @functools.wraps(fn)
    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None):
        names, single = self._resolve_wrt(wrt)
        outs = _out.out_arrays(out, names, single, _out.reads(self, arrays, grad_output))
        result = fn(self, *arrays, grad_output=grad_output, wrt=names)
        if isinstance(result, tuple) and len(result) == 2:
            grads = _public_grads(result[1], names, single)
            return result[0], (grads if outs is None else _out.deliver(grads, outs, names, single))
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
    and ``repr`` from them. Every store of a declared option, in ``__init__`` or later
    (``loss.weight = w``), goes through the option's parser; ``_options_parsed()`` runs once the
    constructor has stored them all and again after every later assignment.
    """

    options: ClassVar[tuple] = ()
    normalizes_wrt = True  # _begin resolves every public form of wrt
    # name -> Option, of every option the class declares (or inherits): the options __setattr__ parses.
    _option_by_name: ClassVar[dict] = {}
    # The names of its array options (weight, pos_weight): what out= must not overlap besides the call's
    # arrays (FastPathLoss reads it on every out= call, so it is computed once per class).
    _array_options: ClassVar[tuple] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "options" in cls.__dict__:
            cls._option_by_name = {o.name: o for o in declared_options(cls)}
            cls._array_options = tuple(o.name for o in declared_options(cls) if o.kind == "array")
            if "__init__" not in cls.__dict__:
                cls.__init__ = make_init(cls)

    # The option rule (docs/reliability.md): an option assigned after construction is parsed as the
    # constructor parses it (a bad value is refused, naming the option, and the loss keeps its old
    # value), and every cache derived from the options is rebuilt. __setattr__ rather than a
    # descriptor per option: reading an option, which the hot path does, stays a plain attribute
    # lookup; only the (rare) stores pay.
    def __setattr__(self, name: str, value: Any) -> None:
        option = self._option_by_name.get(name)
        if option is None:
            object.__setattr__(self, name, value)
            return
        value = option.parse(name, value)
        state = self.__dict__
        if name not in state:           # the constructor's store
            state[name] = value
            return
        old = state[name]
        state[name] = value
        try:
            self._options_changed()
        except Exception:
            state[name] = old           # a value refused together with another option's
            self._options_changed()
            raise

    def _options_changed(self) -> None:
        """Drops every cache derived from the options (compiled kernel objects, ``_kernel*``), then
        runs ``_options_parsed()``, where families rebuild the rest (class-weight copies)."""
        for key in [k for k in self.__dict__ if k.startswith("_kernel")]:
            del self.__dict__[key]
        self._options_parsed()

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

    def __getstate__(self) -> dict:
        # Compiled kernel objects cached on the instance (``_kernel*``) are rebuilt on first use:
        # dropping them makes losses picklable (multiprocessing, Dask's process schedulers).
        return {k: ({} if isinstance(v, dict) else None) if k.startswith("_kernel") else v
                for k, v in self.__dict__.items() if not k == "_kernel_object"}

    def _options_repr(self) -> str:
        return options_repr(self) if declared_options(type(self)) else super()._options_repr()

    # -- the public contract, each one pass ------------------------------------------------------
    def __call__(self, *arrays: Any):
        return self._compute(arrays, True, FORWARD_ONLY, 1.0)[0]

    def forward(self, *arrays: Any, out: Any = None):
        """The loss value: a NumPy scalar of the input's dtype, or an array for reduction='none'
        (written into ``out`` when given: an array of the loss's shape and dtype)."""
        if out is None:
            return self._compute(arrays, True, FORWARD_ONLY, 1.0)[0]
        return self._compute_out(arrays, True, FORWARD_ONLY, 1.0, None, out)[0]

    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None):
        """Gradient(s) of sum(grad_output * loss) wrt the arguments named by ``wrt`` (None: the
        first differentiable argument; a name: that one; a tuple of names: a tuple, in that order).
        ``out``: an array (a tuple of arrays for a tuple ``wrt``) of each gradient's shape and dtype
        to write into, as NumPy's ufuncs take; training loops then allocate nothing per step."""
        if out is None:
            return self._compute(arrays, False, wrt, grad_output)[1]
        return self._compute_out(arrays, False, wrt, grad_output, out, None)[1]

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None,
                         value_out: Any = None):
        """(value, gradient(s)) from one fused pass; ``grad_output``, ``wrt`` and ``out`` as for
        backward; ``value_out`` receives reduction='none''s value."""
        if out is None and value_out is None:
            return self._compute(arrays, True, wrt, grad_output)
        return self._compute_out(arrays, True, wrt, grad_output, out, value_out)

    def _compute_out(self, arrays, want_value: bool, wrt: Any, grad_output: Any, out: Any, value_out: Any):
        """``_compute`` with results written into the caller's arrays: directly by the kernel where
        the layout allows (the skeleton's buffers), else copied."""
        names, single = ((), False) if wrt is FORWARD_ONLY else self._resolve_wrt(wrt)
        reads = _out.reads(self, arrays, grad_output)
        outs = _out.out_arrays(out, names, single, reads) if names else None
        if value_out is not None:
            if self.reduction != "none":
                raise ValueError(f"value_out (and forward's out) is for reduction='none'; this loss's "
                                 f"reduction is {self.reduction!r}, its value a scalar")
            _out.check_out_array("value_out" if names else "out", value_out, reads)
            for o in outs or ():
                if _out.overlaps(o, value_out):
                    raise ValueError("value_out shares memory with an out array")
        direct = type(self)._compute is FusedLoss._compute
        value, grads = (self._compute(arrays, want_value, wrt, grad_output,
                                      dict(zip(names, outs or ())), value_out) if direct
                        else self._compute(arrays, want_value, wrt, grad_output))
        if value_out is not None and want_value:
            value = _out.deliver_one(value, value_out, "value_out" if names else "out", "the loss")
        if outs is not None:
            grads = _out.deliver(grads, outs, names, single)
        return value, grads

    # -- the skeleton ----------------------------------------------------------------------------
    def _compute(self, arrays, want_value: bool, wrt: Any, grad_output: Any, outs: dict | None = None,
                 value_out: np.ndarray | None = None):
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
        if outs:
            for name in names:
                if _out.usable_directly(outs.get(name), grads[name], arrays[self.arguments.index(name)]):
                    grads[name] = outs[name]
        if loss_out is not None and value_out is not None and value_out.shape == loss_out.shape \
                and value_out.dtype == loss_out.dtype and value_out.flags.c_contiguous and value_out.flags.aligned:
            loss_out = value_out
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
    # The closed form of fit_intercept_only, when the loss has one: a name in
    # lossengine._intercept.CLOSED_FORMS, or "quantile" / "log_priors"; None: solved by Newton.
    intercept_form: ClassVar[str | None] = None

    def gradient_hessian(self, *arrays: Any, out: Any = None, sample_weight: Any = None):
        """(gradient, hessian) of the unreduced loss ('none', whatever ``reduction`` is) wrt the input:
        per element d loss_i / d input_i and d^2 loss_i / d input_i^2 (row losses: the diagonal of
        each row's Hessian), as scikit-learn's ``_loss`` ``gradient_hessian``; one fused pass. Both
        have the input's shape and the compute dtype (float32 or float64). ``out=(gradient, hessian)``
        writes into those C-contiguous arrays of that shape and dtype instead. Where the true second
        derivative is 0 or undefined the loss's docstring says what is returned (see
        ``hessian_surrogate``). ``sample_weight``: one real per sample (the leading axis), each
        sample's gradient and Hessian multiplied by it, as scikit-learn's signature has."""
        if not self.has_hessian:
            raise TypeError(f"{type(self).__name__} has no second derivative kernel (has_hessian is False)")
        if len(arrays) != len(self.arguments):
            self._check_arity(arrays)
        plan = self._plan(arrays)
        shape = self._hessian_shape(plan)
        # The weights are checked before anything is written (out= is left as it was on a bad weight).
        w = None if sample_weight is None else _intercept.sample_weight_array(sample_weight, _intercept.samples(shape))
        if out is None:
            grad, hess = np.empty(shape, plan.dtype), np.empty(shape, plan.dtype)
            self._run_hessian(plan, grad, hess)
            if w is not None:
                _intercept.weigh(grad, hess, w)
            return grad, hess
        reads = _out.reads(self, arrays)
        if isinstance(sample_weight, np.ndarray):
            reads.append(("sample_weight", sample_weight))
        outs = _out.hessian_out(out, shape, plan.dtype, reads)
        # Usable arrays are written in place; others (misaligned, strided, Fortran-ordered) receive
        # a copy of the result, as backward's out does.
        direct = [o if _out.writable_in_place(o) else np.empty(shape, plan.dtype) for o in outs]
        self._run_hessian(plan, *direct)
        if w is not None:
            _intercept.weigh(*direct, w)
        for o, result in zip(outs, direct):
            if result is not o:
                np.copyto(o, result)
        return outs

    def fit_intercept_only(self, target: Any, sample_weight: Any = None, *, n_classes: int | None = None,
                           **arguments: Any):
        """The constant raw prediction that minimizes the (weighted) summed loss over ``target``,
        scikit-learn's ``fit_intercept_only``: a float for one-output losses, an array of one
        sample's prediction shape otherwise ((K,) for class-index targets, K = ``n_classes`` or
        max(target) + 1, centered). Closed forms where the loss declares one (``intercept_form``),
        else a safeguarded Newton iteration on ``gradient_hessian``; arguments other than the input
        and the target by keyword. Details: lossengine/_intercept.py."""
        return _intercept.fit_intercept_only(self, target, sample_weight, n_classes=n_classes, **arguments)

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


class FastPathLoss(FusedLoss):
    """A family with a compiled shortcut for its common call: ``_fast(arrays, want_grad, grad_output,
    out)`` returns (value, gradient wrt the first differentiable argument or None), or None when the
    call is not one it covers (or its inputs hold something to report); ``__call__``, ``forward``,
    ``backward`` and ``forward_backward`` offer it the call first (``wrt`` and ``value_out`` left
    out), then take FusedLoss's general path, which stays the reference the shortcut must equal."""

    def _fast(self, arrays: tuple, want_grad: bool, grad_output: Any, out: Any):
        raise NotImplementedError(f"{type(self).__name__} does not implement _fast()")

    def __call__(self, *arrays: Any):
        fast = self._fast(arrays, False, 1.0, None)
        return fast[0] if fast is not None else super().__call__(*arrays)

    def forward(self, *arrays: Any, out: Any = None):
        fast = self._fast(arrays, False, 1.0, None) if out is None else None
        return fast[0] if fast is not None else super().forward(*arrays, out=out)

    def _holds_arrays(self) -> bool:
        # The compiled shortcuts check out= against the arrays they are passed, not against the
        # loss's own arrays (a class weight, the only arrays they read besides the call's): a loss
        # holding one leaves out= to the general path, which checks them.
        for name in self._array_options:
            if getattr(self, name) is not None:
                return True
        return False

    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None):
        fast = (self._fast(arrays, True, grad_output, out)
                if wrt is None and (out is None or not self._array_options or not self._holds_arrays()) else None)
        return fast[1] if fast is not None else super().backward(*arrays, grad_output=grad_output, wrt=wrt, out=out)

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None,
                         value_out: Any = None):
        fast = (self._fast(arrays, True, grad_output, out) if wrt is None and value_out is None
                and (out is None or not self._array_options or not self._holds_arrays()) else None)
        if fast is not None:
            return fast
        return super().forward_backward(*arrays, grad_output=grad_output, wrt=wrt, out=out, value_out=value_out)

    __call__.__doc__ = FusedLoss.__call__.__doc__
    forward.__doc__ = FusedLoss.forward.__doc__
    backward.__doc__ = FusedLoss.backward.__doc__
    forward_backward.__doc__ = FusedLoss.forward_backward.__doc__


def losses_defined_in(namespace: dict) -> tuple[type, ...]:
    """The losses a family module defines, in definition order: its ``Loss`` subclasses that declare
    their own registry ``name`` (an alias such as NLLLoss2d, which inherits one, is not a second
    entry). A family module ends with ``LOSSES = losses_defined_in(globals())``, so a new built-in
    loss is its class and nothing else; the registry, ``lossengine.__all__``, ``functional`` and the
    loss table in docs/losses-at-a-glance.md follow from ``LOSSES``."""
    module = namespace["__name__"]
    return tuple(value for value in namespace.values()
                 if isinstance(value, type) and issubclass(value, Loss) and value.__module__ == module
                 and "name" in vars(value))

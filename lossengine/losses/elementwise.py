"""The elementwise family: one declaration per loss over one compiled driver.

A loss here is its declaration: registry ``name``, ``kernel`` (its class in lossengine._elementwise,
generated from the table in pyx/elementwise.pyx.tp), ``options`` in torch's order, argument
``domains`` (the validator's samples), ``differentiable`` and ``broadcast_arguments`` where they
differ from the family's, and torch's ``domain_errors``. ``ElementwiseLoss`` supplies the family's
hooks of the compute skeleton (lossengine.base.FusedLoss): arguments normalized by
lossengine/_arrays.py, one kernel pass, gradients summed back over broadcast axes.

The kernel is found from the class (an attribute, inherited by subclasses), never from the registry
name, and built once per instance from the options its ``fields`` name.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import _arrays, _elementwise
from .._threads import PARALLEL_MIN_ELEMENTS, get_num_threads
from ..base import FusedLoss
from ..declaration import array, flag, real, reduction
from ..domains import Interval, LogSimplex, Positive, Real, Signs, Simplex



class _Plan(NamedTuple):
    dtype: np.dtype
    loss_shape: tuple
    given: list                     # the arguments as float arrays, as passed
    effective: list                 # ... as they broadcast (GaussianNLL's var may gain an axis)
    operands: list                  # kernel operands: arguments, then option arrays


class ElementwiseLoss(FusedLoss):
    """A loss whose value at each element depends only on the arguments' values at that element."""
    # How the loss splits over chunks of its arguments (lossengine.integrations.dask): any chunking,
    # each element's loss depends on that element only.
    decomposes: ClassVar[str] = "elements"

    differentiable: ClassVar[tuple[str, ...]] = ("input", "target")
    options = (reduction(),)
    kernel: ClassVar[Any] = None
    # Arguments after the first that may broadcast to the input's shape (torch broadcasts them
    # silently); the others must match the input's shape exactly.
    broadcast_arguments: ClassVar[tuple[str, ...]] = ()
    # Option arrays passed to the kernel after the arguments, broadcast to the loss's shape (a
    # missing one is 1).
    operand_options: ClassVar[tuple[str, ...]] = ()
    # ValueError message per operand index when an element lies outside the domain torch accepts.
    domain_errors: ClassVar[dict[int, str]] = {}
    # The reference the parity suite compares with: "torch" (torch.nn.functional.<name>).
    reference: ClassVar[str] = "torch"

    def __setattr__(self, name: str, value: Any) -> None:
        # A changed option rebuilds the kernel on the next call.
        object.__setattr__(self, name, value)
        if name in getattr(self.kernel, "fields", ()):
            self.__dict__.pop("_kernel_object", None)

    def _make_kernel(self):
        kernel = type(self).kernel
        return kernel(*[getattr(self, field) for field in kernel.fields])

    def _kernel_for_call(self):
        kernel = self.__dict__.get("_kernel_object")
        if kernel is None:
            kernel = self.__dict__["_kernel_object"] = self._make_kernel()
        return kernel

    # -- the fast path: the common call, one compiled check-and-run ----------------------------------
    # C-contiguous native float32/float64 arrays of one dtype and shape, a float grad_output, wrt and
    # value_out left out, reduction 'mean' or 'sum', option arrays at None: ElementwiseKernel.fast
    # checks that in compiled code and runs the kernel; anything else (or a domain error, to be
    # reported) takes the general path, FusedLoss._compute, unchanged.
    def _fast(self, arrays: tuple, want_grad: bool, grad_output: Any, out: Any):
        reduction = self.reduction
        if (reduction != "mean" and reduction != "sum") or type(grad_output) is not float \
                or len(arrays) != len(self.arguments):
            return None
        extra = 0
        for name in self.operand_options:
            if getattr(self, name) is not None:
                return None
            extra += 1
        result = self._kernel_for_call().fast(arrays, extra, want_grad, reduction == "mean", grad_output, out,
                                              get_num_threads(), PARALLEL_MIN_ELEMENTS)
        if result is None or result[2]:
            return None
        return arrays[0].dtype.type(result[0]), result[1]

    def __call__(self, *arrays: Any):
        fast = self._fast(arrays, False, 1.0, None)
        return fast[0] if fast is not None else super().__call__(*arrays)

    def forward(self, *arrays: Any, out: Any = None):
        fast = self._fast(arrays, False, 1.0, None) if out is None else None
        return fast[0] if fast is not None else super().forward(*arrays, out=out)

    def backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None):
        fast = self._fast(arrays, True, grad_output, out) if wrt is None else None
        return fast[1] if fast is not None else super().backward(*arrays, grad_output=grad_output, wrt=wrt, out=out)

    def forward_backward(self, *arrays: Any, grad_output: Any = 1.0, wrt: Any = None, out: Any = None,
                         value_out: Any = None):
        fast = self._fast(arrays, True, grad_output, out) if wrt is None and value_out is None else None
        if fast is not None:
            return fast
        return super().forward_backward(*arrays, grad_output=grad_output, wrt=wrt, out=out, value_out=value_out)

    __call__.__doc__ = FusedLoss.__call__.__doc__
    forward.__doc__ = FusedLoss.forward.__doc__
    backward.__doc__ = FusedLoss.backward.__doc__
    forward_backward.__doc__ = FusedLoss.forward_backward.__doc__

    # -- the family's hooks --------------------------------------------------------------------
    def _effective_arrays(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """The arguments as they broadcast (GaussianNLL reshapes var here)."""
        return arrays

    def _plan(self, arrays) -> _Plan:
        given = [_arrays.float_array(name, a) for name, a in zip(self.arguments, arrays)]
        dtype = _arrays.compute_dtype(given[0])
        effective = self._effective_arrays(given)
        shape = effective[0].shape
        _arrays.require_same_shapes(self.arguments, effective, self.broadcast_arguments)
        operands = [_arrays.operand(name, arr, shape, dtype) for name, arr in zip(self.arguments, effective)]
        for name in self.operand_options:
            value = getattr(self, name)
            operands.append(_arrays.one(dtype) if value is None else _arrays.operand(name, value, shape, dtype))
        return _Plan(dtype, shape, given, effective, operands)

    def _run(self, plan: _Plan, grads: dict, loss_out, upstream, scale: float) -> float:
        kernel = self._kernel_for_call()
        n = math.prod(plan.loss_shape)
        denominator = self._denominator(plan.loss_shape)
        slots = [grads.get(name) for name in self.arguments]
        slots += [None] * (len(plan.operands) - len(slots))
        total, outside = kernel.run(n, plan.operands, slots, loss_out, upstream,
                                    scale / denominator if denominator else scale,
                                    get_num_threads(), PARALLEL_MIN_ELEMENTS)
        if outside:
            raise ValueError(self.domain_errors[min(k for k in self.domain_errors if outside >> k & 1)])
        return total / denominator if denominator else (math.nan if n == 0 else total)

    def _grad_result(self, plan: _Plan, name: str, grad: np.ndarray) -> np.ndarray:
        k = self.arguments.index(name)
        if plan.effective[k].shape != plan.loss_shape:
            grad = _arrays.unbroadcast(grad, plan.effective[k].shape)
        if grad.shape != plan.given[k].shape:
            grad = grad.reshape(plan.given[k].shape)
        result = _arrays.result_dtype(plan.given[k], plan.dtype)
        return grad if result == plan.dtype else grad.astype(result)

    def _denominator(self, shape: tuple) -> int:
        """What the summed loss is divided by: 1 for 'sum'/'none', N for 'mean'."""
        return math.prod(shape) if self.reduction == "mean" else 1


class L1Loss(ElementwiseLoss):
    """|input - target|."""
    name = "l1_loss"
    kernel = _elementwise.L1


class MSELoss(ElementwiseLoss):
    """(input - target)^2."""
    name = "mse_loss"
    kernel = _elementwise.MSE


class SmoothL1Loss(ElementwiseLoss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; beta = 0 is L1."""
    name = "smooth_l1_loss"
    kernel = _elementwise.SmoothL1
    options = (reduction(), real("beta", 1.0, ge=0.0, examples=(0.5, 0.0)))


class HuberLoss(ElementwiseLoss):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    name = "huber_loss"
    kernel = _elementwise.Huber
    options = (reduction(), real("delta", 1.0, gt=0.0, examples=(2.5,)))


class BCELoss(ElementwiseLoss):
    """-w (y log x + (1 - y) log(1 - x)), logs clamped at -100 as in torch."""
    name = "binary_cross_entropy"
    kernel = _elementwise.BCE
    options = (array("weight"), reduction())
    operand_options = ("weight",)
    domains = {"input": Interval(0.0, 1.0), "target": Interval(0.0, 1.0)}
    domain_errors = {0: "all elements of input should be between 0 and 1 (did you pass logits? "
                        "BCEWithLogitsLoss takes them)",
                     1: "all elements of target should be between 0 and 1"}


class BCEWithLogitsLoss(ElementwiseLoss):
    """BCE on logits, in log-sigmoid form (finite at |logit| = 1e4); ``pos_weight`` weighs positives."""
    name = "binary_cross_entropy_with_logits"
    kernel = _elementwise.BCEWithLogits
    options = (array("weight"), reduction(), array("pos_weight"))
    operand_options = ("weight", "pos_weight")
    domains = {"input": Real(scale=3.0), "target": Interval(0.0, 1.0)}

    @property
    def has_pos_weight(self) -> bool:
        return self.pos_weight is not None


class SoftMarginLoss(ElementwiseLoss):
    """log(1 + exp(-y x)), computed without overflow."""
    name = "soft_margin_loss"
    kernel = _elementwise.SoftMargin
    differentiable = ("input",)
    broadcast_arguments = ("target",)
    domains = {"target": Signs()}
    deviations = {"torch_overflow": (
        "torch's soft_margin_loss computes log1p(exp(-x*y)), which is inf (value) and NaN (gradient) for "
        "-x*y > log(max float), ~709.8 in float64 and ~88.7 in float32; lossengine returns the finite, exact value")}


class KLDivLoss(ElementwiseLoss):
    """target (log target - input), or exp(target) (target - input) with log_target; 'batchmean'."""
    name = "kl_div"
    kernel = _elementwise.KLDiv
    reductions = ("none", "mean", "sum", "batchmean")
    options = (reduction(reductions), flag("log_target"))
    broadcast_arguments = ("target",)
    domains = {"input": LogSimplex(-1), "target": Simplex(-1)}
    sample_shape = (2, 3, 4)

    def _denominator(self, shape: tuple) -> int:
        # torch: 'batchmean' is the sum divided by input.size(0), undivided for a 0-d input.
        if self.reduction == "batchmean":
            return shape[0] if shape else 1
        return super()._denominator(shape)


class PoissonNLLLoss(ElementwiseLoss):
    """exp(x) - y x (log_input) or x - y log(x + eps); ``full`` adds Stirling's term where y > 1."""
    name = "poisson_nll_loss"
    kernel = _elementwise.PoissonNLL
    options = (flag("log_input", True, examples=(False,)), flag("full"),
               real("eps", 1e-8, ge=0.0, examples=(0.25,)), reduction())
    broadcast_arguments = ("target",)
    # Positive inputs serve log_input either way; targets > 0 keep full=True's gradient finite.
    domains = {"input": Positive(), "target": Positive()}


class GaussianNLLLoss(ElementwiseLoss):
    """0.5 (log max(var, eps) + (input - target)^2 / max(var, eps)) [+ 0.5 log 2 pi]."""
    name = "gaussian_nll_loss"
    kernel = _elementwise.GaussianNLL
    arguments = ("input", "target", "var")
    differentiable = ("input", "target", "var")
    options = (flag("full", keyword_only=True), real("eps", 1e-6, ge=0.0, keyword_only=True),
               reduction(keyword_only=True))
    broadcast_arguments = ("target", "var")
    domains = {"var": Positive()}
    domain_errors = {2: "var has negative entry/entries"}

    def _effective_arrays(self, arrays):
        # torch's var shapes: the input's; the input's minus its last dimension (unsqueezed); or the
        # input's with exactly one mismatched dimension of size 1. A Python float var broadcasts.
        input, target, var = arrays
        if input.size == 0 or var.shape != input.shape:
            # torch checks var's sign before its shape, and over all of var: the kernel sees no
            # element of var when the input is empty, so check here (off the hot path).
            if np.any(var < 0):
                raise ValueError(self.domain_errors[2])
        if var.shape != input.shape and var.ndim > 0:
            if var.shape == input.shape[:-1]:
                var = var[..., np.newaxis]
            elif not (var.ndim == input.ndim and
                      sum(v for i, v in zip(input.shape, var.shape) if i != v) == 1):
                raise ValueError(
                    f"var is of incorrect size: got {var.shape} for input of shape {input.shape}; expected "
                    f"{input.shape}, {input.shape[:-1]}, or the input's shape with one dimension set to 1"
                )
        return [input, target, var]


class HingeEmbeddingLoss(ElementwiseLoss):
    """x where y == 1, max(0, margin - x) where y == -1 (both terms for any other y, as torch)."""
    name = "hinge_embedding_loss"
    kernel = _elementwise.HingeEmbedding
    options = (real("margin", 1.0, examples=(0.5,)), reduction())
    differentiable = ("input",)
    broadcast_arguments = ("target",)
    domains = {"target": Signs()}


class MarginRankingLoss(ElementwiseLoss):
    """max(0, -y (x1 - x2) + margin): x1 should rank above x2 where y == 1, below where y == -1.
    input2 and target broadcast to input1's shape (torch also requires one number of dimensions)."""
    name = "margin_ranking_loss"
    kernel = _elementwise.MarginRanking
    arguments = ("input1", "input2", "target")
    differentiable = ("input1", "input2")
    options = (real("margin", 0.0, examples=(0.5,)), reduction())
    broadcast_arguments = ("input2", "target")
    domains = {"target": Signs()}

    def _effective_arrays(self, arrays):
        if len({a.ndim for a in arrays}) != 1:
            raise ValueError("margin_ranking_loss: input1, input2 and target must have the same number of "
                             "dimensions (as torch requires); got shapes "
                             + ", ".join(f"{n} {a.shape}" for n, a in zip(self.arguments, arrays)))
        return arrays


LOSSES = (L1Loss, MSELoss, SmoothL1Loss, HuberLoss, BCELoss, BCEWithLogitsLoss, SoftMarginLoss,
          KLDivLoss, PoissonNLLLoss, GaussianNLLLoss, HingeEmbeddingLoss, MarginRankingLoss)
__all__ = ["ElementwiseLoss", "LOSSES"] + [cls.__name__ for cls in LOSSES]

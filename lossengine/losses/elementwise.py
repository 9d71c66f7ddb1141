"""The elementwise family: thin classes (options, shape rules, sample inputs) over one driver.

``ElementwiseLoss._compute`` is the family's only path into the compiled kernel
(``pyx/elementwise.pyx``): it normalizes the arrays through ``lossengine._arrays``, allocates exactly
the outputs the call needs, runs one fused pass, and shapes the results. Each class below contributes
its options, which of its arguments broadcast, extra operands (weights) and its sample inputs.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from .. import _arrays, _elementwise
from .._threads import PARALLEL_MIN_ELEMENTS, get_num_threads
from ..base import FusedLoss



class ElementwiseLoss(FusedLoss):
    """A loss whose value at each element depends only on the arguments' values at that element."""

    differentiable: ClassVar[tuple[str, ...]] = ("input", "target")
    # Arguments after the first that may broadcast to the input's shape (torch broadcasts them
    # silently); the others must match the input's shape exactly.
    broadcast_arguments: ClassVar[tuple[str, ...]] = ()
    # ValueError message per operand index when an element lies outside the domain torch accepts.
    domain_errors: ClassVar[dict[int, str]] = {}

    # -- per-class hooks -----------------------------------------------------------------------
    def _kernel_options(self) -> dict:
        return {}

    def _effective_arrays(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """The arguments as they broadcast (GaussianNLL reshapes var here)."""
        return arrays

    def _extra_operands(self, shape: tuple, dtype: np.dtype) -> list[np.ndarray]:
        """Option arrays (weights) passed to the kernel after the arguments."""
        return []

    # -- the family's driver -------------------------------------------------------------------
    def _compute(self, arrays, want_value: bool, wrt: Any, grad_output: Any):
        wrt_names, single, given, dtype = self._begin(arrays, wrt)
        effective = self._effective_arrays(given)
        shape = effective[0].shape
        _arrays.require_same_shapes(self.arguments, effective, self.broadcast_arguments)
        operands = [_arrays.operand(name, arr, shape, dtype) for name, arr in zip(self.arguments, effective)]
        operands += self._extra_operands(shape, dtype)
        n = math.prod(shape)

        if wrt_names:
            scale, upstream = _arrays.grad_output_operand(grad_output, self.reduction, shape, dtype)
        else:
            scale, upstream = 1.0, _arrays.one(dtype)
        denominator = self._denominator(shape)
        grad_scale = scale / denominator if denominator else scale
        grads = [np.empty(shape, dtype) if name in wrt_names else None for name in self.arguments]
        grads += [None] * (len(operands) - len(grads))
        loss_out = np.empty(shape, dtype) if want_value and self.reduction == "none" else None

        total, outside = self._run_kernel(
            n, operands, grads, loss_out, upstream, grad_scale, get_num_threads(), PARALLEL_MIN_ELEMENTS,
        )
        if outside:
            raise ValueError(self.domain_errors[min(k for k in self.domain_errors if outside >> k & 1)])

        value = None
        if want_value:
            if loss_out is not None:
                value = loss_out
            else:
                value = dtype.type(total / denominator if denominator else (math.nan if n == 0 else total))
        if not wrt_names:
            return value, None
        results = []
        for name in wrt_names:
            k = self.arguments.index(name)
            g = grads[k]
            if effective[k].shape != shape:
                g = _arrays.unbroadcast(g, effective[k].shape)
            if g.shape != given[k].shape:
                g = g.reshape(given[k].shape)
            out_dtype = _arrays.result_dtype(given[k], dtype)
            results.append(g if out_dtype == dtype else g.astype(out_dtype))
        return value, (results[0] if single else tuple(results))

    def _run_kernel(self, *buffers):
        """The compiled pass over the prepared buffers. The one seam for plugins: a
        CompiledElementwiseLoss (lossengine/extending.py) runs its own element function here."""
        return _elementwise.run(self.kernel, self._kernel_options(), *buffers)

    def _denominator(self, shape: tuple) -> int:
        """What the summed loss is divided by: 1 for 'sum'/'none', N for 'mean'."""
        return math.prod(shape) if self.reduction == "mean" else 1

    @property
    def kernel(self) -> str:
        return self.name

    @classmethod
    def sample_inputs(cls, rng: np.random.Generator, dtype: Any) -> tuple:
        return tuple(rng.standard_normal((3, 5)).astype(dtype) for _ in cls.arguments)


def _real(name: str, value: Any, *, minimum: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (value > minimum if strict else value >= minimum) or math.isnan(value):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return value


def _option_array(name: str, value: Any) -> np.ndarray | None:
    return None if value is None else _arrays.float_array(name, value)


class L1Loss(ElementwiseLoss):
    """|input - target|."""
    name = "l1_loss"


class MSELoss(ElementwiseLoss):
    """(input - target)^2."""
    name = "mse_loss"


class SmoothL1Loss(ElementwiseLoss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; beta = 0 is L1."""
    name = "smooth_l1_loss"

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = _real("beta", beta, minimum=0.0)

    def _kernel_options(self) -> dict:
        return {"beta": self.beta}

    def _options_repr(self) -> str:
        return f"reduction={self.reduction!r}, beta={self.beta!r}"


class HuberLoss(ElementwiseLoss):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    name = "huber_loss"

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = _real("delta", delta, minimum=0.0, strict=True)

    def _kernel_options(self) -> dict:
        return {"delta": self.delta}

    def _options_repr(self) -> str:
        return f"reduction={self.reduction!r}, delta={self.delta!r}"


class _WeightedLoss(ElementwiseLoss):
    """Losses with an optional ``weight`` array broadcast to the input's shape (not differentiable)."""

    def _weight_operand(self, name: str, weight: np.ndarray | None, shape: tuple, dtype) -> np.ndarray:
        if weight is None:
            return _arrays.one(dtype)
        return _arrays.operand(name, weight, shape, dtype)


class BCELoss(_WeightedLoss):
    """-w (y log x + (1 - y) log(1 - x)), logs clamped at -100 as in torch."""
    name = "binary_cross_entropy"
    domain_errors = {0: "all elements of input should be between 0 and 1",
                     1: "all elements of target should be between 0 and 1"}

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = _option_array("weight", weight)

    def _extra_operands(self, shape, dtype):
        return [self._weight_operand("weight", self.weight, shape, dtype)]

    def _options_repr(self) -> str:
        return f"weight={'None' if self.weight is None else 'array'}, reduction={self.reduction!r}"

    @classmethod
    def sample_inputs(cls, rng, dtype):
        shape = (3, 5)
        return rng.uniform(0.05, 0.95, shape).astype(dtype), rng.uniform(0.0, 1.0, shape).astype(dtype)


class BCEWithLogitsLoss(_WeightedLoss):
    """BCE on logits, in log-sigmoid form (finite at |logit| = 1e4); ``pos_weight`` weighs positives."""
    name = "binary_cross_entropy_with_logits"

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.weight = _option_array("weight", weight)
        self.pos_weight = _option_array("pos_weight", pos_weight)

    def _kernel_options(self) -> dict:
        return {"has_pos_weight": self.pos_weight is not None}

    def _extra_operands(self, shape, dtype):
        return [self._weight_operand("weight", self.weight, shape, dtype),
                self._weight_operand("pos_weight", self.pos_weight, shape, dtype)]

    def _options_repr(self) -> str:
        return (f"weight={'None' if self.weight is None else 'array'}, reduction={self.reduction!r}, "
                f"pos_weight={'None' if self.pos_weight is None else 'array'}")

    @classmethod
    def sample_inputs(cls, rng, dtype):
        shape = (3, 5)
        return (3.0 * rng.standard_normal(shape)).astype(dtype), rng.uniform(0.0, 1.0, shape).astype(dtype)


class SoftMarginLoss(ElementwiseLoss):
    """log(1 + exp(-y x)), computed without overflow."""
    name = "soft_margin_loss"
    differentiable = ("input",)
    broadcast_arguments = ("target",)
    deviations = {"torch_overflow": (
        "torch's soft_margin_loss computes log1p(exp(-x*y)), which is inf (value) and NaN (gradient) for "
        "-x*y > log(max float), ~709.8 in float64 and ~88.7 in float32; lossengine returns the finite, exact value")}

    @classmethod
    def sample_inputs(cls, rng, dtype):
        shape = (3, 5)
        return (rng.standard_normal(shape).astype(dtype),
                rng.choice([-1.0, 1.0], size=shape).astype(dtype))


class KLDivLoss(ElementwiseLoss):
    """target (log target - input), or exp(target) (target - input) with log_target; 'batchmean'."""
    name = "kl_div"
    reductions = ("none", "mean", "sum", "batchmean")
    broadcast_arguments = ("target",)

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(reduction)
        self.log_target = bool(log_target)

    def _kernel_options(self) -> dict:
        return {"log_target": self.log_target}

    def _denominator(self, shape: tuple) -> int:
        # torch: 'batchmean' is the sum divided by input.size(0), undivided for a 0-d input.
        if self.reduction == "batchmean":
            return shape[0] if shape else 1
        return super()._denominator(shape)

    def _options_repr(self) -> str:
        return f"reduction={self.reduction!r}, log_target={self.log_target!r}"

    @classmethod
    def sample_inputs(cls, rng, dtype):
        logits = rng.standard_normal((2, 3, 4))
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        target = rng.dirichlet(np.ones(4), size=(2, 3))
        return log_probs.astype(dtype), target.astype(dtype)


class PoissonNLLLoss(ElementwiseLoss):
    """exp(x) - y x (log_input) or x - y log(x + eps); ``full`` adds Stirling's term where y > 1."""
    name = "poisson_nll_loss"
    broadcast_arguments = ("target",)

    def __init__(self, log_input: bool = True, full: bool = False, eps: float = 1e-8,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.log_input = bool(log_input)
        self.full = bool(full)
        self.eps = _real("eps", eps, minimum=0.0)

    def _kernel_options(self) -> dict:
        return {"log_input": self.log_input, "full": self.full, "eps": self.eps}

    def _options_repr(self) -> str:
        return (f"log_input={self.log_input!r}, full={self.full!r}, eps={self.eps!r}, "
                f"reduction={self.reduction!r}")

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # Positive inputs serve log_input either way; targets > 0 keep full=True's gradient finite.
        shape = (3, 5)
        return rng.uniform(0.1, 2.0, shape).astype(dtype), rng.uniform(0.1, 5.0, shape).astype(dtype)


class GaussianNLLLoss(ElementwiseLoss):
    """0.5 (log max(var, eps) + (input - target)^2 / max(var, eps)) [+ 0.5 log 2 pi]."""
    name = "gaussian_nll_loss"
    arguments = ("input", "target", "var")
    differentiable = ("input", "target", "var")
    broadcast_arguments = ("target", "var")
    domain_errors = {2: "var has negative entry/entries"}

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.full = bool(full)
        self.eps = _real("eps", eps, minimum=0.0)

    def _kernel_options(self) -> dict:
        return {"full": self.full, "eps": self.eps}

    def _effective_arrays(self, arrays):
        # torch's var shapes: the input's; the input's minus its last dimension (unsqueezed); or the
        # input's with exactly one mismatched dimension of size 1. A Python float var broadcasts.
        input, target, var = arrays
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

    def _options_repr(self) -> str:
        return f"full={self.full!r}, eps={self.eps!r}, reduction={self.reduction!r}"

    @classmethod
    def sample_inputs(cls, rng, dtype):
        shape = (3, 5)
        return (rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype),
                rng.uniform(0.5, 2.0, shape).astype(dtype))


class HingeEmbeddingLoss(ElementwiseLoss):
    """x where y == 1, max(0, margin - x) where y == -1 (both terms for any other y, as torch)."""
    name = "hinge_embedding_loss"
    differentiable = ("input",)
    broadcast_arguments = ("target",)

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = _real("margin", margin, minimum=-math.inf)

    def _kernel_options(self) -> dict:
        return {"margin": self.margin}

    def _options_repr(self) -> str:
        return f"margin={self.margin!r}, reduction={self.reduction!r}"

    @classmethod
    def sample_inputs(cls, rng, dtype):
        shape = (3, 5)
        return (rng.uniform(-2.0, 3.0, shape).astype(dtype),
                rng.choice([-1.0, 1.0], size=shape).astype(dtype))


LOSSES = (L1Loss, MSELoss, SmoothL1Loss, HuberLoss, BCELoss, BCEWithLogitsLoss, SoftMarginLoss,
          KLDivLoss, PoissonNLLLoss, GaussianNLLLoss, HingeEmbeddingLoss)

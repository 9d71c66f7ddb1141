"""The elementwise family: one declaration per loss over one compiled driver.

A loss here is its declaration: registry ``name``, ``kernel`` (its class in lossengine._elementwise,
generated from its row in pyx/elementwise_losses.pxi), ``options`` in torch's order, argument
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

from .. import _arrays, _elementwise, _intercept
from .._reductions import reduction_of
from .._threads import PARALLEL_MIN_ELEMENTS, _kernel_threads
from ..base import FastPathLoss, FusedLoss, losses_defined_in
from ..declaration import array, flag, real, reduction
from ..domains import Interval, LogSimplex, Positive, Real, Signs, Simplex



class _Plan(NamedTuple):
    dtype: np.dtype
    loss_shape: tuple
    given: list                     # the arguments as float arrays, as passed
    effective: list                 # ... as they broadcast (GaussianNLL's var may gain an axis)
    operands: list                  # kernel operands: arguments, then option arrays


class ElementwiseLoss(FastPathLoss):
    """A loss whose value at each element depends only on the arguments' values at that element."""
    # How the loss splits over chunks of its arguments (lossengine.integrations.dask): any chunking,
    # each element's loss depends on that element only.
    decomposes: ClassVar[str] = "elements"
    sample_layout: ClassVar[str] = "batch-rows"   # its batch rows are independent (lossengine.Loss)

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
    # The reference the parity suite compares with: "torch" (torch.nn.functional.<name>); for a loss
    # torch lacks, "sklearn" (scikit-learn's _loss class of the same name), "torchvision"
    # (torchvision.ops.<name>) or "formula" (the class's reference_formula): the golden generator
    # (tests/golden/make_boosting_golden.py) takes it from here.
    reference: ClassVar[str] = "torch"

    def _make_kernel(self):
        kernel = type(self).kernel
        return kernel(*[getattr(self, field) for field in kernel.fields])

    def _kernel_for_call(self):
        kernel = self.__dict__.get("_kernel_object")
        if kernel is None:
            kernel = self.__dict__["_kernel_object"] = self._make_kernel()
        return kernel

    @property
    def has_hessian(self) -> bool:
        return self._kernel_for_call().has_hessian

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
        extra = self._fast_extra_ones()
        if extra < 0:
            return None
        result = self._kernel_for_call().fast(arrays, extra, want_grad, reduction == "mean", grad_output, out,
                                              _kernel_threads(), PARALLEL_MIN_ELEMENTS)
        if result is None or result[2]:
            return None
        return arrays[0].dtype.type(result[0]), result[1]

    def _fast_extra_ones(self) -> int:
        """The broadcast 1s the fast paths append for the option operands, or -1 when one is set."""
        for name in self.operand_options:
            if getattr(self, name) is not None:
                return -1
        return len(self.operand_options)

    def gradient_hessian(self, *arrays: Any, out: Any = None, sample_weight: Any = None):
        # The fast path (ElementwiseKernel.fast_hessian): the common call checked and run in compiled
        # code; anything else, or a domain error to report, takes the general path (so does out= with
        # sample weights: the general path checks the weights against out for overlap).
        if (out is None or (type(out) is tuple and len(out) == 2 and sample_weight is None)) \
                and len(arrays) == len(self.arguments):
            extra = self._fast_extra_ones()
            if extra >= 0:
                result = self._kernel_for_call().fast_hessian(arrays, extra, *(out or (None, None)),
                                                              _kernel_threads(), PARALLEL_MIN_ELEMENTS)
                if result is not None:
                    if sample_weight is not None:     # out is None here: the results are fresh arrays
                        _intercept.weigh(*result, _intercept.sample_weight_array(
                            sample_weight, _intercept.samples(result[0].shape)))
                    return result
        return super().gradient_hessian(*arrays, out=out, sample_weight=sample_weight)

    gradient_hessian.__doc__ = FusedLoss.gradient_hessian.__doc__

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

    def _run(self, plan: _Plan, grads: dict, loss_out, upstream, scale: float, hess=None) -> float:
        kernel = self._kernel_for_call()
        n = math.prod(plan.loss_shape)
        mode = reduction_of(self.reduction)
        denominator = self._denominator(plan.loss_shape)
        slots = [grads.get(name) for name in self.arguments]
        slots += [None] * (len(plan.operands) - len(slots))
        total, outside = kernel.run(n, plan.operands, slots, loss_out, upstream, mode.grad_scale(scale, denominator),
                                    _kernel_threads(), PARALLEL_MIN_ELEMENTS, hess)
        if outside:
            raise ValueError(self.domain_errors[min(k for k in self.domain_errors if outside >> k & 1)])
        return mode.value(total, denominator)

    def _run_hessian(self, plan: _Plan, grad: np.ndarray, hess: np.ndarray) -> None:
        # The unreduced loss's derivatives: the plain pass with grad_output 1 per element, plus the
        # driver's Hessian mode. The value is computed and dropped (it is in the same inlined math).
        denominator = self._denominator(plan.loss_shape)
        self._run(plan, {self.arguments[0]: grad}, None, _arrays.one(plan.dtype), float(denominator or 1), hess)

    def _grad_result(self, plan: _Plan, name: str, grad: np.ndarray) -> np.ndarray:
        k = self.arguments.index(name)
        if plan.effective[k].shape != plan.loss_shape:
            grad = _arrays.unbroadcast(grad, plan.effective[k].shape)
        if grad.shape != plan.given[k].shape:
            grad = grad.reshape(plan.given[k].shape)
        result = _arrays.result_dtype(plan.given[k], plan.dtype)
        return grad if result == plan.dtype else grad.astype(result)

    def _denominator(self, shape: tuple) -> int:
        """What the summed loss is divided by (lossengine._reductions): 1 for 'sum'/'none', N for
        'mean', input.shape[0] for 'batchmean' (KLDiv's: undivided for a 0-d input, as torch)."""
        return reduction_of(self.reduction).denominator(math.prod(shape), batch=shape[0] if shape else 1)


class L1Loss(ElementwiseLoss):
    """|input - target|. Hessian: 0 (the true second derivative; undefined at input == target, where 0
    is returned too); boosting uses ``hessian_surrogate`` 1, as scikit-learn's AbsoluteError and
    LightGBM's L1 objective do."""
    name = "l1_loss"
    hessian_surrogate = 1.0
    intercept_form = "median"
    kernel = _elementwise.L1


class MSELoss(ElementwiseLoss):
    """(input - target)^2. Hessian: 2."""
    name = "mse_loss"
    intercept_form = "mean"
    kernel = _elementwise.MSE


class SmoothL1Loss(ElementwiseLoss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; beta = 0 is L1. Hessian: 1 / beta where
    |d| < beta, else 0 (the true value on the linear part; boosting's ``hessian_surrogate`` is 1)."""
    name = "smooth_l1_loss"
    hessian_surrogate = 1.0
    kernel = _elementwise.SmoothL1
    options = (reduction(), real("beta", 1.0, ge=0.0, examples=(0.5, 0.0)))


class HuberLoss(ElementwiseLoss):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta). Hessian: 1 where |d| < delta, else 0
    (the true value on the linear part; boosting's ``hessian_surrogate`` is 1, LightGBM's choice)."""
    name = "huber_loss"
    hessian_surrogate = 1.0
    kernel = _elementwise.Huber
    options = (reduction(), real("delta", 1.0, gt=0.0, examples=(2.5,)))


class BCELoss(ElementwiseLoss):
    """-w (y log x + (1 - y) log(1 - x)), logs clamped at -100 as in torch. Hessian: the derivative of
    torch's gradient w (x - y) / max(x (1 - x), eps), i.e. w (y / x^2 + (1 - y) / (1 - x)^2) unclamped."""
    name = "binary_cross_entropy"
    intercept_form = "mean"
    kernel = _elementwise.BCE
    options = (array("weight"), reduction())
    operand_options = ("weight",)
    domains = {"input": Interval(0.0, 1.0), "target": Interval(0.0, 1.0)}
    domain_errors = {0: "all elements of input should be between 0 and 1 (did you pass logits? "
                        "BCEWithLogitsLoss takes them)",
                     1: "all elements of target should be between 0 and 1"}


class BCEWithLogitsLoss(ElementwiseLoss):
    """BCE on logits, in log-sigmoid form (finite at |logit| = 1e4); ``pos_weight`` weighs positives.
    Hessian: w (p y + 1 - y) sigmoid(x) (1 - sigmoid(x)) (p = 1 without pos_weight)."""
    name = "binary_cross_entropy_with_logits"
    intercept_form = "logit_mean"
    kernel = _elementwise.BCEWithLogits
    options = (array("weight"), reduction(), array("pos_weight"))
    operand_options = ("weight", "pos_weight")
    domains = {"input": Real(scale=3.0), "target": Interval(0.0, 1.0)}

    @property
    def has_pos_weight(self) -> bool:
        return self.pos_weight is not None


class SoftMarginLoss(ElementwiseLoss):
    """log(1 + exp(-y x)), computed without overflow. Hessian: y^2 sigmoid(x y) (1 - sigmoid(x y))."""
    name = "soft_margin_loss"
    kernel = _elementwise.SoftMargin
    differentiable = ("input",)
    broadcast_arguments = ("target",)
    domains = {"target": Signs()}
    deviations = {"torch_overflow": (
        "torch's soft_margin_loss computes log1p(exp(-x*y)), which is inf (value) and NaN (gradient) for "
        "-x*y > log(max float), ~709.8 in float64 and ~88.7 in float32; lossengine returns the finite, exact value")}


class KLDivLoss(ElementwiseLoss):
    """target (log target - input), or exp(target) (target - input) with log_target; 'batchmean'.
    Hessian: 0 (linear in the input); boosting's ``hessian_surrogate`` is 1."""
    name = "kl_div"
    hessian_surrogate = 1.0
    kernel = _elementwise.KLDiv
    reductions = ("none", "mean", "sum", "batchmean")
    options = (reduction(reductions), flag("log_target"))
    broadcast_arguments = ("target",)
    domains = {"input": LogSimplex(-1), "target": Simplex(-1)}
    sample_shape = (2, 3, 4)


class PoissonNLLLoss(ElementwiseLoss):
    """exp(x) - y x (log_input) or x - y log(x + eps); ``full`` adds Stirling's term where y > 1.
    Hessian: exp(x) (log_input), else y / (x + eps)^2."""
    name = "poisson_nll_loss"
    kernel = _elementwise.PoissonNLL
    options = (flag("log_input", True, examples=(False,)), flag("full"),
               real("eps", 1e-8, ge=0.0, examples=(0.25,)), reduction())
    broadcast_arguments = ("target",)
    # Positive inputs serve log_input either way; targets > 0 keep full=True's gradient finite.
    domains = {"input": Positive(), "target": Positive()}

    @property
    def intercept_form(self) -> str | None:
        # log_input: exp(x) - y x, minimized at x = log(mean y); else x - y log(x + eps): by Newton.
        return "log_mean" if self.log_input else None


class GaussianNLLLoss(ElementwiseLoss):
    """0.5 (log max(var, eps) + (input - target)^2 / max(var, eps)) [+ 0.5 log 2 pi]. Hessian wrt the
    input: 1 / max(var, eps)."""
    name = "gaussian_nll_loss"
    kernel = _elementwise.GaussianNLL
    arguments = ("input", "target", "var")
    differentiable = ("input", "target", "var")
    options = (flag("full", keyword_only=True), real("eps", 1e-6, ge=0.0, keyword_only=True),
               reduction(keyword_only=True))
    broadcast_arguments = ("target", "var")
    domains = {"var": Positive()}
    domain_errors = {2: "var has negative entry/entries"}
    # fit_intercept_only: a constant var (1 unless given) does not move the minimizer.
    intercept_arguments = {"var": 1.0}

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
    """x where y == 1, max(0, margin - x) where y == -1 (both terms for any other y, as torch).
    Hessian: 0 (piecewise linear; undefined at the hinge); boosting's ``hessian_surrogate`` is 1."""
    name = "hinge_embedding_loss"
    hessian_surrogate = 1.0
    kernel = _elementwise.HingeEmbedding
    options = (real("margin", 1.0, examples=(0.5,)), reduction())
    differentiable = ("input",)
    broadcast_arguments = ("target",)
    domains = {"target": Signs()}


class MarginRankingLoss(ElementwiseLoss):
    """max(0, -y (x1 - x2) + margin): x1 should rank above x2 where y == 1, below where y == -1.
    input2 and target broadcast to input1's shape (torch also requires one number of dimensions).
    Hessian wrt input1: 0 (piecewise linear; undefined at the hinge); boosting's ``hessian_surrogate`` is 1."""
    name = "margin_ranking_loss"
    hessian_surrogate = 1.0
    kernel = _elementwise.MarginRanking
    arguments = ("input1", "input2", "target")
    differentiable = ("input1", "input2")
    options = (real("margin", 0.0, examples=(0.5,)), reduction())
    broadcast_arguments = ("input2", "target")
    domains = {"target": Signs()}
    # fit_intercept_only fits input1 against input2 (0 unless given).
    intercept_arguments = {"input2": 0.0}

    def _effective_arrays(self, arrays):
        if len({a.ndim for a in arrays}) != 1:
            raise ValueError("margin_ranking_loss: input1, input2 and target must have the same number of "
                             "dimensions (as torch requires); got shapes "
                             + ", ".join(f"{n} {a.shape}" for n, a in zip(self.arguments, arrays)))
        return arrays


class SigmoidFocalLoss(ElementwiseLoss):
    """Binary focal loss on logits, as torchvision.ops.sigmoid_focal_loss (Lin et al., "Focal Loss for
    Dense Object Detection", ICCV 2017): with p = sigmoid(input), ce = BCE-with-logits(input, target),
    p_t = p y + (1 - p)(1 - y),

        loss = a_t ce (1 - p_t)^gamma,   a_t = alpha y + (1 - alpha)(1 - y)  (a_t = 1 when alpha < 0).

    Targets in [0, 1] (soft labels allowed); differentiable in both, as torch's autograd. The default
    reduction is 'mean' as for every torch.nn loss class (torchvision's function defaults to 'none').
    Hessian: exact, d^2 loss / d input^2 (positive where the loss is convex; it can be negative for
    gamma > 0 far on the wrong side, which the integrations floor)."""
    name = "sigmoid_focal_loss"
    kernel = _elementwise.SigmoidFocal
    options = (real("alpha", 0.25, examples=(-1.0, 0.75)), real("gamma", 2.0, ge=0.0, examples=(0.0, 0.5, 1.0)),
               reduction())
    domains = {"input": Real(scale=3.0), "target": Interval(0.0, 1.0)}
    reference = "torchvision"


class PinballLoss(ElementwiseLoss):
    """Pinball (quantile) loss, scikit-learn's PinballLoss (Koenker & Bassett, "Regression Quantiles",
    Econometrica 1978), ``input`` the prediction: q (y - x) where y >= x, else (1 - q)(x - y).
    Hessian: 0 (undefined at y == x, where 0 is returned too); boosting's ``hessian_surrogate`` is 1,
    as scikit-learn's PinballLoss returns and LightGBM's quantile objective uses."""
    name = "pinball_loss"
    kernel = _elementwise.Pinball
    options = (real("quantile", 0.5, gt=0.0, lt=1.0, examples=(0.1, 0.9)), reduction())
    hessian_surrogate = 1.0
    intercept_form = "quantile"
    reference = "sklearn"


class HalfPoissonLoss(ElementwiseLoss):
    """scikit-learn's HalfPoissonLoss, ``input`` the raw prediction on the log link (mean exp(input)):
    exp(x) - y x; gradient exp(x) - y, Hessian exp(x) (McCullagh & Nelder, Generalized Linear Models,
    1989). Exactly sklearn's ``loss``; the half Poisson deviance adds y log y - y, which sklearn
    drops too (its ``constant_to_optimal_zero``). Targets y >= 0."""
    name = "half_poisson_loss"
    intercept_form = "log_mean"
    kernel = _elementwise.HalfPoisson
    domains = {"target": Positive()}
    reference = "sklearn"


class HalfGammaLoss(ElementwiseLoss):
    """scikit-learn's HalfGammaLoss, log link: x + y exp(-x); gradient 1 - y exp(-x), Hessian
    y exp(-x) (McCullagh & Nelder 1989). Exactly sklearn's ``loss``; the half Gamma deviance adds
    -log y - 1 (sklearn's ``constant_to_optimal_zero``). Targets y > 0."""
    name = "half_gamma_loss"
    intercept_form = "log_mean"
    kernel = _elementwise.HalfGamma
    domains = {"target": Positive()}
    reference = "sklearn"


class HalfTweedieLoss(ElementwiseLoss):
    """scikit-learn's HalfTweedieLoss, log link, Tweedie power p (Jorgensen, The Theory of Dispersion
    Models, 1997): exp((2-p) x) / (2-p) - y exp((1-p) x) / (1-p); gradient exp((2-p) x) - y exp((1-p) x),
    Hessian (2-p) exp((2-p) x) - (1-p) y exp((1-p) x). p = 0: 0.5 (exp(x) - y)^2; p = 1: HalfPoissonLoss;
    p = 2: HalfGammaLoss. Exactly sklearn's ``loss``; the half deviance adds
    y^(2-p) / ((1-p)(2-p)) (sklearn's ``constant_to_optimal_zero``). 0 < p < 1 is refused (no such
    distribution), as in sklearn. Targets y >= 0 (y > 0 for p >= 2)."""
    name = "half_tweedie_loss"
    intercept_form = "log_mean"
    kernel = _elementwise.HalfTweedie
    options = (real("power", 1.5, examples=(0.0, 1.0, 2.0, 3.0)), reduction())
    domains = {"target": Positive()}
    reference = "sklearn"

    def _options_parsed(self) -> None:
        if 0.0 < self.power < 1.0:
            raise ValueError(f"power must be <= 0 or >= 1 (Tweedie distributions), got {self.power!r}")


class LogCoshLoss(ElementwiseLoss):
    """log(cosh(input - target)), scaled: quadratic near 0, linear in the tails (Chen et al., "Log
    Hyperbolic Cosine Loss Improves Variational Auto-Encoder", 2019). Hessian: scale sech^2(d)."""
    name = "log_cosh_loss"                     # the registry key / functional name
    kernel = _elementwise.LogCosh
    options = (reduction(), real("scale", 1.0, gt=0.0, examples=(2.0,)))
    reference = "formula"

    @staticmethod
    def reference_formula(xp, input, target, scale=1.0):
        """The definition in the array namespace ``xp`` (NumPy or torch), per element: the reference
        of the parity data (tests/golden/make_boosting_golden.py differentiates it under torch
        autograd). log(cosh(d)) itself where cosh does not overflow (smooth at d == 0, unlike a form
        with |d|), its exact asymptote |d| - log 2 beyond (exp(-2 |d|) < 1e-17 there)."""
        d = input - target
        small = xp.abs(d) < 20.0
        return scale * xp.where(small, xp.log(xp.cosh(xp.where(small, d, 0.0))), xp.abs(d) - math.log(2.0))


LOSSES = losses_defined_in(globals())      # this module's classes that declare a registry name
__all__ = ["ElementwiseLoss", "LOSSES"] + [cls.__name__ for cls in LOSSES]

"""Pseudo-Huber loss, delta^2 (sqrt(1 + ((input - target) / delta)^2) - 1) (Charbonnier et al., 1994;
Hartley & Zisserman, Multiple View Geometry, 2003, A6.8): a smooth Huber, quadratic near 0 and
linear in the tails, with a positive second derivative everywhere (a natural boosting objective).

The per-element math is compiled (``_kernel.pyx``, against lossengine/elementwise_api.pxd); this
class only declares the loss and points lossengine's elementwise driver at it, including the
optional second-derivative function that gives it ``gradient_hessian``.
"""

import lossengine as le

from ._kernel import PSEUDO_HUBER, PSEUDO_HUBER_CHUNK, PSEUDO_HUBER_HESSIAN

__all__ = ["PseudoHuberLoss"]


class PseudoHuberLoss(le.CompiledElementwiseLoss):
    """pseudo_huber_loss(input, target, delta=1.0, reduction='mean'), differentiable in both arguments."""

    name = "pseudo_huber_loss"
    arguments = ("input", "target")
    differentiable = ("input", "target")
    element_function = PSEUDO_HUBER
    chunk_function = PSEUDO_HUBER_CHUNK
    hessian_function = PSEUDO_HUBER_HESSIAN
    check_options = ({"delta": 0.1}, {"delta": 4.0})

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.delta = float(delta)
        if not self.delta > 0.0:
            raise ValueError(f"delta must be > 0, got {delta!r}")

    def _options_repr(self) -> str:
        return f"delta={self.delta!r}, reduction={self.reduction!r}"

    def element_params(self):
        return (self.delta,)

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # Residuals far below and far above delta, and ties.
        from lossengine.testing import residual_pairs

        return residual_pairs(rng, dtype)


@le.hookimpl
def lossengine_register_losses(register):
    register(PseudoHuberLoss)

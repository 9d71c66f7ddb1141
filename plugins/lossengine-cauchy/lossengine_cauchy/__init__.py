"""Cauchy (Lorentzian) loss, a robust regression loss lossengine does not ship (Black & Anandan, "The
robust estimation of multiple motions", CVIU 1996; Barron, "A General and Adaptive Robust Loss
Function", CVPR 2019, alpha = 0):

    r    = (input - target) / c
    loss = 0.5 c^2 log(1 + r^2)

quadratic near 0, logarithmic in the tails (outliers barely pull), then reduced ('none', 'mean' or
'sum'). Written with lossengine.NumpyElementwiseLoss: the class gives the per-element loss, its
partial derivatives and (optionally) its second derivative for ``gradient_hessian``; lossengine does
shapes, dtypes, reductions, grad_output and wrt, and its validator checks all three.
"""
import numpy as np

import lossengine as le

__all__ = ["CauchyLoss"]


class CauchyLoss(le.NumpyElementwiseLoss):
    """cauchy_loss(input, target, c=1.0, reduction='mean'), differentiable in both arguments."""

    name = "cauchy_loss"
    arguments = ("input", "target")
    differentiable = ("input", "target")
    # The validator also runs these settings: a narrow and a wide scale.
    check_options = ({"c": 0.1}, {"c": 5.0})

    def __init__(self, c: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.c = float(c)
        if not self.c > 0.0:
            raise ValueError(f"c must be > 0, got {c!r}")

    def _options_repr(self) -> str:
        return f"c={self.c!r}, reduction={self.reduction!r}"

    def element_loss(self, x, y):
        r = (x - y) / self.c
        return 0.5 * self.c**2 * np.log1p(r * r)      # log1p: exact where r^2 is tiny

    def element_partials(self, x, y):
        r = (x - y) / self.c
        g = self.c * r / (1.0 + r * r)
        return g, -g

    def element_loss_and_partials(self, x, y):
        r = (x - y) / self.c
        r2 = r * r
        g = self.c * r / (1.0 + r2)
        return 0.5 * self.c**2 * np.log1p(r2), (g, -g)

    # Optional (gradient_hessian): d^2 loss / d input^2 = (1 - r^2) / (1 + r^2)^2, negative beyond
    # |r| = 1 (the loss is not convex there; boosting integrations floor it).
    def element_hessian(self, x, y):
        r2 = ((x - y) / self.c) ** 2
        return (1.0 - r2) / (1.0 + r2) ** 2

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # Residuals inside and far outside the scale, and ties.
        from lossengine.testing import residual_pairs

        return residual_pairs(rng, dtype)


@le.hookimpl
def lossengine_register_losses(register):
    register(CauchyLoss)

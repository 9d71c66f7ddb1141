"""Binary focal loss on logits, as torchvision.ops.sigmoid_focal_loss (Lin et al., 2017):

    p    = sigmoid(input)
    ce   = binary_cross_entropy_with_logits(input, target, reduction="none")
    p_t  = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:  loss *= alpha * target + (1 - alpha) * (1 - target)

then reduced ('none', 'mean' or 'sum'; torchvision's default is 'none', and so is this one's).

Written with lossengine.NumpyElementwiseLoss: the class gives the per-element loss and its partial
derivatives; lossengine does shapes, dtypes, reductions, grad_output and wrt.
"""
import numpy as np

import lossengine as le

__all__ = ["SigmoidFocalLoss"]


class SigmoidFocalLoss(le.NumpyElementwiseLoss):
    """sigmoid_focal_loss(input, target, alpha=0.25, gamma=2.0, reduction='none'); input are logits,
    target in [0, 1] (soft labels allowed). Differentiable in both, as in torch's autograd."""

    name = "sigmoid_focal_loss"
    arguments = ("input", "target")
    differentiable = ("input", "target")
    # The validator also runs these settings: alpha weighting off, plain BCE, a fractional gamma.
    check_options = ({"alpha": -1.0}, {"gamma": 0.0}, {"alpha": 0.75, "gamma": 0.5})

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none") -> None:
        super().__init__(reduction)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        if not self.gamma >= 0.0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}")

    def _options_repr(self) -> str:
        return f"alpha={self.alpha!r}, gamma={self.gamma!r}, reduction={self.reduction!r}"

    # Shared by the value and the partials. Every quantity is formed without cancellation, so the
    # result keeps its precision where the focal factor is tiny (confident, correct predictions).
    def _terms(self, x, t):
        e = np.exp(-np.abs(x))
        s = np.where(x >= 0.0, 1.0, e) / (1.0 + e)             # sigmoid(x)
        s_c = np.where(x >= 0.0, e, 1.0) / (1.0 + e)           # 1 - sigmoid(x), not 1 - s
        ce = np.maximum(x, 0.0) - x * t + np.log1p(e)          # BCE with logits
        q = s * (1.0 - t) + s_c * t                            # 1 - p_t
        if self.alpha >= 0.0:
            a_t = self.alpha * t + (1.0 - self.alpha) * (1.0 - t)
            da_dt = 2.0 * self.alpha - 1.0
        else:
            a_t, da_dt = 1.0, 0.0
        return s, s_c, ce, q, a_t, da_dt

    def element_loss(self, x, t):
        s, s_c, ce, q, a_t, _ = self._terms(x, t)
        return a_t * ce * q ** self.gamma

    def element_loss_and_partials(self, x, t):
        s, s_c, ce, q, a_t, da_dt = self._terms(x, t)
        q_g = q ** self.gamma
        # d(q^gamma)/dq; 0 where q == 0 (both factors beside it vanish there for gamma >= 1, and
        # gamma == 0 makes the focal factor a constant).
        dq_g = np.zeros_like(q)
        if self.gamma != 0.0:
            np.power(q, self.gamma - 1.0, out=dq_g, where=q > 0.0)
            dq_g *= self.gamma
        # dce/dx = s - t, dq/dx = s (1 - s) (1 - 2t); dce/dt = -x, dq/dt = 1 - 2s.
        d_input = a_t * ((s - t) * q_g + ce * dq_g * (s * s_c) * (1.0 - 2.0 * t))
        d_target = da_dt * ce * q_g + a_t * (-x * q_g + ce * dq_g * (s_c - s))
        return a_t * ce * q_g, (d_input, d_target)

    def element_partials(self, x, t):
        return self.element_loss_and_partials(x, t)[1]

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # Logits as a trained classifier makes them, soft and hard labels both.
        shape = (4, 5)
        target = rng.uniform(0.0, 1.0, shape)
        target[0] = rng.integers(0, 2, shape[1])
        return (4.0 * rng.standard_normal(shape)).astype(dtype), target.astype(dtype)


@le.hookimpl
def lossengine_register_losses(register):
    register(SigmoidFocalLoss)

"""Additive-margin softmax (AM-softmax, CosFace) loss on given scores.

    loss = -log(exp(s (x_t - m)) / (exp(s (x_t - m)) + sum_{j != t} exp(s x_j)))

for a row of class scores x (usually cosines between a normalized embedding and normalized class
weights), its target class t, a scale s and an additive margin m (Wang et al., "Additive Margin
Softmax for Face Verification", 2018; Wang et al., "CosFace", 2018). It is cross-entropy on the
scores s (x - m onehot(t)). The row math is compiled (``_kernel.pyx``, against
lossengine/rowwise_api.pxd); this class only declares the loss and its options, and points
lossengine's classification driver at it, which supplies weight, ignore_index, the reductions,
grad_output and (N, C, d1..dK) inputs exactly as for cross_entropy.
"""

import numpy as np

import lossengine as le
from lossengine.declaration import real
from lossengine.domains import ClassIndex, Interval

from ._kernel import AM_SOFTMAX, AM_SOFTMAX_F32, AM_SOFTMAX_F32_SCALED

__all__ = ["AMSoftmaxLoss"]


class AMSoftmaxLoss(le.CompiledRowLoss):
    """am_softmax_loss(input, target, scale=30.0, margin=0.35, weight=None, ignore_index=-100,
    reduction='mean'): input (C,), (N, C) or (N, C, d1..dK) scores, target class indices."""

    name = "am_softmax_loss"
    options = (real("scale", 30.0, gt=0.0, examples=(4.0,)), real("margin", 0.35, examples=(0.0, -0.2)),
               ) + le.CompiledRowLoss.options
    row_function = AM_SOFTMAX
    row_function_float32 = AM_SOFTMAX_F32      # float32 inputs: the same math in float32 lanes
    row_function_float32_scaled = AM_SOFTMAX_F32_SCALED   # ... applying the gradient's scale: taken first
    domains = {"input": Interval(-1.0, 1.0), "target": ClassIndex("input", 1)}
    check_options = ({"scale": 64.0, "margin": 0.5}, {"weight": np.array([0.5, 2.0, 1.0, 1.5]), "ignore_index": 2})

    def row_params(self):
        return (self.scale, self.margin)


@le.hookimpl
def lossengine_register_losses(register):
    register(AMSoftmaxLoss)

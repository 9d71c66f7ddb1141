"""log-cosh loss, log(cosh(input - target)): quadratic near 0, linear in the tails, smooth.

The per-element math is compiled (``_kernel.pyx``, against lossengine/elementwise_api.pxd); this
class only declares the loss and points lossengine's elementwise driver at it.
"""

import lossengine as le

from ._kernel import LOG_COSH, LOG_COSH_CHUNK

__all__ = ["LogCoshLoss"]


class LogCoshLoss(le.CompiledElementwiseLoss):
    """log_cosh_loss(input, target, reduction='mean'), differentiable in both arguments."""

    name = "log_cosh_loss"
    arguments = ("input", "target")
    differentiable = ("input", "target")
    element_function = LOG_COSH
    chunk_function = LOG_COSH_CHUNK

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # Both formulas' ranges (|d| below and above 1), tiny differences, and ties.
        shape = (4, 5)
        x = 2.0 * rng.standard_normal(shape)
        y = x + rng.choice([1e-9, 0.3, 3.0, 40.0], shape) * rng.standard_normal(shape)
        y[0, :2] = x[0, :2]
        return x.astype(dtype), y.astype(dtype)


@le.hookimpl
def lossengine_register_losses(register):
    register(LogCoshLoss)

"""lossengine: PyTorch's loss functions, value and gradient, over NumPy arrays.

    import lossengine as le
    loss, grad = le.MSELoss()(x, y), le.MSELoss().backward(x, y)
    loss, grad = le.BCEWithLogitsLoss().forward_backward(logits, labels)
"""
from . import functional, registry
from ._threads import get_num_threads, set_num_threads, threads
from .base import Loss
from .distances import CosineDistance, Distance, PairwiseDistance, SquaredEuclideanDistance
from .extending import CompiledElementwiseLoss, NumpyElementwiseLoss, get_include, plugin_build_options
from .hookspecs import hookimpl, hookspec
from .losses import *  # noqa: F401,F403  - every built-in loss class (lossengine.losses.__all__)
from .losses import __all__ as _builtin_loss_names
from .validation import CheckReport, LossValidationError, check

__version__ = "0.1.0"

__all__ = [
    "Loss", "check", "CheckReport", "LossValidationError", "functional", "registry",
    "hookimpl", "hookspec", "set_num_threads", "get_num_threads", "threads",
    "NumpyElementwiseLoss", "CompiledElementwiseLoss", "get_include", "plugin_build_options",
    "Distance", "PairwiseDistance", "CosineDistance", "SquaredEuclideanDistance",
] + list(_builtin_loss_names)

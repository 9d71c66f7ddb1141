"""lossengine: PyTorch's loss functions, value and gradient, over NumPy arrays.

    import lossengine as le
    loss, grad = le.MSELoss()(x, y), le.MSELoss().backward(x, y)
    loss, grad = le.BCEWithLogitsLoss().forward_backward(logits, labels)
"""
from . import functional, registry
from ._threads import get_num_threads, set_num_threads, threads
from .base import Loss
from .extending import CompiledElementwiseLoss, NumpyElementwiseLoss, get_include, plugin_build_options
from .hookspecs import hookimpl, hookspec
from .losses.elementwise import (BCELoss, BCEWithLogitsLoss, ElementwiseLoss, GaussianNLLLoss,
                                 HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
                                 PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss)
from .validation import CheckReport, LossValidationError, check

__version__ = "0.1.0"

__all__ = [
    "Loss", "ElementwiseLoss", "check", "CheckReport", "LossValidationError", "functional", "registry",
    "hookimpl", "hookspec", "set_num_threads", "get_num_threads", "threads",
    "NumpyElementwiseLoss", "CompiledElementwiseLoss", "get_include", "plugin_build_options",
    "L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "SoftMarginLoss",
    "KLDivLoss", "PoissonNLLLoss", "GaussianNLLLoss", "HingeEmbeddingLoss",
]

from .losses.classification import (ClassificationLoss, CrossEntropyLoss, MultiLabelMarginLoss,
                                    MultiLabelSoftMarginLoss, MultiMarginLoss, NLLLoss, NLLLoss2d)

__all__ += ["ClassificationLoss", "CrossEntropyLoss", "NLLLoss", "NLLLoss2d", "MultiMarginLoss",
            "MultiLabelMarginLoss", "MultiLabelSoftMarginLoss"]

from .losses.ctc import CTCLoss

__all__ += ["CTCLoss"]

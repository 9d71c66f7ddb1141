"""lossengine: PyTorch's loss functions, value and gradient, over NumPy arrays.

    import lossengine as le
    loss, grad = le.MSELoss()(x, y), le.MSELoss().backward(x, y)
    loss, grad = le.BCEWithLogitsLoss().forward_backward(logits, labels)
"""
def _require_compiled_kernels() -> None:
    # Importing the source folder of an unbuilt checkout (python run from the clone's root shadows
    # the installed package) would otherwise fail with a misleading circular-import error. A kernel
    # counts only when it lies in this folder: an editable install's import hook would otherwise
    # hand this copy the kernels built beside another copy of the source.
    import importlib.util
    import os

    here = os.path.dirname(os.path.abspath(__file__))

    def built_here(module: str) -> bool:
        spec = importlib.util.find_spec(f"{__name__}.{module}")
        origin = getattr(spec, "origin", None)
        return bool(origin) and os.path.dirname(os.path.abspath(origin)) == here

    missing = [m for m in ("_elementwise", "_classification", "_embedding", "_ctc") if not built_here(m)]
    if missing:
        raise ImportError(
            f"lossengine's compiled kernels ({', '.join(missing)}) are not built in {here}. Python imported "
            f"this source folder, probably because you ran it from the project's root, which shadows an "
            f"installed lossengine. Either run from another folder, or build the kernels in place: "
            f"`python setup.py build_ext --inplace` (or `pip install --no-build-isolation -e .`)."
        )


_require_compiled_kernels()

from . import _isa  # noqa: E402

_isa.load_kernels(__name__)        # the best ISA variant of each kernel module (lossengine/_isa.py)

from . import functional, registry  # noqa: E402
from ._threads import get_num_threads, set_num_threads, threads
from .base import Loss
from .extending import CompiledElementwiseLoss, CompiledRowLoss, NumpyElementwiseLoss, get_include, plugin_build_options
from .hookspecs import hookimpl, hookspec
from .losses import *  # noqa: F401,F403  - every built-in loss class (lossengine.losses.__all__)
from .losses import __all__ as _builtin_loss_names
from .validation import CheckReport, LossValidationError, check

from ._version import __version__  # noqa: E402

__all__ = [
    "Loss", "check", "CheckReport", "LossValidationError", "functional", "registry",
    "hookimpl", "hookspec", "set_num_threads", "get_num_threads", "threads",
    "NumpyElementwiseLoss", "CompiledElementwiseLoss", "CompiledRowLoss", "get_include", "plugin_build_options",
] + list(_builtin_loss_names)

"""lossengine's own losses, registered through the same hook third-party plugins implement."""
from .hookspecs import hookimpl
from .losses import BUILTIN_LOSSES


@hookimpl
def lossengine_register_losses(register):
    for loss_class in BUILTIN_LOSSES:
        register(loss_class)

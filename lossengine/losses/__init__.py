"""Built-in losses, one module per kernel family."""
from .elementwise import LOSSES as ELEMENTWISE_LOSSES

BUILTIN_LOSSES = ELEMENTWISE_LOSSES
from .classification import LOSSES as CLASSIFICATION_LOSSES

BUILTIN_LOSSES = BUILTIN_LOSSES + CLASSIFICATION_LOSSES

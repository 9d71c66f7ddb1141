"""The plugin hooks. A plugin is any module with a ``@hookimpl`` function named after a hookspec here,
reached through the ``lossengine`` entry-point group (or registered in-process)."""
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # for the annotation only: the registry imports this module
    from .registry import Registrar

PROJECT_NAME = "lossengine"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def lossengine_register_losses(register: "Registrar") -> None:
    """Call ``register(LossClass)`` once for each loss the plugin provides.

    ``register`` is a ``lossengine.registry.Registrar``: callable (returning the class, so it also
    works as a decorator), with ``.plugin`` (this plugin's name) and ``.source`` (its distribution).
    What it receives is committed, each loss after the validator and the name checks, when the hook
    returns; a name already served (a built-in's, another plugin's) is refused and recorded.

    ``LossClass`` subclasses ``lossengine.Loss`` and sets ``name`` (the registry key), ``arguments``
    and ``differentiable``.
    """

"""The plugin hooks. A plugin is any module with a ``@hookimpl`` function named after a hookspec here,
reached through the ``lossengine`` entry-point group (or registered in-process)."""
import pluggy

PROJECT_NAME = "lossengine"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def lossengine_register_losses(register):
    """Call ``register(LossClass)`` once for each loss the plugin provides.

    ``LossClass`` subclasses ``lossengine.Loss`` and sets ``name`` (the registry key), ``arguments``
    and ``differentiable``.
    """

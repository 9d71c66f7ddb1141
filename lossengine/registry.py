"""The loss registry: a pluggy PluginManager, filled on first use (never at ``import lossengine``).

Built-in losses arrive through ``lossengine._builtin_plugin``, which implements the same
``lossengine_register_losses`` hook as any third-party plugin. Third-party plugins are found through
the ``lossengine`` entry-point group. Every plugin is loaded, and its hook called, inside its own
try/except: a plugin that fails is recorded with its error and a warning, and the rest keep working.
``LOSSENGINE_DISABLE_PLUGINS`` (comma-separated entry-point names) skips plugins.

A plugin's registrations are staged and committed only when its hook returns, so a plugin that
raises halfway leaves nothing behind.
"""
from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from dataclasses import dataclass
import pluggy

from . import hookspecs
from .base import Loss

ENTRY_POINT_GROUP = "lossengine"
BUILTIN_SOURCE = "lossengine"


@dataclass(frozen=True)
class Registration:
    loss_class: type
    source: str  # "lossengine" for built-ins, else the plugin's distribution (or plugin) name


class PluginLoadWarning(UserWarning):
    """A plugin failed to load or to register its losses; the others are unaffected."""


_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_entries: dict[str, Registration] = {}
_failures: dict[str, str] = {}


def structural_problems(loss_class: object) -> list[str]:
    """What makes ``loss_class`` unusable as a registry entry (empty when it is well-formed)."""
    if not isinstance(loss_class, type) or not issubclass(loss_class, Loss):
        return [f"{loss_class!r} is not a subclass of lossengine.Loss"]
    problems = []
    name = getattr(loss_class, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        problems.append(f"{loss_class.__name__}.name must be an identifier string, got {name!r}")
    arguments = getattr(loss_class, "arguments", None)
    if not isinstance(arguments, tuple) or not arguments or not all(isinstance(a, str) for a in arguments):
        problems.append(f"{loss_class.__name__}.arguments must be a non-empty tuple of names, got {arguments!r}")
    differentiable = getattr(loss_class, "differentiable", None)
    if not isinstance(differentiable, tuple) or not differentiable or not set(differentiable) <= set(arguments or ()):
        problems.append(
            f"{loss_class.__name__}.differentiable must be a non-empty tuple of names from arguments, "
            f"got {differentiable!r}"
        )
    return problems


def _stage(staged: dict[str, Registration], loss_class: type, source: str) -> None:
    problems = structural_problems(loss_class)
    if problems:
        raise TypeError("; ".join(problems))
    name = loss_class.name
    existing = _entries.get(name) or staged.get(name)
    if existing is not None and existing.loss_class is not loss_class:
        raise ValueError(
            f"loss name {name!r} from {source} is already registered by {existing.source} "
            f"({existing.loss_class.__module__}.{existing.loss_class.__qualname__})"
        )
    staged[name] = Registration(loss_class, source)


def _run_hook(plugin: object, source: str) -> None:
    """Call one plugin's hook; commit its losses only if the whole hook succeeds."""
    impl = getattr(plugin, "lossengine_register_losses", None)
    if impl is None:
        return
    staged: dict[str, Registration] = {}
    try:
        impl(register=lambda loss_class: _stage(staged, loss_class, source))
    except Exception as exc:  # one plugin must not take the others down
        _record_failure(source, f"its lossengine_register_losses hook raised {type(exc).__name__}: {exc}")
        return
    _entries.update(staged)


def _record_failure(plugin: str, reason: str) -> None:
    _failures[plugin] = reason
    warnings.warn(f"lossengine plugin {plugin!r} was not loaded: {reason}", PluginLoadWarning, stacklevel=4)


def _disabled_plugins() -> set[str]:
    return {p.strip() for p in os.environ.get("LOSSENGINE_DISABLE_PLUGINS", "").split(",") if p.strip()}


def _load() -> pluggy.PluginManager:
    global _manager
    with _lock:
        if _manager is not None:
            return _manager
        from . import _builtin_plugin

        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        manager.register(_builtin_plugin, name=BUILTIN_SOURCE)
        _run_hook(_builtin_plugin, BUILTIN_SOURCE)
        disabled = _disabled_plugins()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or ep.name == BUILTIN_SOURCE:
                continue
            source = ep.dist.name if ep.dist is not None else ep.name
            try:
                plugin = ep.load()
                manager.register(plugin, name=ep.name)
            except Exception as exc:
                _record_failure(ep.name, f"importing {ep.value} raised {type(exc).__name__}: {exc}")
                continue
            _run_hook(plugin, source)
        _manager = manager
        return manager


def plugin_manager() -> pluggy.PluginManager:
    """The pluggy PluginManager (loads the plugins on first call)."""
    return _load()


def names() -> list[str]:
    """Registry keys (torch.nn.functional names), sorted."""
    _load()
    return sorted(_entries)


def get(name: str) -> type:
    """The Loss class registered under ``name``; KeyError listing the known names otherwise."""
    _load()
    try:
        return _entries[name].loss_class
    except KeyError:
        raise KeyError(f"no loss named {name!r}; registered: {', '.join(sorted(_entries))}") from None


def source(name: str) -> str:
    """Where ``name`` came from: 'lossengine' for built-ins, else the plugin's distribution name."""
    get(name)
    return _entries[name].source


def failures() -> dict[str, str]:
    """Plugins that failed to load or register, with the reason."""
    _load()
    return dict(_failures)


def register(loss_class: type, source: str = "user") -> type:
    """Register one Loss class directly. Returns it, so it also works as a class decorator."""
    with _lock:
        _load()
        staged: dict[str, Registration] = {}
        _stage(staged, loss_class, source)
        _entries.update(staged)
    return loss_class


def unregister(name: str) -> type:
    """Remove ``name`` from the registry and return its class."""
    with _lock:
        _load()
        if name not in _entries:
            raise KeyError(f"no loss named {name!r}")
        return _entries.pop(name).loss_class


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register an in-process plugin object (module or instance with the hook)."""
    with _lock:
        manager = _load()
        plugin_name = manager.register(plugin, name=name)
        _run_hook(plugin, plugin_name or repr(plugin))


"""The loss registry: a pluggy PluginManager, filled on first use (never at ``import lossengine``).

Built-in losses arrive through ``lossengine._builtin_plugin``, which implements the same
``lossengine_register_losses`` hook as any third-party plugin. Third-party plugins are found through
the ``lossengine`` entry-point group. Every plugin is loaded, and its hook called, inside its own
try/except: a plugin that fails is recorded with its error and a warning, and the rest keep working.
``LOSSENGINE_DISABLE_PLUGINS`` (comma-separated entry-point names) skips plugins.

A plugin's registrations are staged and committed only when its hook returns, so a plugin that
raises halfway leaves nothing behind. Every loss a plugin registers goes through the validator
(``lossengine.check``, once per class per process) before it is committed; a loss that fails is
rejected (never served) and recorded in ``failures()`` under its plugin, while the plugin's other
losses are kept. Built-in losses skip that runtime check: the test suite validates them.
"""
from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
import weakref
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
_failures: dict[str, list[str]] = {}
# The validator's verdict per class, so a class is checked once per process however often it is
# registered (weak: classes made in tests come and go).
_reports: "weakref.WeakKeyDictionary[type, object]" = weakref.WeakKeyDictionary()


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


def validation_report(loss_class: type):
    """``lossengine.check(loss_class)``, computed once per class per process."""
    from .validation import check

    with _lock:
        report = _reports.get(loss_class)
        if report is None:
            report = _reports[loss_class] = check(loss_class)
        return report


def _run_hook(plugin: object, plugin_name: str, source: str, validate: bool = True) -> bool:
    """Call one plugin's hook and commit what it registered; False if the hook itself failed.

    Nothing is committed unless the whole hook returns. Then each staged loss is validated; the
    rejected ones are recorded and left out, the rest committed together.
    """
    impl = getattr(plugin, "lossengine_register_losses", None)
    if impl is None:
        return True
    staged: dict[str, Registration] = {}
    try:
        impl(register=lambda loss_class: _stage(staged, loss_class, source))
    except Exception as exc:  # one plugin must not take the others down
        _record_failure(plugin_name, f"its lossengine_register_losses hook raised {type(exc).__name__}: {exc}"
                        + _from(source, plugin_name))
        return False
    for name, registration in list(staged.items()) if validate else ():
        try:
            report = validation_report(registration.loss_class)
        except Exception as exc:  # the validator must not be able to break loading either
            report_text, ok = f"the validator raised {type(exc).__name__}: {exc}", False
        else:
            report_text, ok = str(report), report.ok
        if not ok:
            del staged[name]
            _record_failure(plugin_name, f"loss {name!r} ({registration.loss_class.__qualname__}) rejected by "
                            f"the validator{_from(source, plugin_name)}:\n{report_text}")
    _entries.update(staged)
    return True


def _from(source: str, plugin_name: str) -> str:
    return f" (distribution {source})" if source != plugin_name else ""


def _record_failure(plugin: str, reason: str) -> None:
    _failures.setdefault(plugin, []).append(reason)
    warnings.warn(f"lossengine plugin {plugin!r}: {reason}", PluginLoadWarning, stacklevel=4)


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
        # Published before the plugins run, so a plugin (or its validation) that touches the
        # registry from this thread sees the built-ins instead of recursing into _load().
        _manager = manager
        try:
            manager.register(_builtin_plugin, name=BUILTIN_SOURCE)
            _run_hook(_builtin_plugin, BUILTIN_SOURCE, BUILTIN_SOURCE, validate=False)
            disabled = _disabled_plugins()
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in disabled or ep.name == BUILTIN_SOURCE or manager.has_plugin(ep.name):
                    continue
                source = ep.dist.name if ep.dist is not None else ep.name
                try:
                    plugin = ep.load()
                    manager.register(plugin, name=ep.name)
                except Exception as exc:
                    _record_failure(ep.name, f"importing {ep.value} raised {type(exc).__name__}: {exc}"
                                    + _from(source, ep.name))
                    continue
                if not _run_hook(plugin, ep.name, source):
                    manager.unregister(name=ep.name)
        except BaseException:
            _reset()
            raise
        return manager


def _reset() -> None:
    """Forget every loaded plugin and registration, so the next registry use loads afresh.
    For tests (entry points that come and go); validation verdicts stay cached per class."""
    global _manager
    with _lock:
        _manager = None
        _entries.clear()
        _failures.clear()


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
    """Plugins that failed to load or to register, or whose losses the validator rejected, keyed by
    plugin (entry-point) name, with the reason(s)."""
    _load()
    return {plugin: "\n".join(reasons) for plugin, reasons in _failures.items()}


def register(loss_class: type, source: str = "user") -> type:
    """Register one Loss class directly, after validating it. Returns it (it works as a decorator).

    Raises TypeError when ``loss_class`` is not a Loss subclass, ``lossengine.LossValidationError``
    (carrying ``.report``) when it fails the validator, and ValueError when its name is taken by
    another class. On any error the registry is unchanged.
    """
    from .validation import LossValidationError

    if not isinstance(loss_class, type) or not issubclass(loss_class, Loss):
        raise TypeError(f"{loss_class!r} is not a subclass of lossengine.Loss")
    with _lock:
        _load()
        staged: dict[str, Registration] = {}
        report = validation_report(loss_class)
        if not report.ok:
            raise LossValidationError(report)
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


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register an in-process plugin object (a module or instance with the hook) and run its hook,
    exactly as for an installed plugin: its losses are validated, failures recorded. Returns the
    plugin's name (pass it to ``unregister_plugin``)."""
    with _lock:
        manager = _load()
        plugin_name = manager.register(plugin, name=name)
        if plugin_name is None:  # pluggy refuses a plugin it blocked
            raise ValueError(f"plugin {name or plugin!r} is blocked")
        if not _run_hook(plugin, plugin_name, plugin_name):
            manager.unregister(name=plugin_name)
        return plugin_name


def unregister_plugin(name: str) -> list[str]:
    """Unregister an in-process plugin and remove the losses it registered; returns their names."""
    with _lock:
        manager = _load()
        manager.unregister(name=name)
        removed = [n for n, r in _entries.items() if r.source == name]
        for n in removed:
            del _entries[n]
        _failures.pop(name, None)
        return removed

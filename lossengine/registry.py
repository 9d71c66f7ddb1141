"""The loss registry: a pluggy PluginManager, filled on first use (never at ``import lossengine``).

Built-in losses arrive through ``lossengine._builtin_plugin``, which implements the same
``lossengine_register_losses`` hook as any third-party plugin. Third-party plugins are found through
the ``lossengine`` entry-point group. Hooks are called through the plugin manager, one plugin at a
time (only functions marked ``@lossengine.hookimpl`` count; ``check_pending`` reports a misspelled
hook), and each hook receives a ``Registrar``. ``LOSSENGINE_DISABLE_PLUGINS`` (comma-separated
entry-point names) blocks plugins in the manager (``set_blocked``); they are never imported.

Everything a plugin does can fail without taking the host down: an exception of any kind (SystemExit
and KeyboardInterrupt included) raised while importing a plugin or running its hook is recorded once
in ``failures()`` under the plugin, with a one-line PluginLoadWarning, and the others keep loading.

A plugin's registrations are staged and committed only when its hook returns. Each staged loss goes
through the validator before it is served. For installed (entry-point) plugins that first check runs
in an isolated child process (lossengine._validation_child: its own verdict channel, ``python -I``
from a neutral folder, a timeout that kills its process group), so a loss that crashes or hangs the
interpreter is rejected, not fatal; the verdict is then cached (per class in this process, and across
processes by the validator's cache, keyed by the code that runs). Losses registered in-process
(``register``, ``register_plugin``) are validated in-process. The threat model: docs/reliability.md.

Names are first come, first served: a loss whose name is taken -- by a built-in (those names are
reserved: they cannot be unregistered) or by another plugin -- is refused and recorded, and the
earlier loss keeps serving. A plugin's loss leaves only with its plugin. Registering the very class
already registered under its name changes nothing (its source stays). Registry names are ASCII
identifiers; the source (distribution) name 'lossengine' is reserved for the built-ins.

Locking: the lock guards the registry's tables only; importing plugins, running hooks and validating
happen outside it. The built-ins are committed on first use, and plugins are discovered only when
something needs them (see ``Registry._load``), so ``get`` of a built-in never waits for a plugin.
"""
from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
import weakref
from typing import Callable

import pluggy

from . import _builtin_plugin, _validation_child, validation
from ._plugins import (HOOK_NAME, PluginLoadWarning, Registrar, Registration, run_hook_alone,  # noqa: F401
                       TrackThreads as _TrackThreads, canonical as _canonical, describe as _describe,
                       disabled_plugins as _disabled_plugins, exception_text as _exception_text,
                       from_distribution as _from, hook_caller as _hook_caller, new_manager as _new_manager)
from ._structure import structural_problems

__all__ = ["Registry", "Registrar", "Registration", "PluginLoadWarning", "ENTRY_POINT_GROUP", "BUILTIN_SOURCE",
           "plugin_manager", "names", "get", "source", "failures", "register", "unregister", "register_plugin",
           "unregister_plugin", "validation_report", "structural_problems", "REGISTRY"]

ENTRY_POINT_GROUP = "lossengine"
BUILTIN_SOURCE = "lossengine"
# Set in a validation child: its registry serves the built-ins only and discovers no plugins (a
# plugin or module that uses the registry on import must not start children of its own).
_CHILD_ENV = _validation_child.CHILD_ENV


def _checker() -> Callable[[type], object]:
    # Looked up at call time, so tests can substitute the validator.
    return validation.cached_check


def _cached_verdict(loss_class: type):
    """A verdict the validator already holds for ``loss_class`` (None when it would have to run)."""
    return validation.cached_verdict(loss_class)


def _crash_report(loss_class: type, why: str):
    return validation.CheckReport(loss=loss_class.__name__, failures=[validation.Failure("crash", why)])


def _summary(report) -> str:
    failed = sorted({f.check for f in report.failures})
    return f"{len(report.failures)} failure(s): {', '.join(failed)}"


class Registry:
    """The registry's state: the plugin manager, the served losses, the recorded failures.
    ``lossengine.registry``'s functions are this class's methods on the one module-level instance."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # discovery progressed (or its thread gave up)
        self._manager: pluggy.PluginManager | None = None
        self._pending: list | None = None           # entry points not loaded yet (None: not listed yet)
        self._discoverer: int | None = None         # the thread loading plugins right now
        self._plugin_threads: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()
        self._entries: dict[str, Registration] = {}
        self._builtin: frozenset[str] = frozenset()
        self._plugin_sources: dict[str, str] = {}   # plugin name -> distribution
        self._installed: set[str] = set()           # plugin names loaded from entry points
        self._failures: dict[str, list[str]] = {}
        self._rejected: dict[str, str] = {}         # loss name -> the plugin whose loss was rejected
        self._hook = threading.local()               # .depth > 0 while this thread runs a hook
        # The validator's verdict per class, so a class is checked once per process however often it
        # is registered (weak: classes made in tests come and go).
        self._reports: "weakref.WeakKeyDictionary[type, object]" = weakref.WeakKeyDictionary()

    # -- loading ------------------------------------------------------------------------------
    # Built-ins never wait for plugins: the first use commits them, and plugins are discovered
    # (imported, hooks run, losses validated) only when something needs the full picture -- names(),
    # failures(), a name not served yet. get() of a built-in is served at once, even while a plugin's
    # validation hangs in another thread.
    #
    # One thread discovers at a time; others that need the full picture wait for it -- except threads
    # started by plugin code while it runs (a ThreadPoolExecutor at import): the discovering thread
    # may be waiting for them, so they see the registry as it stands instead of deadlocking. Entry
    # points are taken off a list one at a time, so an interrupted discovery (Ctrl-C) records the
    # plugin it was on as failed and the next use carries on with the rest.
    @property
    def loaded(self) -> bool:
        """Whether the first registry use happened (the built-ins are served)."""
        return self._manager is not None

    def _load(self, complete: bool = True) -> pluggy.PluginManager:
        """The manager, built-ins committed. ``complete``: also discover the plugins (or wait for the
        thread discovering them), unless this thread is the discoverer or one its plugin started."""
        with self._lock:
            if self._manager is None:
                # The built-ins cannot be disabled: their names are the reserved ones.
                manager = self._manager = _new_manager(_disabled_plugins() - {BUILTIN_SOURCE})
                self._pending, self._discoverer = None, None
                try:
                    self._load_builtins(manager)
                except BaseException:
                    self.reset()
                    raise
            manager = self._manager
            if not complete:
                return manager
            me = threading.get_ident()
            while self._pending != []:
                if self._discoverer is None:
                    self._discoverer = me
                    break
                if self._discoverer == me or threading.current_thread() in self._plugin_threads:
                    return manager
                self._changed.wait()
                if self._manager is not manager:  # reset meanwhile (tests): load the new registry
                    return self._load(complete)
            else:
                return manager
        try:
            self._discover(manager)
        finally:
            with self._lock:
                if self._manager is manager:
                    self._discoverer = None
                self._changed.notify_all()
        return manager

    def _load_builtins(self, manager: pluggy.PluginManager) -> None:
        manager.register(_builtin_plugin, name=BUILTIN_SOURCE)
        registrar = Registrar(BUILTIN_SOURCE, BUILTIN_SOURCE)
        _hook_caller(manager, _builtin_plugin)(register=registrar)
        # Built-ins skip the runtime validator: the test suite validates them.
        self._entries.update({n: Registration(c, BUILTIN_SOURCE, BUILTIN_SOURCE) for n, c in registrar.staged.items()})
        self._builtin = frozenset(registrar.staged)
        self._plugin_sources[BUILTIN_SOURCE] = BUILTIN_SOURCE

    def _discover(self, manager: pluggy.PluginManager) -> None:
        if self._pending is None:
            entry_points = self._entry_points(manager)
            with self._lock:
                if self._manager is manager and self._pending is None:
                    self._pending = entry_points
        while True:
            with self._lock:
                if self._manager is not manager or not self._pending:
                    return
                ep = self._pending.pop(0)
            self._load_entry_point(manager, ep)

    def _entry_points(self, manager: pluggy.PluginManager) -> list:
        if os.environ.get(_CHILD_ENV) == "1":
            return []
        try:
            return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        except Exception as exc:  # broken metadata of some installed distribution
            self._record(manager, ENTRY_POINT_GROUP, f"listing the {ENTRY_POINT_GROUP!r} entry points raised "
                         f"{_exception_text(exc)}; no plugin was loaded")
            return []

    def _load_entry_point(self, manager: pluggy.PluginManager, ep) -> None:
        # Provenance is the entry point's distribution; 'lossengine' names this package only (its
        # built-ins come from _builtin_plugin, never from an entry point).
        dist = ep.dist.name if ep.dist is not None else ep.name
        if manager.is_blocked(ep.name):
            return
        with self._lock:
            taken_by = self._plugin_sources.get(ep.name)
        if taken_by is not None or _canonical(dist) == BUILTIN_SOURCE:
            what = ("reserved for lossengine's built-ins" if BUILTIN_SOURCE in (ep.name, _canonical(dist))
                    else f"taken by {taken_by}")
            whose = "distribution name" if _canonical(dist) == BUILTIN_SOURCE else "plugin name"
            self._record(manager, ep.name, f"entry point {ep.name!r} of distribution {dist} was not loaded: "
                         f"the {whose} is {what} (rename the {'distribution' if whose[0] == 'd' else 'entry point'})")
            return
        try:
            with self._plugin_code():
                plugin = ep.load()
        except BaseException as exc:  # noqa: B036 - a plugin must not end or poison the host
            self._record(manager, ep.name, f"importing {ep.value} raised {_exception_text(exc)}" + _from(dist, ep.name))
            return
        with self._lock:
            self._installed.add(ep.name)
        self._add_plugin(manager, plugin, ep.name, dist, entry_point=ep.value)

    def _plugin_code(self):
        """A context in which plugin code runs: threads it starts are marked as the plugin's."""
        return _TrackThreads(self._plugin_threads)

    def _add_plugin(self, manager: pluggy.PluginManager, plugin: object, name: str | None, source: str | None,
                    entry_point: str | None = None) -> str | None:
        """Register ``plugin`` in the manager, run its hook, validate and commit what it registered.
        Returns its name, or None when the manager refused it (recorded). With ``entry_point``, first
        validation runs in a child process that loads the plugin from it."""
        staged = self._stage(manager, plugin, name, source)
        if staged is None:
            return None
        name, source, registrar = staged
        if registrar is None:
            return name
        for problem in registrar.problems:
            self._record(manager, name, problem + _from(source, name))
        staged = self._without_collisions(manager, registrar)
        try:
            reports = self._validate_isolated(entry_point, name, staged) if entry_point else \
                {n: self.validation_report(c, safe=True) for n, c in staged.items()}
        except KeyboardInterrupt:
            self._record(manager, name, "validating its losses was interrupted (KeyboardInterrupt); they are not "
                         "served in this process" + _from(source, name))
            raise
        with self._lock:
            for loss_name, loss_class in staged.items():
                report = reports[loss_name]
                if not report.ok:
                    self._rejected[loss_name] = name
                    self._record(manager, name,
                                 f"loss {loss_name!r} ({loss_class.__qualname__}) rejected by the validator"
                                 f"{_from(source, name)}:\n{report}",
                                 summary=f"loss {loss_name!r} rejected by the validator ({_summary(report)})")
            accepted = {n: c for n, c in staged.items() if reports[n].ok}
            self._commit(manager, accepted, source, name)
        return name

    def _stage(self, manager: pluggy.PluginManager, plugin: object, name: str | None, source: str | None):
        """Register ``plugin`` in the manager and run its hook: (name, source, registrar), with
        registrar None when the hook raised (recorded); None when the manager refused it (recorded)."""
        label = name or manager.get_canonical_name(plugin)
        with self._lock:
            try:
                name = manager.register(plugin, name=name)
            except BaseException as exc:  # noqa: B036 - pluggy's ValueError/PluginValidationError, or the plugin's getattr
                self._record(manager, label, f"the plugin manager refused it: {_exception_text(exc)}")
                return None
            if name is None:
                return None
            try:
                manager.check_pending()
            except pluggy.PluginValidationError as exc:
                manager.unregister(plugin)
                self._record(manager, name, f"{exc} (hooks are named in lossengine.hookspecs: {HOOK_NAME})")
                return None
            if not manager.get_hookcallers(plugin):
                manager.unregister(plugin)
                unmarked = callable(getattr(plugin, HOOK_NAME, None))
                self._record(manager, name, f"it has no {HOOK_NAME} hook" + (
                    f": decorate its {HOOK_NAME} with @lossengine.hookimpl" if unmarked else ""))
                return None
            source = source or name
            self._plugin_sources[name] = source
            hook = _hook_caller(manager, plugin)  # under the lock: another thread may (un)register plugins
        registrar = Registrar(name, source)
        self._hook.depth = getattr(self._hook, "depth", 0) + 1
        try:
            with self._plugin_code():
                hook(register=registrar)
        except BaseException as exc:  # noqa: B036 - one plugin must not take the others (or the host) down
            with self._lock:
                if manager.get_plugin(name) is plugin:  # nothing of it stays behind
                    manager.unregister(plugin)
            self._record(manager, name, f"its {HOOK_NAME} hook raised {_exception_text(exc)}" + _from(source, name))
            return name, source, None
        finally:
            self._hook.depth -= 1
        return name, source, registrar

    def _without_collisions(self, manager, registrar: Registrar) -> dict[str, type]:
        """The staged losses whose names are free (or hold the very same class); the others are
        refused and recorded. Checked again on commit: another thread may register meanwhile."""
        with self._lock:
            return {n: c for n, c in registrar.staged.items()
                    if self._collision(manager, n, c, registrar.source, registrar.plugin) is None}

    def _collision(self, manager, name: str, loss_class: type, source: str, plugin: str) -> Registration | None:
        """The registration ``name`` collides with (recorded as ``plugin``'s failure), else None."""
        existing = self._entries.get(name)
        if existing is None or existing.loss_class is loss_class:
            return None
        owner = "reserved for lossengine's built-in" if name in self._builtin else f"taken by {existing.source}"
        self._record(manager, plugin, f"loss {name!r} ({_describe(loss_class)}) refused: the name is {owner} "
                     f"{_describe(existing.loss_class)}, which keeps serving it" + _from(source, plugin))
        return existing

    def _commit(self, manager, accepted: dict[str, type], source: str, plugin: str) -> None:
        if self._manager is not manager:  # the registry was reset meanwhile (tests)
            return
        for loss_name, loss_class in accepted.items():
            if loss_name in self._entries:  # the same class already served: its source stays
                self._collision(manager, loss_name, loss_class, source, plugin)
                continue
            self._entries[loss_name] = Registration(loss_class, source, plugin)
            self._rejected.pop(loss_name, None)

    def _record(self, manager, plugin: str, reason: str, summary: str | None = None) -> None:
        with self._lock:
            if self._manager is not manager:
                return
            self._failures.setdefault(plugin, []).append(reason)
        # One line; the full reason is in failures() and `lossengine list`. warn_explicit with a
        # location that has no source text: no stray source line under the message.
        first = summary or reason.splitlines()[0]
        warnings.warn_explicit(
            f"lossengine plugin {plugin!r}: {first}; see lossengine.registry.failures()",
            PluginLoadWarning, filename=f"<lossengine plugin {plugin!r}>", lineno=0, module=__name__)

    # -- validation ---------------------------------------------------------------------------
    def validation_report(self, loss_class: type, safe: bool = False):
        """The validator's report on ``loss_class``, computed once per class per process, never under
        the registry's lock. ``safe``: a SystemExit or KeyboardInterrupt raised by the loss's code is a
        failed report instead of propagating (set for plugins; a user calling ``register`` may stop it)."""
        with self._lock:
            report = self._reports.get(loss_class)
        if report is not None:
            return report
        try:
            report = _checker()(loss_class)
        except (SystemExit, KeyboardInterrupt) as exc:
            if not safe and isinstance(exc, KeyboardInterrupt):
                raise
            return _crash_report(loss_class, f"validating it raised {_exception_text(exc)}")
        except Exception as exc:  # the validator must not be able to break loading either
            return _crash_report(loss_class, f"the validator raised {type(exc).__name__}: {exc}")
        with self._lock:
            return self._reports.setdefault(loss_class, report)

    def _validate_isolated(self, entry_point: str, plugin: str, staged: dict[str, type]) -> dict[str, object]:
        """Reports for an installed plugin's staged losses. Those without a verdict (in this process or
        the validator's cache) are checked in a child process that loads the plugin from its entry
        point; a child that dies, times out or sends something malformed rejects the loss it was
        checking, and the rest go to a fresh child. A timeout is stored as that code's verdict."""
        reports: dict[str, object] = {}
        pending = {}
        for loss_name, loss_class in staged.items():
            with self._lock:
                report = self._reports.get(loss_class)
            report = report if report is not None else _cached_verdict(loss_class)
            if report is not None:
                reports[loss_name] = report
            else:
                pending[loss_name] = loss_class
        while pending:
            timeout = validation.validation_timeout()
            verdicts, trouble, timed_out = _validation_child.run_child(entry_point, plugin, pending, timeout)
            for loss_name, report in verdicts.items():
                with self._lock:
                    reports[loss_name] = self._reports.setdefault(staged[loss_name], report)
            pending = {n: c for n, c in pending.items() if n not in verdicts}
            if pending:
                culprit = next(iter(pending))
                loss_class = pending.pop(culprit)
                if timed_out:
                    report = validation.timeout_report(loss_class, timeout)
                    validation.store_verdict(loss_class, report)
                    with self._lock:
                        report = self._reports.setdefault(loss_class, report)
                else:
                    report = _crash_report(loss_class, trouble)
                reports[culprit] = report
        return reports

    # -- the public operations ------------------------------------------------------------------
    def plugin_manager(self) -> pluggy.PluginManager:
        return self._load()

    def names(self) -> list[str]:
        self._load()
        with self._lock:
            return sorted(self._entries)

    def _registration(self, name: str) -> Registration:
        self._load(complete=False)
        with self._lock:
            found = self._entries.get(name)
        if found is None:  # not served yet: maybe a plugin still loading provides it
            self._load()
            with self._lock:
                found = self._entries.get(name)
                if found is None:
                    raise KeyError(self._unknown(name)) from None
        return found

    def _unknown(self, name: str) -> str:
        plugin = self._rejected.get(name)
        if plugin is not None:
            return (f"loss {name!r} from plugin {plugin!r} was rejected by the validator and is not served; "
                    f"its report: lossengine.registry.failures()[{plugin!r}] (or `lossengine list`)")
        known = f"no loss named {name!r}; registered: {', '.join(sorted(self._entries))}"
        if self._failures:
            known += f" (plugins that failed: {', '.join(sorted(self._failures))}; see lossengine.registry.failures())"
        return known

    def get(self, name: str) -> type:
        return self._registration(name).loss_class

    def source(self, name: str) -> str:
        return self._registration(name).source

    def failures(self) -> dict[str, str]:
        self._load()
        with self._lock:
            return {plugin: "\n".join(reasons) for plugin, reasons in self._failures.items()}

    def rejected(self) -> dict[str, str]:
        """Loss names the validator rejected, each with the plugin that registered it."""
        self._load()
        with self._lock:
            return dict(self._rejected)

    def register(self, loss_class: type, source: str = "user") -> type:
        problems = structural_problems(loss_class)
        if problems:
            raise TypeError("; ".join(problems))
        if not isinstance(source, str) or _canonical(source) == BUILTIN_SOURCE:
            raise ValueError(f"source must be a name other than {BUILTIN_SOURCE!r} (reserved for the built-ins), "
                             f"got {source!r}")
        manager = self._load()
        name = loss_class.name
        with self._lock:
            self._refuse_taken(name, loss_class, source)
        report = self.validation_report(loss_class)  # in-process (asked for directly), outside the lock
        if not report.ok:
            raise validation.LossValidationError(report)
        with self._lock:
            if self._manager is not manager:
                raise RuntimeError("the registry was reset while registering")
            self._refuse_taken(name, loss_class, source)
            self._entries.setdefault(name, Registration(loss_class, source))
        return loss_class

    def _refuse_taken(self, name: str, loss_class: type, source: str) -> None:
        """Raise on a name held by another class. The refusal is also recorded in ``failures()``
        under ``source`` (no warning: the exception is the message), as a plugin's collision is, so
        ``lossengine list`` and the registry's state show it after the caller has moved on."""
        existing = self._entries.get(name)
        if existing is not None and existing.loss_class is not loss_class:
            owner = "reserved for lossengine's built-in" if name in self._builtin else f"already registered by {existing.source}"
            reason = (f"loss {name!r} ({_describe(loss_class)}) refused: the name is {owner} "
                      f"{_describe(existing.loss_class)}, which keeps serving it")
            self._failures.setdefault(source, []).append(reason)
            raise ValueError(f"loss name {name!r} from {source} is {owner} ({_describe(existing.loss_class)})")

    def unregister(self, name: str) -> type:
        self._load()
        with self._lock:
            if name in self._builtin:
                raise ValueError(f"{name!r} is a built-in loss: built-in names are reserved and cannot be unregistered")
            if getattr(self._hook, "depth", 0):
                raise RuntimeError(f"a plugin's hook may not unregister losses (tried {name!r})")
            if name not in self._entries:
                raise KeyError(f"no loss named {name!r}")
            plugin = self._entries[name].plugin
            if plugin:  # a plugin's loss leaves with its plugin, never alone (nor by another's hand)
                how = (f"disable it with LOSSENGINE_DISABLE_PLUGINS={plugin}" if plugin in self._installed
                       else f"unregister_plugin({plugin!r}) removes it")
                raise ValueError(f"loss {name!r} belongs to plugin {plugin!r} ({self._entries[name].source}); "
                                 f"only that plugin can withdraw it: {how}")
            return self._entries.pop(name).loss_class

    def register_plugin(self, plugin: object, name: str | None = None) -> str:
        manager = self._load()
        if name is not None and manager.is_blocked(name):
            raise ValueError(f"plugin {name!r} is blocked (LOSSENGINE_DISABLE_PLUGINS)")
        registered = self._add_plugin(manager, plugin, name, None)
        if registered is None:
            label = name or manager.get_canonical_name(plugin)
            with self._lock:
                reasons = self._failures.get(label) or ["blocked or refused by the plugin manager"]
            raise ValueError(f"plugin {label!r} was not registered: " + "; ".join(reasons))
        return registered

    def unregister_plugin(self, name: str) -> list[str]:
        manager = self._load()
        with self._lock:
            if name == BUILTIN_SOURCE:
                raise ValueError("lossengine's built-in plugin cannot be unregistered")
            if name in self._installed:
                raise ValueError(f"plugin {name!r} is installed (an entry point of {self._plugin_sources[name]}): "
                                 f"disable it with LOSSENGINE_DISABLE_PLUGINS={name}")
            if manager.get_plugin(name) is not None:
                manager.unregister(name=name)
            removed = [n for n, r in self._entries.items() if r.plugin == name]
            for n in removed:
                del self._entries[n]
            self._rejected = {n: p for n, p in self._rejected.items() if p != name}
            self._failures.pop(name, None)
            self._plugin_sources.pop(name, None)
            return removed

    def reset(self) -> None:
        """Forget every loaded plugin and registration, so the next registry use loads afresh.
        For tests (entry points that come and go); validation verdicts stay cached per class."""
        with self._lock:
            self._manager = None
            self._pending = None
            self._discoverer = None
            self._installed.clear()
            self._changed.notify_all()
            self._entries.clear()
            self._builtin = frozenset()
            self._plugin_sources.clear()
            self._failures.clear()
            self._rejected.clear()


# -- the module-level registry and its functions ------------------------------------------------------
REGISTRY = Registry()


def plugin_manager() -> pluggy.PluginManager:
    """The pluggy PluginManager (loads the plugins on first call)."""
    return REGISTRY.plugin_manager()


def names() -> list[str]:
    """Registry keys (torch.nn.functional names), sorted."""
    return REGISTRY.names()


def get(name: str) -> type:
    """The Loss class registered under ``name``; KeyError listing the known names otherwise (saying so
    when the validator rejected a plugin's loss of that name)."""
    return REGISTRY.get(name)


def source(name: str) -> str:
    """Where ``name`` came from: 'lossengine' for built-ins, else the plugin's distribution name."""
    return REGISTRY.source(name)


def failures() -> dict[str, str]:
    """Plugins that failed to load or to register, whose losses the validator rejected, or whose loss
    names collided, keyed by plugin (entry-point) name, with the reason(s)."""
    return REGISTRY.failures()


def register(loss_class: type, source: str = "user") -> type:
    """Register one Loss class directly, after validating it. Returns it (it works as a decorator).

    Raises TypeError when ``loss_class`` is not a well-formed Loss subclass, ``lossengine.LossValidationError``
    (carrying ``.report``) when it fails the validator, and ValueError when its name is taken by another
    class (built-in names are reserved). On any error the registry is unchanged.
    """
    return REGISTRY.register(loss_class, source)


def unregister(name: str) -> type:
    """Remove ``name`` from the registry and return its class. Built-in names are reserved and a
    plugin's loss leaves only with its plugin (ValueError); a plugin's hook may not unregister
    anything (RuntimeError)."""
    return REGISTRY.unregister(name)


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register an in-process plugin object (a module or instance with the hook) and run its hook,
    as for an installed plugin but validating in this process: its losses are validated, failures
    recorded. Returns the plugin's name (pass it to ``unregister_plugin``); ValueError when the
    plugin manager refuses the plugin (blocked, its name taken, no or a misspelled hook)."""
    return REGISTRY.register_plugin(plugin, name)


def unregister_plugin(name: str) -> list[str]:
    """Unregister an in-process plugin and remove the losses it registered; returns their names.
    Installed (entry-point) plugins are disabled with LOSSENGINE_DISABLE_PLUGINS instead (ValueError)."""
    return REGISTRY.unregister_plugin(name)


def validation_report(loss_class: type):
    """The validator's report on ``loss_class``, computed once per class per process."""
    return REGISTRY.validation_report(loss_class)


def _reset() -> None:
    REGISTRY.reset()

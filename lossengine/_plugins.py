"""The plugin side of the registry (lossengine.registry re-exports the public names): what a
plugin's hook receives (``Registrar``), a registration, the warning a failing plugin raises, a pluggy
manager and the caller of one plugin's hook, the threads plugin code starts, and how a failure and
a class are described.
"""
from __future__ import annotations

import os
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Iterable

import pluggy

from . import hookspecs
from ._structure import structural_problems
from .base import Loss

HOOK_NAME = "lossengine_register_losses"


@dataclass(frozen=True)
class Registration:
    loss_class: type
    source: str  # "lossengine" for built-ins, else the plugin's distribution (or plugin) name
    plugin: str = ""  # the plugin (entry-point) name that registered it; "" for register()


class PluginLoadWarning(UserWarning):
    """A plugin failed to load or to register its losses; the others are unaffected."""


class Registrar:
    """What a plugin's ``lossengine_register_losses`` hook receives as ``register``.

    Call it once per loss class, ``register(LossClass)`` (it returns the class, so it also works as a
    decorator). Registrations are staged: they are committed, each after the validator and the name
    checks, only when the whole hook returns. A malformed class is refused and recorded, not raised,
    so the plugin's other losses still register.
    """

    __slots__ = ("plugin", "source", "staged", "problems")

    def __init__(self, plugin: str, source: str) -> None:
        self.plugin = plugin        # the plugin's (entry-point) name
        self.source = source        # its distribution's name, what ``registry.source`` will say
        self.staged: dict[str, type[Loss]] = {}
        self.problems: list[str] = []

    def __call__(self, loss_class: type[Loss]) -> type[Loss]:
        problems = structural_problems(loss_class)
        if problems:
            self.problems.append(f"refused {describe(loss_class)}: " + "; ".join(problems))
            return loss_class
        earlier = self.staged.get(loss_class.name)
        if earlier is not None and earlier is not loss_class:
            self.problems.append(f"loss {loss_class.name!r} ({describe(loss_class)}) refused: the plugin already "
                                 f"registered {describe(earlier)} under that name")
            return loss_class
        self.staged[loss_class.name] = loss_class
        return loss_class

    def __repr__(self) -> str:
        return f"<lossengine Registrar for plugin {self.plugin!r}: {sorted(self.staged)}>"


def describe(cls: object) -> str:
    if isinstance(cls, type):
        return f"{cls.__module__}.{cls.__qualname__}"
    return repr(cls)


def exception_text(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) (a plugin must not end the host process)"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt"
    return f"{type(exc).__name__}: {exc}"


def new_manager(disabled: Iterable[str] = ()) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name in disabled:
        manager.set_blocked(name)
    return manager


def hook_caller(manager: pluggy.PluginManager, plugin: object) -> pluggy.HookCaller:
    """The hook caller that runs ``plugin``'s marked hookimpls -- and no other plugin's."""
    others = [p for p in manager.get_plugins() if p is not plugin]
    return manager.subset_hook_caller(HOOK_NAME, remove_plugins=others)


def disabled_plugins() -> set[str]:
    return {p.strip() for p in os.environ.get("LOSSENGINE_DISABLE_PLUGINS", "").split(",") if p.strip()}


class TrackThreads:
    """While plugin code runs in this thread, every thread it starts -- and every thread those
    start -- joins ``threads`` (``threading.Thread.start`` is wrapped for the duration, and restored
    unless something else replaced it meanwhile)."""

    def __init__(self, threads: "weakref.WeakSet[threading.Thread]") -> None:
        self.threads = threads

    def __enter__(self) -> None:
        owner, threads = threading.current_thread(), self.threads
        original = self.original = threading.Thread.start

        def start(thread: threading.Thread, *args, **kwargs):
            current = threading.current_thread()
            if current is owner or current in threads:
                threads.add(thread)
            return original(thread, *args, **kwargs)

        self.wrapper = threading.Thread.start = start

    def __exit__(self, *exc_info) -> None:
        if threading.Thread.start is self.wrapper:
            threading.Thread.start = self.original


def from_distribution(source: str, plugin_name: str) -> str:
    return f" (distribution {source})" if source != plugin_name else ""


def run_hook_alone(plugin: object, name: str) -> Registrar:
    """Call ``plugin``'s hook in a manager of its own and return what it staged (the validation
    child's way to get the classes the parent asked about)."""
    manager = new_manager()
    manager.register(plugin, name=name)
    registrar = Registrar(name, name)
    hook_caller(manager, plugin)(register=registrar)
    return registrar


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# The public classes keep the module users know them by.
for _cls in (Registration, PluginLoadWarning, Registrar):
    _cls.__module__ = "lossengine.registry"
del _cls

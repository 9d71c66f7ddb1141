"""What makes a class unusable as a registry entry, whatever its numbers.

Shared by the registry (which refuses such a class before anything else) and the validator (which
reports it as the ``structure`` check); it sits below both so imports run one way:
base <- _structure <- validation <- registry.
"""
from __future__ import annotations

from .base import Loss


def is_registry_name(name: object) -> bool:
    """ASCII identifiers only: a homoglyph (``mse_lоss`` with a Cyrillic о) passes ``str.isidentifier``
    and would sit beside the real name, indistinguishable in ``lossengine list``."""
    return isinstance(name, str) and name.isascii() and name.isidentifier()


def structural_problems(loss_class: object) -> list[str]:
    """What makes ``loss_class`` unusable as a registry entry (empty when it is well-formed)."""
    if isinstance(loss_class, Loss):
        return [f"{type(loss_class).__name__}(...) is an instance: pass the class, not an instance"]
    if not isinstance(loss_class, type) or not issubclass(loss_class, Loss):
        return [f"{loss_class!r} is not a subclass of lossengine.Loss"]
    problems = []
    name = getattr(loss_class, "name", None)
    if not is_registry_name(name):
        problems.append(f"{loss_class.__name__}.name must be an ASCII identifier string, got {name!r}")
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

"""Built-in losses' docstrings, completed from their declarations.

A loss class's own docstring states its math (formula, Hessian, references). Everything a
declaration already says is added here instead of being written out by hand, so it cannot drift:

``Args``
    the constructor's options (``options``: name, type, default, range);
``Shape``
    the positional arrays (``arguments``), their shapes (the family's rule, or the class's
    ``argument_shapes``), their declared domains and dtypes, and the value's shape;
``Hessian``
    ``has_hessian`` / ``hessian_surrogate``: what ``gradient_hessian`` returns, if anything;
``Examples``
    a doctest built from the declaration (valid arrays from ``sample_inputs``, a non-default option
    from the option's declared ``examples``), run in CI (tests/test_docs.py).

The same pieces make the documentation's page per loss (docs/loss_pages.py), so ``help()`` and the
site say the same thing. Only classes passed to :func:`install` are touched (the built-ins, from
lossengine/losses/__init__.py); a plugin's docstring stays its author's.

Sections follow the Google style torch's docstrings use (``Args:``, ``Shape:``, ``Examples:``),
which mkdocstrings renders and ``doctest`` runs.
"""
from __future__ import annotations

import inspect
from typing import Iterable

from .declaration import declared_options
from .domains import domain_of

__all__ = ["install", "document", "own_text", "args_lines", "shape_lines", "hessian_lines", "example_lines",
           "option_type", "has_hessian"]

# Option kinds (lossengine.declaration.Option.kind) as the type a user passes, written as the public
# stubs (lossengine/_stubgen.py) annotate it.
_KIND_TYPES = {"real": "float", "integer": "int", "flag": "bool", "array": "ArrayLike | None",
               "choice": "str", "distance": "str | Distance | None"}

DTYPES = ("float32 or float64, computed in the first argument's dtype (float16 computes in float32); "
           "integer arrays (class indices, lengths) in any integer dtype")


# -- shapes: one rule per family (its module), unless the class declares ``argument_shapes`` ------
def _elementwise_shapes(cls: type) -> dict[str, str]:
    first = cls.arguments[0]
    shapes = {first: "(*), any shape"}
    for name in cls.arguments[1:]:
        shapes[name] = (f"broadcastable to {first}'s shape" if name in getattr(cls, "broadcast_arguments", ())
                        else f"{first}'s shape")
    shapes["output"] = f"reduction='none': {first}'s shape"
    return shapes


def _classification_shapes(cls: type) -> dict[str, str]:
    first = cls.arguments[0]
    shapes = {first: "(N, C): N rows of C class scores, class axis 1 (torch's (C,) and "
                     "(N, C, d1, ..., dK) too, where torch takes them)"}
    for name in cls.arguments[1:]:
        shapes[name] = (f"{first}'s shape without the class axis: (N,) or (N, d1, ..., dK)"
                        if domain_of(cls, name).is_index else f"{first}'s shape")
    shapes["output"] = f"reduction='none': {first}'s shape without the class axis, (N,) for (N, C)"
    return shapes


def _embedding_shapes(cls: type) -> dict[str, str]:
    rows = getattr(cls, "row_arguments", ()) or cls.arguments[:1]
    shapes = {}
    for name in cls.arguments:
        shapes[name] = ("(N, D): N rows of D features (one row: (D,))" if name in rows
                        else "(N,): one value per row")
    shapes["output"] = "reduction='none': (N,)"
    return shapes


def _ctc_shapes(cls: type) -> dict[str, str | tuple[str, str]]:
    return {"log_probs": "(T, N, C): T time steps, N samples, C classes (one sample: (T, C))",
            "targets": ("(N, S) padded, or 1-D: every sample's labels in turn (sum of target_lengths)",
                        "class indices in [0, C), not the blank"),
            "input_lengths": ("(N,)", "each sample's time steps, integers in [0, T]"),
            "target_lengths": ("(N,)", "each sample's label count, integers >= 0"),
            "output": "reduction='none': (N,)"}


# Losses whose arrays follow no family rule. (A class may instead declare ``argument_shapes``
# itself, in the same form; none is required to.)
_PER_SAMPLE = {"input": ("(N, ...): N samples of any trailing shape", "probabilities in [0, 1]"),
               "target": ("input's shape", "[0, 1] (masks, soft labels allowed)"),
               "output": "reduction='none': (N,), one value per sample"}
_SHAPE_OVERRIDES = {
    "tversky_loss": _PER_SAMPLE,
    "dice_loss": _PER_SAMPLE,
    "multilabel_soft_margin_loss": {"input": "(N, C): classes on the last axis",
                                    "target": "input's shape",
                                    "output": "reduction='none': input's shape without the last axis"},
    "multilabel_margin_loss": {"input": "(N, C) or (C,)",
                               "target": ("input's shape, integer",
                                          "each row lists class indices in [0, C), ended by the first -1"),
                               "output": "reduction='none': (N,), or () for a (C,) input"},
    "cross_entropy": {"input": "(N, C), class axis 1 (also (C,) and (N, C, d1, ..., dK))",
                      "target": ("input's shape without the class axis (class indices), or input's shape "
                                 "(class probabilities)",
                                 "class indices in [0, C) (or ignore_index), or probabilities along axis 1"),
                      "output": "reduction='none': input's shape without the class axis"},
}

_FAMILY_SHAPES = {"lossengine.losses.elementwise": _elementwise_shapes,
                  "lossengine.losses.classification": _classification_shapes,
                  "lossengine.losses.embedding": _embedding_shapes,
                  "lossengine.losses.ctc": _ctc_shapes}


def argument_shapes(cls: type) -> dict[str, str | tuple[str, str]]:
    """Argument name (and "output") -> its shape in words, or (shape, values) for an argument whose
    values no float domain states (integer arrays): the class's own ``argument_shapes`` where it
    declares one (a loss whose arrays follow no family rule), else its family's rule."""
    declared = getattr(cls, "argument_shapes", None) or _SHAPE_OVERRIDES.get(getattr(cls, "name", ""))
    if declared:
        return dict(declared)
    for module in type.mro(cls):
        rule = _FAMILY_SHAPES.get(getattr(module, "__module__", ""))
        if rule is not None:
            return rule(cls)
    return {}


def argument_shape_and_values(cls: type, name: str) -> tuple[str, str]:
    """(shape, admissible values) of one positional array, in words."""
    described = argument_shapes(cls).get(name, "see the description above")
    if isinstance(described, tuple):
        return described
    return described, domain_of(cls, name).describe()


# -- the sections ---------------------------------------------------------------------------------
def option_type(option) -> str:
    """The option's Python type as stubs and docstrings write it; ``| None`` where None is its default
    (an automatic value, such as LinearCrossEntropyLoss's chunk_size)."""
    kind = _KIND_TYPES.get(option.kind, "Any")
    return f"{kind} | None" if option.default is None and "None" not in kind and kind != "Any" else kind


def args_lines(cls: type) -> list[str]:
    """One line per option: ``name (type): range. Default: value.``"""
    lines = []
    for opt in declared_options(cls):
        text = f"{opt.name} ({option_type(opt)}): "
        text += f"{opt.constraint}. " if opt.constraint else ""
        text += f"Default: {opt.default!r}."
        if opt.keyword_only:
            text += " Keyword-only."
        lines.append(text)
    return lines


def shape_lines(cls: type) -> list[str]:
    """One line per positional array (shape, domain, whether a gradient exists), then the value's."""
    lines = []
    for name in cls.arguments:
        shape, values = argument_shape_and_values(cls, name)
        gradient = "differentiable" if name in cls.differentiable else "no gradient"
        lines.append(f"{name}: {shape}; {values}; {gradient}.")
    output = argument_shapes(cls).get("output")
    lines.append("output: a scalar of the compute dtype" + (f"; {output}." if output else "."))
    lines.append(f"dtypes: {DTYPES}.")
    return lines


def has_hessian(cls: type) -> bool:
    """Whether ``cls`` has a second-derivative kernel (an instance property for the elementwise
    family, whose kernels say it themselves: asked of a default instance)."""
    value = inspect.getattr_static(cls, "has_hessian", False)
    if isinstance(value, property):
        return bool(cls().has_hessian)
    return bool(value)


def hessian_lines(cls: type) -> list[str]:
    if not has_hessian(cls):
        return [f"No second-derivative kernel: gradient_hessian() raises TypeError, and the boosting "
                f"integrations do not take {cls.__name__}."]
    first = cls.arguments[0]
    lines = [f"gradient_hessian({', '.join(cls.arguments)}) returns (gradient, hessian) of the unreduced "
             f"loss wrt {first}, both of {first}'s shape: per element d loss / d {first} and "
             f"d^2 loss / d {first}^2 (row losses: the diagonal of each row's Hessian)."]
    surrogate = getattr(cls, "hessian_surrogate", None)
    if surrogate is not None:
        lines.append(f"hessian_surrogate = {surrogate!r}: what the boosting integrations use where the "
                     f"true second derivative is 0.")
    return lines


def _example_option(cls: type) -> str:
    """The first declared non-default example of a real, integer or flag option, as constructor
    arguments (an example call that shows an option)."""
    for opt in declared_options(cls):
        if opt.kind in ("real", "integer", "flag") and opt.examples:
            return f"{opt.name}={opt.examples[0]!r}"
    return ""


def example_lines(cls: type, prompt: str = ">>> ") -> list[str]:
    """A doctest: valid arrays from ``sample_inputs``, one fused value-and-gradient pass, the
    unreduced loss, and ``gradient_hessian`` where the loss has one. Every expected output follows
    from the declaration (dtype, shapes), so the example fails if the loss stops honouring it."""
    name, args = cls.__name__, ", ".join(cls.arguments)
    p = prompt
    lines = [f"{p}import numpy as np", f"{p}import lossengine as le",
             f"{p}{args} = le.{name}.sample_inputs(np.random.default_rng(0), np.float64)",
             f"{p}loss = le.{name}({_example_option(cls)})",
             f"{p}value, grad = loss.forward_backward({args})",
             f"{p}print(value.dtype, grad.shape == {cls.differentiable[0]}.shape)",
             "float64 True",
             f"{p}per_item = le.{name}(reduction=\"none\")({args})",
             f"{p}print(np.isclose(per_item.sum(), le.{name}(reduction=\"sum\")({args})))",
             "True"]
    if has_hessian(cls):
        first = cls.arguments[0]
        lines += [f"{p}gradient, hessian = loss.gradient_hessian({args})",
                  f"{p}print(hessian.shape == {first}.shape, np.all(np.isfinite(hessian)))",
                  "True True"]
    return lines


def _section(title: str, lines: Iterable[str]) -> str:
    body = "\n".join(f"    {line}" if line else "" for line in lines)
    return f"{title}:\n{body}\n"


# The classes' own docstrings, as written (install() replaces __doc__).
_OWN_TEXT: dict[type, str] = {}


def own_text(cls: type) -> str:
    """``cls``'s docstring as its author wrote it, without the generated sections."""
    if cls in _OWN_TEXT:
        return _OWN_TEXT[cls]
    return inspect.cleandoc(cls.__dict__.get("__doc__") or f"The {cls.name} loss.")


def document(cls: type) -> str:
    """``cls``'s docstring: its own text, then the sections generated from its declaration."""
    own = own_text(cls)
    sections = []
    if declared_options(cls):
        sections.append(_section("Args", args_lines(cls)))
    sections.append(_section("Shape", shape_lines(cls)))
    sections.append(_section("Hessian", hessian_lines(cls)))
    sections.append(_section("Examples", example_lines(cls)))
    return own + "\n\n" + "\n".join(sections)


def install(classes: Iterable[type]) -> None:
    """Replace each class's docstring by :func:`document`'s (its own text, completed)."""
    for cls in classes:
        _OWN_TEXT[cls] = own_text(cls)
        cls.__doc__ = document(cls)


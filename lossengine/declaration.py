"""Declared options: a loss states each option once (name, type, range, default, examples), and its
constructor, signature, option checking, ``repr``, functional wrapper and documentation follow.

    class HuberLoss(ElementwiseLoss):
        name = "huber_loss"
        kernel = _elementwise.Huber
        options = (reduction(), real("delta", 1.0, gt=0.0, examples=(2.5,)))

A class that declares ``options`` (in torch's order) gets a generated ``__init__`` with exactly that
signature (``help()`` and ``inspect.signature`` show it), which parses every value through its
option and stores it as an attribute of the same name, then calls ``_options_parsed()`` for checks
that relate several options. A later assignment (``loss.delta = 2.0``) is parsed the same way
(lossengine.base.FusedLoss.__setattr__). A class that writes its own ``__init__`` keeps it. ``examples`` are
the non-default values the golden-value generator and the validator exercise.

Parsing is the one place option values are checked: a bool where a number belongs is a TypeError, a
Python int too large for a double a ValueError naming the option (never an OverflowError), NaN and
out-of-range values a ValueError naming the option and the range.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _arrays

__all__ = ["Option", "real", "integer", "flag", "array", "choice", "reduction", "REDUCTIONS",
           "parse_real", "declared_options", "make_functional"]

REDUCTIONS = _arrays.REDUCTIONS
_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class Option:
    """One constructor option of a loss."""
    name: str
    default: Any
    parse: Callable[[str, Any], Any] = field(repr=False)   # (option name, value) -> stored value
    kind: str = "real"                                    # for docs: real, integer, flag, array, choice
    constraint: str = ""                                  # for docs: "> 0", "in {1, 2}", ...
    examples: tuple = ()
    keyword_only: bool = False
    kernel: bool = True        # passed to the family's kernel (arrays and reduction never are)

    def show(self, value: Any) -> str:
        """The value as ``repr`` shows it: arrays as 'array' (their contents would flood it)."""
        if isinstance(value, np.ndarray):
            return "array"
        return repr(value)

    def describe(self) -> str:
        default = "None" if self.default is None else repr(self.default)
        return f"{self.name}={default}" + (f" ({self.constraint})" if self.constraint else "")


def parse_real(name: str, value: Any, *, ge: float | None = None, gt: float | None = None,
               le: float | None = None, lt: float | None = None) -> float:
    """``value`` as a float: TypeError unless it is a real number (bools are not), ValueError naming
    ``name`` when it does not fit in a double, is NaN or lies outside the bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"{name} must fit in a double, got an integer with {len(str(abs(int(value))))} digits") from None
    if math.isnan(result):
        raise ValueError(f"{name} must not be NaN")
    if ge is not None and le is not None and not ge <= result <= le:
        raise ValueError(f"{name} must be between {float(ge)!r} and {float(le)!r}, got {result!r}")
    for bound, ok, word in ((ge, lambda v, b: v >= b, ">="), (gt, lambda v, b: v > b, ">"),
                            (le, lambda v, b: v <= b, "<="), (lt, lambda v, b: v < b, "<")):
        if bound is not None and not ok(result, bound):
            raise ValueError(f"{name} must be {word} {bound:g}, got {result!r}")
    return result


def _bounds_text(ge, gt, le, lt) -> str:
    parts = [f"{w} {b:g}" for b, w in ((ge, ">="), (gt, ">"), (le, "<="), (lt, "<")) if b is not None]
    return " and ".join(parts)


def real(name: str, default: float, *, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, examples: tuple = (),
         keyword_only: bool = False) -> Option:
    """A real-valued option, optionally bounded."""
    return Option(name, default, lambda n, v: parse_real(n, v, ge=ge, gt=gt, le=le, lt=lt), "real",
                  _bounds_text(ge, gt, le, lt), examples, keyword_only)


def _parse_int(name: str, value: Any, choices: tuple | None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not _INT64.min <= value <= _INT64.max:
        raise ValueError(f"{name} must fit in a 64-bit signed integer, got {value}")
    if choices is not None and value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value}")
    return value


def integer(name: str, default: int, *, choices: tuple | None = None, examples: tuple = (),
            keyword_only: bool = False) -> Option:
    """An integer option (64-bit), optionally restricted to ``choices``."""
    return Option(name, default, lambda n, v: _parse_int(n, v, choices), "integer",
                  f"in {{{', '.join(map(str, choices))}}}" if choices else "", examples, keyword_only)


def _parse_flag(name: str, value: Any) -> bool:
    try:
        return bool(value)
    except (ValueError, TypeError) as exc:      # an array of several elements has no truth value
        raise TypeError(f"{name} must be a flag (True or False), got {type(value).__name__}: {exc}") from None


def flag(name: str, default: bool = False, *, examples: tuple = (True,), keyword_only: bool = False) -> Option:
    """A boolean option (any value is taken for its truth, as torch does)."""
    return Option(name, default, _parse_flag, "flag", "", examples, keyword_only)


def array(name: str, *, parse: Callable[[str, Any], Any] | None = None, examples: tuple = ()) -> Option:
    """An optional float array (a weight); None by default. ``parse`` may reshape or copy it."""
    def parse_array(n: str, v: Any):
        if v is None:
            return None
        return _arrays.float_array(n, v) if parse is None else parse(n, v)
    return Option(name, None, parse_array, "array", "", examples, kernel=False)


def choice(name: str, default: Any, choices: tuple, *, examples: tuple = ()) -> Option:
    """An option with a fixed set of values."""
    def parse_choice(n: str, v: Any):
        if not isinstance(v, type(default)) or v not in choices:
            raise ValueError(f"{n} must be one of {', '.join(map(repr, choices))}; got {v!r}")
        return v
    return Option(name, default, parse_choice, "choice", f"one of {', '.join(map(repr, choices))}",
                  examples)


def reduction(choices: tuple = REDUCTIONS, *, keyword_only: bool = False) -> Option:
    """The ``reduction`` option: 'none', 'mean', 'sum' (and whatever else a loss adds, e.g. 'batchmean')."""
    return Option("reduction", "mean", lambda n, v: _arrays.check_reduction(v, choices), "choice",
                  f"one of {', '.join(map(repr, choices))}", tuple(c for c in choices if c != "mean"),
                  keyword_only, kernel=False)


def declared_options(cls: type) -> tuple[Option, ...]:
    """The options ``cls`` declares (inherited when it declares none of its own)."""
    return getattr(cls, "options", ()) or ()


def _signature(options: tuple[Option, ...], leading: tuple[str, ...] = ("self",),
               keyword_only_all: bool = False) -> inspect.Signature:
    params = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in leading]
    for opt in options:
        kind = (inspect.Parameter.KEYWORD_ONLY if (opt.keyword_only and not keyword_only_all)
                else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params.append(inspect.Parameter(opt.name, kind, default=opt.default))
    return inspect.Signature(params)


def _source_parameters(sig: inspect.Signature, defaults: dict) -> str:
    """The signature as Python source, defaults taken by name from ``defaults``."""
    parts, star = [], False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}=_default_{p.name}")
        if p.default is not inspect.Parameter.empty:
            defaults[f"_default_{p.name}"] = p.default
    return ", ".join(parts)


def make_init(cls: type) -> Callable:
    """The generated ``__init__`` of a class declaring ``options``: real parameters (so argument
    errors are Python's own, naming the class), every value stored as an attribute, which the
    class's ``__setattr__`` (lossengine.base.FusedLoss) parses by its option: the constructor and a
    later assignment take one path."""
    options = declared_options(cls)
    namespace: dict = {}
    params = _source_parameters(_signature(options), namespace)
    body = "".join(f"    self.{o.name} = {o.name}\n" for o in options)
    source = f"def __init__({params}):\n{body}    self._options_parsed()\n"
    exec(source, namespace)  # noqa: S102 - generated from the declaration, as dataclasses does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def make_functional(cls: type, name: str | None = None) -> Callable:
    """``torch.nn.functional``-style wrapper: ``fn(*arguments, **options) -> forward value``, the
    class's arguments then its options positionally (keyword-only ones too, as torch's functions
    take them), its docstring the class's."""
    options = declared_options(cls)
    namespace: dict = {"_cls": cls}
    sig = _signature(options, leading=tuple(cls.arguments), keyword_only_all=True)
    params = _source_parameters(sig, namespace)
    arrays = ", ".join(cls.arguments)
    opts = ", ".join(f"{o.name}={o.name}" for o in options)
    fn_name = name or cls.name
    source = f"def {fn_name}({params}):\n    return _cls({opts})({arrays})\n"
    exec(source, namespace)  # noqa: S102
    fn = namespace[fn_name]
    fn.__doc__ = (f"torch.nn.functional.{fn_name}: ``{cls.__name__}({opts})({arrays})``, the forward value.\n\n"
                  + inspect.cleandoc(cls.__doc__ or ""))
    fn.__module__ = "lossengine.functional"
    return fn


def options_repr(loss: Any) -> str:
    return ", ".join(f"{o.name}={o.show(getattr(loss, o.name))}" for o in declared_options(type(loss)))

"""Built-in losses, one module per kernel family. Each family module lists its classes in ``LOSSES``;
everything else (the registry's built-ins, ``lossengine.__all__``, ``lossengine.functional``, the
loss table in docs/losses-at-a-glance.md) is derived from these lists and the classes' declarations."""
from . import classification, ctc, elementwise, embedding, linear
from .classification import *  # noqa: F401,F403
from .ctc import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403

FAMILIES = (elementwise, classification, embedding, ctc, linear)
BUILTIN_LOSSES = tuple(cls for family in FAMILIES for cls in family.LOSSES)
__all__ = [name for family in FAMILIES for name in family.__all__ if name != "LOSSES"]


def _describe(option) -> str:
    from ..declaration import REDUCTIONS

    if option.name == "reduction":
        text = "reduction" if option.examples == tuple(c for c in REDUCTIONS if c != "mean") else \
            f"reduction ({option.constraint})"
    else:
        text = option.describe()
    return text + (" (keyword-only)" if option.keyword_only else "")


def loss_table_markdown() -> str:
    """The table of built-in losses (docs/losses-at-a-glance.md), from their declarations."""
    from ..declaration import declared_options

    rows = ["| class (registry key) | options | differentiable |", "|---|---|---|"]
    for cls in BUILTIN_LOSSES:
        options = ", ".join(_describe(o) for o in declared_options(cls))
        rows.append(f"| `{cls.__name__}` (`{cls.name}`) | {options} | {', '.join(cls.differentiable)} |")
    return "\n".join(rows)


def _complete_docstrings() -> None:
    # Args, Shape, Hessian and Examples sections from each declaration (lossengine/_docstrings.py).
    from .._docstrings import install

    install(BUILTIN_LOSSES)


_complete_docstrings()

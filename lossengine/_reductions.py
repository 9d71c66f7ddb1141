"""What a loss's ``reduction`` means, in one place: ``reduction_of(name)`` is a small ``Reduction``
object owning the reduction's denominator (what the summed per-position losses are divided by) and
so the scale it puts on ``grad_output`` (the gradient of sum / d is the 'sum' gradient over d).

A loss keeps its ``reduction`` as the option's string (public, compared and printed as torch's);
the families, the validator and the integrations ask this object instead of branching on the name.
"""
from __future__ import annotations

import math


class Reduction:
    """One reduction mode. ``divides``: what its denominator counts -- None (no division: 'none' and
    'sum'), "positions" (the 'none' loss's positions, or a weighted mean's total weight: 'mean') or
    "batch" (the first argument's leading axis: KLDiv's 'batchmean')."""

    __slots__ = ("name", "divides")

    def __init__(self, name: str, divides: str | None) -> None:
        self.name = name
        self.divides = divides

    @property
    def reduces(self) -> bool:
        """Whether the value is a scalar (every reduction but 'none')."""
        return self.name != "none"

    def denominator(self, positions: float, *, batch: float = 1.0, declared: float | None = None) -> float:
        """What the summed loss is divided by: 1 for 'none' and 'sum'; for 'mean' ``declared`` when
        the loss declares a weighted mean (``Loss.mean_denominator``), else ``positions``; for
        'batchmean' ``batch`` (the leading axis's length, 1 for a 0-d input)."""
        if self.divides == "positions":
            return positions if declared is None else declared
        if self.divides == "batch":
            return batch
        return 1

    def value(self, total: float, denominator: float) -> float:
        """The reduced value from the summed loss: ``total`` over ``denominator`` (NaN for an empty
        mean, as torch's), ``total`` itself where the reduction does not divide."""
        if self.divides is None:
            return total
        return total / denominator if denominator else math.nan

    def grad_scale(self, scale: float, denominator: float) -> float:
        """grad_output's ``scale`` as the reduced loss's gradient takes it: over ``denominator``
        (kept as is for an empty mean, whose gradient has no elements)."""
        return scale / denominator if denominator else scale

    def __repr__(self) -> str:
        return f"Reduction({self.name!r})"


REDUCTIONS = {r.name: r for r in (Reduction("none", None), Reduction("sum", None),
                                  Reduction("mean", "positions"), Reduction("batchmean", "batch"))}


def reduction_of(name: str) -> Reduction:
    """The Reduction named ``name`` (a loss's ``reduction``). A name of a plugin's own (its
    ``reductions`` may list any) divides by nothing here: the plugin's code gives it its meaning."""
    found = REDUCTIONS.get(name)
    return found if found is not None else Reduction(name, None)

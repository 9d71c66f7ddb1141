"""Argument domains: what values a loss's positional arrays may hold, stated once per argument.

A loss declares ``domains = {"target": Interval(0, 1), ...}`` (arguments it leaves out are ``Real()``).
From that one statement come: the validator's sample inputs (``Loss.sample_inputs``'s default draws
every argument from its domain), the property tests' strategies, and the documentation. A domain
knows how to draw values well inside itself (the validator's central differences step 1e-6 either
side of every element, so no sample lies within ``MARGIN`` of an open boundary), how to describe
itself, and which elements of an array lie outside it.

Shapes are not a domain's business: ``Loss.sample_shape`` gives the input's shape, and an argument
whose domain is a ``ClassIndex`` takes that shape without its class axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Domain", "Real", "Interval", "Positive", "NonNegative", "Values", "Binary", "Signs",
           "Simplex", "LogSimplex", "ClassIndex", "domain_of"]

# Samples keep this far (relative to the interval's width, at most) from a finite boundary.
MARGIN = 0.05


class Domain:
    """Base class: a set of admissible values for one argument."""

    is_index = False    # class indices (integer arrays), not floats

    def sample(self, rng: np.random.Generator, shape: tuple, dtype: Any) -> np.ndarray:
        raise NotImplementedError

    def outside(self, arr: np.ndarray) -> np.ndarray:
        """Boolean mask of the elements outside the domain (NaN counts as outside a bounded one)."""
        return np.zeros(np.shape(arr), bool)

    def describe(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Real(Domain):
    """Any real number; samples are standard normal (times ``scale``)."""
    scale: float = 1.0

    def sample(self, rng, shape, dtype):
        return (self.scale * rng.standard_normal(shape)).astype(dtype)

    def describe(self) -> str:
        return "real"


@dataclass(frozen=True)
class Interval(Domain):
    """Values in [low, high] (``open`` ends excluded); samples are uniform well inside it."""
    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def sample(self, rng, shape, dtype):
        lo, hi = self.low, self.high
        if math.isinf(lo) and math.isinf(hi):
            return rng.standard_normal(shape).astype(dtype)
        if math.isinf(hi):      # [lo, inf): lo + a positive spread, clear of lo
            return (lo + rng.uniform(0.1, 2.0, shape)).astype(dtype)
        if math.isinf(lo):
            return (hi - rng.uniform(0.1, 2.0, shape)).astype(dtype)
        pad = MARGIN * (hi - lo)
        return rng.uniform(lo + pad, hi - pad, shape).astype(dtype)

    def outside(self, arr):
        a = np.asarray(arr)
        below = (a <= self.low) if self.open_low else (a < self.low)
        above = (a >= self.high) if self.open_high else (a > self.high)
        return below | above | np.isnan(a)

    def describe(self) -> str:
        left = "(" if self.open_low or math.isinf(self.low) else "["
        right = ")" if self.open_high or math.isinf(self.high) else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"


def Positive() -> Interval:
    """(0, inf)."""
    return Interval(0.0, math.inf, open_low=True)


def NonNegative() -> Interval:
    """[0, inf)."""
    return Interval(0.0, math.inf)


@dataclass(frozen=True)
class Values(Domain):
    """A finite set of values (binary labels, signs); samples draw from the set uniformly."""
    values: tuple = (0.0, 1.0)

    def sample(self, rng, shape, dtype):
        return rng.choice(np.asarray(self.values, np.float64), size=shape).astype(dtype)

    def outside(self, arr):
        return ~np.isin(np.asarray(arr), np.asarray(self.values))

    def describe(self) -> str:
        return "one of {" + ", ".join(f"{v:g}" for v in self.values) + "}"


def Binary() -> Values:
    """{0, 1}."""
    return Values((0.0, 1.0))


def Signs() -> Values:
    """{-1, 1}."""
    return Values((-1.0, 1.0))


@dataclass(frozen=True)
class Simplex(Domain):
    """Probability vectors along ``axis`` (non-negative, summing to 1): Dirichlet(1) samples."""
    axis: int = -1

    def sample(self, rng, shape, dtype):
        if not shape:
            return np.ones((), dtype)
        moved = np.moveaxis(np.empty(shape), self.axis, -1).shape
        p = rng.dirichlet(np.ones(moved[-1]), size=moved[:-1])
        return np.moveaxis(p, -1, self.axis).astype(dtype)

    def outside(self, arr):
        return np.asarray(arr) < 0

    def describe(self) -> str:
        return f"probabilities along axis {self.axis}"


@dataclass(frozen=True)
class LogSimplex(Simplex):
    """Log-probability vectors along ``axis`` (log of a Simplex sample)."""

    def sample(self, rng, shape, dtype):
        return np.log(Simplex.sample(self, rng, shape, np.float64)).astype(dtype)

    def outside(self, arr):
        return np.asarray(arr) > 0

    def describe(self) -> str:
        return f"log-probabilities along axis {self.axis}"


@dataclass(frozen=True)
class ClassIndex(Domain):
    """Integer class indices into axis ``axis`` of argument ``of`` (so in [0, C)). The argument's
    shape is that argument's shape without the class axis."""
    of: str = "input"
    axis: int = 1
    classes: int | None = None     # a fixed class count instead of the other argument's axis
    is_index = True

    def sample(self, rng, shape, dtype=None):
        # ``shape`` is the indexed argument's (classes on ``axis``); the indices drop that axis.
        classes = self.classes if self.classes is not None else shape[self.axis]
        return rng.integers(0, classes, size=self.index_shape(shape))

    def index_shape(self, shape: tuple) -> tuple:
        if not shape:
            return ()
        axis = self.axis % len(shape)
        return shape[:axis] + shape[axis + 1:]

    def describe(self) -> str:
        return f"class indices into axis {self.axis} of {self.of}"


def domain_of(loss_class: type, argument: str) -> Domain:
    """The declared domain of ``argument`` (Real() when the loss declares none)."""
    return (getattr(loss_class, "domains", None) or {}).get(argument, Real())

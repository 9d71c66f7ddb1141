"""The one closeness rule of the comparison tests (CONTRIBUTING.md, "How close is close").

Each array is judged on its own (nothing carries from one array to the next) and each element by
its own relative error:

    |got - want| <= rtol * (|want| + cancel)

``cancel`` is the magnitude the computation cancelled to reach ``want``: the size of the terms that
were added up, when their sum is smaller than they are (a reduced value near 0 made of large
terms; a gradient element p - 1 with p near 1). It is per array (a scalar) or per element (an
array broadcasting to ``want``), and the caller derives it from the computation itself
(``reduction_cancellation`` for a reduced value); 0, the default, is a pure relative comparison.
NaN must meet NaN and an infinity the same infinity; a denormal-level floor (below the smallest
normal number) forgives a kernel's exact 0 against a reference's exp(-740) = 4e-322.

RTOL holds the rates: float64 at 1e-12 where the reference computes in the same order (torch's
parity tests), float32 at 1e-5.
"""
from __future__ import annotations

import numpy as np

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def assert_close(got, want, rtol: float, what: str, cancel=0.0, floor: float = 1e-300) -> None:
    """``got`` equals ``want`` within ``rtol`` per element (the rule above)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    x, y = got.astype(np.float64), want.astype(np.float64)
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    assert (nan_x == nan_y).all(), f"{what}: NaN where the other is not: {x[nan_x != nan_y][:5]} vs {y[nan_x != nan_y][:5]}"
    inf_x, inf_y = np.where(np.isinf(x), np.sign(x), 0), np.where(np.isinf(y), np.sign(y), 0)
    assert (inf_x == inf_y).all(), f"{what}: infinities differ: {x[inf_x != inf_y][:5]} vs {y[inf_x != inf_y][:5]}"
    finite = np.isfinite(y)
    with np.errstate(over="ignore", invalid="ignore"):
        allowed = floor + rtol * (np.abs(y) + np.broadcast_to(np.asarray(cancel, np.float64), y.shape))
        err = np.where(finite, np.abs(x - y), 0.0)
    bad = err > allowed
    if bad.any():
        idx = np.argwhere(bad)[:5].tolist() if bad.ndim else [[]]
        rows = "; ".join(f"{tuple(i)}: {x[tuple(i)]!r} vs {y[tuple(i)]!r} (allowed {allowed[tuple(i)]:.3g})"
                         for i in idx)
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements off by more than rtol {rtol:g}: {rows}")


def upstream_scale(value, terms) -> float:
    """1 / D for a reduced ``value`` = S / D, S the sum of the unreduced ``terms`` (whatever the
    denominator: N, a weight sum, the batch): |value| / |S|, or 1 / N when S = 0 or is not finite."""
    t = np.asarray(terms, np.float64)
    t = t[np.isfinite(t)]
    s = abs(float(np.sum(t))) if t.size else 0.0
    if s == 0 or not np.isfinite(s) or not np.isfinite(value):
        return 1.0 / max(1, np.size(terms))
    return abs(float(value)) / s


def reduction_cancellation(value, terms) -> float:
    """The cancellation term of a reduced ``value``: the terms' magnitudes through the same
    reduction, sum |t| / D."""
    t = np.abs(np.asarray(terms, np.float64))
    with np.errstate(over="ignore"):
        return float(np.sum(t[np.isfinite(t)])) * upstream_scale(value, terms)

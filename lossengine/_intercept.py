"""Sample weights for ``gradient_hessian`` and ``fit_intercept_only``: the constant raw prediction that
minimizes a loss summed over (weighted) samples, scikit-learn's name and meaning.

Why here and not on each loss: the base classes (lossengine.base.FusedLoss, and through it every
family and the plugin bases in lossengine.extending) attach one method that calls this module, so a
plugin written to the minimum contract gets both with no new obligation; a loss only *declares*
a closed form when it has one (``intercept_form``, a name from ``CLOSED_FORMS``), and everything else
is solved numerically on its own ``gradient_hessian``.

Shapes: the fitted value has the shape of one sample's prediction.
- Elementwise losses: a scalar for a 1-D target; for a (N, K...) target one value per output
  (``target.shape[1:]``), each output fitted on its own column (the losses are elementwise, so the
  outputs are separate problems).
- Class-index targets (cross-entropy, softmax focal, poly-1): shape (K,), K = ``n_classes`` or
  max(target) + 1; softmax is shift-invariant, so the result is centered (its mean is 0), the
  convention XGBoost's multi-class intercept and scikit-learn's symmetric multinomial link use.
- Class-probability and multi-label targets (N, C): shape (C,).
- Dice / Tversky (a probability map per sample): a scalar, the constant probability.
Sample weights weigh the leading axis (samples). Arguments other than the input and the target
(GaussianNLL's var, MarginRanking's input2) are taken by keyword; a loss may declare defaults for
them in ``intercept_arguments`` (a constant var does not move the minimizer).

Closed forms (as scikit-learn's ``fit_intercept_only``): the weighted mean, median or quantile; the
log of the weighted mean (log-link deviances) and the logit of it (logistic losses), both clipped
10 eps inside their link's range as scikit-learn clips them, so an all-zero target gives a finite
start, not -inf; the log of the (weighted, smoothed) class priors. Otherwise:
- one value per separable coordinate (elementwise outputs, Dice/Tversky): a safeguarded Newton
  iteration on the summed gradient (Numerical Recipes' ``rtsafe``): the root of the derivative is
  bracketed first, a Newton step is taken when it stays inside the bracket and a bisection step
  otherwise, so a zero or negative Hessian (piecewise-linear and non-convex losses) cannot send it
  off; a derivative that never changes sign means the loss has no finite minimizer (a ValueError);
- coupled class scores (softmax focal, poly-1): Newton on the Hessian diagonal from the
  cross-entropy's closed form, with a backtracking (Armijo) line search on the weighted loss.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from . import _arrays
from .domains import Interval, domain_of

# 10 eps inside the link's range: scikit-learn's clip in its fit_intercept_only.
_CLIP = 10 * np.finfo(np.float64).eps
_MAX_ITER = 200


# -- sample weights ------------------------------------------------------------------------------
def sample_weight_array(sample_weight: Any, n: int) -> np.ndarray:
    """``sample_weight`` as a float64 (n,) array: one finite real per sample (the leading axis)."""
    w = _arrays.converted("sample_weight", sample_weight, f"an array of {n} real numbers")
    if w.dtype.kind not in "fiub":
        raise TypeError(f"sample_weight must hold real numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), one weight per sample (the leading axis), "
                         f"got shape {w.shape}")
    w = w.astype(np.float64, copy=False)
    if not np.isfinite(w).all():
        raise ValueError("sample_weight must be finite (it holds NaN or inf)")
    return w


def samples(shape: tuple) -> int:
    """How many samples (weights) an input of ``shape`` holds: its leading axis, 1 for a 0-d input."""
    return shape[0] if len(shape) else 1


def weigh(grad: np.ndarray, hess: np.ndarray, w: np.ndarray) -> None:
    """Multiply each sample's gradient and Hessian by its weight ``w`` (already checked: one finite
    real per sample, as ``sample_weight_array`` or the boosting adapters return it), in place (the
    arrays are the caller's own results: gradient_hessian's fresh arrays or its ``out``)."""
    n = samples(grad.shape)
    w = np.asarray(w).astype(grad.dtype, copy=False)
    w = w.reshape((n,) + (1,) * (grad.ndim - 1)) if grad.ndim else w.reshape(())
    grad *= w
    hess *= w


def weighted_loss(loss, arrays: tuple, sample_weight: np.ndarray | None) -> float:
    """sum_i w_i loss_i over the samples (a sample's outputs add up), in float64."""
    per = copy.copy(loss)
    per.reduction = "none"
    values = np.asarray(per(*arrays), np.float64)
    n = values.shape[0] if values.ndim else 1
    values = values.reshape(n, -1).sum(axis=1)
    return float(values.sum() if sample_weight is None else np.dot(sample_weight, values))


# -- closed forms ----------------------------------------------------------------------------------
def _weighted_quantile(y: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile of each column of y (axis 0) under weights w: the first sorted value whose
    cumulative weight reaches q of the total (a minimizer of the pinball loss; the median at 0.5);
    where it reaches it exactly the minimum is flat up to the next value, and the midpoint is
    returned (the plain median of an even count)."""
    order = np.argsort(y, axis=0, kind="stable")
    ys = np.take_along_axis(y, order, axis=0)
    cw = np.cumsum(w[order], axis=0)
    goal = q * cw[-1]
    k = np.argmax(cw >= goal * (1 - 1e-12), axis=0)[None]
    lower = np.take_along_axis(ys, k, axis=0)[0]
    upper = np.take_along_axis(ys, np.minimum(k + 1, len(ys) - 1), axis=0)[0]
    exact = np.abs(np.take_along_axis(cw, k, axis=0)[0] - goal) <= 1e-12 * cw[-1]
    return np.where(exact, 0.5 * (lower + upper), lower)


def _mean(y, w):
    return np.average(y, axis=0, weights=w)


def _log_mean(y, w):
    return np.log(np.clip(_mean(y, w), _CLIP, None))


def _logit_mean(y, w):
    p = np.clip(_mean(y, w), _CLIP, 1 - _CLIP)
    return np.log(p) - np.log1p(-p)


CLOSED_FORMS = {
    "mean": _mean,
    "median": lambda y, w: _weighted_quantile(y, w, 0.5),
    "log_mean": _log_mean,
    "logit_mean": _logit_mean,
}


def _closed_form(loss, y: np.ndarray, w: np.ndarray):
    form = getattr(loss, "intercept_form", None)
    if form is None:
        return None
    if form == "quantile":
        return _weighted_quantile(y, w, float(loss.quantile))
    return CLOSED_FORMS[form](y, w)


# -- the entry point -------------------------------------------------------------------------------
def fit_intercept_only(loss, target: Any, sample_weight: Any = None, *, n_classes: int | None = None,
                       **arguments: Any):
    """See lossengine.base.FusedLoss.fit_intercept_only."""
    if not getattr(loss, "has_hessian", False):
        raise TypeError(f"{type(loss).__name__} has no second derivative (has_hessian is False): "
                        f"fit_intercept_only needs gradient_hessian")
    if "target" not in loss.arguments:
        raise TypeError(f"{type(loss).__name__}: fit_intercept_only needs a loss with a 'target' argument, "
                        f"its arguments are {', '.join(loss.arguments)}")
    t = np.asarray(target)
    if t.ndim == 0 or t.shape[0] == 0:
        raise ValueError(f"target must be an array of one or more samples (the leading axis), got shape {t.shape}")
    if t.dtype.kind not in "fiub":
        raise TypeError(f"target must hold numbers, got dtype {t.dtype}")
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        raise ValueError("target holds NaN or inf: fit_intercept_only needs finite targets")
    n = t.shape[0]
    w = np.ones(n) if sample_weight is None else sample_weight_array(sample_weight, n)
    if (w < 0).any():
        raise ValueError("sample_weight must be non-negative (a negative weight has no constant minimizer)")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to 0: no sample to fit the intercept to")
    if getattr(loss, "decomposes", None) != "elements":
        return _fit_class_scores(loss, t, w, n_classes)
    others = _other_arguments(loss, t, arguments)
    if n_classes is not None:
        raise TypeError(f"n_classes is for class-index targets; {type(loss).__name__} is elementwise")
    if not _options_operands_set(loss) and not others:
        closed = _closed_form(loss, t.astype(np.float64), w)
        if closed is not None:
            return _as_result(closed)
    start = _weighted_quantile(t.astype(np.float64), w, 0.5)
    return _as_result(_rtsafe(loss, start, t.astype(np.float64), w, others, _bounds(loss), per_column=True))


def _as_result(value):
    value = np.asarray(value, np.float64)
    return float(value) if value.ndim == 0 else value


def _options_operands_set(loss) -> bool:
    """Whether an option array (BCE's weight, pos_weight) is set: the closed forms assume none."""
    return any(getattr(loss, name, None) is not None for name in getattr(loss, "operand_options", ()))


def _other_arguments(loss, t: np.ndarray, given: dict) -> dict:
    """The arguments besides the input and the target, broadcast to the target's shape: from the
    caller's keywords, else the loss's declared ``intercept_arguments``."""
    defaults = getattr(loss, "intercept_arguments", {})
    names = [a for a in loss.arguments[1:] if a != "target"]
    unknown = set(given) - set(names)
    if unknown:
        raise TypeError(f"{type(loss).__name__}.fit_intercept_only: unexpected argument(s) {sorted(unknown)}; "
                        f"the loss's other arguments are {names or 'none'}")
    out = {}
    for name in names:
        if name not in given and name not in defaults:
            raise TypeError(f"{type(loss).__name__}.fit_intercept_only needs {name}= (an argument of the loss)")
        value = np.asarray(given.get(name, defaults.get(name)), np.float64)
        out[name] = np.broadcast_to(value, t.shape)
    return out


def _bounds(loss) -> tuple[float, float]:
    """The input's declared domain, when it is an interval (BCE's probabilities, Dice's)."""
    dom = domain_of(type(loss), loss.arguments[0])
    return (dom.low, dom.high) if isinstance(dom, Interval) else (-math.inf, math.inf)


def _arrays_at(loss, theta: np.ndarray, t: np.ndarray, others: dict) -> tuple:
    """The loss's positional arrays with the input constant: theta (a scalar, or one value per
    trailing coordinate) broadcast to the target's shape."""
    x = np.array(np.broadcast_to(theta, t.shape), dtype=np.float64)
    by_name = dict(others, target=t)
    return tuple(x if a == loss.arguments[0] else by_name[a] for a in loss.arguments)


def _summed(loss, arrays, w, per_column: bool) -> tuple[np.ndarray, np.ndarray]:
    """The weighted gradient and Hessian summed over the samples (``per_column``: one sum per
    trailing coordinate), or over everything."""
    g, h = loss.gradient_hessian(*arrays, sample_weight=w)
    axis = 0 if per_column else None
    return g.sum(axis=axis, dtype=np.float64), h.sum(axis=axis, dtype=np.float64)


def _rtsafe(loss, start, t, w, others, bounds, per_column: bool):
    """Per-coordinate safeguarded Newton on the root of the summed derivative (see the module's
    docstring), all coordinates in one gradient_hessian call per step."""
    lo_b, hi_b = bounds
    theta = np.clip(np.asarray(start, np.float64), lo_b, hi_b)

    def G(th):
        return _summed(loss, _arrays_at(loss, th, t, others), w, per_column)

    lo, hi = _bracket(G, theta, lo_b, hi_b, t, loss)
    for _ in range(_MAX_ITER):
        g, h = G(theta)
        lo = np.where(g < 0, theta, lo)
        hi = np.where(g > 0, theta, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = theta - g / h
        inside = (h > 0) & (newton >= lo) & (newton <= hi)
        new = np.where(g == 0, theta, np.where(inside, newton, 0.5 * (lo + hi)))
        tiny = 4 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(theta))
        if (np.abs(new - theta) <= tiny).all() or (hi - lo <= tiny).all():
            return new
        theta = new
    return theta


def _bracket(G, theta, lo_b, hi_b, t, loss):
    """[lo, hi] with the summed derivative <= 0 at lo and >= 0 at hi, per coordinate: widened by
    doubling steps from ``theta`` (clipped to the input's domain, whose end is the answer when
    the derivative keeps its sign up to it)."""
    g0, _ = G(theta)
    lo = np.where(g0 <= 0, theta, -np.inf)
    hi = np.where(g0 >= 0, theta, np.inf)
    scale = max(1.0, float(np.max(np.abs(t))))
    step = 0.1 * scale
    limit = 1e8 * scale
    while not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        if step > limit:
            raise ValueError(f"{type(loss).__name__}: the loss keeps decreasing along a constant prediction "
                             f"(its derivative never changes sign up to |prediction| = {limit:g}): "
                             f"no finite intercept minimizes it for this target")
        up = np.minimum(theta + step, hi_b)
        down = np.maximum(theta - step, lo_b)
        probe = np.where(np.isfinite(hi), down, up)
        g, _ = G(probe)
        lo = np.where(~np.isfinite(lo) & (g <= 0), probe, lo)
        hi = np.where(~np.isfinite(hi) & (g >= 0), probe, hi)
        # at a domain end with the sign still unchanged: the end is the constrained minimizer
        lo = np.where(~np.isfinite(lo) & (probe <= lo_b), probe, lo)
        hi = np.where(~np.isfinite(hi) & (probe >= hi_b), probe, hi)
        step *= 2.0
    return lo, hi


# -- class scores --------------------------------------------------------------------------------
def _fit_class_scores(loss, t: np.ndarray, w: np.ndarray, n_classes: int | None):
    form = getattr(loss, "intercept_form", None)
    if t.dtype.kind in "iu" and getattr(loss, "class_index_targets", False):     # class indices
        k = _classes(t[t != loss.ignore_index], n_classes)
        priors = _class_weight_priors(loss, t, w, k)
        start = _centered_log(priors)
        if form == "log_priors":
            return start
        return _coupled_newton(loss, start, t, w, k)
    if n_classes is not None and (t.ndim < 2 or t.shape[1] != n_classes):
        raise ValueError(f"n_classes={n_classes} does not match the target's class axis (shape {t.shape})")
    if t.ndim < 2:
        raise ValueError(f"{type(loss).__name__}: a float target must be (N, C, ...) class probabilities or "
                         f"labels, got shape {t.shape}")
    y = t.astype(np.float64)
    if form == "log_priors":        # class probabilities: the weighted mean of the smoothed targets
        k = y.shape[1]
        cw = np.ones(k) if getattr(loss, "weight", None) is None else np.asarray(loss.weight, np.float64)
        eps = float(getattr(loss, "label_smoothing", 0.0) or 0.0)
        positions = y[0, 0].size            # trailing axes (N, C, d1, ...): each position counts
        mass = (1 - eps) * np.einsum("n,nc...->c", w, y) + eps / k * w.sum() * positions
        return _centered_log(mass * cw)
    if form == "logit_mean":        # multi-label: one logit per class (the last axis), separately
        if getattr(loss, "weight", None) is None:
            return _logit_mean(y.reshape(-1, y.shape[-1]), np.repeat(w, y[0].size // y.shape[-1]))
        return _rtsafe(loss, np.zeros(y.shape[-1]), y, w, {}, _bounds(loss), per_column=True)
    # anything else with a float target (Dice, Tversky, a plugin's row loss): one constant
    return _as_result(_rtsafe(loss, 0.5, y, w, {}, _bounds(loss), per_column=False))


def _classes(t: np.ndarray, n_classes: int | None) -> int:
    if t.size and t.min() < 0:
        raise IndexError(f"target: class indices must be >= 0 (ignore_index aside), got {int(t.min())}")
    top = int(t.max()) + 1 if t.size else 0
    if n_classes is None:
        return max(top, 1)
    if not isinstance(n_classes, (int, np.integer)) or isinstance(n_classes, bool) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    if top > n_classes:
        raise IndexError(f"target: class index {top - 1} is out of range for n_classes={n_classes}")
    return int(n_classes)


def _class_weight_priors(loss, t: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Cross-entropy's optimal class probabilities (unnormalized): with class weights w_c, label
    smoothing eps and sample weights s_i, p_c is proportional to
    w_c ((1 - eps) sum_{i: t_i = c} s_i + eps / C sum_i s_i), ignored positions left out."""
    ignore = getattr(loss, "ignore_index", None)
    per_position = np.broadcast_to(w.reshape((-1,) + (1,) * (t.ndim - 1)), t.shape)
    keep = t != ignore if ignore is not None else np.ones(t.shape, bool)
    kept_t, kept_s = t[keep], per_position[keep]
    if kept_t.size and kept_t.max() >= k:
        raise IndexError(f"target: class index {int(kept_t.max())} is out of range for {k} classes")
    counts = np.bincount(kept_t.astype(np.int64), weights=kept_s, minlength=k)[:k]
    eps = float(getattr(loss, "label_smoothing", 0.0) or 0.0)
    mass = (1 - eps) * counts + eps / k * kept_s.sum()
    cw = getattr(loss, "weight", None)
    return mass * (1.0 if cw is None else np.asarray(cw, np.float64)[:k])


def _centered_log(mass: np.ndarray) -> np.ndarray:
    p = np.clip(mass / mass.sum(), _CLIP, None)
    logp = np.log(p)
    return logp - logp.mean()


def _coupled_newton(loss, theta: np.ndarray, t: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Diagonal Newton with an Armijo backtracking line search on the weighted loss."""
    total_w = float(w.sum())

    def scores(th):
        shape = (t.shape[0], k) + t.shape[1:]
        return np.ascontiguousarray(np.broadcast_to(th.reshape((1, k) + (1,) * (t.ndim - 1)), shape))

    def g_h(th):
        g, h = loss.gradient_hessian(scores(th), t, sample_weight=w)
        axes = (0,) + tuple(range(2, g.ndim))
        return g.sum(axis=axes, dtype=np.float64), h.sum(axis=axes, dtype=np.float64)

    value = weighted_loss(loss, (scores(theta), t), w)
    for _ in range(_MAX_ITER):
        g, h = g_h(theta)
        if np.max(np.abs(g)) <= 1e-12 * total_w:
            break
        step = -g / np.maximum(h, 1e-12 * total_w)
        slope = float(g @ step)
        size = 1.0
        while size > 1e-12:
            trial = theta + size * step
            trial_value = weighted_loss(loss, (scores(trial), t), w)
            if trial_value <= value + 1e-4 * size * slope:
                break
            size *= 0.5
        else:
            break
        theta, value = trial, trial_value
    return theta - theta.mean()

"""What the XGBoost, LightGBM and CatBoost adapters share: a loss (instance, class or registry name)
turned into per-sample gradients and Hessians, into a per-sample-weighted metric and into a start
score, over the libraries' raw predictions and labels.

Layouts: a 1-D prediction (binary or regression, one value per sample) goes to the loss with the
labels as its target, elementwise. A 2-D (N, K) prediction (multi-class, or multi-output
regression) goes to the loss as (N, K) scores: with (N,) labels the labels are class indices
(cross-entropy, softmax focal, poly-1); with (N, K) labels, an elementwise target. The gradient
and Hessian are those of the loss summed over samples ("gradient_hessian": the unreduced loss,
whatever the loss's reduction), each sample's multiplied by its weight.

Inputs: NaN labels and negative or non-finite sample weights are refused with a ValueError (a NaN
label would give NaN gradients the libraries silently train on; a negative weight a negative
Hessian, which no floor applied before it can prevent). A weighted metric whose weights sum to 0 is
NaN, as an empty mean is.

Hessians, in this order: ``hessian="library"`` first replaces the exact Hessian by the library's
built-in one where the two differ (``library_hessian``); where a loss's true second derivative is 0
(L1, pinball, Huber's linear part, hinge: declared by the loss's ``hessian_surrogate``) the adapters
substitute that surrogate (1, scikit-learn's and LightGBM's choice) for non-positive entries; the
sample weights are multiplied in; every Hessian is then floored at ``min_hessian`` (non-convex
losses such as focal or Cauchy have negative ones far out). Weighting before the floor is what
XGBoost's own objectives do (softmax: max(2 p (1 - p) w, 1e-16)), and a zero-weight sample then
still gets a positive Hessian.

Start scores: ``start_score`` is the loss's ``fit_intercept_only`` at the labels (and weights) in
the library's layout: the constant raw prediction the built-in objectives start from
(``boost_from_average``), which custom objectives otherwise leave at 0 or 0.5.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np

from .. import _intercept, _threads

HESSIANS = ("exact", "library")

# The libraries' Poisson objectives (XGBoost count:poisson, LightGBM poisson) use
# exp(x + max_delta_step) as the Hessian, max_delta_step 0.7 by default in both, a safeguard
# against the exact exp(x) vanishing where the rate is near 0.
POISSON_MAX_DELTA_STEP = 0.7


def resolve(loss: Any):
    """A loss instance from an instance, a loss class (default options) or a registry name."""
    from .. import registry
    from ..base import Loss

    if isinstance(loss, str):
        loss = registry.get(loss)
    if isinstance(loss, type) and issubclass(loss, Loss):
        loss = loss()
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a lossengine loss (instance, class or registry name), got {type(loss).__name__}")
    if not getattr(loss, "has_hessian", False):
        raise TypeError(f"{type(loss).__name__} has no second derivative (has_hessian is False): "
                        f"it cannot be a boosting objective")
    return loss


def check_hessian(hessian: Any) -> str:
    if hessian not in HESSIANS:
        raise ValueError(f"hessian must be 'exact' (the loss's own second derivative) or 'library' (the "
                         f"library's built-in objective's), got {hessian!r}")
    return hessian


def _labels(labels: Any) -> np.ndarray:
    labels = np.asarray(labels)
    # min() propagates NaN: one read of the labels, no (N,) boolean array (a quarter of isnan().any()'s time)
    if labels.dtype.kind == "f" and labels.size and np.isnan(labels.min()):
        raise ValueError(f"labels: {int(np.isnan(labels).sum())} NaN label(s); a NaN label gives NaN gradients "
                         f"(drop those rows or give them a label)")
    return labels


def _class_indices(labels: np.ndarray, n: int) -> np.ndarray:
    # One label per sample for (N, K) scores: class indices (stored as floats by the libraries).
    idx = labels.reshape(n).astype(np.int64)
    if not np.array_equal(idx, labels.reshape(n)):
        raise ValueError("multi-class labels must be whole class indices 0..K-1")
    return idx


def _target(preds: np.ndarray, labels: Any) -> np.ndarray:
    labels = _labels(labels)
    n = preds.shape[0]
    if preds.ndim == 2 and labels.size == n:
        return _class_indices(labels, n)
    if labels.size != preds.size:
        raise ValueError(f"labels: {labels.size} values for predictions of shape {preds.shape}")
    # In the predictions' dtype: LightGBM and CatBoost hand float32 labels with float64 scores, and
    # a mixed pair misses gradient_hessian's compiled fast path (the general path casts them to
    # float64 all the same: the same numbers, at a fraction of the per-call cost).
    return labels.reshape(preds.shape).astype(preds.dtype, copy=False)


def _weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.size == 0:
        return None
    if w.size != n:
        raise ValueError(f"sample weights: {w.size} for {n} samples")
    w = w.reshape(n)
    if w.min() >= 0 and np.isfinite(w.max()):       # two reductions (NaN fails the first) instead of four passes
        return w
    if not np.isfinite(w).all():
        raise ValueError("sample weights: NaN or inf weight(s)")
    raise ValueError(f"sample weights: {int((w < 0).sum())} negative weight(s); boosting needs weights >= 0 "
                     f"(a negative weight makes the Hessian negative)")


def library_hessian(loss, preds: np.ndarray, hess: np.ndarray, softmax_factor) -> None:
    """The library's built-in Hessian in place of the exact one, where they differ: the softmax
    diagonal scaled by ``softmax_factor(K)`` (XGBoost multi:softprob 2, LightGBM multiclass
    K / (K - 1)) and the Poisson objectives' exp(x + 0.7). Binary logistic, squared error, Gamma,
    Tweedie, Huber, L1 and quantile built-ins use the loss's exact Hessian (or the same surrogate 1):
    nothing to change; a loss with no built-in counterpart keeps its exact Hessian."""
    from ..losses.classification import CrossEntropyLoss
    from ..losses.elementwise import HalfPoissonLoss, PoissonNLLLoss

    if isinstance(loss, CrossEntropyLoss) and preds.ndim == 2 and preds.shape[1] > 1:
        hess *= softmax_factor(preds.shape[1])
    elif isinstance(loss, HalfPoissonLoss) or (isinstance(loss, PoissonNLLLoss) and loss.log_input):
        np.exp(preds + preds.dtype.type(POISSON_MAX_DELTA_STEP), out=hess)


def gradient_hessian(loss, preds: np.ndarray, labels: Any, weights: Any, surrogate: float | None,
                     min_hessian: float, hessian: str = "exact", softmax_factor=None,
                     out: tuple | None = None, foreign_runtime: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (weighted) gradient and Hessian of ``loss`` at ``preds``, of preds' shape and dtype
    (written into ``out``, two C-contiguous arrays, when given). ``foreign_runtime``: the library
    runs its loops on another OpenMP runtime (``ForeignRuntime``): the kernel runs
    ``_threads.beside_another_runtime()``."""
    target = _target(preds, labels)
    w = _weights(weights, preds.shape[0])
    with _threads.beside_another_runtime() if foreign_runtime else contextlib.nullcontext():
        grad, hess = loss.gradient_hessian(preds, target, out=out)
    if hessian == "library":
        library_hessian(loss, preds, hess, softmax_factor)
    if surrogate is not None:
        np.copyto(hess, surrogate, where=~(hess > 0))    # in place: gradient_hessian's own arrays
    if w is not None:
        _intercept.weigh(grad, hess, w)
    # The floor rewrites the Hessian only when some entry is below it (or NaN): a min() reads it at
    # memory speed, np.maximum's write pass cost 0.3 ms per 1e6 float32 (the kernel's own time is 0.65 ms).
    if hess.size and not hess.min() >= min_hessian:
        np.maximum(hess, min_hessian, out=hess)
    return grad, hess


def objective_function(loss: Any, hessian: str, surrogate: Any, min_hessian: float, library,
                       softmax_factor, unset: Any) -> Callable:
    """The ``(preds, data) -> (grad, hess)`` objective XGBoost and LightGBM both take: ``data`` a
    DMatrix or a Dataset (each has get_label and get_weight); ``library`` () -> the library's ctypes
    handle (``ForeignRuntime``); ``surrogate is unset``: the loss's default surrogate."""
    loss = resolve(loss)
    hessian = check_hessian(hessian)
    sur = default_surrogate(loss) if surrogate is unset else surrogate
    foreign = ForeignRuntime(library)

    def objective(preds: np.ndarray, data) -> tuple[np.ndarray, np.ndarray]:
        return gradient_hessian(loss, preds, data.get_label(), data.get_weight(), sur, min_hessian, hessian,
                                softmax_factor, foreign_runtime=bool(foreign))

    objective.loss = loss
    return objective


class ForeignRuntime:
    """Whether a boosting library runs its OpenMP loops on a runtime other than lossengine's (XGBoost's
    wheels bundle their own libgomp; LightGBM's link the system's, which lossengine uses too), decided
    at the first call and kept. Beside another runtime the objective runs on one thread unless a count
    is set explicitly, and lossengine's workers are released after each call: the library's workers
    spin-wait for milliseconds after each of its loops, through the objective call, and ours would
    spin through the library's next loop, each on a core the other's team needs (docs/threads.md). On
    a shared runtime the library's team reuses lossengine's workers and nothing is done."""

    def __init__(self, library_handle):
        self._handle = library_handle       # () -> the library's ctypes handle (None: no library)
        self._foreign: bool | None = None

    def __bool__(self) -> bool:
        if self._foreign is None:
            try:
                lib = self._handle()
            except ImportError:
                lib = None
            self._foreign = lib is not None and not _threads.shares_openmp_runtime(lib)
        return self._foreign


def metric_sums(loss, preds: np.ndarray, labels: Any, weights: Any) -> tuple[float, float]:
    """(sum_i w_i loss_i, sum_i w_i): a sample's outputs add up; w = 1 without weights."""
    n = preds.shape[0]
    w = _weights(weights, n)
    total = _intercept.weighted_loss(loss, (preds, _target(preds, labels)), w)
    return total, float(n if w is None else w.sum())


def final_value(loss, total: float, weight_sum: float) -> float:
    """The loss under its reduction from ``metric_sums``: 'mean' is the weighted mean (NaN when the
    weights sum to 0, as an empty mean), 'sum' the weighted sum."""
    if loss.reduction == "sum":
        return total
    return total / weight_sum if weight_sum > 0 else float("nan")


def metric_value(loss, preds: np.ndarray, labels: Any, weights: Any) -> float:
    """The loss under its reduction, samples weighted: 'mean' is sum(w l) / sum(w), 'sum' sum(w l)."""
    return final_value(loss, *metric_sums(loss, preds, labels, weights))


def default_surrogate(loss) -> float | None:
    return getattr(loss, "hessian_surrogate", None)


def start_score(loss: Any, label: Any, weight: Any = None):
    """The constant raw prediction minimizing the weighted loss at these labels (the loss's
    ``fit_intercept_only``): a float, or a (K,) array for class-index labels of a multi-class loss
    (K = max label + 1)."""
    loss = resolve(loss)
    labels = _labels(label)
    n = labels.shape[0] if labels.ndim else 1
    w = _weights(weight, n)
    if getattr(loss, "class_index_targets", False) and labels.ndim == 1:
        labels = _class_indices(labels, n)
    return loss.fit_intercept_only(labels, w)


def start_rows(start: Any, n: int) -> np.ndarray:
    """``start`` repeated for n rows: (n,) for a scalar, (n, K) for a (K,) start (the libraries'
    per-row init_score / baseline)."""
    start = np.asarray(start, np.float64)
    return np.full(n, float(start)) if start.ndim == 0 else np.tile(start, (n, 1))

"""``lossengine bench``: forward_backward against every installed peer, measured in one interleaved run.

What is timed: one call computing a loss's value (reduction='mean') and its input gradient, in each
engine's best mode of use. lossengine: ``forward_backward``. torch: the ``torch.nn.functional`` call
and ``torch.autograd.grad`` on a leaf tensor made once. JAX: ``jit(value_and_grad(f))`` and
``block_until_ready`` (64-bit mode enabled for the run when float64 is asked for, and restored after).
scikit-learn: ``sklearn._loss`` ``loss_gradient`` into preallocated ``loss_out``/``gradient_out``, as
its solvers call it (per-sample values and gradients, no reduction; a half loss's factor 2 is applied
only when checking its numbers). NumPy: a plain reference written as a user would.

Every peer's first result is checked against lossengine's before it is timed, so a ratio never
compares different computations: a peer that disagrees is skipped, with the difference. Each figure is
the median of many calls taken in interleaved blocks (``interleaved_times``) because these machines
are shared and noisy; the spread (interquartile range as a percent of the median) says when a figure
is too noisy to trust.

The case table (``CASES``) is the one place a loss gets benchmarked: a ``Case`` says how to build its
inputs at a given size and how each peer computes it; a registered loss without a case still runs
(lossengine against torch, on its tiled sample inputs). A family adds its losses with one entry each,
for example::

    Case("triplet_margin_loss", _triplets, sizes=((4096, 128),),
         jax=_jax(_triplet_jax), numpy=_numpy(_triplet_np), no_peer={"sklearn": "..."})

(torch needs no entry: its functional of the same name is the default).

The pytest-benchmark suite (benchmarks/bench_losses.py) is generated from the same table.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ._threads import MAX_THREADS

PEERS = ("torch", "jax", "sklearn", "numpy")
# The engine name ``--baseline``'s loss is timed under (lossengine computing another loss).
BASELINE = "baseline"
# A timing whose interquartile range exceeds this fraction of its median is flagged as untrustworthy.
NOISY_SPREAD = 0.25
SETTLE_SECONDS = 0.05
# Timed calls per engine and case without --repeat: as many as fit the time budget, within these bounds.
MIN_CALLS, MAX_CALLS = 6, 1000
WARMUP_SECONDS = 0.005
# Calls longer than this skip the per-block warm-up: a thread pool's wake-up is lost in them.
LONG_CALL = 0.01


# -- timing -----------------------------------------------------------------------------------------
def interleaved_times(engines: dict[str, Callable[[], object]], repeat: int | dict[str, int],
                      rounds: int = 3, warmup: bool | dict[str, bool] = True) -> dict[str, list[float]]:
    """Seconds per call for each engine: ``repeat`` timed calls (per engine when a dict), taken in
    ``rounds`` alternating blocks.

    Each engine runs its calls in blocks (A A A, B B B, A A A, ...), so a burst of load on this shared
    machine falls on every engine alike, while no engine is timed with another's thread pool still
    spinning from the previous call: a short pause before each block lets the peers' worker threads
    (OpenMP, XLA) go idle, as they would in a program that uses one engine. An untimed warm-up call
    opens each block (first-touch pages, JIT compilation, thread-pool start) unless ``warmup`` says
    otherwise for that engine (a call so long that waking a thread pool is lost in it).
    """
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            n = repeat[name] if isinstance(repeat, dict) else repeat
            time.sleep(SETTLE_SECONDS)
            if warmup[name] if isinstance(warmup, dict) else warmup:
                # A few milliseconds of calls, not one: after the pause some engines (XLA) take tens of
                # calls to come back to the speed a program calling them in a loop sees.
                deadline = time.perf_counter() + WARMUP_SECONDS
                fn()
                while time.perf_counter() < deadline:
                    fn()
            for _ in range(max(1, -(-n // rounds))):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(engines: dict[str, Callable[[], object]], repeat: int,
                        rounds: int = 3) -> dict[str, float]:
    """Median seconds per engine (see ``interleaved_times``)."""
    return {name: statistics.median(t) for name, t in interleaved_times(engines, repeat, rounds).items()}


def summarize(samples: Sequence[float]) -> dict:
    """Median, quartiles, extremes and spread (IQR / median) of one engine's call times."""
    q1, median, q3 = (statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1
                      else (samples[0],) * 3)
    return {"median": median, "q1": q1, "q3": q3, "min": min(samples), "max": max(samples),
            "spread": (q3 - q1) / median if median > 0 else 0.0, "calls": len(samples)}


# -- inputs -----------------------------------------------------------------------------------------
def bench_inputs(loss_class: type, n: int, dtype) -> tuple:
    """Inputs of about ``n`` elements in the loss's valid domain: its sample inputs tiled along axis 0."""
    arrays = [np.asarray(a) for a in loss_class.sample_inputs(np.random.default_rng(0), dtype)]
    first = arrays[0]
    row_size = first.size // first.shape[0]
    rows = max(1, -(-n // row_size))
    return tuple(np.ascontiguousarray(np.resize(a, (rows,) + a.shape[1:])) if a.ndim else a for a in arrays)


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _pair(first: Callable, second: Callable) -> Callable:
    """An input builder for (input, target) elementwise losses of one shape."""
    return lambda rng, shape, dtype: (first(rng, shape, dtype), second(rng, shape, dtype))


def _uniform(low, high):
    return lambda rng, shape, dtype: rng.uniform(low, high, shape).astype(dtype)


def _binary(rng, shape, dtype):
    return (rng.random(shape) < 0.5).astype(dtype)


def _signs(rng, shape, dtype):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(dtype)


def _counts(rng, shape, dtype):
    return rng.poisson(1.5, shape).astype(dtype)


def _scores_and_labels(rng, shape, dtype):
    return _normal(rng, shape, dtype), rng.integers(0, shape[1], shape[0])


# -- peers ------------------------------------------------------------------------------------------
class Skip(Exception):
    """A peer that cannot run this case; the message says why."""


@dataclass
class Runner:
    """A zero-argument timed call and how to read its result as (value, input gradient) in torch's
    convention (called once, outside the timing, to check the peer agrees with lossengine)."""
    call: Callable[[], Any]
    read: Callable[[Any], tuple] = lambda r: (np.asarray(r[0]), np.asarray(r[1]))
    compiles: bool = False      # the first call compiles (JIT), so its time says nothing


def _torch(case: "Case", arrays: tuple, options: dict, threads: int) -> Runner:
    """torch.nn.functional's function of the loss's name with the same options (lossengine's are
    torch's), differentiated by torch.autograd.grad with respect to a leaf input made once."""
    import torch

    fn = getattr(torch.nn.functional, case.loss, None)
    if fn is None:
        raise Skip(f"torch.nn.functional has no {case.loss}")
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    x = tensors[0].requires_grad_(True)

    def call():
        value = fn(x, *tensors[1:], **options)
        (grad,) = torch.autograd.grad(value, x)
        return value, grad

    return Runner(call, lambda r: (r[0].detach().numpy(), r[1].numpy()))


def _torch_ctc(case: "Case", arrays: tuple, options: dict, threads: int) -> Runner:
    """torch's ctc_loss; its gradient wrt log_probs is the one lossengine gives with from_logits=True
    (the option itself is lossengine's, not torch's)."""
    return _torch(case, arrays, {k: v for k, v in options.items() if k != "from_logits"}, threads)


def _ctc_inputs(rng, shape, dtype):
    """(T, N, C): log-probabilities, padded targets of up to S = T // 4 labels, lengths in [T/2, T]
    and [S/2, S] (as benchmarks/bench_ctc.py)."""
    from .losses.ctc import CTCLoss

    T, N, C = max(1, shape[0]), shape[1], max(3, shape[2])
    S = (T - 1) // 4     # every target fits with its repeats (2 S + 1 <= T), at any T asked for
    target_lengths = rng.integers(S // 2, S + 1, size=N)
    return CTCLoss._draw(rng, dtype, T=T, N=N, C=C, S=S, target_lengths=target_lengths)


def _jax(formula: Callable) -> Callable:
    """``formula(jnp, jax, options, *arrays)`` -> the mean loss; timed as jit(value_and_grad)."""
    def build(case: "Case", arrays: tuple, options: dict, threads: int) -> Runner:
        import jax
        import jax.numpy as jnp

        value_and_grad = jax.jit(jax.value_and_grad(lambda *a: formula(jnp, jax, options, *a)))
        device_arrays = [jnp.asarray(a) for a in arrays]
        if any(d.dtype != a.dtype for d, a in zip(device_arrays, arrays) if a.dtype.kind == "f"):
            raise Skip(f"JAX computes in {device_arrays[0].dtype} (64-bit mode off)")

        def call():
            return jax.block_until_ready(value_and_grad(*device_arrays))

        return Runner(call, compiles=True)
    return build


def _sklearn(make_loss: Callable, factor: float = 1.0) -> Callable:
    """A ``sklearn._loss`` loss (``make_loss(input, options)``) whose per-sample loss is ``1/factor`` of the
    torch loss's (the half losses: factor 2); timed as ``loss_gradient`` into preallocated outputs."""
    def build(case: "Case", arrays: tuple, options: dict, threads: int) -> Runner:
        x, target = arrays
        loss = make_loss(x, options)
        y = np.ascontiguousarray(target, dtype=x.dtype)
        loss_out = np.empty(x.shape[0], x.dtype)
        gradient_out = np.empty_like(x)

        def call():
            return loss.loss_gradient(y_true=y, raw_prediction=x, loss_out=loss_out,
                                      gradient_out=gradient_out, n_threads=threads)

        rows = x.shape[0]
        return Runner(call, lambda r: (factor * r[0].mean(dtype=np.float64), factor * r[1] / rows))
    return build


def _sklearn_loss(name: str, **kwargs) -> Callable:
    def make(x, options):
        from sklearn._loss import loss as sk

        return getattr(sk, name)(**kwargs)
    return make


def _sklearn_multinomial(x, options):
    if options.get("label_smoothing"):
        raise Skip("HalfMultinomialLoss has no label smoothing")
    from sklearn._loss.loss import HalfMultinomialLoss

    return HalfMultinomialLoss(n_classes=x.shape[1])


def _numpy(reference: Callable) -> Callable:
    """``reference(options, *arrays)`` -> (mean loss, input gradient), plain NumPy."""
    def build(case: "Case", arrays: tuple, options: dict, threads: int) -> Runner:
        return Runner(lambda: reference(options, *arrays))
    return build


# NumPy references and JAX formulas, torch's definitions (reduction='mean').
def _np_sigmoid(z):
    return np.exp(-np.logaddexp(0, -z)).astype(z.dtype, copy=False)


def _l1_np(o, x, y):
    d = x - y
    return np.abs(d).mean(), np.sign(d) / d.size


def _mse_np(o, x, y):
    d = x - y
    return (d * d).mean(), d * (2 / d.size)


def _huber_np(o, x, y):
    delta = o.get("delta", 1.0)
    d = x - y
    a = np.abs(d)
    value = np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)).mean()
    return value, np.clip(d, -delta, delta) / d.size


def _smooth_l1_np(o, x, y):
    beta = o.get("beta", 1.0)
    d = x - y
    a = np.abs(d)
    value = np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta).mean()
    return value, np.where(a < beta, d / beta, np.sign(d)) / d.size


def _bce_np(o, x, y):
    lx, l1x = np.maximum(np.log(x), -100), np.maximum(np.log1p(-x), -100)
    value = -(y * lx + (1 - y) * l1x).mean()
    return value, (x - y) / np.maximum(x * (1 - x), 1e-12) / x.size


def _bce_logits_np(o, x, y):
    return (np.logaddexp(0, x) - y * x).mean(), (_np_sigmoid(x) - y) / x.size


def _soft_margin_np(o, x, y):
    z = -y * x
    return np.logaddexp(0, z).mean(), -y * _np_sigmoid(z) / x.size


def _poisson_np(o, x, y):
    e = np.exp(x)
    return (e - y * x).mean(), (e - y) / x.size


def _log_softmax_np(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _cross_entropy_np(o, x, t):
    ls = o.get("label_smoothing", 0.0)
    n, c = x.shape
    logp = _log_softmax_np(x)
    rows = np.arange(n)
    value = -((1 - ls) * logp[rows, t] + (ls / c) * logp.sum(axis=1)).mean()
    grad = np.exp(logp) - ls / c
    grad[rows, t] -= 1 - ls
    return value, grad / n


def _nll_np(o, x, t):
    n = x.shape[0]
    rows = np.arange(n)
    grad = np.zeros_like(x)
    grad[rows, t] = -1.0 / n
    return -x[rows, t].mean(), grad


def _multi_margin_np(o, x, t):
    margin = o.get("margin", 1.0)
    n, c = x.shape
    rows = np.arange(n)
    m = margin - x[rows, t][:, None] + x
    m[rows, t] = 0
    active = m > 0
    grad = active.astype(x.dtype)
    grad[rows, t] = -active.sum(axis=1)
    return np.maximum(m, 0).sum() / (n * c), grad / (n * c)


def _l1_jax(jnp, jax, o, x, y):
    return jnp.mean(jnp.abs(x - y))


def _mse_jax(jnp, jax, o, x, y):
    return jnp.mean((x - y) ** 2)


def _huber_jax(jnp, jax, o, x, y):
    delta = o.get("delta", 1.0)
    a = jnp.abs(x - y)
    return jnp.mean(jnp.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta)))


def _smooth_l1_jax(jnp, jax, o, x, y):
    beta = o.get("beta", 1.0)
    a = jnp.abs(x - y)
    return jnp.mean(jnp.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta))


def _bce_jax(jnp, jax, o, x, y):
    return -jnp.mean(y * jnp.maximum(jnp.log(x), -100) + (1 - y) * jnp.maximum(jnp.log1p(-x), -100))


def _bce_logits_jax(jnp, jax, o, x, y):
    return jnp.mean(jax.nn.softplus(x) - y * x)


def _soft_margin_jax(jnp, jax, o, x, y):
    return jnp.mean(jax.nn.softplus(-y * x))


def _poisson_jax(jnp, jax, o, x, y):
    return jnp.mean(jnp.exp(x) - y * x)


def _cross_entropy_jax(jnp, jax, o, x, t):
    ls = o.get("label_smoothing", 0.0)
    logp = jax.nn.log_softmax(x, axis=1)
    picked = jnp.take_along_axis(logp, t[:, None], axis=1)[:, 0]
    if not ls:
        return -jnp.mean(picked)
    return -jnp.mean((1 - ls) * picked + (ls / x.shape[1]) * logp.sum(axis=1))


def _nll_jax(jnp, jax, o, x, t):
    return -jnp.mean(jnp.take_along_axis(x, t[:, None], axis=1))


def _multi_margin_jax(jnp, jax, o, x, t):
    margin = o.get("margin", 1.0)
    picked = jnp.take_along_axis(x, t[:, None], axis=1)
    m = jnp.maximum(margin - picked + x, 0)
    others = jnp.arange(x.shape[1])[None, :] != t[:, None]
    return jnp.sum(jnp.where(others, m, 0)) / x.size


def _triplet_jax(jnp, jax, o, a, p, n):
    eps, margin = 1e-6, o.get("margin", 1.0)
    d_pos = jnp.sqrt(jnp.sum((a - p + eps) ** 2, axis=-1))
    d_neg = jnp.sqrt(jnp.sum((a - n + eps) ** 2, axis=-1))
    return jnp.mean(jnp.maximum(margin + d_pos - d_neg, 0))


def _triplets(rng, shape, dtype):
    return tuple(rng.standard_normal(shape).astype(dtype) for _ in range(3))


# -- the case table ---------------------------------------------------------------------------------



@dataclass(frozen=True)
class Case:
    """One benchmarked loss configuration.

    ``inputs(rng, shape, dtype)`` builds the positional arrays for an input of ``shape``; ``sizes``
    are the default sizes: element counts (a 1-D input), or shapes, in which case an element count
    asked for on the command line scales the first axis of the last default shape (cross-entropy's
    (65536, 100): 1e5 elements -> (1000, 100)). ``torch``, ``jax``,
    ``sklearn``, ``numpy``: builders ``(case, arrays, options, threads) -> Runner`` (raising ``Skip``
    when they cannot run), or None when the peer has no such loss.
    """
    loss: str
    inputs: Callable[..., tuple] | None = None
    sizes: tuple = (1_000, 100_000, 10_000_000)
    options: dict = field(default_factory=dict)
    quick: bool = True              # part of the default run
    torch: Callable | None = _torch
    jax: Callable | None = None
    sklearn: Callable | None = None
    numpy: Callable | None = None
    no_peer: dict = field(default_factory=dict)     # peer -> why it has no implementation

    @property
    def label(self) -> str:
        cls = _loss_class(self.loss)
        name = cls.__name__ if cls is not None else self.loss
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{name}({opts})" if opts else name

    def shape_for(self, size) -> tuple:
        example = self.sizes[-1]
        if isinstance(size, tuple):
            if not self.takes(size):
                like = "element counts" if self.rank == 1 else "shapes like " + _size_text(example)
                raise ValueError(f"{self.loss} takes {like}, got {_size_text(size)}")
            return size
        if self.rank == 1:
            return (size,)
        rest = example[1:]
        return (max(1, size // math.prod(rest)),) + rest

    @property
    def rank(self) -> int:
        example = self.sizes[-1]
        return len(example) if isinstance(example, tuple) else 1

    def takes(self, size) -> bool:
        """Whether ``size`` has this case's own form: an element count for a 1-D case, a shape of
        its rank otherwise."""
        return len(size) == self.rank if isinstance(size, tuple) else self.rank == 1

    def make_inputs(self, shape: tuple, dtype) -> tuple:
        if self.inputs is None:     # a registered loss without a declared case: its own samples
            return bench_inputs(_loss_class(self.loss), math.prod(shape), dtype)
        return self.inputs(np.random.default_rng(0), shape, dtype)

    def peer(self, name: str) -> Callable | None:
        return getattr(self, name)


_NO_SKLEARN = "scikit-learn has no such loss"
_SHAPES = ((64, 10), (4096, 1000), (65536, 100))

CASES: list[Case] = [
    Case("l1_loss", _pair(_normal, _normal), jax=_jax(_l1_jax), numpy=_numpy(_l1_np),
         sklearn=_sklearn(_sklearn_loss("AbsoluteError"))),
    Case("mse_loss", _pair(_normal, _normal), jax=_jax(_mse_jax), numpy=_numpy(_mse_np),
         sklearn=_sklearn(_sklearn_loss("HalfSquaredError"), factor=2.0)),
    Case("huber_loss", _pair(_normal, _normal), jax=_jax(_huber_jax), numpy=_numpy(_huber_np),
         sklearn=_sklearn(_sklearn_loss("HuberLoss", delta=1.0))),
    Case("binary_cross_entropy", _pair(_uniform(0.02, 0.98), _uniform(0.0, 1.0)), jax=_jax(_bce_jax),
         numpy=_numpy(_bce_np), no_peer={"sklearn": "scikit-learn's binomial loss takes logits"}),
    Case("binary_cross_entropy_with_logits", _pair(_normal, _binary), jax=_jax(_bce_logits_jax),
         numpy=_numpy(_bce_logits_np), sklearn=_sklearn(_sklearn_loss("HalfBinomialLoss"))),
    Case("cross_entropy", _scores_and_labels, sizes=_SHAPES, jax=_jax(_cross_entropy_jax),
         numpy=_numpy(_cross_entropy_np), sklearn=_sklearn(_sklearn_multinomial)),
    Case("cross_entropy", _scores_and_labels, sizes=_SHAPES, options={"label_smoothing": 0.1},
         jax=_jax(_cross_entropy_jax), numpy=_numpy(_cross_entropy_np), sklearn=_sklearn(_sklearn_multinomial)),
    Case("multi_margin_loss", _scores_and_labels, sizes=((4096, 100),),
         jax=_jax(_multi_margin_jax), numpy=_numpy(_multi_margin_np), no_peer={"sklearn": _NO_SKLEARN}),
    Case("triplet_margin_loss", _triplets, sizes=((4096, 128),), jax=_jax(_triplet_jax),
         no_peer={"sklearn": _NO_SKLEARN}),
    # from_logits=True: the gradient torch returns (wrt the logits behind log_softmax'ed log_probs).
    Case("ctc_loss", _ctc_inputs, sizes=((100, 16, 30), (400, 32, 60)), options={"from_logits": True},
         torch=_torch_ctc, no_peer={"sklearn": _NO_SKLEARN, "numpy": "no NumPy reference for CTC",
                  "jax": "no JAX formula here (optax.ctc_loss: benchmarks/bench_ctc.py)"}),
    # Beyond the default run: `lossengine bench NAME` or `lossengine bench all`.
    Case("smooth_l1_loss", _pair(_normal, _normal), quick=False, jax=_jax(_smooth_l1_jax),
         numpy=_numpy(_smooth_l1_np), no_peer={"sklearn": _NO_SKLEARN}),
    Case("soft_margin_loss", _pair(_normal, _signs), quick=False, jax=_jax(_soft_margin_jax),
         numpy=_numpy(_soft_margin_np), no_peer={"sklearn": _NO_SKLEARN}),
    Case("poisson_nll_loss", _pair(lambda r, s, d: (0.5 * r.standard_normal(s)).astype(d), _counts),
         quick=False, jax=_jax(_poisson_jax), numpy=_numpy(_poisson_np),
         sklearn=_sklearn(_sklearn_loss("HalfPoissonLoss"))),
    Case("nll_loss", _scores_and_labels, sizes=_SHAPES, quick=False,
         jax=_jax(_nll_jax), numpy=_numpy(_nll_np), no_peer={"sklearn": _NO_SKLEARN}),
]


def sizes_per_case(cases: Sequence[Case], sizes: Sequence) -> tuple[dict[int, list[tuple]], list[str]]:
    """Each case's shapes for the ``--sizes`` asked (keyed by the case's index in ``cases``), and
    notes: a case takes the sizes of its own form (element counts for elementwise losses, rows x
    classes for classification, ...), so one run can mix families
    (``mse_loss cross_entropy --sizes 1e5,4096x1000``). A case given element counts only, though it
    takes shapes, has them scaled along its first axis, and a note says so. ValueError for a size
    that fits none of the cases, or a case that no size fits."""
    per_case: dict[int, list[tuple]] = {}
    notes, used = [], set()
    for k, case in enumerate(cases):
        own = [s for s in sizes if case.takes(s)]
        if not own and all(not isinstance(s, tuple) for s in sizes):
            own = list(sizes)
            shapes = [case.shape_for(s) for s in own]
            notes.append(f"{case.label}: element counts {', '.join(map(str, own))} scaled to its "
                         f"{case.rank}-D shapes {', '.join('x'.join(map(str, s)) for s in shapes)}")
        if not own:
            case.shape_for(next(s for s in sizes if not case.takes(s)))     # raises, naming the form
        per_case[k] = [case.shape_for(s) for s in own]
        used.update(own)
    for size in sizes:
        if size not in used:
            raise ValueError(f"--sizes: {_size_text(size)} fits none of the losses asked "
                             f"({', '.join(sorted({c.loss for c in cases}))})")
    return per_case, notes


def _size_text(size) -> str:
    return "x".join(map(str, size)) if isinstance(size, tuple) else str(size)


def _loss_class(name: str) -> type | None:
    from . import registry

    try:
        return registry.get(name)
    except KeyError:
        return None


def _aliases(case_loss: str) -> set[str]:
    cls = _loss_class(case_loss)
    return {case_loss.lower()} | ({cls.__name__.lower()} if cls is not None else set())


def select_cases(names: Sequence[str]) -> tuple[list[Case], list[str]]:
    """The cases to run for the names asked (registry or class names; none: the quick default; 'all':
    every case and every registered loss), and notes on the cases left out. ValueError for a name
    that is neither a case nor a registered loss."""
    from . import registry

    registered = set(registry.names())
    declared = {c.loss for c in CASES}
    generic = [Case(n, sizes=(1_000, 100_000), quick=False) for n in sorted(registered - declared)]
    if not names:
        wanted = [c for c in CASES if c.quick]
    elif any(n.lower() == "all" for n in names):
        wanted = CASES + generic
    else:
        wanted = []
        for name in names:
            matches = [c for c in CASES + generic if name.lower() in _aliases(c.loss)]
            if not matches:
                raise ValueError(f"no loss named {name!r} (see `lossengine list`; 'all' runs every case)")
            wanted += [c for c in matches if not any(c is w for w in wanted)]
    notes = list(dict.fromkeys(f"{c.label}: not registered in this build, skipped"
                               for c in wanted if c.loss not in registered))
    return [c for c in wanted if c.loss in registered], notes


# -- thread counts and peer availability ------------------------------------------------------------
def _installed(peer: str) -> str | None:
    """None when the peer can be imported, else why not."""
    module = {"torch": "torch", "jax": "jax", "sklearn": "sklearn._loss.loss", "numpy": "numpy"}[peer]
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed ({exc.name or module}); pip install 'lossengine[bench]'"
    return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def peer_threads(peers: Sequence[str], threads: int) -> dict[str, str]:
    """How many threads each engine computes with in this run, as reported by the engine."""
    out = {"lossengine": str(threads)}
    if "torch" in peers:
        import torch

        out["torch"] = str(torch.get_num_threads())
    if "jax" in peers:
        flags = os.environ.get("XLA_FLAGS", "")
        out["jax"] = ("1 (XLA_FLAGS: multi-threaded Eigen off)" if "xla_cpu_multi_thread_eigen=false" in flags
                      else f"{_cores()} (XLA's intra-op pool: every core; fixed when JAX starts)")
    if "sklearn" in peers:
        out["sklearn"] = f"{threads} (n_threads)"
    if "numpy" in peers:
        out["numpy"] = "1 (ufuncs)"
    return out


@contextlib.contextmanager
def _engine_settings(peers: Sequence[str], threads: int, dtype: np.dtype) -> Iterator[None]:
    """Thread counts (and JAX's 64-bit mode for float64) for the run, restored afterwards."""
    from ._threads import threads as le_threads

    with contextlib.ExitStack() as stack:
        stack.enter_context(le_threads(threads))
        # torch's deprecation notices (kl_div's 'mean') and the like would interleave with the table.
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        if "torch" in peers:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            stack.callback(torch.set_num_threads, before)
        if "jax" in peers and dtype == np.float64:
            import jax

            stack.enter_context(jax.enable_x64(True))
        yield


# -- running ----------------------------------------------------------------------------------------
def _agreement(expected: tuple, got: tuple, dtype: np.dtype) -> str | None:
    """None when a peer's (value, gradient) matches lossengine's, else the difference."""
    rtol = 2e-3 if dtype == np.float32 else 1e-7
    (v0, g0), (v1, g1) = expected, got
    v0, v1 = float(v0), float(v1)
    if not math.isclose(v0, v1, rel_tol=rtol, abs_tol=rtol * 1e-3) and not (math.isnan(v0) and math.isnan(v1)):
        return f"value {v1:.6g} vs lossengine {v0:.6g}"
    g0, g1 = np.asarray(g0, np.float64), np.asarray(g1, np.float64)
    if g0.shape != g1.shape:
        return f"gradient shape {g1.shape} vs {g0.shape}"
    scale = np.nanmax(np.abs(g0)) if g0.size else 0.0
    with np.errstate(invalid="ignore"):
        diff = np.abs(g0 - g1)
    bad = (diff > rtol * scale) & ~(np.isnan(g0) & np.isnan(g1))
    if bad.any():
        return f"gradient differs by up to {np.nanmax(diff[bad]) / scale:.2g} of its largest element"
    return None


def _call_seconds(fn: Callable[[], object], first: float | None, budget: float) -> float:
    """One call's time: the first (checked) call's when it is long and was no JIT compilation (None),
    else a fresh call's (the first may include first-touch page faults)."""
    if first is not None and first > budget:
        return first
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _progress(stream, enabled: bool):
    tty = enabled and hasattr(stream, "isatty") and stream.isatty()

    def show(text: str, final: bool = False) -> None:
        if not enabled:
            return
        if tty:
            stream.write("\r\033[K" + ("" if final else text))
        elif not final:
            stream.write(text + "\n")
        stream.flush()
    return show


def run_benchmarks(cases: Sequence[Case], sizes: Sequence | None = None, dtype: Any = np.float32,
                   peers: Sequence[str] = PEERS, threads: int | None = None, repeat: int | None = None,
                   budget: float = 0.1, progress: bool = False, baseline: Case | None = None) -> dict:
    """Measure every case at every size; everything ``--json`` writes (see ``main``). ``baseline``:
    a case timed beside each case at its size (``--baseline``)."""
    from ._threads import get_num_threads

    dtype = np.dtype(dtype)
    threads = threads or get_num_threads()
    unavailable = {p: why for p in peers if (why := _installed(p)) is not None}
    active = [p for p in peers if p not in unavailable]
    per_case = sizes_per_case(cases, sizes)[0] if sizes else {k: [c.shape_for(s) for s in c.sizes]
                                                               for k, c in enumerate(cases)}
    plan = [(case, shape) for k, case in enumerate(cases) for shape in per_case[k]]
    show = _progress(sys.stderr, progress)
    rows = []
    started = time.perf_counter()
    with _engine_settings(active, threads, dtype):
        thread_counts = peer_threads(active, threads)
        for k, (case, shape) in enumerate(plan, 1):
            show(f"[{k}/{len(plan)}] {case.label} {'x'.join(map(str, shape))}  "
                 f"({time.perf_counter() - started:.0f} s)")
            rows.append(_run_case(case, shape, dtype, peers, threads, repeat, budget, baseline))
        show("", final=True)
    ratios = [r["ratio"] for r in rows if r.get("ratio")]
    return {
        "what": "forward_backward: value (reduction='mean') and input gradient",
        "dtype": dtype.name, "threads": thread_counts, "peers": list(peers),
        "unavailable_peers": unavailable, "versions": _versions(active),
        "noisy_spread": NOISY_SPREAD, "seconds": time.perf_counter() - started,
        "geomean_ratio": math.exp(statistics.fmean(map(math.log, ratios))) if ratios else None,
        "baseline": baseline.label if baseline is not None else None,
        "cases": rows,
    }


@dataclass
class Prepared:
    """One case at one size, ready to time: its inputs, each engine's zero-argument call (peers only
    when they agree with lossengine), the first call's seconds per engine, and the peers skipped."""
    case: Case
    arrays: tuple
    engines: dict[str, Callable[[], object]]
    first: dict[str, float | None]
    skipped: dict[str, str]
    error: str | None = None


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def prepare(case: Case, shape: tuple, dtype: Any = np.float32, peers: Sequence[str] = PEERS,
            threads: int | None = None) -> Prepared:
    """Build the inputs and every engine's call for ``case`` at ``shape``; each peer is called once
    and checked against lossengine (a peer that disagrees, cannot run or is absent is skipped)."""
    from ._threads import get_num_threads

    dtype = np.dtype(dtype)
    loss = _loss_class(case.loss)(**case.options)
    arrays = case.make_inputs(shape, dtype)
    # Where a peer writes into preallocated outputs (scikit-learn's gradient_out), lossengine does too.
    if case.sklearn is not None:
        out = np.empty_like(arrays[0])
        engines: dict[str, Callable[[], object]] = {"lossengine": lambda: loss.forward_backward(*arrays, out=out)}
    else:
        engines = {"lossengine": lambda: loss.forward_backward(*arrays)}
    prepared = Prepared(case, arrays, engines, {}, {})
    try:
        reference, prepared.first["lossengine"] = _timed(engines["lossengine"])
    except Exception as exc:  # a loss that cannot take these inputs: say so, keep going
        prepared.error = f"lossengine: {type(exc).__name__}: {exc}"
        return prepared
    for peer in peers:
        why = _installed(peer)
        build = case.peer(peer)
        if why is None and build is None:
            why = case.no_peer.get(peer, "no implementation declared in lossengine.bench.CASES")
        if why is None:
            try:
                runner = build(case, arrays, case.options, threads or get_num_threads())
                result, seconds = _timed(runner.call)
                prepared.first[peer] = None if runner.compiles else seconds
                mismatch = _agreement(reference, runner.read(result), dtype)
                why = mismatch and f"disagrees with lossengine ({mismatch})"
            except Skip as exc:
                why = str(exc)
            except Exception as exc:
                why = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        if why:
            prepared.skipped[peer] = why
        else:
            engines[peer] = runner.call
    return prepared


def _run_case(case, shape, dtype, peers, threads, repeat, budget, baseline: Case | None = None) -> dict:
    p = prepare(case, shape, dtype, peers, threads)
    if baseline is not None and not p.error:
        reference = _loss_class(baseline.loss)(**baseline.options)
        base_arrays = baseline.make_inputs(baseline.shape_for(shape[0] if len(shape) == 1 else shape), dtype)
        p.engines[BASELINE] = lambda: reference.forward_backward(*base_arrays)
        p.first[BASELINE] = _timed(p.engines[BASELINE])[1]
    shape = np.shape(p.arrays[0])
    row: dict = {"loss": case.loss, "label": case.label, "options": case.options,
                 "shape": list(shape), "elements": math.prod(shape),
                 "inputs": [{"name": n, "shape": list(np.shape(a)), "dtype": np.asarray(a).dtype.name}
                            for n, a in zip(_loss_class(case.loss).arguments, p.arrays)],
                 "skipped": p.skipped, "results": {}}
    if p.error:
        row["error"] = p.error
        return row
    seconds = {name: _call_seconds(fn, p.first[name], budget) for name, fn in p.engines.items()}
    reps = repeat or {name: int(min(MAX_CALLS, max(MIN_CALLS, budget / max(t, 1e-7))))
                      for name, t in seconds.items()}
    samples = interleaved_times(p.engines, reps, warmup={name: t < LONG_CALL for name, t in seconds.items()})
    row["results"] = {name: {**summarize(t), "samples": t} for name, t in samples.items()}
    medians = {name: r["median"] for name, r in row["results"].items()}
    if BASELINE in medians:
        row["baseline_ratio"] = medians[BASELINE] / medians["lossengine"]
    peer_medians = {e: m for e, m in medians.items() if e not in ("lossengine", BASELINE)}
    if peer_medians:
        fastest = min(peer_medians, key=peer_medians.get)
        row["fastest_peer"] = fastest
        row["ratio"] = peer_medians[fastest] / medians["lossengine"]
    row["noisy"] = [n for n, r in row["results"].items() if r["spread"] > NOISY_SPREAD]
    return row


def _versions(peers) -> dict:
    from . import __version__

    out = {"lossengine": __version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    modules = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}
    for peer in peers:
        if peer in modules:
            out[peer] = getattr(sys.modules.get(modules[peer]) or __import__(modules[peer]), "__version__", "?")
    return out


# -- output -----------------------------------------------------------------------------------------
def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _size_label(row: dict) -> str:
    shape = row["shape"]
    if len(shape) == 1:
        n = shape[0]
        exp = int(math.log10(n)) if n > 0 else 0
        return f"{n / 10 ** exp:g}e{exp}" if n >= 1000 and n == round(n / 10 ** exp, 3) * 10 ** exp else str(n)
    return "x".join(map(str, shape))


def format_table(report: dict, markdown: bool = False) -> str:
    """The results as a text (or Markdown) table: median and spread per engine, the fastest peer and
    the ratio fastest peer / lossengine."""
    engines = ["lossengine"] + [p for p in report["peers"] if p not in report["unavailable_peers"]]
    baseline = report.get("baseline")
    if baseline:
        engines.append(BASELINE)
    header = ["case", "size"] + engines + ["fastest peer", "ratio"] + ([f"vs {baseline}"] if baseline else [])
    lines = []
    for row in report["cases"]:
        cells = [row["label"], _size_label(row)]
        for e in engines:
            r = row["results"].get(e)
            cells.append("-" if r is None else f"{_fmt(r['median'])} ({100 * r['spread']:.0f}%)"
                         + ("!" if e in row.get("noisy", ()) else ""))
        if "error" in row:
            cells[2] = "error"
        cells += [row.get("fastest_peer", "-"), f"{row['ratio']:.2f}x" if row.get("ratio") else "-"]
        if baseline:
            cells.append(f"{row['baseline_ratio']:.2f}x" if row.get("baseline_ratio") else "-")
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + ["| " + " | ".join(c) + " |" for c in lines])
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + lines)


def format_report(report: dict, notes: Sequence[str] = (), markdown: bool = False) -> str:
    threads = ", ".join(f"{k} {v}" for k, v in report["threads"].items())
    out = [f"lossengine bench: {report['what']}, {report['dtype']}",
           f"threads: {threads}",
           "each cell: median of interleaved calls (interquartile range as % of the median)",
           "ratio = fastest peer's median / lossengine's (> 1: lossengine is faster)"]
    if report.get("baseline"):
        out.append(f"vs {report['baseline']} = its median (lossengine, same size, interleaved) / the case's "
                   f"(> 1: the case is faster)")
    out += ["", format_table(report, markdown)]
    out += ["", "inputs (N, C: as in the size column):"] + [f"  {label}: {text}" for label, text in _input_shapes(report)]
    if report["geomean_ratio"]:
        out += ["", f"geometric mean of the ratios: {report['geomean_ratio']:.2f}x"]
    noisy = [(row["label"], _size_label(row), e) for row in report["cases"] for e in row.get("noisy", ())]
    if noisy:
        out += ["", f"warning: {len(noisy)} figure(s) marked ! have an interquartile range above "
                    f"{100 * NOISY_SPREAD:.0f}% of the median: too wide to trust (a busy machine?); "
                    "rerun, or raise --repeat"]
    skipped = _skipped_summary(report)
    if skipped or notes:
        out += ["", "skipped:"] + [f"  {line}" for line in list(notes) + skipped]
    errors = [f"  {row['label']} {_size_label(row)}: {row['error']}" for row in report["cases"] if "error" in row]
    if errors:
        out += ["", "errors:"] + errors
    return "\n".join(out)


def _input_shapes(report: dict) -> list[tuple[str, str]]:
    """Per loss configuration, its arguments' shapes and dtypes; an axis whose length follows the size
    is named (N for axis 0, C for axis 1, ...)."""
    rows: dict[str, list[dict]] = {}
    for row in report["cases"]:
        rows.setdefault(row["label"], []).append(row)
    out = []
    for label, group in rows.items():
        parts = []
        for k, arg in enumerate(group[0]["inputs"]):
            dims = [d if len(group) == 1 or all(r["inputs"][k]["shape"][a] == d for r in group) else "NCDEF"[a]
                    for a, d in enumerate(arg["shape"])]
            parts.append(f"{arg['name']} ({', '.join(map(str, dims))}{',' if len(dims) == 1 else ''}) {arg['dtype']}")
        out.append((label, ", ".join(parts)))
    return out


def _skipped_summary(report: dict) -> list[str]:
    """One line per reason, naming the peers and the cases it applies to."""
    by_reason: dict[tuple, list[str]] = {}
    for row in report["cases"]:
        for peer, why in row["skipped"].items():
            by_reason.setdefault((peer, why), []).append(f"{row['label']} {_size_label(row)}")
    lines: dict[str, list[str]] = {}     # line without its peers -> peers
    for (peer, why), where in by_reason.items():
        if peer in report["unavailable_peers"]:
            lines.setdefault(why, []).append(peer)
            continue
        labels = list(dict.fromkeys(w.rsplit(" ", 1)[0] for w in where))
        scope = ", ".join(where) if len(where) <= 3 else ", ".join(labels)
        lines.setdefault(f"{why} [{scope}]", []).append(peer)
    return [f"{', '.join(peers)}: {line}" for line, peers in lines.items()]


def write_plot(report: dict, path: str) -> None:
    """Median time against input size, one panel per loss configuration, one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = {}
    for row in report["cases"]:
        if row["results"]:
            groups.setdefault(row["label"], []).append(row)
    n = max(1, len(groups))
    cols = min(3, n)
    rows_ = -(-n // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4.2 * cols, 3.2 * rows_), squeeze=False)
    engines = ["lossengine"] + list(PEERS)
    colors = dict(zip(engines, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, (label, rows) in zip(axes.flat, groups.items()):
        for engine in engines:
            pts = sorted((r["elements"], r["results"][engine]["median"]) for r in rows if engine in r["results"])
            if pts:
                ax.plot(*zip(*pts), marker="o", label=engine, color=colors[engine],
                        linewidth=2.5 if engine == "lossengine" else 1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("input elements", fontsize=8)
        ax.set_ylabel("seconds per call", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.suptitle(f"forward_backward, {report['dtype']}, threads: lossengine {report['threads']['lossengine']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# -- the command ------------------------------------------------------------------------------------
class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2 (no usage dump, no traceback)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):
        # As a subcommand, leftovers would go back to the top-level parser and its usage dump.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """The ``bench`` subcommand's arguments (cli.py calls this)."""
    p = subparsers.add_parser(
        "bench", help="time forward_backward against torch, JAX, scikit-learn and NumPy (those installed)",
        description=__doc__.split("\n\n")[0])
    p.__class__ = _OneLineParser     # add_parser builds the parent's class; only bench's errors change
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="registry or class names, or 'all' (default: the quick set: L1, MSE, Huber, BCE, "
                        "BCEWithLogits, cross-entropy, MultiMargin)")
    p.add_argument("--sizes", help="comma-separated element counts (1e5) or shapes (4096x1000) "
                                   "(default: each case's own)")
    p.add_argument("--dtype", default="float32", help="float32 or float64 (default float32)")
    p.add_argument("--threads", help="threads for lossengine, torch and scikit-learn (default: lossengine's)")
    p.add_argument("--compare", default=",".join(PEERS),
                   help=f"comma-separated peers to compare with (default: {','.join(PEERS)})")
    p.add_argument("--repeat", help="timed calls per engine and case (default: as many as fit ~0.1 s)")
    p.add_argument("--baseline", metavar="NAME",
                   help="also time loss NAME (a plugin's or a built-in) at each case's size, interleaved, and "
                        "report each case's time relative to it")
    p.add_argument("--json", metavar="FILE", help="write every number (all call times) to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="plot time against size per engine (needs matplotlib)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    return p


def _parse_sizes(text: str) -> list:
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            if "x" in item:
                size = tuple(int(d) for d in item.split("x"))
                ok = all(d > 0 for d in size)
            else:
                value = float(item)
                size = int(value)
                ok = value == size and size > 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"--sizes: {item!r} is not a positive element count (1000, 1e5) or a shape (4096x1000)")
        sizes.append(size)
    return sizes


def _positive_int(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{option}: expected a positive integer, got {text!r}")
    return value


def _options(args: argparse.Namespace) -> dict:
    """The validated arguments; ValueError with a one-line message otherwise."""
    if args.dtype not in ("float32", "float64"):
        raise ValueError(f"--dtype: expected float32 or float64, got {args.dtype!r}")
    peers = [p.strip() for p in args.compare.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise ValueError(f"--compare: unknown peer {unknown[0]!r} (choose from {', '.join(PEERS)})")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'lossengine[plot]'") from None
    threads = _positive_int("--threads", args.threads)
    if threads is not None and threads > MAX_THREADS:
        raise ValueError(f"--threads: expected at most {MAX_THREADS}, got {threads}")
    repeat = _positive_int("--repeat", args.repeat)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            _check_writable(option, path)
    cases, notes = select_cases(args.names)
    sizes = _parse_sizes(args.sizes) if args.sizes else None
    if sizes and cases:
        notes += sizes_per_case(cases, sizes)[1]
    baseline = _baseline_case(args.baseline, cases) if args.baseline else None
    return {"cases": cases, "notes": notes, "sizes": sizes, "dtype": np.dtype(args.dtype), "peers": peers,
            "threads": threads, "repeat": repeat, "baseline": baseline}


def _check_writable(option: str, path: str) -> None:
    """Before the run, not after it: open ``path`` for appending (creating it, then removing what
    was created), so an unwritable path costs no benchmark time."""
    existed = os.path.lexists(path)
    if os.path.isdir(path):
        raise ValueError(f"{option}: {path!r} is a folder; expected a file path")
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise ValueError(f"{option}: cannot write {path!r}: {exc.strerror or exc}") from None
    if not existed:
        os.unlink(path)


def _baseline_case(name: str, cases: Sequence[Case]) -> Case:
    """The case ``--baseline NAME`` times beside every case (its first case when it has several), so
    any loss, a plugin's too, can be the reference. It must take the same form of size as each case
    it is compared with."""
    try:
        matches, _ = select_cases([name])
    except ValueError as exc:
        raise ValueError(f"--baseline: {exc}") from None
    if not matches:
        raise ValueError(f"--baseline: {name!r} is not registered in this build")
    baseline = matches[0]
    for case in cases:
        if case.rank != baseline.rank:
            raise ValueError(f"--baseline: {baseline.loss} takes {_form(baseline)}, but {case.loss} "
                             f"takes {_form(case)}; compare losses of one form")
    return baseline


def _form(case: Case) -> str:
    return "element counts" if case.rank == 1 else f"{case.rank}-D shapes"


def main(args: argparse.Namespace) -> int:
    try:
        opts = _options(args)
    except ValueError as exc:
        print(f"lossengine bench: error: {exc}", file=sys.stderr)
        return 2
    if (opts["threads"] == 1 and "jax" in opts["peers"] and "jax" not in sys.modules):
        # XLA sizes its thread pool when it starts; this is the one count it can be told.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    if not opts["cases"]:
        print("\n".join(["lossengine bench: nothing to run"] + opts["notes"]), file=sys.stderr)
        return 2
    report = run_benchmarks(opts["cases"], opts["sizes"], opts["dtype"], opts["peers"], opts["threads"],
                            opts["repeat"], progress=not args.quiet, baseline=opts["baseline"])
    report["arguments"] = {k: v for k, v in vars(args).items() if k not in ("run", "command")}
    report["notes"] = opts["notes"]
    print(format_report(report, opts["notes"], args.markdown))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0

"""The case table: one entry per benchmarked loss configuration, saying how to build its inputs at a
given size and how each peer computes it; and the choice of cases for the names a user asks for."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import formulas as f
from .peers import jax_peer, numpy_peer, sklearn_loss, sklearn_multinomial, sklearn_peer, torch_ctc_peer, torch_peer


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


def _ctc_inputs(rng, shape, dtype):
    """(T, N, C): log-probabilities, padded targets of up to S = (T - 1) // 4 labels, target lengths
    in [S/2, S], input lengths between what each target needs and T (CTCLoss's own sample draw)."""
    from ..losses.ctc import CTCLoss

    T, N, C = max(1, shape[0]), shape[1], max(3, shape[2])
    S = (T - 1) // 4     # every target fits with its repeats (2 S + 1 <= T), at any T asked for
    target_lengths = rng.integers(S // 2, S + 1, size=N)
    return CTCLoss._draw(rng, dtype, T=T, N=N, C=C, S=S, target_lengths=target_lengths)


def _triplets(rng, shape, dtype):
    return tuple(rng.standard_normal(shape).astype(dtype) for _ in range(3))


def _embedding_pair(target: str) -> Callable:
    """Two (N, D) inputs and a target of -1 / 1: per element ('elementwise') or per row."""
    def build(rng, shape, dtype):
        x1, x2 = (_normal(rng, shape, dtype) for _ in range(2))
        return x1, x2, _signs(rng, shape if target == "elementwise" else shape[:1], dtype)
    return build


# -- the case table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One benchmarked loss configuration.

    ``inputs(rng, shape, dtype)`` builds the positional arrays for an input of ``shape``; ``sizes``
    are the default sizes: element counts (a 1-D input), or shapes, in which case an element count
    asked for on the command line scales the first axis of the last default shape (cross-entropy's
    (65536, 100): 1e5 elements -> (1000, 100)). ``torch``, ``jax``,
    ``sklearn``, ``numpy``: builders ``(case, arrays, options, threads) -> Runner`` (raising ``Skip``
    when they cannot run), or None when the peer has no such loss. ``wrt``: None times the input's
    gradient; "all" every argument the loss declares differentiable (the embedding losses' figures).
    """
    loss: str
    inputs: Callable[..., tuple] | None = None
    sizes: tuple = (1_000, 100_000, 10_000_000)
    options: dict = field(default_factory=dict)
    quick: bool = True              # part of the default run
    torch: Callable | None = torch_peer
    jax: Callable | None = None
    sklearn: Callable | None = None
    numpy: Callable | None = None
    no_peer: dict = field(default_factory=dict)     # peer -> why it has no implementation
    wrt: str | None = None

    @property
    def label(self) -> str:
        cls = loss_class(self.loss)
        name = cls.__name__ if cls is not None else self.loss
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return (f"{name}({opts})" if opts else name) + (f" wrt {self.wrt}" if self.wrt else "")

    def wrt_names(self) -> tuple[str, ...] | None:
        """The ``wrt`` lossengine is called with: None (the input), or the names differentiated."""
        return tuple(loss_class(self.loss).differentiable) if self.wrt == "all" else None

    def gradient_positions(self) -> tuple[int, ...]:
        """The positions, among the loss's arguments, of the arrays the case differentiates."""
        names = self.wrt_names()
        arguments = list(loss_class(self.loss).arguments)
        return (0,) if names is None else tuple(arguments.index(n) for n in names)

    def shape_for(self, size) -> tuple:
        example = self.sizes[-1]
        if isinstance(size, tuple):
            if not self.takes(size):
                like = "element counts" if self.rank == 1 else "shapes like " + size_text(example)
                raise ValueError(f"{self.loss} takes {like}, got {size_text(size)}")
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
            return bench_inputs(loss_class(self.loss), math.prod(shape), dtype)
        return self.inputs(np.random.default_rng(0), shape, dtype)

    def peer(self, name: str) -> Callable | None:
        return getattr(self, name)


_NO_SKLEARN = "scikit-learn has no such loss"
_SHAPES = ((64, 10), (4096, 1000), (65536, 100))

CASES: list[Case] = [
    Case("l1_loss", _pair(_normal, _normal), jax=jax_peer(f.l1_jax), numpy=numpy_peer(f.l1_np),
         sklearn=sklearn_peer(sklearn_loss("AbsoluteError"))),
    Case("mse_loss", _pair(_normal, _normal), jax=jax_peer(f.mse_jax), numpy=numpy_peer(f.mse_np),
         sklearn=sklearn_peer(sklearn_loss("HalfSquaredError"), factor=2.0)),
    Case("huber_loss", _pair(_normal, _normal), jax=jax_peer(f.huber_jax), numpy=numpy_peer(f.huber_np),
         sklearn=sklearn_peer(sklearn_loss("HuberLoss", delta=1.0))),
    Case("binary_cross_entropy", _pair(_uniform(0.02, 0.98), _uniform(0.0, 1.0)), jax=jax_peer(f.bce_jax),
         numpy=numpy_peer(f.bce_np), no_peer={"sklearn": "scikit-learn's binomial loss takes logits"}),
    Case("binary_cross_entropy_with_logits", _pair(_normal, _binary), jax=jax_peer(f.bce_logits_jax),
         numpy=numpy_peer(f.bce_logits_np), sklearn=sklearn_peer(sklearn_loss("HalfBinomialLoss"))),
    Case("cross_entropy", _scores_and_labels, sizes=_SHAPES, jax=jax_peer(f.cross_entropy_jax),
         numpy=numpy_peer(f.cross_entropy_np), sklearn=sklearn_peer(sklearn_multinomial)),
    Case("cross_entropy", _scores_and_labels, sizes=_SHAPES, options={"label_smoothing": 0.1},
         jax=jax_peer(f.cross_entropy_jax), numpy=numpy_peer(f.cross_entropy_np), sklearn=sklearn_peer(sklearn_multinomial)),
    Case("multi_margin_loss", _scores_and_labels, sizes=((4096, 100),),
         jax=jax_peer(f.multi_margin_jax), numpy=numpy_peer(f.multi_margin_np), no_peer={"sklearn": _NO_SKLEARN}),
    Case("triplet_margin_loss", _triplets, sizes=((4096, 128),), jax=jax_peer(f.triplet_jax),
         no_peer={"sklearn": _NO_SKLEARN}),
    # from_logits=True: the gradient torch returns (wrt the logits behind log_softmax'ed log_probs).
    Case("ctc_loss", _ctc_inputs, sizes=((100, 16, 30), (400, 32, 60)), options={"from_logits": True},
         torch=torch_ctc_peer, jax=jax_peer(f.ctc_optax, needs="optax"),
         no_peer={"sklearn": _NO_SKLEARN, "numpy": "no NumPy reference for CTC"}),
    # Beyond the default run: `lossengine bench NAME` or `lossengine bench all`.
    Case("smooth_l1_loss", _pair(_normal, _normal), quick=False, jax=jax_peer(f.smooth_l1_jax),
         numpy=numpy_peer(f.smooth_l1_np), no_peer={"sklearn": _NO_SKLEARN}),
    Case("soft_margin_loss", _pair(_normal, _signs), quick=False, jax=jax_peer(f.soft_margin_jax),
         numpy=numpy_peer(f.soft_margin_np), no_peer={"sklearn": _NO_SKLEARN}),
    Case("poisson_nll_loss", _pair(lambda r, s, d: (0.5 * r.standard_normal(s)).astype(d), _counts),
         quick=False, jax=jax_peer(f.poisson_jax), numpy=numpy_peer(f.poisson_np),
         sklearn=sklearn_peer(sklearn_loss("HalfPoissonLoss"))),
    Case("nll_loss", _scores_and_labels, sizes=_SHAPES, quick=False,
         jax=jax_peer(f.nll_jax), numpy=numpy_peer(f.nll_np), no_peer={"sklearn": _NO_SKLEARN}),
    # The embedding family with every differentiable argument's gradient (benchmarks/bench_embedding.py).
    *(Case(loss, inputs, sizes=((4096, 128),), quick=False, wrt="all", jax=jax_peer(formula),
           no_peer={"sklearn": _NO_SKLEARN, "numpy": "no NumPy reference for the embedding losses"})
      for loss, inputs, formula in (
          ("margin_ranking_loss", _embedding_pair("elementwise"), f.margin_ranking_jax),
          ("cosine_embedding_loss", _embedding_pair("rows"), f.cosine_embedding_jax),
          ("triplet_margin_loss", _triplets, f.triplet_jax),
          ("triplet_margin_with_distance_loss", _triplets, f.triplet_jax))),
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
            raise ValueError(f"--sizes: {size_text(size)} fits none of the losses asked "
                             f"({', '.join(sorted({c.loss for c in cases}))})")
    return per_case, notes


def size_text(size) -> str:
    return "x".join(map(str, size)) if isinstance(size, tuple) else str(size)


def loss_class(name: str) -> type | None:
    from .. import registry

    try:
        return registry.get(name)
    except KeyError:
        return None


def _aliases(case_loss: str) -> set[str]:
    cls = loss_class(case_loss)
    return {case_loss.lower()} | ({cls.__name__.lower()} if cls is not None else set())


def select_cases(names: Sequence[str]) -> tuple[list[Case], list[str]]:
    """The cases to run for the names asked (registry or class names; none: the quick default; 'all':
    every case and every registered loss), and notes on the cases left out. ValueError for a name
    that is neither a case nor a registered loss."""
    from .. import registry

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


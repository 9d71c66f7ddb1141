"""CTCLoss: connectionist temporal classification, torch's semantics, the true gradient.

The class normalizes the four arguments (``log_probs`` (T, N, C) or unbatched (T, C); ``targets``
padded (N, S) or concatenated 1-D; the two lengths as arrays, lists, tuples or, unbatched, scalars)
and hands them to the compiled kernel (``pyx/ctc.pyx``), which validates every length and label
before any sample is computed and then runs one block per sample.

Gradient: ``backward`` returns the true derivative of the loss wrt ``log_probs``, -gamma (the
posterior occupation of each class) on the rows t < input_length, so finite differences and the
validator apply. torch's ctc_loss backward returns exp(log_probs) - gamma instead: the gradient wrt
the logits *assuming* log_probs = log_softmax(logits) (pytorch issues 52241 and 181534). The two
agree once pushed through log_softmax's backward (g - softmax * sum(g)), which tests/test_ctc.py
checks. ``from_logits=True`` takes the logits themselves (as optax.ctc_loss does), applies
log_softmax inside and returns the gradient wrt the logits: softmax - gamma, what torch's users get
from log_softmax + ctc_loss. As torch's log_softmax, each frame is shifted by its maximum before the
log-sum-exp, and the two are subtracted one after the other, so the result is exact at any offset
(1e16, 1e300).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .. import _arrays
from .._ctc import CTCKernel
from .._reductions import reduction_of
from .._threads import PARALLEL_MIN_ELEMENTS, _kernel_threads
from ..base import FORWARD_ONLY, FusedLoss, losses_defined_in
from ..declaration import Option, reduction
from ..domains import LogSimplex, domain_of

_INT64 = np.dtype(np.int64)
_INT64_MAX = np.iinfo(np.int64).max


def _integers(name: str, value: Any) -> np.ndarray:
    """Any integer array (or list, tuple, scalar) as native C-contiguous int64."""
    if type(value) is np.ndarray and value.dtype is _INT64 and value.flags.c_contiguous and value.flags.aligned:
        return value
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be an integer array; could not convert it: {exc}") from None
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and not isinstance(value, np.ndarray):
            return np.zeros(arr.shape, _INT64)      # [] (NumPy calls it float64) for an empty batch
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8 and arr.size and arr.max() > _INT64_MAX:
        position = tuple(int(i) for i in np.unravel_index(int(np.argmax(arr > _INT64_MAX)), arr.shape))
        raise ValueError(f"{name}{list(position)} = {int(arr[position])} does not fit in a 64-bit signed integer")
    return _arrays.contiguous(arr, _INT64)


def _blank(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer class index, got {type(value).__name__}")
    if not 0 <= int(value) <= _INT64_MAX:
        raise ValueError(f"{name} must be a non-negative class index, got {int(value)}")
    return int(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


class CTCLoss(FusedLoss):
    """Connectionist temporal classification (torch.nn.CTCLoss): -log p(target | log_probs) per sample.

    Options: ``blank`` (class index of the blank, default 0), ``reduction`` ('mean' divides each
    sample's loss by its target length clamped to at least 1 and averages; 'sum'; 'none'),
    ``zero_infinity`` (infeasible samples give 0 and a zero gradient instead of inf and NaN), and
    ``from_logits`` (lossengine's: the first argument holds raw logits; log_softmax is applied over
    the class axis inside and the gradient is returned wrt the logits).
    """

    name = "ctc_loss"
    arguments: ClassVar[tuple[str, ...]] = ("log_probs", "targets", "input_lengths", "target_lengths")
    differentiable: ClassVar[tuple[str, ...]] = ("log_probs",)
    domains: ClassVar[dict] = {"log_probs": LogSimplex(axis=-1)}
    # Forces the log-space recursions on every sample: for measurements and tests only.
    _log_space = False

    options = (
        Option("blank", 0, _blank, "integer", ">= 0"),
        reduction(),
        Option("zero_infinity", False, _bool, "flag", "", (True,)),
        Option("from_logits", False, _bool, "flag", "", (True,)),
    )

    def value_shape(self, *shapes: tuple) -> tuple | None:
        # One loss per sample: (N,) for a batched (T, N, C) log_probs, () for an unbatched (T, C) one.
        if self.reduction != "none" or not shapes:
            return ()
        return (shapes[0][1],) if len(shapes[0]) == 3 else ()

    # -- argument normalization ---------------------------------------------------------------
    @staticmethod
    def _lengths(name: str, value: Any, n: int, batched: bool) -> np.ndarray:
        arr = _integers(name, value)
        if arr.ndim > 1 or arr.size != n or (batched and arr.ndim == 0):
            expected = f"({n},)" if batched else "() or (1,) for an unbatched (T, C) log_probs"
            raise ValueError(f"{name} must have shape {expected}: one length per sample; got shape {arr.shape}")
        return arr.reshape(n)

    @staticmethod
    def _targets(value: Any, n: int, batched: bool) -> np.ndarray:
        arr = _integers("targets", value)
        if arr.ndim == 2 and arr.shape[0] != n:
            raise ValueError(f"padded targets must have one row per sample: shape ({n}, S), got {arr.shape}")
        if arr.ndim not in (1, 2):
            raise ValueError("targets must be padded (N, S) or concatenated 1-D (the labels of every sample "
                             f"in turn), got shape {arr.shape}")
        return arr

    def _compute(self, arrays, want_value: bool, wrt: Any, grad_output: Any):
        if len(arrays) != 4:
            self._check_arity(arrays)
        names, single = ((), True) if wrt is FORWARD_ONLY else self._resolve_wrt(wrt)
        given = _arrays.float_array("log_probs", arrays[0])
        if given.ndim not in (2, 3):
            raise ValueError("log_probs must be (T, N, C), or (T, C) for one unbatched sample; "
                             f"got shape {given.shape}")
        dtype = _arrays.compute_dtype(given)
        x = _arrays.contiguous(given, dtype)
        batched = x.ndim == 3
        if not batched:
            x = x.reshape(x.shape[0], 1, x.shape[1])
        n = x.shape[1]
        loss_shape = (n,) if batched else ()
        targets = self._targets(arrays[1], n, batched)
        input_lengths = self._lengths("input_lengths", arrays[2], n, batched)
        target_lengths = self._lengths("target_lengths", arrays[3], n, batched)
        scale, upstream = 1.0, _arrays.one(_arrays.FLOAT64)
        if names:
            scale, upstream = _arrays.grad_output_operand(grad_output, self.reduction, loss_shape, dtype)
            if upstream.dtype != np.float64:
                upstream = upstream.astype(np.float64).reshape(-1)
        mode = reduction_of(self.reduction)
        mean = mode.divides == "positions"     # each loss over its target length, then over the batch
        scale = mode.grad_scale(scale, mode.denominator(n))
        grad = np.empty(x.shape, dtype) if names else None
        nll = np.empty(n, np.float64)
        kernel = CTCKernel(blank=self.blank, zero_infinity=self.zero_infinity, from_logits=self.from_logits,
                           per_target_length=mean, log_space=self._log_space)
        total = kernel.run(log_probs=x, targets=targets, input_lengths=input_lengths,
                           target_lengths=target_lengths, grad=grad, nll=nll, upstream=upstream.reshape(-1),
                           scale=scale, num_threads=_kernel_threads(), min_parallel=PARALLEL_MIN_ELEMENTS)
        value = None
        if want_value:
            if not mode.reduces:
                value = nll.astype(dtype).reshape(loss_shape)
            else:
                value = dtype.type(mode.value(total, mode.denominator(n)))
        if not names:
            return value, None
        grad = grad.reshape(given.shape).astype(_arrays.result_dtype(given, dtype), copy=False)
        return value, (grad if single else (grad,) * len(names))

    def mean_denominator(self, log_probs, targets, input_lengths, target_lengths) -> float | None:
        """'mean' is mean_n(loss_n / max(L_n, 1)): the summed loss over N * L when every clamped
        target length is the same L. With unequal lengths no single number describes it, and this
        raises rather than let a check compare against a wrong one."""
        lengths = np.maximum(np.asarray(target_lengths, np.int64).reshape(-1), 1)
        if lengths.size == 0 or np.all(lengths == lengths[0]):
            return float(lengths.size * (lengths[0] if lengths.size else 1))
        raise ValueError("CTCLoss's 'mean' divides each sample's loss by its own target length: with unequal "
                         f"target lengths {lengths.tolist()} it is not the summed loss over one denominator")

    # The blank moved to the last class (the samples' labels avoid both 0 and C - 1), logits in,
    # and zero_infinity (the samples are feasible, so it must change nothing).
    check_options = ({"blank": 4}, {"from_logits": True}, {"zero_infinity": True})

    @classmethod
    def _draw(cls, rng: np.random.Generator, dtype: Any, T: int, N: int, C: int, S: int,
              target_lengths: np.ndarray) -> tuple:
        """log_probs (T, N, C) from the declared domain; padded (N, S) targets with labels in
        [1, C - 1) (valid for blank 0 and blank C - 1), a repeated neighbour in sample 0, junk
        (-1, C) in the padding, which must be ignored; input lengths that fit every target."""
        log_probs = domain_of(cls, "log_probs").sample(rng, (T, N, C), dtype)
        targets = rng.integers(1, C - 1, size=(N, S))
        if S >= 2 and target_lengths[0] >= 2:
            targets[0, 1] = targets[0, 0]
        for i, length in enumerate(target_lengths):
            targets[i, length:] = rng.choice([-1, C], size=S - length)
        repeats = [int(np.sum(t[1:L] == t[:L][:-1])) for t, L in zip(targets, target_lengths)]
        need = target_lengths + np.array(repeats, np.int64)
        input_lengths = rng.integers(need + 1, T + 1)
        input_lengths[0] = T
        return log_probs, targets, input_lengths, np.asarray(target_lengths, np.int64)

    @classmethod
    def sample_inputs(cls, rng, dtype):
        # One target length for every sample, so that 'mean' is the summed loss over N * L and the
        # validator's mean/sum check applies (tests/test_ctc.py validates unequal lengths too).
        return cls._draw(rng, dtype, T=10, N=3, C=5, S=5, target_lengths=np.array([3, 3, 3]))

    @classmethod
    def large_sample_inputs(cls, rng, dtype):
        """Enough work to run on several threads (above PARALLEL_MIN_ELEMENTS); C = 5 as in
        sample_inputs, so that check_options' blank=4 is the last class here too."""
        return cls._draw(rng, dtype, T=100, N=32, C=5, S=12, target_lengths=np.full(32, 10))


LOSSES = losses_defined_in(globals())
__all__ = ["LOSSES"] + [cls.__name__ for cls in LOSSES]

"""Generate tests/golden/ctc.npz: torch 2.13 CPU ctc_loss values and gradients for the CTC parity
tests, so they run without torch.

    python tests/golden/make_ctc_golden.py

Each case stores its inputs (``log_probs``, or the logits when ``from_logits``), ``targets`` (padded
or concatenated), the lengths, its options, and per reduction torch's value and gradient: for
'none' with a random per-sample grad_output (stored), for 'mean' and 'sum' with grad_output 0.7.
The gradient is torch's own: wrt log_probs (exp(log_probs) - gamma, which assumes log_softmax) or,
for from_logits cases, wrt the logits through torch's log_softmax. Keys are ``<case>.<field>``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).with_name("ctc.npz")
REDUCTIONS = ("none", "mean", "sum")
GRAD_OUTPUT = 0.7


def log_softmax(x):
    return x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1, keepdims=True)


def batch(rng, T=10, N=6, C=6, S=5, blank=0):
    """Padded targets exercising everything at once: a full-length target, a repeated label (needs a
    blank between), an empty target, input length 0 with an empty target (value -0.0), an
    infeasible sample (input too short), junk in the padding; labels avoid the blank."""
    logits = rng.standard_normal((T, N, C)) * 2.0
    labels = [c for c in range(C) if c != blank]
    targets = rng.choice(labels, size=(N, S))
    targets[1, 1] = targets[1, 0]                    # repeated neighbours
    target_lengths = np.array([S, 3, 0, 0, 4, 2])[:N]
    input_lengths = np.array([T, T - 2, T - 3, 0, 3, T - 1])[:N]    # sample 4: 4 labels in 3 steps
    targets[2, :] = -1                               # padding of an empty target: ignored
    targets[5, 2:] = C + 3
    return logits, targets, input_lengths, target_lengths


def concatenated(targets, target_lengths):
    return np.concatenate([t[:n] for t, n in zip(targets, target_lengths)]).astype(np.int64)


def torch_case(x, targets, input_lengths, target_lengths, blank, zero_infinity, from_logits, rng):
    out = {}
    shape = x.shape[1:2] if x.ndim == 3 else ()
    out["upstream"] = rng.uniform(0.5, 1.5, shape)
    for reduction in REDUCTIONS:
        xt = torch.tensor(x, requires_grad=True)
        lp = torch.log_softmax(xt, -1) if from_logits else xt
        value = torch.nn.functional.ctc_loss(lp, torch.tensor(targets), torch.tensor(input_lengths),
                                             torch.tensor(target_lengths), blank=blank, reduction=reduction,
                                             zero_infinity=zero_infinity)
        upstream = torch.tensor(out["upstream"], dtype=value.dtype) if reduction == "none" else GRAD_OUTPUT
        (value * upstream).sum().backward()
        out[f"value_{reduction}"] = value.detach().numpy()
        out[f"grad_{reduction}"] = xt.grad.numpy()
    return out


def cases():
    rng = np.random.default_rng(2013)
    logits, targets, il, tl = batch(rng)
    lp = log_softmax(logits)
    yield "padded_f64", dict(x=lp, targets=targets, input_lengths=il, target_lengths=tl, blank=0)
    yield "padded_zero_infinity_f64", dict(x=lp, targets=targets, input_lengths=il, target_lengths=tl, blank=0,
                                           zero_infinity=True)
    yield "concatenated_f64", dict(x=lp, targets=concatenated(targets, tl), input_lengths=il, target_lengths=tl,
                                   blank=0)
    yield "padded_f32", dict(x=lp.astype(np.float32), targets=targets, input_lengths=il, target_lengths=tl, blank=0)
    yield "concatenated_zero_infinity_f32", dict(x=lp.astype(np.float32), targets=concatenated(targets, tl),
                                                 input_lengths=il, target_lengths=tl, blank=0, zero_infinity=True)
    for blank in (5, 2):
        logits_b, targets_b, il_b, tl_b = batch(rng, blank=blank)
        yield f"blank{blank}_f64", dict(x=log_softmax(logits_b), targets=targets_b, input_lengths=il_b,
                                        target_lengths=tl_b, blank=blank)
        yield f"blank{blank}_f32", dict(x=log_softmax(logits_b).astype(np.float32), targets=targets_b,
                                        input_lengths=il_b, target_lengths=tl_b, blank=blank)
    yield "logits_f64", dict(x=logits, targets=targets, input_lengths=il, target_lengths=tl, blank=0, from_logits=True)
    yield "logits_f32", dict(x=logits.astype(np.float32), targets=concatenated(targets, tl), input_lengths=il,
                             target_lengths=tl, blank=0, from_logits=True)
    # Unbatched: (T, C) log_probs, 1-D targets (all of them are the sample's), 0-d lengths.
    yield "unbatched_f64", dict(x=lp[:, 0], targets=targets[0, :4].copy(), input_lengths=np.array(9),
                                target_lengths=np.array(4), blank=0)
    # Log-probabilities below -745: exp underflows in double, so the rescaled recursions cannot
    # represent the only alignments there are; log space must take over.
    deep = lp.copy()
    deep[:, 0, :] -= 800.0
    yield "underflow_f64", dict(x=deep, targets=targets, input_lengths=il, target_lengths=tl, blank=0)
    # Logits so large that log_softmax reaches -1e3 and below.
    yield "extreme_logits_f64", dict(x=logits * 400.0, targets=targets, input_lengths=il, target_lengths=tl,
                                     blank=0, from_logits=True)
    yield "misaligned_f64", misaligned()


def misaligned():
    """Target (1, 2), T = 11, blank 0. The early path 1 2 2 2 2 2 2 2 | 2 2 2 costs nothing up to
    t = 7, then e^-450 twice; the late path 0 0 0 0 0 0 0 0 | 1 1 2 costs e^-100 per blank. At t = 7
    the late path is e^-800 behind the early one (below 2^-1074: it underflows when rescaled) yet,
    at e^-800 against e^-900, it is the likelier alignment. Every other alignment goes through a
    log-probability of -2000. The rescaled forward recursion alone ends with a finite, wrong
    e^-900; only the certificate (alpha x beta at each step) sees that the alignment that matters
    was lost, and log space takes over."""
    lp = np.full((11, 1, 3), -2000.0)
    lp[0:8, 0, 0] = -100.0                   # late path's blanks
    lp[8, 0, 1] = lp[9, 0, 1] = 0.0          # late path's labels
    lp[0, 0, 1] = 0.0                        # early path
    lp[1:8, 0, 2] = 0.0
    lp[8:10, 0, 0] = lp[8:10, 0, 2] = -450.0
    lp[10, 0, 2] = 0.0                       # both end on label 2
    return dict(x=lp, targets=np.array([[1, 2]]), input_lengths=np.array([11]), target_lengths=np.array([2]),
                blank=0)


def main():
    rng = np.random.default_rng(5)
    data = {}
    for name, case in cases():
        zero_infinity = case.pop("zero_infinity", False)
        from_logits = case.pop("from_logits", False)
        fields = dict(case, zero_infinity=zero_infinity, from_logits=from_logits)
        fields.update(torch_case(case["x"], case["targets"], case["input_lengths"], case["target_lengths"],
                                 case["blank"], zero_infinity, from_logits, rng))
        for key, value in fields.items():
            data[f"{name}.{key}"] = np.asarray(value)
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(data)} arrays, torch {torch.__version__})")


if __name__ == "__main__":
    main()

"""Generate tests/golden/embedding.npz: torch 2.13 CPU values and autograd gradients for the
embedding family (MarginRankingLoss, CosineEmbeddingLoss, TripletMarginLoss,
TripletMarginWithDistanceLoss with its named distances).

    python tests/golden/make_embedding_golden.py

Every case stores its inputs, so the test needs neither torch nor this generator's RNG. Cases: every
loss x option example x reduction x dtype over random rows, plus edge rows (zero vectors, ties
at the hinge, targets outside {1, -1}, unbatched rows) and, for the triplet losses, (N, ..., D)
and 0-d inputs. Imported by tests/test_embedding.py for
CASES (the live-torch test reruns them against torch when it is installed).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN_PATH = Path(__file__).with_name("embedding.npz")
REDUCTIONS = ("none", "mean", "sum")


def _inputs(kind: str, loss: str, dtype: str, rng: np.random.Generator) -> dict:
    n, d = 5, 7
    if loss == "margin_ranking_loss":
        x1, x2 = rng.standard_normal((2, n))
        y = rng.choice([-1.0, 1.0], n)
        if kind == "edge":
            x1[:2] = x2[:2]                         # z == margin: the hinge's kink
            y[2] = 0.0                              # outside {1, -1}: torch's formula applies as is
        return {"input1": x1.astype(dtype), "input2": x2.astype(dtype), "target": y.astype(dtype)}
    if loss == "cosine_embedding_loss":
        x1, x2 = rng.standard_normal((2, n, d))
        y = rng.choice([-1.0, 1.0], n)
        if kind == "edge":
            x1[0] = 0.0                             # a zero row: finite through the 1e-12 epsilon
            y[1], y[2] = 0.0, 2.0                   # torch's where(): loss 0
        if kind == "unbatched":
            return {"input1": x1[0].astype(dtype), "input2": x2[0].astype(dtype), "target": np.array(-1.0, dtype)}
        return {"input1": x1.astype(dtype), "input2": x2.astype(dtype), "target": y.astype(dtype)}
    a, p, q = rng.standard_normal((3, n, d))
    if kind == "batched":
        # (N, ..., D): torch's pairwise_distance reduces the last axis, the loss has shape (N, ...)
        a, p, q = rng.standard_normal((3, 2, 3, d))
    if kind == "scalar":
        # 0-d: one element, |a - p + eps| through torch's power and root (not a (1,) row's shortcut)
        return {"anchor": np.array(a[0, 0], dtype), "positive": np.array(p[0, 0], dtype),
                "negative": np.array(q[0, 0], dtype)}
    if kind == "edge":
        p[0] = a[0]                                 # d(a, p) = ||eps||: the eps matters
        q[1] = p[1]                                 # swap tie: d(p, n) = 0
    if kind == "unbatched":
        return {"anchor": a[0].astype(dtype), "positive": p[0].astype(dtype), "negative": q[0].astype(dtype)}
    return {"anchor": a.astype(dtype), "positive": p.astype(dtype), "negative": q.astype(dtype)}


LOSSES = {
    "margin_ranking_loss": dict(cls="MarginRankingLoss", diff=("input1", "input2"),
                                grid=[{}, {"margin": 0.5}], kinds=("random", "edge")),
    "cosine_embedding_loss": dict(cls="CosineEmbeddingLoss", diff=("input1", "input2"),
                                  grid=[{}, {"margin": 0.3}], kinds=("random", "edge", "unbatched")),
    "triplet_margin_loss": dict(cls="TripletMarginLoss", diff=("anchor", "positive", "negative"),
                                grid=[{}, {"margin": 5.0}, {"margin": 5.0, "p": 1.0}, {"margin": 5.0, "p": 3.0},
                                      {"margin": 5.0, "swap": True}, {"margin": 0.5, "eps": 0.0}],
                                kinds=("random", "edge", "unbatched", "batched", "scalar")),
    "triplet_margin_with_distance_loss": dict(cls="TripletMarginWithDistanceLoss",
                                              diff=("anchor", "positive", "negative"),
                                              grid=[{"margin": 5.0}, {"distance_function": "cosine", "margin": 1.5},
                                                    {"distance_function": "cosine", "margin": 1.5, "swap": True}],
                                              kinds=("random", "edge", "batched", "scalar")),
}


def cases():
    out = []
    for loss, spec in LOSSES.items():
        for options in spec["grid"]:
            for kind in spec["kinds"]:
                if kind == "scalar" and options.get("distance_function") == "cosine":
                    continue    # torch's cosine_similarity has no axis to reduce in a 0-d input
                for reduction in REDUCTIONS:
                    for dtype in ("float64", "float32"):
                        out.append(dict(loss=loss, options=options, kind=kind, reduction=reduction, dtype=dtype))
    return out


def torch_reference(case: dict, inputs: dict):
    """(value, {argument: gradient}) from torch autograd, grad_output 0.75 (an array for 'none')."""
    import torch
    F = torch.nn.functional
    tensors = {k: torch.tensor(v, requires_grad=k in LOSSES[case["loss"]]["diff"]) for k, v in inputs.items()}
    options = dict(case["options"])
    if case["loss"] == "triplet_margin_with_distance_loss":
        name = options.pop("distance_function", None)
        if name == "cosine":
            # over the last axis, as lossengine's (dim=1 by default: the same for (N, D) rows)
            options["distance_function"] = lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1)
    fn = getattr(F, case["loss"])
    value = fn(*tensors.values(), reduction=case["reduction"], **options)
    upstream = torch.full_like(value, 0.75) if value.dim() else torch.tensor(0.75, dtype=value.dtype)
    value.backward(upstream)
    return value.detach().numpy(), {k: t.grad.numpy() for k, t in tensors.items() if t.grad is not None}


def main():
    import torch
    rng = np.random.default_rng(20261124)
    arrays, meta = {}, []
    for i, case in enumerate(cases()):
        inputs = _inputs(case["kind"], case["loss"], case["dtype"], rng)
        value, grads = torch_reference(case, inputs)
        for k, v in inputs.items():
            arrays[f"{i}/in/{k}"] = v
        arrays[f"{i}/value"] = value
        for k, g in grads.items():
            arrays[f"{i}/grad/{k}"] = g
        meta.append(case)
    arrays["meta"] = np.array(json.dumps({"torch_version": torch.__version__, "cases": meta}))
    np.savez_compressed(GOLDEN_PATH, **arrays)
    print(f"wrote {len(meta)} cases to {GOLDEN_PATH}")


if __name__ == "__main__":
    main()

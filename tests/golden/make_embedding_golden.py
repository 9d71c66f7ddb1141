"""Regenerate tests/golden/embedding.npz from torch (run with torch 2.13 CPU installed):

    python tests/golden/make_embedding_golden.py

Each case names its arrays, options, grad_output and torch's value and gradients (for every
argument torch differentiates; arrays are stored once and named by a content hash), so tests/test_embedding.py checks lossengine against torch without
torch installed. ``cases`` and ``torch_reference`` are also what the live-torch tests use.

Distances are stored by name: None, "euclidean" (torch.nn.PairwiseDistance()), "cosine"
(1 - F.cosine_similarity(x, y, dim=-1)) and "squared_euclidean" (((x - y) ** 2).sum(-1), the
lossengine.SquaredEuclideanDistance example).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("embedding.npz")
DIFFERENTIABLE = {
    "MarginRankingLoss": ("input1", "input2", "target"),
    "CosineEmbeddingLoss": ("input1", "input2"),
    "TripletMarginLoss": ("anchor", "positive", "negative"),
    "TripletMarginWithDistanceLoss": ("anchor", "positive", "negative"),
}
REDUCTIONS = ("none", "mean", "sum")


def _signs(rng, shape, extra=()):
    t = rng.choice([-1.0, 1.0], size=shape)
    for k, v in enumerate(extra):       # targets torch takes that are not +-1
        if t.size > k:
            t.flat[k] = v
    return t


def cases(rng):
    """(loss, dtype, options, arrays) for every configuration the parity tests cover."""
    for dtype in ("float64", "float32"):
        # MarginRankingLoss: elementwise over broadcast shapes, both target signs and other values,
        # an exact kink (z == 0), negative margins (torch allows them).
        for shapes in [((), (), ()), ((7,), (7,), (7,)), ((7,), (7,), (1,)), ((2, 3), (2, 1), (1, 3)), ((3, 4), (3, 4), (3, 4))]:
            x1, x2 = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
            t = _signs(rng, shapes[2], extra=(0.5,) if len(shapes[2]) and shapes[2][-1] > 3 else ())
            for margin in (0.0, 0.5, -0.3):
                for reduction in REDUCTIONS:
                    yield "MarginRankingLoss", dtype, dict(margin=margin, reduction=reduction), (x1, x2, t)
        kx1, kx2, kt = np.array([1.0, 2.0, -1.0]), np.array([0.0, 0.0, 0.5]), np.array([1.0, 1.0, -1.0])
        yield "MarginRankingLoss", dtype, dict(margin=1.0, reduction="sum"), (kx1, kx2, kt)

        # CosineEmbeddingLoss: (N, D) with (N,), unbatched (D,) with (), broadcast rows and targets,
        # zero rows (torch's EPSILON keeps them finite), targets other than +-1 (loss 0).
        x1, x2 = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
        x1[1] = 0.0
        x2[2] = 0.0
        t = _signs(rng, (6,), extra=(0.5,))
        for margin in (0.0, 0.3, -0.2):
            for reduction in REDUCTIONS:
                yield "CosineEmbeddingLoss", dtype, dict(margin=margin, reduction=reduction), (x1, x2, t)
                yield ("CosineEmbeddingLoss", dtype, dict(margin=margin, reduction=reduction),
                       (rng.standard_normal(5), rng.standard_normal(5), np.array(-1.0 if margin else 1.0)))
        for reduction in REDUCTIONS:
            yield ("CosineEmbeddingLoss", dtype, dict(margin=0.1, reduction=reduction),
                   (rng.standard_normal((1, 4)), rng.standard_normal((5, 4)), _signs(rng, (5,))))
            yield ("CosineEmbeddingLoss", dtype, dict(margin=-0.1, reduction=reduction),
                   (rng.standard_normal((5, 4)), rng.standard_normal((5, 4)), np.array([-1.0])))

        # TripletMarginLoss: p = 1, 2, 3, 0.5, 1.5, inf; swap; eps 0 (zero distances: masked
        # gradients); unbatched, 3-D and broadcast shapes.
        for shapes in [((6, 5),) * 3, ((5,),) * 3, ((2, 3, 4),) * 3, ((4, 5), (1, 5), (4, 5)), ((4, 5), (4, 5), (4, 1)), ((),) * 3]:
            a, p, n = (rng.standard_normal(s) for s in shapes)
            if shapes[0] == (6, 5):
                p[0] = a[0]                      # d(a, p) == ||eps||: exercises eps, and 0 with eps=0
                n[1] = p[1]                      # d(p, n) small: swap picks it
            for norm_p in (2.0, 1.0, 3.0, 0.5, 1.5, float("inf")):
                for swap in (False, True):
                    for eps in ((1e-6, 0.0) if shapes[0] == (6, 5) else (1e-6,)):
                        for reduction in REDUCTIONS:
                            yield ("TripletMarginLoss", dtype,
                                   dict(margin=0.5 if swap else 1.0, p=norm_p, eps=eps, swap=swap, reduction=reduction),
                                   (a, p, n))
        tie = (np.array([[1.0, -1.0, 0.0]]), np.array([[0.0, 0.0, 0.0]]), np.array([[3.0, 0.5, 0.0]]))
        yield "TripletMarginLoss", dtype, dict(margin=4.0, p=float("inf"), eps=0.0, swap=False, reduction="sum"), tie

        # TripletMarginWithDistanceLoss: each distance, swap, unbatched; near-zero rows for cosine
        # (cosine_similarity's eps clamp, differentiated as torch does).
        a, p, n = (rng.standard_normal((6, 5)) for _ in range(3))
        a[0] = 1e-10 * rng.standard_normal(5)
        n[1] = 0.0
        ua, up, un = (rng.standard_normal(4) for _ in range(3))
        for distance in (None, "euclidean", "cosine", "squared_euclidean"):
            for swap in (False, True):
                for reduction in REDUCTIONS:
                    margin = 0.5 if swap else 1.0
                    if distance == "squared_euclidean":
                        margin *= 4
                    opts = dict(distance_function=distance, margin=margin, swap=swap, reduction=reduction)
                    yield "TripletMarginWithDistanceLoss", dtype, opts, (a, p, n)
                    yield "TripletMarginWithDistanceLoss", dtype, opts, (ua, up, un)


def torch_distance(torch, name):
    F = torch.nn.functional
    return {None: None, "euclidean": torch.nn.PairwiseDistance(),
            "cosine": lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1),
            "squared_euclidean": lambda x, y: ((x - y) ** 2).sum(-1)}[name]


def torch_reference(torch, loss, dtype, options, arrays, grad_output):
    """torch's value and gradients (one per DIFFERENTIABLE argument) for one case."""
    F = torch.nn.functional
    tensors = [torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    options = dict(options)
    if loss == "TripletMarginWithDistanceLoss":
        options["distance_function"] = torch_distance(torch, options["distance_function"])
    fn = {"MarginRankingLoss": F.margin_ranking_loss, "CosineEmbeddingLoss": F.cosine_embedding_loss,
          "TripletMarginLoss": F.triplet_margin_loss,
          "TripletMarginWithDistanceLoss": F.triplet_margin_with_distance_loss}[loss]
    value = fn(*tensors, **options)
    value.backward(torch.tensor(np.asarray(grad_output, dtype=dtype)).expand(value.shape))
    grads = [t.grad.numpy() for t in tensors[:len(DIFFERENTIABLE[loss])]]
    return value.detach().numpy(), grads


def grad_output_for(rng, options, arrays, loss_shape):
    if options["reduction"] == "none":
        return rng.uniform(0.5, 1.5, loss_shape)
    return np.asarray(rng.uniform(0.5, 1.5))


def main():
    import torch

    rng = np.random.default_rng(20261124)
    out, manifest = {}, []

    def store(a):
        # Cases share their inputs: each distinct array is stored once, cases refer to it by key.
        key = "a" + hashlib.sha1(repr((a.dtype.str, a.shape)).encode() + a.tobytes()).hexdigest()[:16]
        out[key] = a
        return key

    for loss, dtype, options, arrays in cases(rng):
        arrays = tuple(np.asarray(a, dtype=dtype) for a in arrays)
        probe, _ = torch_reference(torch, loss, dtype, {**options, "reduction": "none"}, arrays, 1.0)
        grad_output = grad_output_for(rng, options, arrays, probe.shape).astype(dtype)
        value, grads = torch_reference(torch, loss, dtype, options, arrays, grad_output)
        manifest.append({"loss": loss, "dtype": dtype, "options": options,
                         "arrays": [store(a) for a in arrays], "grad_output": store(grad_output),
                         "value": store(np.asarray(value)), "grads": [store(g) for g in grads]})
    out["manifest"] = np.array(json.dumps({"torch": torch.__version__, "cases": manifest}))
    np.savez_compressed(OUT, **out)
    print(f"wrote {len(manifest)} cases to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

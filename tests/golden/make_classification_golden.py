"""Regenerate tests/golden/classification.npz from torch (run with torch installed):

    python tests/golden/make_classification_golden.py

Each case stores its inputs, options, grad_output and torch's value and gradients, so
tests/test_classification.py can check lossengine against torch without torch installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path(__file__).with_name("classification.npz")
FUNCTIONS = {
    "CrossEntropyLoss": F.cross_entropy, "NLLLoss": F.nll_loss, "MultiMarginLoss": F.multi_margin_loss,
    "MultiLabelMarginLoss": F.multilabel_margin_loss, "MultiLabelSoftMarginLoss": F.multilabel_soft_margin_loss,
}


def cases(rng):
    for dtype in ("float64", "float32"):
        for shape in [(5,), (6, 4), (3, 4, 2, 3)]:
            C = shape[0] if len(shape) == 1 else shape[1]
            tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
            x = 3 * rng.standard_normal(shape)
            idx = rng.integers(0, C, size=tshape)
            ign = idx.copy()
            if ign.ndim:
                ign.flat[::3] = 7       # ignore_index outside [0, C)
            probs = np.moveaxis(rng.dirichlet(np.ones(C), size=tshape), -1, 0 if len(shape) == 1 else 1)
            weight = rng.uniform(0.2, 2.0, C)
            for reduction in ("none", "mean", "sum"):
                for ls in (0.0, 0.25):
                    for w in (None, weight):
                        yield "CrossEntropyLoss", dtype, dict(weight=w, reduction=reduction, label_smoothing=ls), x, idx
                        yield "CrossEntropyLoss", dtype, dict(weight=w, reduction=reduction, label_smoothing=ls), x, probs
                        if ign.ndim:
                            yield ("CrossEntropyLoss", dtype,
                                   dict(weight=w, ignore_index=7, reduction=reduction, label_smoothing=ls), x, ign)
                for w in (None, weight):
                    yield "NLLLoss", dtype, dict(weight=w, reduction=reduction), x, idx
                    if ign.ndim:
                        yield "NLLLoss", dtype, dict(weight=w, ignore_index=7, reduction=reduction), x, ign
        for shape in [(5,), (6, 5)]:
            C = shape[-1]
            x = rng.standard_normal(shape)
            idx = rng.integers(0, C, size=shape[:1] if len(shape) == 2 else ())
            labels = np.full(shape, -1)
            for row in labels.reshape(-1, C):
                k = int(rng.integers(0, C))
                row[:k] = rng.choice(C, size=k, replace=False)
            y = rng.uniform(0.0, 1.0, shape)
            for reduction in ("none", "mean", "sum"):
                for p, margin, w in [(1, 1.0, None), (2, 0.6, rng.uniform(0.2, 2.0, C))]:
                    yield "MultiMarginLoss", dtype, dict(p=p, margin=margin, weight=w, reduction=reduction), x, idx
                yield "MultiLabelMarginLoss", dtype, dict(reduction=reduction), x, labels
                for w in (None, rng.uniform(0.2, 2.0, C)):
                    yield "MultiLabelSoftMarginLoss", dtype, dict(weight=w, reduction=reduction), x, y


def main():
    rng = np.random.default_rng(20241123)
    arrays, manifest = {}, []
    for i, (loss, dtype, options, x, target) in enumerate(cases(rng)):
        x = x.astype(dtype)
        if target.dtype.kind == "f":
            target = target.astype(dtype)
        kw = {k: (torch.tensor(v.astype(dtype)) if isinstance(v, np.ndarray) else v) for k, v in options.items()}
        X = torch.tensor(x, requires_grad=True)
        float_target = target.dtype.kind == "f"
        T = torch.tensor(target, requires_grad=float_target)
        value = FUNCTIONS[loss](X, T, **kw)
        grad_output = (rng.uniform(0.5, 1.5, value.shape) if value.ndim else np.asarray(rng.uniform(0.5, 1.5)))
        value.backward(torch.tensor(grad_output.astype(dtype)))
        arrays[f"{i}.input"] = x
        arrays[f"{i}.target"] = target
        arrays[f"{i}.grad_output"] = grad_output.astype(dtype)
        arrays[f"{i}.value"] = value.detach().numpy()
        arrays[f"{i}.grad_input"] = X.grad.numpy()
        if float_target:
            arrays[f"{i}.grad_target"] = T.grad.numpy()
        if isinstance(options.get("weight"), np.ndarray):
            arrays[f"{i}.weight"] = options["weight"].astype(dtype)
        manifest.append({"loss": loss, "dtype": dtype,
                         "options": {k: v for k, v in options.items() if k != "weight"},
                         "weighted": isinstance(options.get("weight"), np.ndarray)})
    arrays["manifest"] = np.array(json.dumps({"torch": torch.__version__, "cases": manifest}))
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {len(manifest)} cases to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""Generate tests/golden/elementwise.npz: torch 2.13 CPU reference results for the elementwise family.

    /work/venv/bin/python tests/golden/make_elementwise_golden.py

For every elementwise loss, every option combination, every reduction and both float dtypes, this
runs torch.nn.<Loss> on fixed inputs (deterministic seeds) and stores, as torch computes them, the
forward value and the gradient (torch autograd) of every differentiable argument, with a scalar
grad_output != 1 and, for reduction='none', also an array grad_output (full shape and broadcast).

Input kinds per (loss, options):
  random       random values of shape (3, 4)
  edge         torch's documented quirks and edge values (kinks, clamps, overflow, NaN gradients)
  bcast-target a target that broadcasts to the input (losses that accept one)
  zero-d       0-d arguments (KLDiv's 'batchmean' of a 0-d input is the undivided sum)
  empty        shapes (0,) and (0, 3) (and (3, 0) for KLDiv's 'batchmean'): mean -> NaN, sum -> 0

One deliberate deviation: torch's soft_margin_loss computes log1p(exp(-x*y)), which overflows to inf
(value) and NaN (gradient) once -x*y exceeds log(max float): -x*y > ~709.78 in float64 and > ~88.72 in
float32 (torch computes float32 in float32). lossengine's kernel is stable there. For those elements
the stored reference is the mathematically correct value (computed stably in float64), NOT torch's;
every such case records it under "reference_note". Everything else is exactly what torch returns.

File layout (np.load(..., allow_pickle=False)):
  meta     0-d unicode array: JSON {"torch_version", "input_sets": [...], "cases": [...]}
  float64  1-D blob holding every float64 array, float32 likewise; arrays are referenced from the
           JSON as [blob offset, shape].

This module is also imported by tests/test_parity_elementwise.py for the loss table, the input
generators and the torch reference (torch is imported lazily, so the golden tests run without it).
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

GOLDEN_PATH = Path(__file__).with_name("elementwise.npz")
DTYPES = ("float64", "float32")
N, C = 3, 4

# ---------------------------------------------------------------------------------------------
# The loss table: torch.nn class name (== lossengine class name), positional arguments, the
# arguments torch differentiates, the reductions, and the option grid.
#   Array options are given as shape tokens: "full" (the input's shape), "N1" (input.shape[:-1] + (1,)),
#   "C" (input.shape[-1:]).
#   GaussianNLL's "var_shape": "same", "fewer" (input.shape[:-1]), "dim1" (input.shape[:-1] + (1,)),
#   "dim1_lead" ((1,) + input.shape[1:]), "float" (a Python float).
# ---------------------------------------------------------------------------------------------
R3 = ("none", "mean", "sum")
LOSSES = {
    "l1_loss": dict(cls="L1Loss", args=("input", "target"), diff=("input", "target"), reductions=R3,
                    grid=[{}]),
    "mse_loss": dict(cls="MSELoss", args=("input", "target"), diff=("input", "target"), reductions=R3,
                     grid=[{}]),
    "smooth_l1_loss": dict(cls="SmoothL1Loss", args=("input", "target"), diff=("input", "target"),
                           reductions=R3, grid=[{"beta": b} for b in (1.0, 0.5, 0.0)]),
    "huber_loss": dict(cls="HuberLoss", args=("input", "target"), diff=("input", "target"),
                       reductions=R3, grid=[{"delta": d} for d in (1.0, 2.5)]),
    "binary_cross_entropy": dict(cls="BCELoss", args=("input", "target"), diff=("input", "target"),
                                 reductions=R3,
                                 grid=[{"weight": w} for w in (None, "full", "N1", "C")]),
    "binary_cross_entropy_with_logits": dict(
        cls="BCEWithLogitsLoss", args=("input", "target"), diff=("input", "target"), reductions=R3,
        grid=[{"weight": w, "pos_weight": p} for w in (None, "full", "N1") for p in (None, "C", "full")]),
    "soft_margin_loss": dict(cls="SoftMarginLoss", args=("input", "target"), diff=("input",),
                             reductions=R3, grid=[{}]),
    "kl_div": dict(cls="KLDivLoss", args=("input", "target"), diff=("input", "target"),
                   reductions=R3 + ("batchmean",), grid=[{"log_target": t} for t in (False, True)]),
    "poisson_nll_loss": dict(
        cls="PoissonNLLLoss", args=("input", "target"), diff=("input", "target"), reductions=R3,
        grid=[{"log_input": li, "full": f} for li in (True, False) for f in (False, True)]
        + [{"log_input": False, "full": True, "eps": 0.25}]),
    "gaussian_nll_loss": dict(
        cls="GaussianNLLLoss", args=("input", "target", "var"), diff=("input", "target", "var"),
        reductions=R3,
        grid=[{"full": f, "var_shape": v} for f in (False, True)
              for v in ("same", "fewer", "dim1", "dim1_lead", "float")]),
    "hinge_embedding_loss": dict(cls="HingeEmbeddingLoss", args=("input", "target"), diff=("input",),
                                 reductions=R3, grid=[{"margin": m} for m in (1.0, 0.5)]),
}
ARRAY_OPTIONS = ("weight", "pos_weight")
# Losses whose target may broadcast to the input's shape (torch broadcasts; lossengine accepts).
BCAST_TARGET = ("soft_margin_loss", "kl_div", "poisson_nll_loss", "gaussian_nll_loss",
                "hinge_embedding_loss")


def option_id(options: dict) -> str:
    parts = [f"{k}={v}" for k, v in options.items() if v is not None]
    return ",".join(parts) if parts else "default"


def seed_for(*parts) -> int:
    """A deterministic seed from any labels (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def _shape_token(token: str, shape: tuple) -> tuple:
    if token == "full" or not shape:
        return shape
    if token == "N1":
        return shape[:-1] + (1,)
    if token == "C":
        return shape[-1:]
    raise ValueError(token)


def var_shape_for(token: str, shape: tuple) -> tuple | None:
    if token == "same" or not shape:
        return shape
    if token == "fewer":
        return shape[:-1]
    if token == "dim1":
        return shape[:-1] + (1,)
    if token == "dim1_lead":
        return (1,) + shape[1:] if len(shape) >= 2 else shape[:-1] + (1,)
    if token == "float":
        return None
    raise ValueError(token)


# ---------------------------------------------------------------------------------------------
# Inputs (float64; cast to the case dtype afterwards).
# ---------------------------------------------------------------------------------------------
def random_arguments(loss: str, options: dict, shape: tuple, rng: np.random.Generator,
                     target_shape: tuple | None = None) -> dict:
    """Valid random arguments of ``shape`` (the target of ``target_shape`` when it broadcasts)."""
    ts = shape if target_shape is None else target_shape
    if loss in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"):
        return {"input": 1.5 * rng.standard_normal(shape), "target": 1.5 * rng.standard_normal(ts)}
    if loss == "binary_cross_entropy":
        return {"input": rng.uniform(0.02, 0.98, shape), "target": rng.uniform(0.0, 1.0, ts)}
    if loss == "binary_cross_entropy_with_logits":
        return {"input": 3.0 * rng.standard_normal(shape), "target": rng.uniform(0.0, 1.0, ts)}
    if loss in ("soft_margin_loss", "hinge_embedding_loss"):
        x = 2.0 * rng.standard_normal(shape) if loss == "soft_margin_loss" else rng.uniform(-2, 3, shape)
        return {"input": x, "target": rng.choice([-1.0, 1.0], size=ts)}
    if loss == "kl_div":
        logits = rng.standard_normal(shape)
        if shape and math.prod(shape):
            x = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        else:
            x = -np.abs(logits)
        p = rng.uniform(0.05, 1.0, ts)
        if ts and math.prod(ts):
            p = p / p.sum(axis=-1, keepdims=True)
        return {"input": x, "target": np.log(p) if options.get("log_target") else p}
    if loss == "poisson_nll_loss":
        x = rng.standard_normal(shape) if options.get("log_input", True) else rng.uniform(0.1, 3.0, shape)
        return {"input": x, "target": rng.uniform(0.1, 5.0, ts)}
    if loss == "gaussian_nll_loss":
        args = {"input": rng.standard_normal(shape), "target": rng.standard_normal(ts)}
        vs = var_shape_for(options["var_shape"], shape)
        if vs is not None:
            args["var"] = rng.uniform(0.3, 2.0, vs)
        return args
    raise KeyError(loss)


def edge_arguments(loss: str, options: dict) -> dict:
    """Torch's documented quirks and edge values, as 1-D arguments (dyadic where it matters)."""
    a = lambda *v: np.array(v, dtype=np.float64)  # noqa: E731
    inf = math.inf
    if loss == "l1_loss":       # the kink at diff == 0 (sign(0) = 0)
        return {"input": a(0, 1, -1, 2.5, 0.25, -3, 1e30), "target": a(0, 1, -1, 0, 0.25, 1, 1e30)}
    if loss == "mse_loss":
        return {"input": a(0, 3, -2, 1e3, 0.5, 1e-20), "target": a(0, 3, 1, -1e3, -0.5, 0)}
    if loss in ("smooth_l1_loss", "huber_loss"):
        k = options.get("beta", options.get("delta"))
        y = a(0.25, -0.5, 1.0, 0.25, -1.0, 2.0, 0.0, 0.5, -0.25)
        if k == 0.0:            # beta = 0 is L1: kink at 0 only
            d = a(0, 0, 0, 1, -1, 0.25, -0.25, 3, -3)
        else:                   # exactly at +-k, inside, outside, 0
            d = a(k, -k, 0, 0.5 * k, -0.5 * k, 2 * k, -2 * k, 0, k)
        return {"input": y + d, "target": y}
    if loss == "binary_cross_entropy":
        # x exactly 0 and 1 (log clamped at -100, target gradient +-inf), x(1-x) < 1e-12 (gradient
        # denominator clamped), log(x) < -100 without being 0 (float64: 1e-50; float32 rounds to 0).
        x = a(0, 0, 0, 1, 1, 1, 1e-50, 1e-13, 1 - 2.0 ** -40, 0.5, 1e-30, 0.25)
        y = a(0, 1, 0.3, 0, 1, 0.7, 1, 0.5, 0, 0.25, 0, 1)
        return {"input": x, "target": y}
    if loss == "binary_cross_entropy_with_logits":     # |logit| = 1e4 stays finite
        x = a(1e4, -1e4, 1e4, -1e4, 1e4, -1e4, 0, 40, -40, 800, -800, 2.5)
        y = a(0, 1, 1, 0, 0.5, 0.5, 0.5, 0, 1, 0.25, 0.75, 0.5)
        return {"input": x, "target": y}
    if loss == "soft_margin_loss":
        # x*y = -800 overflows torch in both dtypes, -100 and -89 in float32 only (see module doc).
        x = a(800, -800, 100, -100, 30, -30, 0, 710, 740, 50, -88, 89, 1e4)
        y = a(-1, 1, -1, 1, 1, 1, 1, 1, 1, -1, 1, -1, 1)
        return {"input": x, "target": y}
    if loss == "kl_div":
        if options.get("log_target"):
            # exp(-800) underflows to 0 (loss 0); exp(-inf) * (-inf - x) is NaN in torch.
            t = a(-inf, 0, -1, -50, -800, -0.5, -2)
            x = a(-1, -0.5, -1, -3, -2, -inf, 0)
        else:
            # target 0: loss 0 (xlogy), target gradient NaN in torch (log(t) + t/t at t = 0).
            t = a(0, 0, 0, 0, 0.5, 1, 0.25, 1e-300)
            x = a(-1, -2, 0, -inf, -inf, -0.5, 1.0, -3)
        return {"input": x, "target": t}
    if loss == "poisson_nll_loss":
        # full: Stirling's term only where y > 1 (y = 1 + 2^-20 just above); target gradient NaN where
        # y <= 0 in torch. log_input=False at x = 0 uses log(eps).
        y = a(0, 1, 2, 0.5, 1 + 2.0 ** -20, 3, 0, 1, 7, -0.5)
        if options.get("log_input", True):
            x = a(0.5, 0.5, 0.5, 0.5, 0.5, -1, 2, 0, 3, 0.25)
        else:
            x = a(0, 0.5, 0, 1e-9, 2, 3, 1, 0.5, 7, 0.25)
        return {"input": x, "target": y}
    if loss == "gaussian_nll_loss":
        # var < eps is clamped to eps (gradient wrt var uses the clamped value); var == eps; var == 0.
        x = a(0.5, 0.5, 1, 0, -2, 3, 0.25)
        y = a(0, 1, 1, 0, 1, 3, 0.5)
        args = {"input": x, "target": y}
        if options["var_shape"] == "same":
            args["var"] = a(1e-8, 0, 1e-6, 2, 1e-7, 5e-7, 4)
        elif options["var_shape"] != "float":
            args["var"] = np.full(var_shape_for(options["var_shape"], x.shape), 1e-7)
        return args
    if loss == "hinge_embedding_loss":
        m = options["margin"]
        # target 0 (and 0.5, 2): both terms; margin - x == 0 (clamp_min's gradient passes there).
        x = a(m, m, 0, 2 * m, -1, m + 1, 0.5, -0.5, m, 1.5)
        y = a(-1, 0, 0, -1, 1, -1, 0.5, -1, 1, 2)
        return {"input": x, "target": y}
    raise KeyError(loss)


def var_float_for(kind: str) -> float:
    return 1e-7 if kind == "edge" else 0.7     # 1e-7 < eps: clamped


def option_arrays(options: dict, shape: tuple, rng: np.random.Generator) -> dict:
    out = {}
    for name in ARRAY_OPTIONS:
        token = options.get(name)
        if token is not None:
            lo, hi = (0.2, 2.0) if name == "weight" else (0.5, 3.0)
            out[name] = rng.uniform(lo, hi, _shape_token(token, shape))
    return out


def input_set(loss: str, options: dict, kind: str, shape: tuple | None = None) -> dict:
    """{'arguments': {name: float64 array}, 'options': {...}, 'var_float': float | None}."""
    rng = np.random.default_rng(seed_for("golden", loss, option_id(options), kind, shape))
    if kind == "random":
        shape = (N, C)
        args = random_arguments(loss, options, shape, rng)
    elif kind == "bcast-target":
        shape = (N, C)
        args = random_arguments(loss, options, shape, rng, target_shape=(C,))
    elif kind == "zero-d":
        shape = ()
        args = random_arguments(loss, options, shape, rng)
    elif kind == "empty":
        args = random_arguments(loss, options, shape, rng)
    elif kind == "edge":
        args = edge_arguments(loss, options)
        shape = args["input"].shape
    else:
        raise KeyError(kind)
    var_float = None
    if loss == "gaussian_nll_loss" and options["var_shape"] == "float":
        var_float = var_float_for(kind)
    return {"arguments": args, "option_arrays": option_arrays(options, shape, rng), "var_float": var_float}


def scalar_options(options: dict) -> dict:
    """The constructor options other than array options and the var-shape token."""
    return {k: v for k, v in options.items() if k not in ARRAY_OPTIONS and k != "var_shape"}


def differentiable(loss: str, var_float) -> tuple:
    diff = LOSSES[loss]["diff"]
    return tuple(d for d in diff if not (d == "var" and var_float is not None))


def denominator(reduction: str, shape: tuple) -> int:
    if reduction == "mean":
        return math.prod(shape)
    if reduction == "batchmean":
        return shape[0] if shape else 1
    return 1


# ---------------------------------------------------------------------------------------------
# The torch reference.
# ---------------------------------------------------------------------------------------------
def _soft_margin_exact(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mathematically correct soft margin loss and d/dx, stable for any x*y (float64)."""
    z = -(x.astype(np.float64) * y.astype(np.float64))
    value = np.logaddexp(0.0, z)
    with np.errstate(over="ignore"):
        dx = -y.astype(np.float64) / (1.0 + np.exp(-z))      # -y * sigmoid(-x y); exp overflow -> -0
    return value, dx


def torch_reference(loss: str, options: dict, reduction: str, arguments: dict, option_arrays_: dict,
                    var_float, grad_output, dtype: str) -> dict:
    """Run torch.nn.<Loss> with autograd. Returns {'value', 'grads': {name: array}, 'note'}: arrays
    of ``dtype``; note is set when soft-margin elements were replaced by the exact value (torch
    overflows there).

    ``grad_output``: a scalar, or (reduction 'none') an array broadcastable to the loss's shape
    (expanded for torch, whose autograd requires the full shape).
    """
    import torch

    tdt = getattr(torch, dtype)
    spec = LOSSES[loss]
    wrt = differentiable(loss, var_float)
    tensors = {}
    for name in spec["args"]:
        if name == "var" and var_float is not None:
            continue
        tensors[name] = torch.tensor(np.asarray(arguments[name], dtype=dtype), dtype=tdt,
                                     requires_grad=name in wrt)
    ctor = dict(scalar_options(options))
    for name, arr in option_arrays_.items():
        ctor[name] = torch.tensor(np.asarray(arr, dtype=dtype), dtype=tdt)
    module = getattr(torch.nn, spec["cls"])(reduction=reduction, **ctor)
    call = [tensors[n] if n in tensors else var_float for n in spec["args"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(*call)
        # per-element losses (for the soft-margin correction)
        none = getattr(torch.nn, spec["cls"])(reduction="none", **ctor)(*[
            c.detach() if isinstance(c, torch.Tensor) else c for c in call])
    go = np.asarray(grad_output, dtype=dtype)
    if go.ndim == 0:
        go_t = torch.full_like(out, float(go))
    else:
        go_t = torch.tensor(np.broadcast_to(go, tuple(out.shape)).copy(), dtype=tdt)
    inputs = [tensors[n] for n in wrt]
    grads = torch.autograd.grad(out, inputs, grad_outputs=go_t, allow_unused=True) if out.numel() else \
        [torch.zeros_like(t) for t in inputs]
    value = out.detach().numpy().copy()
    grads = {n: (np.zeros(tensors[n].shape, dtype) if g is None else g.numpy().copy())
             for n, g in zip(wrt, grads)}
    none_np = none.numpy().astype(np.float64)
    in_shape = tuple(tensors["input"].shape)
    denom = denominator(reduction, in_shape)
    note = None

    if loss == "soft_margin_loss":
        # Deliberate deviation (see the module docstring): replace torch's overflowed elements.
        x = np.asarray(arguments["input"], dtype=dtype)
        y = np.broadcast_to(np.asarray(arguments["target"], dtype=dtype), x.shape)
        exact_v, exact_d = _soft_margin_exact(x, y)
        bad = ~np.isfinite(none_np) & np.isfinite(exact_v)
        if bad.any():
            note = ("torch's soft_margin_loss overflows (inf value, NaN gradient) where -x*y > "
                    "log(max float); reference = exact value at input elements "
                    f"{np.flatnonzero(bad).tolist()} (x*y = {(x * y)[bad].tolist()})")
            none_np = np.where(bad, exact_v, none_np)
            if reduction == "none":
                value = none_np.astype(dtype)
            else:
                value = np.asarray(none_np.sum() / denom if denom else math.nan).astype(dtype)
            scale_g = float(go) / denom if go.ndim == 0 and reduction != "none" else 1.0
            go_full = np.broadcast_to(go, x.shape).astype(np.float64) if reduction == "none" else 1.0
            g = grads["input"].astype(np.float64)
            grads["input"] = np.where(bad, scale_g * go_full * exact_d, g).astype(dtype)
    return {"value": np.asarray(value, dtype=dtype), "grads": grads, "note": note}


# ---------------------------------------------------------------------------------------------
# Golden file generation.
# ---------------------------------------------------------------------------------------------
def input_kinds(loss: str, options: dict) -> list[tuple[str, tuple | None]]:
    kinds = [("random", None), ("edge", None), ("zero-d", None), ("empty", (0,)), ("empty", (0, C))]
    if loss in BCAST_TARGET:
        kinds.append(("bcast-target", None))
    if loss == "kl_div":
        kinds.append(("empty", (N, 0)))
    if loss == "gaussian_nll_loss" and options["var_shape"] not in ("same", "float"):
        # edge values of var < eps are in the 'same'/'float' sets; 0-d has no smaller var shape.
        kinds = [k for k in kinds if k[0] != "zero-d"]
    return kinds


def grad_outputs(reduction: str, shape: tuple, rng) -> list[tuple[str, object]]:
    if reduction != "none":
        return [("", -0.75 if reduction == "mean" else 1.5)]
    variants = [("go=scalar", -1.25), ("go=array", rng.uniform(-2.0, 2.0, shape))]
    if len(shape) >= 1 and math.prod(shape) > 1:
        variants.append(("go=bcast", rng.uniform(-2.0, 2.0, shape[:-1] + (1,))))
    return variants


class _Blob:
    def __init__(self, dtype):
        self.dtype = dtype
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, arr) -> list:
        arr = np.asarray(arr, dtype=self.dtype)
        ref = [self.size, list(arr.shape)]
        self.parts.append(arr.reshape(-1))
        self.size += arr.size
        return ref

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)


def generate() -> dict:
    import torch

    torch.set_num_threads(1)
    blobs = {dt: _Blob(dt) for dt in DTYPES}
    input_sets, cases = [], []
    for loss, spec in LOSSES.items():
        for options in spec["grid"]:
            for kind, shape in input_kinds(loss, options):
                base = input_set(loss, options, kind, shape)
                for dtype in DTYPES:
                    blob = blobs[dtype]
                    set_index = len(input_sets)
                    input_sets.append({
                        "loss": loss, "options": options, "kind": kind, "dtype": dtype,
                        "arguments": {k: blob.add(v) for k, v in base["arguments"].items()},
                        "option_arrays": {k: blob.add(v) for k, v in base["option_arrays"].items()},
                        "var_float": base["var_float"],
                    })
                    in_shape = tuple(base["arguments"]["input"].shape)
                    rng = np.random.default_rng(seed_for("go", loss, option_id(options), kind, shape))
                    for reduction in spec["reductions"]:
                        for go_id, go in grad_outputs(reduction, in_shape, rng):
                            go = np.asarray(go, dtype=dtype)
                            ref = torch_reference(loss, options, reduction, base["arguments"],
                                                  base["option_arrays"], base["var_float"], go, dtype)
                            shape_id = "" if shape is None else "x".join(map(str, shape)) or "0"
                            cid = "-".join(p for p in (
                                loss, option_id(options), kind + (f"({shape_id})" if shape else ""),
                                reduction, go_id, dtype) if p)
                            cases.append({
                                "id": cid, "input_set": set_index, "reduction": reduction,
                                "grad_output": float(go) if go.ndim == 0 else blob.add(go),
                                "value": blob.add(ref["value"]),
                                "grads": {k: blob.add(v) for k, v in ref["grads"].items()},
                                "reference_note": ref["note"],
                            })
    meta = {"torch_version": torch.__version__, "numpy_version": np.__version__,
            "input_sets": input_sets, "cases": cases}
    return {"meta": np.array(json.dumps(meta, separators=(",", ":"))),
            **{dt: blobs[dt].array() for dt in DTYPES}}


def main() -> int:
    data = generate()
    np.savez_compressed(GOLDEN_PATH, **data)
    meta = json.loads(str(data["meta"]))
    print(f"wrote {GOLDEN_PATH}: {len(meta['cases'])} cases, {len(meta['input_sets'])} input sets, "
          f"{GOLDEN_PATH.stat().st_size} bytes, torch {meta['torch_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

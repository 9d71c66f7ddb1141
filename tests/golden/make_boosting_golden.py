"""Generate tests/golden/boosting.npz: reference values, gradients and Hessians of the elementwise
losses torch does not have, each from the reference its class declares (``reference``, beside the
loss's ``name`` in lossengine/losses/elementwise.py), so a new such loss needs no edit here:

- ``"sklearn"``: scikit-learn's ``_loss`` class of the same name, constructed with the loss's options
  (where scikit-learn approximates the Hessian -- its boosting surrogate -- the loss is piecewise
  linear there and the true Hessian, 0, is the reference);
- ``"torchvision"``: ``torchvision.ops.<registry name>`` under torch autograd (double backward for
  the Hessian), or its verbatim copy below when torchvision is not installed;
- ``"formula"``: the class's own ``reference_formula(xp, *arrays, **options)`` (its definition in an
  array namespace), evaluated in torch under autograd.

    python tests/golden/make_boosting_golden.py

Each case: loss class name, options, input and target (float64), and the reference's per-element
loss, d loss / d input and d^2 loss / d input^2. The row cases (SoftmaxFocal, Poly1 cross-entropy,
Dice, Tversky) hold per-position values and the Hessian diagonal, from their formulas in torch. Imported by tests/test_boosting_parity.py for the
cases and the reference functions (scikit-learn and torch are imported lazily).
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

import lossengine as le
from lossengine.declaration import declared_options
from lossengine.domains import domain_of
from lossengine.validation import _option_sets

GOLDEN_PATH = Path(__file__).with_name("boosting.npz")

# The cases boosting.npz was written with, in its order (case k's inputs come from seed k): (class
# name, options). Kept so that the data regenerates bit for bit. Every other elementwise loss torch
# lacks is appended with the configurations the validator checks (the defaults, then each declared
# option example), so declaring such a loss is enough: regenerate the file.
_WRITTEN = [
    ("HalfPoissonLoss", {}),
    ("HalfGammaLoss", {}),
    ("HalfTweedieLoss", {"power": 1.5}),
    ("HalfTweedieLoss", {"power": 0.0}),
    ("HalfTweedieLoss", {"power": 1.0}),
    ("HalfTweedieLoss", {"power": 2.0}),
    ("HalfTweedieLoss", {"power": 3.0}),
    ("PinballLoss", {"quantile": 0.5}),
    ("PinballLoss", {"quantile": 0.1}),
    ("PinballLoss", {"quantile": 0.9}),
    ("SigmoidFocalLoss", {}),
    ("SigmoidFocalLoss", {"alpha": -1.0, "gamma": 0.0}),
    ("SigmoidFocalLoss", {"alpha": 0.75, "gamma": 0.5}),
    ("SigmoidFocalLoss", {"alpha": 0.25, "gamma": 1.0}),
    ("LogCoshLoss", {}),
    ("LogCoshLoss", {"scale": 2.0}),
]
NON_TORCH = [cls for cls in le.losses.elementwise.LOSSES if cls.reference != "torch"]
# (class name, options, reference)
CASES = [(name, options, getattr(le, name).reference) for name, options in
         _WRITTEN + [(cls.__name__, options) for cls in NON_TORCH
                     if cls.__name__ not in {name for name, _ in _WRITTEN} for options in _option_sets(cls)]]


def _focal_inputs(rng):         # both saturated ends, soft and hard labels
    x = np.concatenate([4.0 * rng.standard_normal(40), [-30.0, -5.0, 0.0, 5.0, 30.0]])
    y = np.concatenate([rng.uniform(0, 1, 20), rng.integers(0, 2, 20), [0.0, 1.0, 1.0, 0.0, 1.0]])
    return x, y


def _pinball_inputs(rng):       # ties: y == x
    x = rng.standard_normal(45)
    return x, np.where(rng.uniform(size=45) < 0.1, x, x + rng.standard_normal(45))


def _log_cosh_inputs(rng):      # differences from 1e-9 to 800: both forms of the formula
    y = rng.standard_normal(45)
    return y + rng.choice([1e-9, 1e-3, 0.02, 0.3, 3.0, 40.0, 800.0], 45) * rng.standard_normal(45), y


def _deviance_inputs(rng, zero_targets=0):
    x, y = 2.0 * rng.standard_normal(45), rng.gamma(2.0, 1.0, 45)
    y[:zero_targets] = 0.0
    return x, y


# Inputs picked for a loss's special points; any other loss draws 45 elements from its declared domains.
EDGE_INPUTS = {
    "SigmoidFocalLoss": _focal_inputs,
    "PinballLoss": _pinball_inputs,
    "LogCoshLoss": _log_cosh_inputs,
    "HalfPoissonLoss": lambda rng: _deviance_inputs(rng, zero_targets=5),
    "HalfGammaLoss": _deviance_inputs,
    "HalfTweedieLoss": _deviance_inputs,
}


def domain_inputs(cls: str, rng) -> tuple[np.ndarray, ...]:
    loss = getattr(le, cls)
    return tuple(np.asarray(domain_of(loss, a).sample(rng, (45,), np.float64)) for a in loss.arguments)


def inputs(cls: str, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return EDGE_INPUTS.get(cls, partial(domain_inputs, cls))(rng)


def _all_options(cls: str, options: dict) -> dict:
    """``options`` with every other declared option (reduction aside) at its default."""
    return {o.name: options.get(o.name, o.default) for o in declared_options(getattr(le, cls)) if o.name != "reduction"}


def sklearn_reference(cls: str, options: dict, x, y):
    from sklearn._loss import loss as sk

    reference = getattr(sk, cls)(**options)
    value = reference.loss(y_true=y, raw_prediction=x)
    grad, hess = reference.gradient_hessian(y_true=y, raw_prediction=x)
    if reference.approx_hessian:
        # scikit-learn's boosting surrogate (PinballLoss returns ones); the true value is 0 where it
        # is a constant, the loss being piecewise linear. Any other approximation has no reference here.
        if not reference.constant_hessian:
            raise NotImplementedError(f"{cls}: scikit-learn approximates its Hessian; declare a reference_formula")
        hess = np.zeros_like(hess)
    return value, grad, hess


def _under_autograd(formula, x, y):
    """The value of ``formula(input, target)`` per element, its input gradient and the Hessian's
    diagonal (double backward), in torch."""
    import torch

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.float64)
    value = formula(torch, xt, yt)
    (grad,) = torch.autograd.grad(value.sum(), xt, create_graph=True)
    hess = torch.stack([torch.autograd.grad(g, xt, retain_graph=True)[0][i] for i, g in enumerate(grad)])
    return value.detach().numpy(), grad.detach().numpy(), hess.detach().numpy()


def torchvision_reference(cls: str, options: dict, x, y):
    name, kwargs = getattr(le, cls).name, _all_options(cls, options)
    if name in TORCHVISION_VERBATIM:     # torchvision's function when it is installed, else its copy
        return _under_autograd(lambda torch, xt, yt: TORCHVISION_VERBATIM[name](torch, xt, yt, **kwargs), x, y)
    import torchvision.ops
    return _under_autograd(lambda torch, xt, yt: getattr(torchvision.ops, name)(xt, yt, **kwargs, reduction="none"),
                           x, y)


def formula_reference(cls: str, options: dict, x, y):
    formula, kwargs = getattr(le, cls).reference_formula, _all_options(cls, options)
    return _under_autograd(lambda torch, xt, yt: formula(torch, xt, yt, **kwargs), x, y)


def torchvision_sigmoid_focal_loss(torch, inputs, targets, alpha: float, gamma: float):
    """torchvision.ops.sigmoid_focal_loss with reduction='none', verbatim in substance."""
    try:
        from torchvision.ops import sigmoid_focal_loss
        return sigmoid_focal_loss(inputs, targets, alpha=alpha, gamma=gamma, reduction="none")
    except ImportError:
        pass
    p = torch.sigmoid(inputs)
    ce_loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


# torchvision.ops functions copied here (by registry name) for machines without torchvision.
TORCHVISION_VERBATIM = {"sigmoid_focal_loss": torchvision_sigmoid_focal_loss}
REFERENCES = {"sklearn": sklearn_reference, "torchvision": torchvision_reference, "formula": formula_reference}


def reference(cls: str, options: dict, ref: str, x, y):
    return REFERENCES[ref](cls, options, x, y)


# The row (classification) losses torch does not have: (class name, options), each against its
# formula written in torch (torch_row_formula), value per position, input gradient of the sum,
# and the Hessian diagonal by double backward.
ROW_CASES = [
    ("SoftmaxFocalLoss", {}),
    ("SoftmaxFocalLoss", {"gamma": 0.5, "weight": [0.5, 2.0, 1.0, 1.5], "ignore_index": 2}),
    ("SoftmaxFocalLoss", {"gamma": 1.0}),
    ("SoftmaxFocalLoss", {"gamma": 0.0}),
    ("Poly1CrossEntropyLoss", {}),
    ("Poly1CrossEntropyLoss", {"epsilon": -0.5, "label_smoothing": 0.2}),
    ("Poly1CrossEntropyLoss", {"epsilon": 2.0, "ignore_index": 1, "label_smoothing": 0.1}),
    ("DiceLoss", {}),
    ("DiceLoss", {"smooth": 1e-3}),
    ("TverskyLoss", {}),
    ("TverskyLoss", {"alpha": 0.3, "beta": 0.7, "smooth": 0.5}),
]


def row_inputs(cls: str, seed: int):
    rng = np.random.default_rng(seed)
    if cls in ("DiceLoss", "TverskyLoss"):
        x = rng.uniform(0, 1, (3, 2, 4))
        y = (rng.uniform(0, 1, (3, 2, 4)) < 0.4).astype(np.float64)
        y[2] = rng.uniform(0, 1, (2, 4))
        return x, y
    x = 3.0 * rng.standard_normal((6, 4, 2))          # (N, C, d1): the class axis strided
    x[0, :, 0] = [30.0, -5.0, 0.0, 1.0]                # a confident position (p_t -> 1)
    t = rng.integers(0, 4, (6, 2))
    t[0, 0] = 0
    return x, t


def torch_row_formula(torch, cls: str, options: dict, x, t):
    F = torch.nn.functional
    if cls in ("DiceLoss", "TverskyLoss"):
        dims = tuple(range(1, x.ndim))
        smooth = options.get("smooth", 1.0)
        tp = (x * t).sum(dims)
        if cls == "DiceLoss":
            return 1 - (2 * tp + smooth) / (x.sum(dims) + t.sum(dims) + smooth)
        fp, fn = (x * (1 - t)).sum(dims), ((1 - x) * t).sum(dims)
        return 1 - (tp + smooth) / (tp + options.get("alpha", 0.5) * fp + options.get("beta", 0.5) * fn + smooth)
    w = None if options.get("weight") is None else torch.tensor(options["weight"], dtype=x.dtype)
    ignore = options.get("ignore_index", -100)
    kept = (t != ignore)
    tc = torch.where(kept, t, 0)
    logp = F.log_softmax(x, 1).gather(1, tc.unsqueeze(1)).squeeze(1)
    wt = torch.ones_like(logp) if w is None else w[tc]
    if cls == "SoftmaxFocalLoss":
        loss = -wt * (1 - torch.exp(logp)) ** options.get("gamma", 2.0) * logp
    else:
        ce = F.cross_entropy(x, t, weight=w, ignore_index=ignore, reduction="none",
                             label_smoothing=options.get("label_smoothing", 0.0))
        loss = ce + options.get("epsilon", 1.0) * wt * (1 - torch.exp(logp))
    return torch.where(kept, loss, 0.0)


def row_reference(cls: str, options: dict, x, t):
    import torch

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t)
    value = torch_row_formula(torch, cls, options, xt, tt)
    (grad,) = torch.autograd.grad(value.sum(), xt, create_graph=True)
    flat = grad.reshape(-1)
    hess = torch.stack([torch.autograd.grad(flat[i], xt, retain_graph=True)[0].reshape(-1)[i]
                        for i in range(flat.numel())]).reshape(x.shape)
    return value.detach().numpy(), grad.detach().numpy(), hess.detach().numpy()


def main() -> None:
    import sklearn
    import torch

    arrays, meta = {}, []
    for k, (cls, options, ref) in enumerate(CASES):
        x, y = inputs(cls, k)
        value, grad, hess = reference(cls, options, ref, x, y)
        for name, arr in (("x", x), ("y", y), ("value", value), ("grad", grad), ("hess", hess)):
            arrays[f"{k}_{name}"] = np.asarray(arr, np.float64)
        meta.append({"cls": cls, "options": options, "reference": ref})
    for k, (cls, options) in enumerate(ROW_CASES):
        x, t = row_inputs(cls, 50 + k)
        for name, arr in zip(("x", "y", "value", "grad", "hess"), (x, t) + row_reference(cls, options, x, t)):
            arrays[f"row{k}_{name}"] = np.asarray(arr)
    arrays["meta"] = np.array(json.dumps({"cases": meta, "row_cases": ROW_CASES, "sklearn": sklearn.__version__,
                                          "torch": torch.__version__}))
    np.savez_compressed(GOLDEN_PATH, **arrays)
    print(f"wrote {GOLDEN_PATH} ({len(CASES)} elementwise and {len(ROW_CASES)} row cases)")


if __name__ == "__main__":
    main()

"""Numbers that stay right (issue #25): CTC's from_logits at huge logits, PoissonNLL's wrt selections
on every ISA variant, user Distance gradients of the wrong shape, and Dask's zero denominators."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
from lossengine import _isa


# -- CTC from_logits: each frame shifted by its max before the log-sum-exp -------------------------
def _ctc_case():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 2, 5))
    return logits, np.array([[1, 2], [3, 3]]), np.array([6, 6]), np.array([2, 2])


@pytest.mark.parametrize("offset", [1e8, 1e16, 1e300, -1e300])
def test_ctc_from_logits_is_exact_at_any_offset(offset):
    logits, targets, input_lengths, target_lengths = _ctc_case()
    shifted = logits + offset               # the input as rounded; its rows' differences are exact
    exact = shifted - shifted.max(axis=-1, keepdims=True)
    loss = le.CTCLoss(from_logits=True, reduction="none")
    value, grad = loss.forward_backward(shifted, targets, input_lengths, target_lengths)
    expected_value, expected_grad = loss.forward_backward(exact, targets, input_lengths, target_lengths)
    # The old fold of max + log-sum-exp into one shift: 1e-9 relative at 1e8, 15% at 1e16, a negative
    # loss at 1e300.
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(grad, expected_grad)
    assert np.all(value > 0)


def test_ctc_from_logits_matches_torch_at_a_large_offset():
    torch = pytest.importorskip("torch")
    logits, targets, input_lengths, target_lengths = _ctc_case()
    shifted = logits + 1e16
    x = torch.tensor(shifted, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.ctc_loss(x.log_softmax(-1), torch.tensor(targets), torch.tensor(input_lengths),
                                            torch.tensor(target_lengths), reduction="sum")
    expected.backward()
    value, grad = le.CTCLoss(from_logits=True, reduction="sum").forward_backward(
        shifted, targets, input_lengths, target_lengths)
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-10, atol=1e-14)


# -- PoissonNLL: wrt selections bit for bit, under every variant this machine runs -------------------
POISSON_PROBE = r"""
import json, numpy as np, lossengine as le
rng = np.random.default_rng(1)
mismatches = []
for options in ({}, {"full": True}, {"log_input": False}):
    for reduction in ("mean", "sum", "none"):
        loss = le.PoissonNLLLoss(reduction=reduction, **options)
        for n in (1, 2, 3, 5, 15, 37):
            for dtype in (np.float64, np.float32):
                x = (rng.random(n) + 0.1).astype(dtype)
                y = (rng.random(n) * 3).astype(dtype)
                alone = loss.backward(x, y, wrt="input")
                both = loss.backward(x, y, wrt=("input", "target"))[0]
                if not np.array_equal(alone, both):
                    mismatches.append([options, reduction, n, np.dtype(dtype).name])
print(json.dumps(mismatches))
"""


def _variants_to_run() -> list[str]:
    runnable = _isa.supported_variants()
    return [_isa.BASELINE] + [v for v, _ in _isa.VARIANTS
                              if v in runnable and _isa._variant_file(v, "_elementwise")]


@pytest.mark.parametrize("variant", [_isa.BASELINE] + [v for v, _ in _isa.VARIANTS])
def test_poisson_nll_wrt_selections_agree_bit_for_bit(variant, tmp_path):
    if variant not in _variants_to_run():
        pytest.skip(f"{variant} is not built or this CPU cannot run it")
    # A fresh process per variant, importing this very lossengine (the installed one, or a build in
    # place) from a neutral folder, so the unbuilt source tree cannot shadow it.
    env = dict(os.environ, LOSSENGINE_ISA=variant, PYTHONPATH=str(Path(le.__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-c", POISSON_PROBE], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# -- Distance.gradients: checked against the rows' shape ------------------------------------------
class _BadGradients(le.EuclideanDistance):
    """The euclidean distance, its gradients returned in a shape that broadcasts into (N, D)."""

    def __init__(self, shape):
        self.shape = shape

    def gradients(self, x1, x2, grad):
        g1, g2 = super().gradients(x1, x2, grad)
        pick = {"(N, 1)": lambda g: g[:, :1], "(D,)": lambda g: g[0], "scalar": lambda g: g[0, 0]}[self.shape]
        return pick(g1), g2


@pytest.mark.parametrize("shape", ["(N, 1)", "(D,)", "scalar"])
@pytest.mark.parametrize("swap", [False, True])
def test_distance_gradients_of_the_wrong_shape_are_refused(shape, swap):
    rng = np.random.default_rng(3)
    a, p, n = (rng.standard_normal((4, 6)) for _ in range(3))
    loss = le.TripletMarginWithDistanceLoss(distance_function=_BadGradients(shape), swap=swap, margin=5.0)
    with pytest.raises(ValueError, match=r"_BadGradients.gradients\(anchor, positive\) must return gradients "
                                         r"of the rows' shape \(4, 6\); g1 has shape"):
        loss.backward(a, p, n)


def test_distance_gradients_shape_checked_by_the_validator_adapter():
    loss = le.losses.embedding.distance_loss(type("Flat", (le.EuclideanDistance,), {
        "gradients": lambda self, x1, x2, grad: (np.zeros(x1.shape[-1]), np.zeros(x2.shape))}))()
    x = np.ones((4, 6))
    with pytest.raises(ValueError, match=r"g1 has shape \(6,\)"):
        loss.backward(x, x, wrt=("x1", "x2"))


# -- Dask: a zero 'mean' denominator is NaN, as in memory --------------------------------------------
@pytest.mark.parametrize("case", ["every target ignored", "empty"])
def test_dask_zero_denominator_gives_what_memory_gives(case):
    da = pytest.importorskip("dask.array")
    from lossengine.integrations import dask as le_dask
    if case == "empty":
        loss, arrays, chunks = le.MSELoss(), (np.zeros(0), np.zeros(0)), (1, 1)
    else:
        loss = le.CrossEntropyLoss()
        arrays, chunks = (np.random.default_rng(0).standard_normal((6, 3)), np.full(6, -100)), ((3, 3), 3)
    lazy = [da.from_array(a, chunks=c) for a, c in zip(arrays, chunks)]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = le_dask.forward(loss, *lazy).compute()
        grad = le_dask.backward(loss, *lazy).compute()
        assert np.isnan(value) and np.isnan(loss(*arrays))
        np.testing.assert_array_equal(grad, loss.backward(*arrays))

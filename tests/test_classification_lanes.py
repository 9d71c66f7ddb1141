"""Cross-entropy over few classes ((N, C) inputs, C <= 32) runs 16 rows at a time, one row per
vector lane (pyx/classification.pyx.tp, _ce_index_lanes). These tests hold that path to torch at the
sizes where its groups are full, partial and mixed with ignored rows, at its class-count boundary
(32 takes it, 33 the per-row path), and show that a row's bits depend on nothing but the row."""
from __future__ import annotations

import numpy as np
import pytest

import _tolerance as tolerance
import lossengine as le
from test_classification import assert_close

LANE_CLASSES = 32


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _inputs(rng, n, c, dtype, ignore):
    x = (3 * rng.standard_normal((n, c))).astype(dtype)
    target = rng.integers(0, c, n)
    if ignore:
        target[rng.random(n) < 0.3] = -100     # ignored rows in every lane position
    return x, target


def _torch_ce(torch, x, target, weight, reduction, label_smoothing, grad_output):
    X = torch.tensor(x, requires_grad=True)
    w = None if weight is None else torch.tensor(weight.astype(x.dtype))
    value = torch.nn.functional.cross_entropy(X, torch.tensor(target), weight=w, reduction=reduction,
                                              label_smoothing=label_smoothing)
    value.backward(torch.tensor(np.asarray(grad_output, dtype=x.dtype)).expand(value.shape))
    return value.detach().numpy(), X.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, c", [(1, 1), (5, 2), (16, 10), (17, 10), (37, 31), (40, 32), (23, 33), (500, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing, weighted, ignore",
                         [(0.0, False, False), (0.0, True, True), (0.2, False, True), (0.2, True, False)])
def test_against_torch(torch, dtype, n, c, reduction, label_smoothing, weighted, ignore):
    rng = np.random.default_rng(n * 100 + c)
    x, target = _inputs(rng, n, c, dtype, ignore)
    weight = rng.uniform(0.2, 2.0, c) if weighted else None
    grad_output = rng.uniform(0.5, 2.0, n).astype(dtype) if reduction == "none" else np.asarray(1.5, dtype)
    loss = le.CrossEntropyLoss(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    value, grad = loss.forward_backward(x, target, grad_output=grad_output)
    want_value, want_grad = _torch_ce(torch, x, target, weight, reduction, label_smoothing, grad_output)
    assert_close(value, want_value, dtype, "value")
    # Each gradient element is a sum of terms as large as the row's scale g w (p_t - 1 and the
    # smoothing's W p_j - w_j cancel to 0 for a single class): their rounding is the allowance.
    kept = target != -100
    w = np.ones(c) if weight is None else weight
    denom = max(w[target[kept]].sum(), 1e-300) if reduction == "mean" else 1.0
    scale = float(np.max(np.abs(grad_output))) * w.max() / denom
    tolerance.assert_close(grad, want_grad, tolerance.RTOL[np.dtype(dtype)], "gradient", scale)
    assert grad.dtype == dtype and np.asarray(value).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c", [2, 10, LANE_CLASSES])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_hessian_is_the_softmax_diagonal(dtype, c, label_smoothing):
    # d2/dx_j2 of one row: k p_j (1 - p_j) with k = (1 - eps) w_t + eps / C sum_c w_c (the loss's
    # Hessian is that times diag(p) - p p^T); computed here in float64 from the definition.
    rng = np.random.default_rng(c)
    x, target = _inputs(rng, 45, c, dtype, ignore=True)
    weight = rng.uniform(0.2, 2.0, c)
    loss = le.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    grad, hess = loss.gradient_hessian(x, target)
    xd = x.astype(np.float64)
    p = np.exp(xd - xd.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    w = weight.astype(dtype).astype(np.float64)
    kept = target != -100
    wt = np.where(kept, w[np.where(kept, target, 0)], 0.0)
    k = (1 - label_smoothing) * wt + np.where(kept, label_smoothing / c * w.sum(), 0.0)
    assert_close(hess, k[:, None] * p * (1 - p), dtype, "hessian")
    onehot = np.eye(c)[np.where(kept, target, 0)]
    want_grad = (1 - label_smoothing) * wt[:, None] * (p - onehot) + np.where(
        kept, label_smoothing / c, 0.0)[:, None] * (w.sum() * p - w)
    assert_close(grad, want_grad, dtype, "gradient")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_rows_bits_depend_on_the_row_only(dtype):
    # Whatever lane, group or block a row lands in (and the thread count), its loss and gradient
    # are the bits it has alone.
    rng = np.random.default_rng(7)
    x, target = _inputs(rng, 5000, 10, dtype, ignore=True)
    loss = le.CrossEntropyLoss(reduction="none")
    value, grad = loss.forward_backward(x, target, grad_output=np.ones(5000, dtype))
    for i in (0, 1, 15, 16, 17, 408, 409, 4999):
        v, g = loss.forward_backward(x[i:i + 1], target[i:i + 1], grad_output=np.ones(1, dtype))
        assert v.tobytes() == value[i:i + 1].tobytes() and g.tobytes() == grad[i:i + 1].tobytes(), i
    mean = le.CrossEntropyLoss()
    with le.threads(1):
        one = mean.forward_backward(x, target)
    with le.threads(2):
        two = mean.forward_backward(x, target)
    assert one[0].tobytes() == two[0].tobytes() and one[1].tobytes() == two[1].tobytes()


def test_lanes_and_rows_agree_across_the_class_boundary():
    # The same rows through the lane path ((N, C) layout) and the per-row path ((N, C, 2) layout,
    # strided classes) give the same numbers to rounding.
    rng = np.random.default_rng(3)
    for c in (LANE_CLASSES - 1, LANE_CLASSES):
        x, target = _inputs(rng, 40, c, np.float64, ignore=True)
        loss = le.CrossEntropyLoss(reduction="none", label_smoothing=0.1)
        v, g = loss.forward_backward(x, target, grad_output=np.ones(40))
        x2 = np.repeat(x[:, :, None], 2, axis=2)
        v2, g2 = loss.forward_backward(x2, np.repeat(target[:, None], 2, axis=1), grad_output=np.ones((40, 2)))
        np.testing.assert_allclose(v2, np.repeat(v[:, None], 2, axis=1), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(g2, np.repeat(g[:, :, None], 2, axis=2), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("c", [3, 10, LANE_CLASSES])
def test_every_lane_computes_the_same_bits(c):
    # One row in all sixteen lanes of a group: loss, gradient and Hessian equal bit for bit in every
    # lane (a lane computed by another vector width of libmvec's exp or log would differ in the last bits).
    rng = np.random.default_rng(c)
    loss = le.CrossEntropyLoss(reduction="none", label_smoothing=0.05)
    for _ in range(40):
        row = rng.standard_normal(c) * rng.choice([0.1, 1.0, 10.0, 100.0])
        target = np.full(16, rng.integers(0, c))
        for dtype in (np.float64, np.float32):
            x = np.tile(row, (16, 1)).astype(dtype)
            value, grad = loss.forward_backward(x, target, grad_output=np.ones(16, dtype))
            g, h = loss.gradient_hessian(x, target)
            for a in (value[:, None], grad, g, h):
                assert (a == a[0]).all()

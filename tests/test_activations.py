"""lossengine.functional's activations (sigmoid, log_sigmoid, softmax, log_softmax): stable and exact at
the extremes, equal to torch's in both dtypes, and a bad ``dim`` is an IndexError."""
import numpy as np
import pytest

import lossengine as le

X = np.array([[-1000.0, -30.0, -1e-3, 0.0, 2.5, 40.0, 1000.0]])


def test_activations_are_stable_and_exact_at_the_extremes():
    F = le.functional
    s = F.sigmoid(X)
    assert np.all(np.isfinite(s)) and s[0, 0] == 0.0 and s[0, -1] == 1.0 and s[0, 3] == 0.5
    ls = F.log_sigmoid(X)
    assert ls[0, 0] == -1000.0 and ls[0, -1] == 0.0 and np.all(np.isfinite(ls))
    np.testing.assert_allclose(np.exp(F.log_sigmoid(X[:, 1:-1])), F.sigmoid(X[:, 1:-1]), rtol=1e-13)
    lsm = F.log_softmax(X)
    assert np.all(np.isfinite(lsm)) and lsm[0, -1] == 0.0
    np.testing.assert_allclose(F.softmax(X).sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(np.exp(lsm), F.softmax(X), atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_match_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 6)) * 20).astype(dtype)
    t = torch.from_numpy(x)
    F = le.functional
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    for ours, theirs in [(F.sigmoid(x), torch.sigmoid(t)), (F.log_sigmoid(x), torch.nn.functional.logsigmoid(t)),
                         (F.softmax(x, dim=0), torch.softmax(t, 0)), (F.log_softmax(x), torch.log_softmax(t, -1))]:
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=rtol, atol=1e-30)


def test_activation_bad_dim_is_an_index_error():
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        le.functional.softmax(np.zeros((2, 3)), dim=2)

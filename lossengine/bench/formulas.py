"""The peers' computations of each case written out: NumPy references (``reference(options, *arrays)`` ->
(mean loss, input gradient)) and JAX formulas (``formula(jnp, jax, options, *arrays)`` -> the mean loss,
differentiated by ``jax.value_and_grad``), each by torch's definition (reduction='mean')."""
from __future__ import annotations

import numpy as np


def np_sigmoid(z):
    return np.exp(-np.logaddexp(0, -z)).astype(z.dtype, copy=False)


def l1_np(o, x, y):
    d = x - y
    return np.abs(d).mean(), np.sign(d) / d.size


def mse_np(o, x, y):
    d = x - y
    return (d * d).mean(), d * (2 / d.size)


def huber_np(o, x, y):
    delta = o.get("delta", 1.0)
    d = x - y
    a = np.abs(d)
    value = np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)).mean()
    return value, np.clip(d, -delta, delta) / d.size


def smooth_l1_np(o, x, y):
    beta = o.get("beta", 1.0)
    d = x - y
    a = np.abs(d)
    value = np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta).mean()
    return value, np.where(a < beta, d / beta, np.sign(d)) / d.size


def bce_np(o, x, y):
    lx, l1x = np.maximum(np.log(x), -100), np.maximum(np.log1p(-x), -100)
    value = -(y * lx + (1 - y) * l1x).mean()
    return value, (x - y) / np.maximum(x * (1 - x), 1e-12) / x.size


def bce_logits_np(o, x, y):
    return (np.logaddexp(0, x) - y * x).mean(), (np_sigmoid(x) - y) / x.size


def soft_margin_np(o, x, y):
    z = -y * x
    return np.logaddexp(0, z).mean(), -y * np_sigmoid(z) / x.size


def poisson_np(o, x, y):
    e = np.exp(x)
    return (e - y * x).mean(), (e - y) / x.size


def log_softmax_np(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy_np(o, x, t):
    ls = o.get("label_smoothing", 0.0)
    n, c = x.shape
    logp = log_softmax_np(x)
    rows = np.arange(n)
    value = -((1 - ls) * logp[rows, t] + (ls / c) * logp.sum(axis=1)).mean()
    grad = np.exp(logp) - ls / c
    grad[rows, t] -= 1 - ls
    return value, grad / n


def nll_np(o, x, t):
    n = x.shape[0]
    rows = np.arange(n)
    grad = np.zeros_like(x)
    grad[rows, t] = -1.0 / n
    return -x[rows, t].mean(), grad


def multi_margin_np(o, x, t):
    margin = o.get("margin", 1.0)
    n, c = x.shape
    rows = np.arange(n)
    m = margin - x[rows, t][:, None] + x
    m[rows, t] = 0
    active = m > 0
    grad = active.astype(x.dtype)
    grad[rows, t] = -active.sum(axis=1)
    return np.maximum(m, 0).sum() / (n * c), grad / (n * c)


def l1_jax(jnp, jax, o, x, y):
    return jnp.mean(jnp.abs(x - y))


def mse_jax(jnp, jax, o, x, y):
    return jnp.mean((x - y) ** 2)


def huber_jax(jnp, jax, o, x, y):
    delta = o.get("delta", 1.0)
    a = jnp.abs(x - y)
    return jnp.mean(jnp.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta)))


def smooth_l1_jax(jnp, jax, o, x, y):
    beta = o.get("beta", 1.0)
    a = jnp.abs(x - y)
    return jnp.mean(jnp.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta))


def bce_jax(jnp, jax, o, x, y):
    return -jnp.mean(y * jnp.maximum(jnp.log(x), -100) + (1 - y) * jnp.maximum(jnp.log1p(-x), -100))


def bce_logits_jax(jnp, jax, o, x, y):
    return jnp.mean(jax.nn.softplus(x) - y * x)


def soft_margin_jax(jnp, jax, o, x, y):
    return jnp.mean(jax.nn.softplus(-y * x))


def poisson_jax(jnp, jax, o, x, y):
    return jnp.mean(jnp.exp(x) - y * x)


def cross_entropy_jax(jnp, jax, o, x, t):
    ls = o.get("label_smoothing", 0.0)
    logp = jax.nn.log_softmax(x, axis=1)
    picked = jnp.take_along_axis(logp, t[:, None], axis=1)[:, 0]
    if not ls:
        return -jnp.mean(picked)
    return -jnp.mean((1 - ls) * picked + (ls / x.shape[1]) * logp.sum(axis=1))


def nll_jax(jnp, jax, o, x, t):
    return -jnp.mean(jnp.take_along_axis(x, t[:, None], axis=1))


def multi_margin_jax(jnp, jax, o, x, t):
    margin = o.get("margin", 1.0)
    picked = jnp.take_along_axis(x, t[:, None], axis=1)
    m = jnp.maximum(margin - picked + x, 0)
    others = jnp.arange(x.shape[1])[None, :] != t[:, None]
    return jnp.sum(jnp.where(others, m, 0)) / x.size


def triplet_jax(jnp, jax, o, a, p, n):
    eps, margin = 1e-6, o.get("margin", 1.0)
    d_pos = jnp.sqrt(jnp.sum((a - p + eps) ** 2, axis=-1))
    d_neg = jnp.sqrt(jnp.sum((a - n + eps) ** 2, axis=-1))
    return jnp.mean(jnp.maximum(margin + d_pos - d_neg, 0))



def margin_ranking_jax(jnp, jax, o, x1, x2, y):
    return jnp.mean(jnp.maximum(0.0, -y * (x1 - x2) + o.get("margin", 0.0)))


def cosine_embedding_jax(jnp, jax, o, x1, x2, y):
    # torch's: sum(x1 x2) / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12)), where() on the target
    margin = o.get("margin", 0.0)
    cos = jnp.sum(x1 * x2, -1) / jnp.sqrt((jnp.sum(x1 * x1, -1) + 1e-12) * (jnp.sum(x2 * x2, -1) + 1e-12))
    return jnp.mean(jnp.where(y == 1, 1.0 - cos, jnp.where(y == -1, jnp.maximum(0.0, cos - margin), 0.0)))


def ctc_optax(jnp, jax, o, log_probs, targets, input_lengths, target_lengths):
    """optax.ctc_loss on (N, T, C) logits: the log-probabilities themselves (their log_softmax is the
    identity), so its gradient is the one lossengine gives with from_logits=True; torch's 'mean'
    divides each sample's loss by its target length."""
    import optax

    T, S = log_probs.shape[0], targets.shape[1]
    logit_paddings = (jnp.arange(T)[None, :] >= input_lengths[:, None]).astype(log_probs.dtype)
    label_paddings = (jnp.arange(S)[None, :] >= target_lengths[:, None]).astype(log_probs.dtype)
    per_sample = optax.ctc_loss(jnp.transpose(log_probs, (1, 0, 2)), logit_paddings, targets.astype(jnp.int32),
                                label_paddings, blank_id=0)
    return jnp.mean(per_sample / jnp.maximum(target_lengths, 1).astype(log_probs.dtype))

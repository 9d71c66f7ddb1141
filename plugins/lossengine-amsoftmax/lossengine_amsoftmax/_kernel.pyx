# cython: language_level=3, cdivision=True
"""The additive-margin softmax row function, handed to lossengine's classification driver as a capsule."""
from libc.math cimport exp, log
from libc.stdint cimport int64_t

from lossengine.rowwise_api cimport row_fn_capsule


cdef double am_softmax(Py_ssize_t C, const double* x, int64_t t, const double* params,
                       double* grad) noexcept nogil:
    # z_j = s x_j (j != t), z_t = s (x_t - m); loss = logsumexp(z) - z_t, d loss / d x_j =
    # s (softmax(z)_j - [j == t]). Subtracting max z is the standard overflow-free log-sum-exp
    # (every exp argument <= 0, and the largest is exactly 0, so the sum is >= 1). z lives in grad,
    # then exp(z - max) does: no other scratch. Max and sum run over 4 independent lanes combined in
    # a fixed order: the loops vectorize, and the bits do not depend on where the row came from.
    cdef double s = params[0], m = params[1]
    cdef double zt = s * (x[t] - m), zmax, total, inv
    cdef double lane[4]
    cdef Py_ssize_t j, l, c4 = C - C % 4
    for j in range(C):
        grad[j] = s * x[j]
    grad[t] = zt
    zmax = grad[0]
    if c4:
        for l in range(4):
            lane[l] = grad[l]
        for j in range(4, c4, 4):
            for l in range(4):
                lane[l] = grad[j + l] if grad[j + l] > lane[l] else lane[l]
        for l in range(4):
            zmax = lane[l] if lane[l] > zmax else zmax
    for j in range(c4, C):
        zmax = grad[j] if grad[j] > zmax else zmax
    for j in range(C):
        grad[j] = exp(grad[j] - zmax)
    for l in range(4):
        lane[l] = 0.0
    for j in range(0, c4, 4):
        for l in range(4):
            lane[l] += grad[j + l]
    total = (lane[0] + lane[1]) + (lane[2] + lane[3])
    for j in range(c4, C):
        total += grad[j]
    inv = s / total
    for j in range(C):
        grad[j] = inv * grad[j]
    grad[t] -= s
    return log(total) - (zt - zmax)


AM_SOFTMAX = row_fn_capsule(am_softmax)

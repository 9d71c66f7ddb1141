# cython: language_level=3, cdivision=True
"""The additive-margin softmax row function, handed to lossengine's classification driver as a capsule."""
from libc.math cimport exp, log
from libc.stdint cimport int64_t

from lossengine.row_math cimport expf_nonpositive, row_maxf
from lossengine.rowwise_api cimport row_f32_fn_capsule, row_f32_scaled_fn_capsule, row_fn_capsule


cdef double am_softmax(Py_ssize_t C, const double* x, int64_t t, const double* params,
                       double* grad) noexcept nogil:
    # z_j = s x_j (j != t), z_t = s (x_t - m); loss = logsumexp(z) - z_t, d loss / d x_j =
    # s (softmax(z)_j - [j == t]). Subtracting max z is the standard overflow-free log-sum-exp
    # (every exp argument <= 0). z lives in grad, then exp(z - max) does: no other scratch. Max and sum run over 4 independent lanes combined in
    # a fixed order: the loops vectorize, and the bits do not depend on where the row came from.
    cdef double s = params[0], m = params[1]
    cdef double zt = s * (x[t] - m), zmax, total, inv, z
    cdef double lane[4]
    cdef Py_ssize_t j, l, c4 = C - C % 4
    # pass 1: z into grad, and M = max(s max_j x_j, z_t) >= max z, over M - max z <= s max(m, 0):
    # the exps stay >= exp(-s m), the sum far from underflow while s m < 100; beyond that (never in
    # practice) the exact max z is taken in one more pass.
    for l in range(4):
        lane[l] = zt
    for j in range(0, c4, 4):
        for l in range(4):
            z = s * x[j + l]
            grad[j + l] = z
            lane[l] = z if z > lane[l] else lane[l]
    zmax = (lane[0] if lane[0] > lane[1] else lane[1])
    zmax = lane[2] if lane[2] > zmax else zmax
    zmax = lane[3] if lane[3] > zmax else zmax
    for j in range(c4, C):
        z = s * x[j]
        grad[j] = z
        zmax = z if z > zmax else zmax
    grad[t] = zt
    if s * m > 100.0:
        zmax = zt
        for j in range(C):
            zmax = grad[j] if grad[j] > zmax else zmax
    # pass 2: exp(z - M) (a loop without a reduction: it vectorizes with libmvec), then its sum
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
    # pass 3: the gradient s (softmax - onehot)
    inv = s / total
    for j in range(C):
        grad[j] = inv * grad[j]
    grad[t] -= s
    return log(total) - (zt - zmax)


cdef inline double _am_softmax_f32(Py_ssize_t C, const float* x, int64_t t, const double* params,
                                   double scale, float* grad) noexcept nogil:
    # The same in float32 for float32 inputs, shaped as the built-in cross-entropy's float32 row:
    # max and exp (lossengine/row_math.pxd: both vectorize, 16 lanes wide with AVX-512), sum,
    # scale; no pass that only stores z. Every sum, max z - z_t, e_t and the log are in double, so
    # the loss keeps float32 accuracy relative to its size (a small loss is not a difference of two
    # large floats). The shift M = max(s max_j x_j, z_t) >= max z, as in the double form.
    #
    # Class t's margin stays out of the vector loops: its slot gets exp(s x_t - M) like every other
    # class, the lane sum takes it in, and the scalar total then swaps it for e_t = exp(z_t - M).
    # Storing e_t into grad[t] before the sum instead costs each row ~10% at C = 100: the sum's
    # vector load cannot take the scalar store's value by forwarding and waits for it (and the exp
    # behind it) to retire. The swap loses at most ~ulp(total) * (1 + exp(s m)) relative to the
    # true sum (slot t is exp(s m) times e_t); up to s m = 12 that is below 4e-11. Past that (only
    # large margins, s m > 12) <float>e_t is stored into slot t before the sum, and the same swap
    # replaces it by the double e_t without cancellation.
    cdef float s = <float>params[0], fmax, xmax
    cdef double zt = params[0] * (<double>x[t] - params[1]), zmax, total, tail = 0.0, inv, et
    cdef double acc[8]
    cdef Py_ssize_t j, l, c8 = C - C % 8
    cdef double sm = params[0] * params[1]
    cdef bint large_margin = sm > 12.0
    xmax = row_maxf(x, C)
    zmax = s * xmax
    zmax = zt if zt > zmax else zmax
    if sm > 50.0:     # M - max z <= s m: past 50 take the exact max (never in practice)
        zmax = zt
        for j in range(C):
            if j != t:
                zmax = s * x[j] if s * x[j] > zmax else zmax
    fmax = <float>zmax
    et = exp(zt - zmax)
    for j in range(C):
        grad[j] = expf_nonpositive(s * x[j] - fmax)
    if large_margin:
        grad[t] = <float>et
    for l in range(8):
        acc[l] = 0.0
    for j in range(0, c8, 8):
        for l in range(8):
            acc[l] += grad[j + l]
    for j in range(c8, C):
        tail += grad[j]
    total = (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail
    # slot t's float term out, the double e_t in (the bound above; no cancellation for a stored e_t)
    total = (total - <double>grad[t]) + et
    # the gradient scale s (softmax - onehot), times the driver's coefficient (1 for the unscaled
    # form) in the same multiply
    inv = scale * params[0] / total
    for j in range(C):
        grad[j] = <float>(inv * grad[j])
    grad[t] = <float>(inv * et - scale * params[0])
    return log(total) - (zt - zmax)


cdef double am_softmax_f32(Py_ssize_t C, const float* x, int64_t t, const double* params,
                           float* grad) noexcept nogil:
    return _am_softmax_f32(C, x, t, params, 1.0, grad)


cdef double am_softmax_f32_scaled(Py_ssize_t C, const float* x, int64_t t, const double* params,
                                  double scale, float* grad) noexcept nogil:
    # The scaled form (rowwise_api.pxd): the driver passes the row's gradient coefficient and, for
    # (N, C) inputs, the output row as grad, so it makes no pass of its own over the row.
    return _am_softmax_f32(C, x, t, params, scale, grad)


AM_SOFTMAX = row_fn_capsule(am_softmax)
AM_SOFTMAX_F32 = row_f32_fn_capsule(am_softmax_f32)
AM_SOFTMAX_F32_SCALED = row_f32_scaled_fn_capsule(am_softmax_f32_scaled)

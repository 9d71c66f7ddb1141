# The built-in embedding losses: the distance helpers they share, each loss's math (one section per
# loss), then each one's table row and row function. Included by pyx/embedding.pyx.tp (the driver);
# both are rendered and compiled by setup.py.
#
# A loss is a row, a comment starting "#@" (continued on the next "#@" lines), directly followed by
# the row function it names:
#
#   #@ loss(kernel="Cosine", row="_cosine", inputs=2, options=[("double", "margin")])
#
# The rows and their row functions come last, in the section "The rows", after every loss's math
# (one section per loss) and the shared helpers: GCC's inlining decisions follow the order functions
# are defined in, and this order compiles to the same kernels, instruction for instruction, as the
# single-file template did before the split (issue #29).
#
# setup.py reads the rows (literals only; a row naming a function this file does not define is a build
# error) and hands them, in file order, to the driver template and to the type stub
# lossengine/_embedding.pyi.tp. From a row the driver generates the option struct <kernel>Op, its
# member of the fused type the driver is specialized on, the dispatch to the row function, the
# block's scratch, the entry points and the Python-visible kernel class
# lossengine._embedding.<kernel>, whose __init__ takes the options by name. The keys:
#
#   kernel    the kernel class's name; the declaration in lossengine/losses/embedding.py names it
#   row       ``cdef inline double f(const <kernel>Op* op, Buffers* b, Py_ssize_t r, double* scratch,
#             floating_t dtype_tag)``: row r of every input (b.x[k] + r * D; the row's +-1 target
#             b.target[r] where the loss has one); with g = b.scale * upstream[r * b.ustep], the
#             upstream gradient of the row's loss, it writes g * d loss / d input into the rows of
#             the b.g[k] that are not NULL and returns the row's loss
#   inputs    how many (N, D) inputs a row reads, 1 to MAX_INPUTS (the kernel class's ``inputs``)
#   options   [(C type, name)], the fields of <kernel>Op, in the order __init__ takes them (default [])
#   scratch   optional: the row function's scratch is scratch * (D + 1) doubles, allocated once per
#             block (a failed allocation raises MemoryError); 0 (the default) passes NULL
#
# Design. An embedding loss is a function of one row of each of its inputs (two for
# CosineEmbeddingLoss, three for TripletMarginLoss: anchor, positive, negative) and, for the cosine
# loss, the row's +-1 target. Each row function reads its rows once to form the row's distances (or
# cosine), returns the row's loss and, when the row is active, writes every requested gradient in a
# second pass over the same rows (L1-resident: a row is D values): value, distances and gradients
# fused, no N x D temporary. The default triplet (p = 2) has its own path, _triplet_l2, that writes
# each requested gradient row straight to its array with the general path's arithmetic in its order
# (the same bits); value-only calls skip the gradient pass. Rows with an extreme distance (>= 1e300)
# take the general path, which rescales a row whose powers overflow. Inactive rows (a hinge at zero, a
# target outside {1, -1}) write exact zeros, as torch's where()/clamp_min backward does, even for a
# NaN grad_output. Row sums (dot products, norms) run in double in index order for both dtypes.
#
# Formulas follow torch 2.13's CPU kernels and autograd (noted inline), quirks included.

from libc.math cimport sqrt, fabs, pow, NAN, INFINITY
from libc.float cimport DBL_MIN
from _common cimport floating_t


# =============================================================================================
# Shared distance helpers (the triplet's p-norm and cosine distances; the cosine embedding's dot).
# =============================================================================================
# ---------------------------------------------------------------------------------------------
# Row helpers. Sums run in double over 8 independent lanes combined in a fixed order (as the
# classification family's): one accumulator would make a D-long chain of dependent adds, the row's
# real cost; lanes vectorize, and the order depends on D only, never on the vector width.
# ---------------------------------------------------------------------------------------------
cdef inline double _lanes(double* acc) noexcept nogil:
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef inline double _dot(const floating_t* a, const floating_t* b, Py_ssize_t D) noexcept nogil:
    cdef double acc[8]
    cdef double tail = 0.0
    cdef Py_ssize_t j, l, d8 = D - D % 8
    for l in range(8):
        acc[l] = 0.0
    for j in range(0, d8, 8):
        for l in range(8):
            acc[l] += <double>a[j + l] * <double>b[j + l]
    for j in range(d8, D):
        tail += <double>a[j] * <double>b[j]
    return _lanes(acc) + tail


cdef inline double _sum_power_diff(const floating_t* a, const floating_t* b, Py_ssize_t D, double p,
                                   double eps, double m) noexcept nogil:
    """sum_j |(a_j - b_j + eps) / m|^p, lane-summed (p = 1 and 2 without pow). m is 1 (the fast
    pass: no division, the compiler folds it away) or the row's largest |a_j - b_j + eps| (the
    rescaled pass of a row whose powers overflowed)."""
    cdef double acc[8]
    cdef double tail = 0.0, v
    cdef Py_ssize_t j, l, d8 = D - D % 8
    for l in range(8):
        acc[l] = 0.0
    if p == 2.0:
        for j in range(0, d8, 8):
            for l in range(8):
                v = (<double>a[j + l] - <double>b[j + l] + eps) / m
                acc[l] += v * v
        for j in range(d8, D):
            v = (<double>a[j] - <double>b[j] + eps) / m
            tail += v * v
    elif p == 1.0:
        for j in range(0, d8, 8):
            for l in range(8):
                acc[l] += fabs((<double>a[j + l] - <double>b[j + l] + eps) / m)
        for j in range(d8, D):
            tail += fabs((<double>a[j] - <double>b[j] + eps) / m)
    else:
        for j in range(0, d8, 8):
            for l in range(8):
                acc[l] += pow(fabs((<double>a[j + l] - <double>b[j + l] + eps) / m), p)
        for j in range(d8, D):
            tail += pow(fabs((<double>a[j] - <double>b[j] + eps) / m), p)
    return _lanes(acc) + tail


cdef inline double _max_abs_diff(const floating_t* a, const floating_t* b, Py_ssize_t D,
                                 double eps) noexcept nogil:
    cdef double m = 0.0, v
    cdef Py_ssize_t j
    for j in range(D):
        v = fabs(<double>a[j] - <double>b[j] + eps)
        if v > m:
            m = v
    return m


cdef inline double _root(double s, double p) noexcept nogil:
    if p == 2.0:
        return sqrt(s)
    if p == 1.0:
        return s
    return pow(s, 1.0 / p)


cdef inline double _pnorm_distance(const floating_t* a, const floating_t* b, Py_ssize_t D, double p,
                                   double eps, bint single) noexcept nogil:
    # torch.pairwise_distance(a, b, p, eps) = ||a - b + eps||_p (eps added to the difference).
    cdef double s, m
    if single:
        # torch reduces a last axis of one element ((D,) = (1,), (N, 1)) to |v| for any p, without
        # the power and root: exact, also where |v|^p over- or underflows. A 0-d input is not
        # single: torch takes the power and the root of its one element (|v| = 1e-300 gives 0).
        return fabs(<double>a[0] - <double>b[0] + eps)
    s = _sum_power_diff(a, b, D, p, eps, 1.0)
    if s == INFINITY:
        # A power overflowed (|v| near 1e308, or 1e103 for p = 3): the row again, divided by its
        # largest |v| (hypot's scaling), so the distance is finite where the true one is; torch
        # gives inf here. Rare, so the common row pays one comparison. An infinite v (an inf
        # input, or a difference that overflows) has no finite scale: the distance stays inf.
        m = _max_abs_diff(a, b, D, eps)
        if m < INFINITY:
            return m * _root(_sum_power_diff(a, b, D, p, eps, m), p)
    # A row whose powers underflow is not rescaled: torch sums the unscaled powers (a row of
    # 1e-300s has distance 0 and gradient 0 in torch), and its gradients are torch's only if the
    # distance is.
    return _root(s, p)


cdef inline void _pnorm_distance_grad(const floating_t* a, const floating_t* b, Py_ssize_t D, double p,
                                      double eps, double dist, double c, double* ga, double* gb) noexcept nogil:
    """Adds c * d dist / d a to ga and its negative to gb: torch's norm backward, zero where the
    norm is 0 (and, for p < 1, where an element of the difference is 0)."""
    cdef double v, h, scale, q
    cdef Py_ssize_t j
    if dist == 0.0:
        return
    if p == 2.0:
        if dist < 1e300:
            # torch's v * (c / dist), the same rounding
            scale = c / dist
            for j in range(D):
                h = scale * (<double>a[j] - <double>b[j] + eps)
                ga[j] += h
                gb[j] -= h
        else:
            # c / dist would be subnormal (digits lost): (v / dist) * c
            for j in range(D):
                h = (<double>a[j] - <double>b[j] + eps) / dist * c
                ga[j] += h
                gb[j] -= h
    elif p == 1.0:
        for j in range(D):
            v = <double>a[j] - <double>b[j] + eps
            h = c * (1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0))
            ga[j] += h
            gb[j] -= h
    else:
        # sign(v) |v|^(p - 1) / dist^(p - 1), as torch forms it (its p < 1 branch multiplies by
        # dist^(1 - p) and masks v = 0, where |v|^(p - 1) is inf, to 0). For p > 1, where
        # dist^(p - 1) overflows or is subnormal (|v| near 1e308 for p = 3: torch's own is NaN
        # there), sign(v) (|v| / dist)^(p - 1) instead, a power of a ratio of at most 1.
        q = p - 1.0
        if p < 1.0:
            scale = c * pow(dist, -q)
        else:
            scale = pow(dist, q)
            scale = c / scale if DBL_MIN <= scale < INFINITY else NAN
        if scale == scale:
            for j in range(D):
                v = <double>a[j] - <double>b[j] + eps
                h = scale * pow(fabs(v), q) if v != 0.0 else scale * 0.0   # NaN for a NaN c, as torch
                h = h if v > 0.0 else -h
                ga[j] += h
                gb[j] -= h
        else:
            for j in range(D):
                v = <double>a[j] - <double>b[j] + eps
                h = c * pow(fabs(v) / dist, q)
                h = h if v > 0.0 else -h
                ga[j] += h
                gb[j] -= h


cdef double COSINE_EPS = 1e-8


cdef struct CosineParts:
    # Unscaled (sa = sb = 1): na, nb, ab are |a|, |b|, a . b. Scaled: those of a / sa and b / sb,
    # cos = ab ra rb with ra = sa / max(|a|, eps), and inv_na = 1 / max(|a|, eps).
    double ab, ra, rb, inv_na, inv_nb, na, nb      # na, nb: the (scaled) norms, 0 only for a zero row
    double sa, sb                                  # the scales a and b were divided by (1 unscaled)


cdef inline double _clamped_norm(double n) noexcept nogil:
    return n if n > COSINE_EPS else COSINE_EPS


cdef inline double _max_abs(const floating_t* a, Py_ssize_t D) noexcept nogil:
    cdef double m = 0.0, v
    cdef Py_ssize_t j
    for j in range(D):
        v = fabs(<double>a[j])
        if v > m:
            m = v
    return m


cdef inline void _cosine_parts(const floating_t* a, const floating_t* b, Py_ssize_t D,
                               CosineParts* q) noexcept nogil:
    """torch.cosine_similarity's pieces: (a / max(|a|, eps)) . (b / max(|b|, eps)), eps = 1e-8.
    A row whose squares or norm product overflow (|v| past 1e154) is divided by its largest |v|
    first (hypot's scaling; cos is invariant to it), so the distance is the true one where torch's
    norms are inf and its cosine 0. Rare, so the common row pays three comparisons."""
    cdef double na2 = _dot(a, a, D), nb2 = _dot(b, b, D), ab = _dot(a, b, D), sa, sb, x, y
    cdef double acc_aa = 0.0, acc_bb = 0.0, acc_ab = 0.0
    cdef Py_ssize_t j
    q.sa = 1.0
    q.sb = 1.0
    q.na = sqrt(na2)
    q.nb = sqrt(nb2)
    q.ab = ab
    if na2 < INFINITY and nb2 < INFINITY and _clamped_norm(q.na) * _clamped_norm(q.nb) < INFINITY:
        return
    sa = _max_abs(a, D)
    sb = _max_abs(b, D)
    if not (sa < INFINITY and sb < INFINITY):
        return                      # an inf (or NaN) input has no finite scale: torch's numbers
    sa = sa if sa > 0.0 else 1.0
    sb = sb if sb > 0.0 else 1.0
    for j in range(D):
        x = <double>a[j] / sa
        y = <double>b[j] / sb
        acc_aa += x * x
        acc_bb += y * y
        acc_ab += x * y
    q.sa = sa
    q.sb = sb
    q.na = sqrt(acc_aa)             # |a| = sa * q.na (which may itself overflow: never formed)
    q.nb = sqrt(acc_bb)
    q.ab = acc_ab
    # ra = sa / max(sa |a'|, eps): 1 / |a'| unless the true norm is below eps.
    q.ra = 1.0 / q.na if sa * q.na > COSINE_EPS else sa / COSINE_EPS
    q.rb = 1.0 / q.nb if sb * q.nb > COSINE_EPS else sb / COSINE_EPS
    q.inv_na = q.ra / sa
    q.inv_nb = q.rb / sb


cdef inline double _cosine_distance(const floating_t* a, const floating_t* b, Py_ssize_t D) noexcept nogil:
    # torch.cosine_similarity: (a / max(|a|, eps)) . (b / max(|b|, eps)), eps = 1e-8.
    cdef CosineParts q
    _cosine_parts(a, b, D, &q)
    if q.sa == 1.0 and q.sb == 1.0:
        return 1.0 - q.ab / (_clamped_norm(q.na) * _clamped_norm(q.nb))
    return 1.0 - q.ab * q.ra * q.rb


cdef inline void _cosine_distance_grad(const floating_t* a, const floating_t* b, Py_ssize_t D, double c,
                                       double* ga, double* gb) noexcept nogil:
    """Adds c * d dist / d a to ga and c * d dist / d b to gb. torch clamps each norm at eps under
    no_grad: the clamped norm divides, the norm's own gradient flows as if unclamped (a / |a|, and
    zero where |a| = 0). With Na = max(|a|, eps): d dist / d a = -b / (Na Nb) + cos a / (Na |a|),
    formed on the scaled rows a' = a / sa (a / |a| = a' / |a'|) so nothing overflows."""
    cdef CosineParts q
    cdef double k, ka, kb, cos, Na, Nb
    cdef Py_ssize_t j
    _cosine_parts(a, b, D, &q)
    if q.sa == 1.0 and q.sb == 1.0:
        # The unscaled row, in the rounding torch's parity tests were matched with.
        Na = _clamped_norm(q.na)
        Nb = _clamped_norm(q.nb)
        k = -c / (Na * Nb)                              # d dist = -d cos
        ka = 0.0 if q.na == 0.0 else -k * q.ab / (Na * q.na)
        kb = 0.0 if q.nb == 0.0 else -k * q.ab / (Nb * q.nb)
        for j in range(D):
            ga[j] += k * <double>b[j] + ka * <double>a[j]
            gb[j] += k * <double>a[j] + kb * <double>b[j]
        return
    cos = q.ab * q.ra * q.rb
    ka = 0.0 if q.na == 0.0 else c * cos * q.inv_na / q.na
    kb = 0.0 if q.nb == 0.0 else c * cos * q.inv_nb / q.nb
    for j in range(D):
        ga[j] += -c * q.rb * q.inv_na * (<double>b[j] / q.sb) + ka * (<double>a[j] / q.sa)
        gb[j] += -c * q.ra * q.inv_nb * (<double>a[j] / q.sa) + kb * (<double>b[j] / q.sb)


# =============================================================================================
# CosineEmbeddingLoss.
# =============================================================================================
# torch's EPSILON is a float constant: 1e-12 rounded to float32 (9.99999996e-13), in float64 too.
cdef double COSINE_EMBEDDING_EPS = <float>1e-12


cdef inline double _cosine_embedding_loss(const CosineEmbeddingOp* op, Buffers* b, Py_ssize_t r, double g,
                                          floating_t* g1, floating_t* g2) noexcept nogil:
    # torch: cos = sum(x1 x2) / sqrt((sum(x1^2) + 1e-12) (sum(x2^2) + 1e-12));
    # loss = 1 - cos where y == 1, max(0, cos - margin) where y == -1, 0 for any other y (where()).
    cdef Py_ssize_t D = b.D, j
    cdef const floating_t* x1 = <const floating_t*>b.x[0] + r * D
    cdef const floating_t* x2 = <const floating_t*>b.x[1] + r * D
    cdef double y = (<const floating_t*>b.target)[r]
    cdef double prod = _dot(x1, x2, D)
    cdef double m1 = _dot(x1, x1, D) + COSINE_EMBEDDING_EPS
    cdef double m2 = _dot(x2, x2, D) + COSINE_EMBEDDING_EPS
    cdef double denom = sqrt(m1 * m2)
    cdef double cos = prod / denom, loss = 0.0, dcos = 0.0
    if y == 1.0:
        loss = 1.0 - cos
        dcos = -g
    elif y == -1.0:
        if cos - op.margin >= 0.0:          # clamp_min's gradient passes at the boundary
            loss = cos - op.margin
            dcos = g
    # d cos / d x1 = x2 / denom - cos x1 / m1 (and symmetrically), as k x2 - k1 x1 with the row's
    # coefficients formed once: no division per element (two each made the gradient pass 3x the
    # value pass). An inactive row (dcos = 0) writes exact zeros, even for non-finite inputs.
    if g1 != NULL:
        _cosine_grad_row(x1, x2, dcos / denom, dcos * cos / m1, dcos == 0.0, D, g1)
    if g2 != NULL:
        _cosine_grad_row(x2, x1, dcos / denom, dcos * cos / m2, dcos == 0.0, D, g2)
    return loss


cdef inline void _cosine_grad_row(const floating_t* x, const floating_t* other, double k, double kx, bint zero,
                                  Py_ssize_t D, floating_t* out) noexcept nogil:
    """out = k other - kx x (zeros when ``zero``)."""
    cdef Py_ssize_t j
    if zero:
        for j in range(D):
            out[j] = 0
        return
    for j in range(D):
        out[j] = <floating_t>(k * <double>other[j] - kx * <double>x[j])


# =============================================================================================
# TripletMarginLoss (and TripletMarginWithDistanceLoss: its distance option).
# =============================================================================================
cdef enum:
    DISTANCE_PNORM = 0      # torch.pairwise_distance: ||x1 - x2 + eps||_p over the row
    DISTANCE_COSINE = 1     # 1 - torch.cosine_similarity(x1, x2) (eps 1e-8 on each norm)


cdef inline double _distance(const TripletMarginOp* op, const floating_t* a, const floating_t* b,
                             Py_ssize_t D, bint single) noexcept nogil:
    if op.distance == DISTANCE_COSINE:
        return _cosine_distance(a, b, D)
    return _pnorm_distance(a, b, D, op.p, op.eps, single)


cdef inline void _distance_grad(const TripletMarginOp* op, const floating_t* a, const floating_t* b,
                                Py_ssize_t D, double dist, double c, double* ga, double* gb) noexcept nogil:
    if c == 0.0:
        return
    if op.distance == DISTANCE_COSINE:
        _cosine_distance_grad(a, b, D, c, ga, gb)
    else:
        _pnorm_distance_grad(a, b, D, op.p, op.eps, dist, c, ga, gb)


cdef inline double _triplet_general(const TripletMarginOp* op, Buffers* b, Py_ssize_t r, double g,
                                    double* ga, double* gp, double* gn, floating_t dtype_tag) noexcept nogil:
    # torch: d(a, p) and d(a, n) (with swap, min(d(a, n), d(p, n)); torch.minimum splits the gradient
    # evenly on a tie); loss = clamp_min(margin + d(a, p) - d_neg, 0), whose gradient passes at 0.
    cdef Py_ssize_t D = b.D, j
    cdef const floating_t* a = <const floating_t*>b.x[0] + r * D
    cdef const floating_t* p = <const floating_t*>b.x[1] + r * D
    cdef const floating_t* n = <const floating_t*>b.x[2] + r * D
    cdef bint single = D == 1 and not b.scalar
    cdef double d_pos = _distance(op, a, p, D, single)
    cdef double d_an = _distance(op, a, n, D, single)
    cdef double d_pn = _distance(op, p, n, D, single) if op.swap else d_an
    cdef double d_neg = d_pn if d_pn < d_an else d_an
    cdef double z = op.margin + d_pos - d_neg
    cdef double w_an = 1.0, w_pn = 0.0
    for j in range(D):
        ga[j] = 0.0
        gp[j] = 0.0
        gn[j] = 0.0
    if not (z >= 0.0):
        return 0.0 if z < 0.0 else z        # NaN propagates
    if op.swap:
        if d_pn < d_an:
            w_an, w_pn = 0.0, 1.0
        elif d_pn == d_an:
            w_an, w_pn = 0.5, 0.5
    _distance_grad(op, a, p, D, d_pos, g, ga, gp)
    _distance_grad(op, a, n, D, d_an, -g * w_an, ga, gn)
    if w_pn != 0.0:
        _distance_grad(op, p, n, D, d_pn, -g * w_pn, gp, gn)
    return z


cdef inline void _l2_grads(const floating_t* x1, const floating_t* y1, double c1, const floating_t* x2,
                           const floating_t* y2, double c2, bint second, double eps, Py_ssize_t D,
                           floating_t* out) noexcept nogil:
    """out_j = (0 + c1 (x1_j - y1_j + eps)) + c2 (x2_j - y2_j + eps), the second term only when
    ``second``: one gradient row of the L2 triplet, the general path's sum in its order (its
    0 - h is 0 + (-c) v here, the same bits)."""
    cdef Py_ssize_t j
    if second:
        for j in range(D):
            out[j] = <floating_t>((0.0 + c1 * (<double>x1[j] - <double>y1[j] + eps))
                                  + c2 * (<double>x2[j] - <double>y2[j] + eps))
    else:
        for j in range(D):
            out[j] = <floating_t>(0.0 + c1 * (<double>x1[j] - <double>y1[j] + eps))


cdef inline bint _triplet_l2(const TripletMarginOp* op, Buffers* b, Py_ssize_t r, double g,
                             double* value, floating_t dtype_tag) noexcept nogil:
    """The default triplet row (p = 2, a row of more than one element or a 0-d one): distances in
    one pass, then each requested gradient row written straight to its array (no scratch, no
    second copy), the same bits as _triplet_general. False, with nothing written, for a row with a
    distance of 1e300 or more (squares overflowing, or c / dist subnormal): _triplet_general does it."""
    cdef Py_ssize_t D = b.D, j, k
    cdef const floating_t* a = <const floating_t*>b.x[0] + r * D
    cdef const floating_t* p = <const floating_t*>b.x[1] + r * D
    cdef const floating_t* n = <const floating_t*>b.x[2] + r * D
    cdef floating_t* out
    cdef double d_pos, d_an, d_pn, d_neg, z, w_an = 1.0, w_pn = 0.0, c_pos, c_an, c_pn, eps = op.eps
    d_pos = sqrt(_sum_power_diff(a, p, D, 2.0, eps, 1.0))
    d_an = sqrt(_sum_power_diff(a, n, D, 2.0, eps, 1.0))
    d_pn = sqrt(_sum_power_diff(p, n, D, 2.0, eps, 1.0)) if op.swap else d_an
    if d_pos >= 1e300 or d_an >= 1e300 or d_pn >= 1e300:
        return False
    d_neg = d_pn if d_pn < d_an else d_an
    z = op.margin + d_pos - d_neg
    value[0] = 0.0 if z < 0.0 else z        # NaN propagates
    if not (z >= 0.0):
        # inactive (or NaN): exact zeros, as clamp_min's backward, even for a NaN g
        for k in range(3):
            if b.g[k] != NULL:
                out = <floating_t*>b.g[k] + r * D
                for j in range(D):
                    out[j] = 0
        return True
    if op.swap:
        if d_pn < d_an:
            w_an, w_pn = 0.0, 1.0
        elif d_pn == d_an:
            w_an, w_pn = 0.5, 0.5
    # The general path's coefficients: c / dist, nothing where c or dist is 0 (0 here: active rows
    # have finite differences, so 0 times them adds a zero, as skipping the term does).
    c_pos = g / d_pos if d_pos != 0.0 and g != 0.0 else 0.0
    c_an = -g * w_an
    c_an = c_an / d_an if d_an != 0.0 and c_an != 0.0 else 0.0
    c_pn = -g * w_pn
    c_pn = c_pn / d_pn if d_pn != 0.0 and c_pn != 0.0 else 0.0
    if b.g[0] != NULL:      # d d_pos / d a - d d_neg / d a
        _l2_grads(a, p, c_pos, a, n, c_an, True, eps, D, <floating_t*>b.g[0] + r * D)
    if b.g[1] != NULL:      # d d_pos / d p (+ the swap's term: d_pn's gradient wrt p)
        _l2_grads(a, p, -c_pos, p, n, c_pn, w_pn != 0.0, eps, D, <floating_t*>b.g[1] + r * D)
    if b.g[2] != NULL:      # -(d_an's gradient wrt n) (- the swap's d_pn's wrt n)
        _l2_grads(a, n, -c_an, p, n, -c_pn, w_pn != 0.0, eps, D, <floating_t*>b.g[2] + r * D)
    return True


# =============================================================================================
# The rows: each loss's row and its row function, after all the math (see the note above).
# =============================================================================================
#@ loss(kernel="CosineEmbedding", row="_cosine_embedding", inputs=2, options=[("double", "margin")])
cdef inline double _cosine_embedding(const CosineEmbeddingOp* op, Buffers* b, Py_ssize_t r, double* scratch,
                                     floating_t dtype_tag) noexcept nogil:
    cdef double g = b.scale * (<const floating_t*>b.upstream)[r * b.ustep]
    cdef Py_ssize_t D = b.D
    cdef floating_t* g1 = NULL
    cdef floating_t* g2 = NULL
    if b.g[0] != NULL:
        g1 = <floating_t*>b.g[0] + r * D
    if b.g[1] != NULL:
        g2 = <floating_t*>b.g[1] + r * D
    return _cosine_embedding_loss(op, b, r, g, g1, g2)


#@ loss(kernel="TripletMargin", row="_triplet_margin", inputs=3, scratch=3,
#@      options=[("double", "margin"), ("double", "p"), ("double", "eps"), ("bint", "swap"),
#@               ("int", "distance")])
cdef inline double _triplet_margin(const TripletMarginOp* op, Buffers* b, Py_ssize_t r, double* scratch,
                                   floating_t dtype_tag) noexcept nogil:
    """The triplet row: the default (p = 2) row by _triplet_l2 where it takes it, else the general
    path, whose three gradient rows accumulate in double scratch (a row may receive two distances'
    terms) and are then stored in the array's dtype."""
    cdef double g = b.scale * (<const floating_t*>b.upstream)[r * b.ustep]
    cdef Py_ssize_t D = b.D, j, k
    cdef double value
    cdef floating_t* out
    if op.distance == DISTANCE_PNORM and op.p == 2.0 and (D > 1 or b.scalar):
        if _triplet_l2(op, b, r, g, &value, dtype_tag):
            return value
    value = _triplet_general(op, b, r, g, scratch, scratch + D, scratch + 2 * D, dtype_tag)
    for k in range(3):
        if b.g[k] != NULL:
            out = <floating_t*>b.g[k] + r * D
            for j in range(D):
                out[j] = <floating_t>scratch[k * D + j]
    return value

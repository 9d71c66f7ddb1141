# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The classification loss family: one row-parallel driver, specialized per loss at compile time.

Design
------
A classification loss is a function of one *position*'s scores over the C classes (a row of an
(N, C) input; for (N, C, d1, ..., dK) inputs one (n, d1, ..., dK) position, whose class axis is
strided by S = d1 * ... * dK) and of that position's target. Each loss contributes a ``_row``
function that returns the position's loss and writes the position's gradient(s) directly, already
scaled; the struct it is fused on carries its options. This mirrors pyx/elementwise.pyx with
"element" replaced by "position".

The driver ``_run_blocks`` is written once. Positions are cut into fixed blocks of
``rows_per_block = max(1, REDUCTION_BLOCK // C)`` positions (about REDUCTION_BLOCK elements of work
per block, a number that depends on the shape only, never on the thread count). Each block sums its
positions' losses in order into a double; the block partials are combined by combine_partials().
Threads only decide who computes which block, so any thread count gives the same bits.

Before the rows run, ``_scan_targets`` validates every class index (torch's out-of-bounds error, as
the first bad position: the minimum over blocks, so also thread-count independent) and, for the
weighted 'mean' of NLL/cross-entropy, sums w[target] over non-ignored positions in fixed blocks:
the gradient scale grad_output / total_weight must be known before any gradient is written. The scan
reads N integers, negligible next to the N x C row work. No row is computed when a target is bad, so
an out-of-range index is never used as an offset.

Cross-entropy per position, in one pass over the row (two over L1-resident data):
    m = max_c x_c;  e_c = exp(x_c - m) written straight into the gradient row (no other N x C
    temporary);  s = sum e_c;  log p_c = x_c - m - log s;  then gradient = coef * e_c - (one-hot and
    smoothing terms), with coef folding 1/s and the upstream scale into one multiply.
Max subtraction is the standard overflow-free log-sum-exp. Sums run in double for both dtypes, over
8 independent lanes combined in a fixed order: this breaks the add latency chain (a row is not bound
by one accumulator) and keeps the result independent of vector width. float32 rows use a
branch-free exp (below) that GCC vectorizes; float64 rows use libm's exp for full accuracy.

Arrays reach the driver normalized by lossengine/_arrays.py: C-contiguous, native byte order, of the
computation dtype; class indices int64; class weights float64 (already rounded to the input dtype).
"""

from libc.math cimport exp, log, fabs, NAN
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t
from cython.parallel cimport prange
cimport numpy as cnp

cnp.import_array()

from _common cimport floating_t, REDUCTION_BLOCK, combine_partials, log_sigmoid, sigmoid, array_data

cdef extern from *:
    """
    #if defined(__GNUC__) && defined(__x86_64__) && defined(LE_USE_LIBMVEC)
    /* As in elementwise.pyx: declaring libmvec's vector exp lets GCC vectorize the float64 exp loop
       without -ffast-math (libmvec: < 4 ulp). float32 uses le_expf below in every build. */
    __attribute__((__simd__("notinbranch"))) double exp(double);
    #endif
    /* exp(x) in float32, branch-free so that loops calling it auto-vectorize (libm's expf is an
       opaque call). Cephes expf: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact
       k*ln2_hi), degree-6 polynomial for exp(r), 2^k built in the exponent bits. Max error about
       1 ulp (S. Moshier, Cephes Math Library, expf.c). k is rounded with the 1.5 * 2^23 trick
       because rintf only vectorizes with SSE4.1. Below -87.3 (exp underflows float32's normal
       range) the result is 0; NaN propagates. Used for x <= 0 only (scores minus their max). */
    static inline float le_expf(float x) {
        const float lo = -87.33654f;
        float xc = x < lo ? lo : x;
        float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
        float r = xc - kf * 0.693359375f;
        r = r - kf * -2.12194440e-4f;
        float p = 1.9875691500E-4f;
        p = p * r + 1.3981999507E-3f;
        p = p * r + 8.3334519073E-3f;
        p = p * r + 4.1665795894E-2f;
        p = p * r + 1.6666665459E-1f;
        p = p * r + 5.0000001201E-1f;
        p = p * (r * r) + r + 1.0f;
        union { unsigned int i; float f; } u;
        u.i = ((unsigned int)((int)kf + 127)) << 23;
        float y = p * u.f;
        return x < lo ? 0.0f : y;
    }
    """
    float le_expf(float x) noexcept nogil


cdef inline double _exp(floating_t x) noexcept nogil:
    if floating_t is float:
        return le_expf(x)
    else:
        return exp(x)


# ---------------------------------------------------------------------------------------------
# Per-loss options.
# ---------------------------------------------------------------------------------------------
cdef struct CEIndexOp:
    double smoothing            # label_smoothing
    double weight_sum           # sum of the class weights (C without weights)
cdef struct CEProbOp:
    double smoothing
cdef struct NLLOp:
    char no_options
cdef struct MultiMarginOp:
    int p
    double margin
cdef struct MultiLabelMarginOp:
    char no_options
cdef struct MultiLabelSoftMarginOp:
    Py_ssize_t weight_row_step  # 0: one (C,) weight row for all; C: a weight per element

ctypedef fused RowOp:
    CEIndexOp
    CEProbOp
    NLLOp
    MultiMarginOp
    MultiLabelMarginOp
    MultiLabelSoftMarginOp


cdef struct Buffers:
    Py_ssize_t n_pos                # positions (rows)
    Py_ssize_t C                    # classes
    Py_ssize_t S                    # class stride: 1 for (N, C) / (C,), d1 * ... * dK otherwise
    Py_ssize_t rows_per_block
    const void* x
    const void* t                   # float target (same layout as x), or NULL
    const int64_t* idx              # class-index targets, one per position (MLM: C per row), or NULL
    int64_t ignore_index
    const double* w                 # class weights or NULL
    void* gx                        # gradient wrt input (x's layout), or NULL
    void* gt                        # gradient wrt a float target, or NULL
    void* loss_out                  # per-position loss ('none'), or NULL
    const void* upstream            # per-position grad_output, step ustep
    Py_ssize_t ustep
    double scale                    # grad_output, / denominator for 'mean'
    double* partials
    char* block_failed              # per block: its scratch allocation failed


# ---------------------------------------------------------------------------------------------
# Row helpers, over contiguous rows (a strided row is gathered into scratch first, so one set of
# loops serves both layouts and vectorizes). Sums use eight lanes combined in a fixed order (see the
# design note).
# ---------------------------------------------------------------------------------------------
cdef inline double _lanes(double* a) noexcept nogil:
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


cdef inline floating_t _row_max(const floating_t* x, Py_ssize_t C) noexcept nogil:
    # max is exact in any order; eight lanes only break the compare-select dependency chain.
    cdef floating_t m[8]
    cdef Py_ssize_t j, l, c8 = C - C % 8
    cdef floating_t v, r = x[0]
    if c8:
        for l in range(8):
            m[l] = x[l]
        for j in range(8, c8, 8):
            for l in range(8):
                v = x[j + l]
                m[l] = v if v > m[l] else m[l]
        for l in range(8):
            r = m[l] if m[l] > r else r
    for j in range(c8, C):
        r = x[j] if x[j] > r else r
    return r


cdef inline double _row_sum(const floating_t* v, Py_ssize_t C) noexcept nogil:
    cdef double acc[8]
    cdef double tail = 0.0
    cdef Py_ssize_t j, l, c8 = C - C % 8
    for l in range(8):
        acc[l] = 0.0
    for j in range(0, c8, 8):
        for l in range(8):
            acc[l] += v[j + l]
    for j in range(c8, C):
        tail += v[j]
    return _lanes(acc) + tail


cdef inline double _row_weighted_shifted_sum(const double* w, const floating_t* x, floating_t m,
                                             Py_ssize_t C) noexcept nogil:
    """sum_c w_c (x_c - m) (w NULL: all ones)."""
    cdef double acc[8]
    cdef double tail = 0.0
    cdef Py_ssize_t j, l, c8 = C - C % 8
    for l in range(8):
        acc[l] = 0.0
    if w == NULL:
        for j in range(0, c8, 8):
            for l in range(8):
                acc[l] += <double>x[j + l] - m
        for j in range(c8, C):
            tail += <double>x[j] - m
    else:
        for j in range(0, c8, 8):
            for l in range(8):
                acc[l] += w[j + l] * (<double>x[j + l] - m)
        for j in range(c8, C):
            tail += w[j] * (<double>x[j] - m)
    return _lanes(acc) + tail


cdef inline double _row_exp(const floating_t* x, Py_ssize_t C, floating_t m, floating_t* e) noexcept nogil:
    """e[c] = exp(x[c] - m); returns sum e[c] in double. Two loops: the first has no reduction and
    vectorizes (with libmvec for double), the second re-reads e from L1."""
    cdef Py_ssize_t j
    for j in range(C):
        e[j] = <floating_t>_exp(<floating_t>(x[j] - m))
    return _row_sum(e, C)


cdef inline const floating_t* _gather(const floating_t* src, Py_ssize_t C, Py_ssize_t S,
                                      floating_t* dst) noexcept nogil:
    cdef Py_ssize_t j
    if S == 1:
        return src
    for j in range(C):
        dst[j] = src[j * S]
    return dst


cdef inline void _scatter(const floating_t* src, Py_ssize_t C, Py_ssize_t S, floating_t* dst) noexcept nogil:
    cdef Py_ssize_t j
    if S != 1:
        for j in range(C):
            dst[j * S] = src[j]


# ---------------------------------------------------------------------------------------------
# Per-position math. p: position; off: offset of its class 0 (class stride b.S); g: the scale the
# position's gradient carries (upstream * b.scale); scratch: 3 C values. Formulas follow torch
# 2.13's CPU kernels and autograd (noted inline). Returns the position's loss.
# ---------------------------------------------------------------------------------------------
cdef inline double _ce_index(const CEIndexOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off,
                             double g, floating_t* scratch) noexcept nogil:
    # torch: (1 - eps) nll(log_softmax) + eps / C * sum_c w_c (-log p_c), both masked at
    # ignore_index; 'mean' divides both by sum of w[target] over non-ignored positions.
    cdef Py_ssize_t C = b.C, S = b.S, j
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + off
    cdef int64_t t = b.idx[p]
    cdef double eps = op.smoothing, wt, s, value, coef, sm_coef, log_s
    cdef const floating_t* x
    cdef floating_t m
    cdef floating_t* e
    if t == b.ignore_index:
        if gx != NULL:
            for j in range(C):
                gx[j * S] = 0
        return 0.0
    x = _gather(<const floating_t*>b.x + off, C, S, scratch + C)
    wt = 1.0 if b.w == NULL else b.w[t]
    m = _row_max(x, C)
    e = gx if (gx != NULL and S == 1) else scratch
    s = _row_exp(x, C, m, e)
    log_s = log(s)
    value = (1.0 - eps) * wt * (log_s - (<double>x[t] - m))
    if eps != 0.0:
        # sum_c w_c (-log p_c) = W log s - sum_c w_c (x_c - m): both terms >= 0, no cancellation.
        value += eps / C * (op.weight_sum * log_s - _row_weighted_shifted_sum(b.w, x, m, C))
    if gx != NULL:
        # d/dx_j = (1 - eps) w_t (p_j - [j == t]) + eps / C (W p_j - w_j)
        coef = g * ((1.0 - eps) * wt + eps / C * op.weight_sum) / s
        sm_coef = g * eps / C
        if eps == 0.0:
            for j in range(C):
                e[j] = <floating_t>(coef * e[j])
        elif b.w == NULL:
            for j in range(C):
                e[j] = <floating_t>(coef * e[j] - sm_coef)
        else:
            for j in range(C):
                e[j] = <floating_t>(coef * e[j] - sm_coef * b.w[j])
        e[t] = <floating_t>(<double>e[t] - g * (1.0 - eps) * wt)
        _scatter(e, C, S, gx)
    return value


cdef inline double _ce_prob(const CEProbOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off,
                            double g, floating_t* scratch) noexcept nogil:
    # torch: t' = t (1 - eps) + eps / C; loss = -sum_c w_c t'_c log p_c; 'mean' divides by the
    # number of positions. d/dx_j = p_j sum_c w_c t'_c - w_j t'_j; d/dt_c = -(1 - eps) w_c log p_c.
    cdef Py_ssize_t C = b.C, S = b.S, j
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + off
    cdef floating_t* gt = NULL if b.gt == NULL else <floating_t*>b.gt + off
    cdef const floating_t* x = _gather(<const floating_t*>b.x + off, C, S, scratch + C)
    cdef const floating_t* t = _gather(<const floating_t*>b.t + off, C, S, scratch + 2 * C)
    cdef double eps = op.smoothing, s, log_s, tw, a_sum = 0.0, t_sum = 0.0, wj, coef
    cdef floating_t m
    cdef floating_t* e
    m = _row_max(x, C)
    e = gx if (gx != NULL and S == 1) else scratch
    s = _row_exp(x, C, m, e)
    log_s = log(s)
    for j in range(C):
        wj = 1.0 if b.w == NULL else b.w[j]
        tw = wj * ((1.0 - eps) * <double>t[j] + eps / C)
        t_sum += tw
        a_sum += tw * (<double>x[j] - m)
    if gx != NULL:
        coef = g * t_sum / s
        for j in range(C):
            wj = 1.0 if b.w == NULL else b.w[j]
            e[j] = <floating_t>(coef * e[j] - g * wj * ((1.0 - eps) * <double>t[j] + eps / C))
        _scatter(e, C, S, gx)
    if gt != NULL:
        # Written after gx: for S > 1, e (scratch) is free again and holds the target gradient.
        e = gt if S == 1 else scratch
        for j in range(C):
            wj = 1.0 if b.w == NULL else b.w[j]
            e[j] = <floating_t>(-g * (1.0 - eps) * wj * ((<double>x[j] - m) - log_s))
        _scatter(e, C, S, gt)
    return t_sum * log_s - a_sum


cdef inline double _nll(Buffers* b, Py_ssize_t p, Py_ssize_t off, double g,
                        floating_t dtype_tag) noexcept nogil:
    # torch: -w[t] x[t], 0 at ignore_index.
    cdef const floating_t* x = <const floating_t*>b.x + off
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + off
    cdef Py_ssize_t j, S = b.S
    cdef int64_t t = b.idx[p]
    cdef double wt
    if gx != NULL:
        for j in range(b.C):
            gx[j * S] = 0
    if t == b.ignore_index:
        return 0.0
    wt = 1.0 if b.w == NULL else b.w[t]
    if gx != NULL:
        gx[t * S] = <floating_t>(-g * wt)
    return -wt * <double>x[t * S]


cdef inline double _multi_margin(const MultiMarginOp* op, Buffers* b, Py_ssize_t p, double g,
                                 floating_t dtype_tag) noexcept nogil:
    # torch's CPU kernel: sum_{j != t} w[t] max(0, margin - x_t + x_j)^p / C, the hinge active only
    # where z > 0 (so z == 0 has zero gradient).
    cdef Py_ssize_t C = b.C, j
    cdef const floating_t* x = <const floating_t*>b.x + p * C
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + p * C
    cdef int64_t t = b.idx[p]
    cdef double wt = 1.0 if b.w == NULL else b.w[t]
    cdef double xt = x[t], z, total = 0.0, h, gt_sum = 0.0
    cdef double gc = g * wt / C
    for j in range(C):
        if j == t:
            continue
        z = op.margin - xt + <double>x[j]
        if z > 0.0:
            if op.p == 1:
                total += z
                h = gc
            else:
                total += z * z
                h = 2.0 * gc * z
            gt_sum += h
        else:
            h = 0.0
        if gx != NULL:
            gx[j] = <floating_t>h
    if gx != NULL:
        gx[t] = <floating_t>(-gt_sum)
    return wt * total / C


cdef inline double _multilabel_margin(Buffers* b, Py_ssize_t p, double g, char* is_target,
                                      floating_t dtype_tag) noexcept nogil:
    # torch: target lists classes up to the first -1 (repeats count again); for each listed class
    # j and each unlisted class c, max(0, 1 - (x_j - x_c)) / C, active where z > 0.
    cdef Py_ssize_t C = b.C, j, k, c, n_targets = 0
    cdef const floating_t* x = <const floating_t*>b.x + p * C
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + p * C
    cdef const int64_t* tgt = b.idx + p * C
    cdef double total = 0.0, xj, z, gc = g / C
    cdef double acc
    for j in range(C):
        is_target[j] = 0
    for k in range(C):
        if tgt[k] < 0:
            break
        is_target[tgt[k]] = 1
        n_targets += 1
    if gx != NULL:
        for j in range(C):
            gx[j] = 0
    for k in range(n_targets):
        j = tgt[k]
        xj = x[j]
        acc = 0.0
        for c in range(C):
            if is_target[c]:
                continue
            z = 1.0 - xj + <double>x[c]
            if z > 0.0:
                total += z
                if gx != NULL:
                    acc -= gc
                    gx[c] = <floating_t>(<double>gx[c] + gc)
        if gx != NULL:
            gx[j] = <floating_t>(<double>gx[j] + acc)
    return total / C


cdef inline double _multilabel_soft_margin(const MultiLabelSoftMarginOp* op, Buffers* b, Py_ssize_t p,
                                           double g, floating_t dtype_tag) noexcept nogil:
    # torch: sum_c w_c (-(y log_sigmoid(x) + (1 - y) log_sigmoid(-x))) / C over the last axis.
    # d/dx = w (sigmoid(x) - y) / C; d/dy = -w x / C (torch's log_sigmoid(x) - log_sigmoid(-x),
    # which is x exactly).
    cdef Py_ssize_t C = b.C, j
    cdef const floating_t* x = <const floating_t*>b.x + p * C
    cdef const floating_t* y = <const floating_t*>b.t + p * C
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + p * C
    cdef floating_t* gt = NULL if b.gt == NULL else <floating_t*>b.gt + p * C
    cdef const double* w = NULL if b.w == NULL else b.w + p * op.weight_row_step
    cdef double total = 0.0, xj, yj, wj, gc = g / C
    for j in range(C):
        xj = x[j]
        yj = y[j]
        wj = 1.0 if w == NULL else w[j]
        total += wj * -(yj * log_sigmoid(xj) + (1.0 - yj) * log_sigmoid(-xj))
        if gx != NULL:
            gx[j] = <floating_t>(gc * wj * (sigmoid(xj) - yj))
        if gt != NULL:
            gt[j] = <floating_t>(-gc * wj * xj)
    return total / C


cdef inline double _row(const RowOp* op, Buffers* b, Py_ssize_t p, floating_t* scratch,
                        char* flags) noexcept nogil:
    cdef double g = b.scale * (<const floating_t*>b.upstream)[p * b.ustep]
    # Offset of the position's class 0: n C S + s for position p = n S + s.
    cdef Py_ssize_t off = (p // b.S) * b.C * b.S + p % b.S
    if RowOp is CEIndexOp:
        return _ce_index(op, b, p, off, g, scratch)
    elif RowOp is CEProbOp:
        return _ce_prob(op, b, p, off, g, scratch)
    elif RowOp is NLLOp:
        return _nll(b, p, off, g, <floating_t>0)
    elif RowOp is MultiMarginOp:
        return _multi_margin(op, b, p, g, <floating_t>0)
    elif RowOp is MultiLabelMarginOp:
        return _multilabel_margin(b, p, g, flags, <floating_t>0)
    else:
        return _multilabel_soft_margin(op, b, p, g, <floating_t>0)


# ---------------------------------------------------------------------------------------------
# The driver.
# ---------------------------------------------------------------------------------------------
cdef inline void _run_block(const RowOp* op, Buffers* b, Py_ssize_t block,
                            floating_t dtype_tag) noexcept nogil:
    cdef Py_ssize_t start = block * b.rows_per_block
    cdef Py_ssize_t end = start + b.rows_per_block
    cdef Py_ssize_t p
    cdef double total = 0.0, value
    cdef floating_t* loss_out = <floating_t*>b.loss_out
    # Per-block scratch (a gathered row, its exps, flags): O(C), never an N x C temporary.
    cdef floating_t* scratch = <floating_t*>malloc((3 * b.C + 1) * sizeof(floating_t))
    cdef char* flags = <char*>malloc(b.C + 1)
    if end > b.n_pos:
        end = b.n_pos
    b.block_failed[block] = scratch == NULL or flags == NULL
    if b.block_failed[block]:
        free(scratch)
        free(flags)
        b.partials[block] = 0.0
        return
    for p in range(start, end):
        value = _row(op, b, p, scratch, flags)
        total += value
        if loss_out != NULL:
            loss_out[p] = <floating_t>value
    free(scratch)
    free(flags)
    b.partials[block] = total


cdef void _run_blocks(const RowOp* op, Buffers* b, floating_t dtype_tag, int num_threads,
                      bint parallel) noexcept nogil:
    cdef Py_ssize_t block, nblocks = (b.n_pos + b.rows_per_block - 1) // b.rows_per_block
    if not parallel or num_threads == 1:
        # Same blocks, same order of partials: only the (~microsecond) OpenMP region is skipped,
        # which is most of a (64, 10) call.
        for block in range(nblocks):
            _run_block(op, b, block, dtype_tag)
        return
    for block in prange(nblocks, schedule="static", num_threads=num_threads):
        _run_block(op, b, block, dtype_tag)


cdef void _dispatch(const RowOp* op, Buffers* b, bint is_double, int num_threads,
                    bint parallel) noexcept nogil:
    if is_double:
        _run_blocks(op, b, <double>0, num_threads, parallel)
    else:
        _run_blocks(op, b, <float>0, num_threads, parallel)


cdef inline void _scan_block(const int64_t* idx, Py_ssize_t n, Py_ssize_t block, int64_t low, int64_t C,
                             int64_t ignore_index, bint use_ignore, const double* w, double* block_weight,
                             Py_ssize_t* block_bad) noexcept nogil:
    cdef Py_ssize_t i, start = block * REDUCTION_BLOCK, end = start + REDUCTION_BLOCK, bad = -1
    cdef int64_t t
    cdef double total = 0.0
    if end > n:
        end = n
    for i in range(start, end):
        t = idx[i]
        if use_ignore and t == ignore_index:
            continue
        if t < low or t >= C:
            bad = i
            break
        if w != NULL and t >= 0:
            total = total + w[t]
        else:
            total = total + 1.0
    block_weight[block] = total
    block_bad[block] = bad


cdef void _scan_targets(const int64_t* idx, Py_ssize_t n, int64_t low, int64_t C, int64_t ignore_index,
                        bint use_ignore, const double* w, double* block_weight, Py_ssize_t* block_bad,
                        int num_threads, bint parallel) noexcept nogil:
    """Per block: the first position whose index is outside [low, C) (and not ignore_index), or -1,
    and the sum of w[index] (1 without weights) over non-ignored positions."""
    cdef Py_ssize_t block, nblocks = (n + REDUCTION_BLOCK - 1) // REDUCTION_BLOCK
    if not parallel or num_threads == 1:
        # Small scans skip the OpenMP runtime altogether, as _run_blocks does.
        for block in range(nblocks):
            _scan_block(idx, n, block, low, C, ignore_index, use_ignore, w, block_weight, block_bad)
        return
    for block in prange(nblocks, schedule="static", num_threads=num_threads):
        _scan_block(idx, n, block, low, C, ignore_index, use_ignore, w, block_weight, block_bad)


# ---------------------------------------------------------------------------------------------
# Python entry point.
# ---------------------------------------------------------------------------------------------
cdef enum Kind:
    K_CE_INDEX = 0
    K_CE_PROB = 1
    K_NLL = 2
    K_MULTI_MARGIN = 3
    K_MULTILABEL_MARGIN = 4
    K_MULTILABEL_SOFT_MARGIN = 5

cdef enum Denominator:
    D_NONE = 0          # 'none' / 'sum': the loss is not divided
    D_WEIGHT = 1        # 'mean' of NLL / index cross-entropy: sum of w[target] over non-ignored
    D_POSITIONS = 2     # 'mean' over positions (rows)

KINDS = {"ce_index": K_CE_INDEX, "ce_prob": K_CE_PROB, "nll": K_NLL, "multi_margin": K_MULTI_MARGIN,
         "multilabel_margin": K_MULTILABEL_MARGIN, "multilabel_soft_margin": K_MULTILABEL_SOFT_MARGIN}
DENOMINATORS = {"none": D_NONE, "sum": D_NONE, "mean_weight": D_WEIGHT, "mean": D_POSITIONS}


def run(int kind, int denominator, Py_ssize_t n_pos, Py_ssize_t C, Py_ssize_t S, x, t, idx, w,
        gx, gt, loss_out, grad_output, double grad_output_scale, options, int num_threads,
        Py_ssize_t min_parallel):
    """One fused pass. Returns (value, bad_position): value is the reduced loss (the 'mean' already
    divided; NaN for 0 / 0 as in torch), bad_position the first flat position of the index target
    holding an invalid class (-1 when all are valid; then nothing else was computed).

    x, t, gx, gt, loss_out, grad_output: arrays of the compute dtype (float32/float64), or None for t,
    gx, gt, loss_out. grad_output has n_pos elements or 1. idx: int64 targets or None. w: float64
    class weights or None. options: (label_smoothing, margin, p, ignore_index, weight_row_step).
    The caller guarantees the sizes.
    """
    cdef Buffers b
    cdef bint is_double = x.dtype.itemsize == 8
    cdef int ftype = cnp.NPY_DOUBLE if is_double else cnp.NPY_FLOAT
    cdef Py_ssize_t k, nblocks, n_idx, n_scan_blocks
    cdef double denom = 1.0, total, smoothing = options[0]
    cdef bint parallel = n_pos * C >= min_parallel
    cdef double* scan_weight = NULL
    cdef Py_ssize_t* scan_bad = NULL
    cdef Py_ssize_t bad = -1
    cdef CEIndexOp ce_index_op
    cdef CEProbOp ce_prob_op
    cdef NLLOp nll_op
    cdef MultiMarginOp mm_op
    cdef MultiLabelMarginOp mlm_op
    cdef MultiLabelSoftMarginOp mlsm_op

    b.n_pos = n_pos
    b.C = C
    b.S = S
    b.rows_per_block = REDUCTION_BLOCK // C if 0 < C < REDUCTION_BLOCK else 1   # C == 0: refused below
    b.ignore_index = options[3]
    b.x = array_data(x, ftype, False, "classification") if n_pos * C else NULL
    b.t = NULL if t is None or n_pos * C == 0 else array_data(t, ftype, False, "classification")
    b.idx = NULL if idx is None or idx.size == 0 else <const int64_t*>array_data(idx, cnp.NPY_INT64, False, "classification")
    b.w = NULL if w is None else <const double*>array_data(w, cnp.NPY_DOUBLE, False, "classification")
    b.gx = NULL if gx is None or n_pos * C == 0 else array_data(gx, ftype, True, "classification")
    b.gt = NULL if gt is None or n_pos * C == 0 else array_data(gt, ftype, True, "classification")
    b.loss_out = NULL if loss_out is None or n_pos == 0 else array_data(loss_out, ftype, True, "classification")
    b.upstream = array_data(grad_output, ftype, False, "classification")
    b.ustep = 1 if grad_output.size == n_pos and n_pos != 1 else 0

    # Targets: validate (and sum the weights 'mean' divides by) before any row runs.
    if b.idx != NULL:
        n_idx = idx.size
        n_scan_blocks = (n_idx + REDUCTION_BLOCK - 1) // REDUCTION_BLOCK
        scan_weight = <double*>malloc(n_scan_blocks * sizeof(double))
        scan_bad = <Py_ssize_t*>malloc(n_scan_blocks * sizeof(Py_ssize_t))
        if scan_weight == NULL or scan_bad == NULL:
            free(scan_weight)
            free(scan_bad)
            raise MemoryError()
        try:
            with nogil:
                _scan_targets(b.idx, n_idx, -1 if kind == K_MULTILABEL_MARGIN else 0, C, b.ignore_index,
                              kind == K_CE_INDEX or kind == K_NLL, b.w if kind != K_MULTILABEL_MARGIN else NULL,
                              scan_weight, scan_bad, num_threads, n_idx >= min_parallel)
            for k in range(n_scan_blocks):
                if scan_bad[k] >= 0:
                    return None, scan_bad[k]
            if denominator == D_WEIGHT:
                denom = combine_partials(scan_weight, n_scan_blocks)
        finally:
            free(scan_weight)
            free(scan_bad)
    elif denominator == D_WEIGHT:
        denom = 0.0                 # no targets: torch's 'mean' is 0 / 0
    if denominator == D_POSITIONS:
        denom = <double>n_pos

    b.scale = grad_output_scale / denom if denominator != D_NONE else grad_output_scale
    if n_pos == 0:
        return (0.0 / denom if denominator != D_NONE else 0.0), -1
    if C == 0:
        # torch: IndexError for any non-ignored class index (the scan above raised it already) and
        # degenerate NaN / -0 values otherwise; lossengine refuses a class axis of size 0.
        raise ValueError("input must have at least one class: its class dimension has size 0")
    nblocks = (n_pos + b.rows_per_block - 1) // b.rows_per_block
    b.partials = <double*>malloc(nblocks * sizeof(double))
    b.block_failed = <char*>malloc(nblocks)
    if b.partials == NULL or b.block_failed == NULL:
        free(b.partials)
        free(b.block_failed)
        raise MemoryError()
    try:
        if kind == K_CE_INDEX:
            ce_index_op.smoothing = smoothing
            ce_index_op.weight_sum = C
            if b.w != NULL:
                ce_index_op.weight_sum = 0.0
                for k in range(C):
                    ce_index_op.weight_sum += b.w[k]
            with nogil: _dispatch(&ce_index_op, &b, is_double, num_threads, parallel)
        elif kind == K_CE_PROB:
            ce_prob_op.smoothing = smoothing
            with nogil: _dispatch(&ce_prob_op, &b, is_double, num_threads, parallel)
        elif kind == K_NLL:
            with nogil: _dispatch(&nll_op, &b, is_double, num_threads, parallel)
        elif kind == K_MULTI_MARGIN:
            mm_op.margin = options[1]
            mm_op.p = options[2]
            with nogil: _dispatch(&mm_op, &b, is_double, num_threads, parallel)
        elif kind == K_MULTILABEL_MARGIN:
            with nogil: _dispatch(&mlm_op, &b, is_double, num_threads, parallel)
        elif kind == K_MULTILABEL_SOFT_MARGIN:
            mlsm_op.weight_row_step = options[4]
            with nogil: _dispatch(&mlsm_op, &b, is_double, num_threads, parallel)
        else:
            raise ValueError(f"unknown classification kernel {kind}")
        for k in range(nblocks):
            if b.block_failed[k]:
                raise MemoryError()
        total = combine_partials(b.partials, nblocks)
    finally:
        free(b.partials)
        free(b.block_failed)
    return (total / denom if denominator != D_NONE else total), -1

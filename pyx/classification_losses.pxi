# The built-in classification losses: each one's table row and its math (the per-position row
# function), one loss after another. Included by pyx/classification.pyx.tp (the driver); both are
# rendered and compiled by setup.py.
#
# A loss is a row, a comment starting "#@" (continued on the next "#@" lines), directly followed by
# the functions the row names:
#
#   #@ loss(kernel="NLL", row="_nll", options=[("int64_t", "ignore_index")], targets="ignorable")
#
# setup.py reads the rows (literals only; a row naming a function this file does not define is a build
# error) and hands them, in file order, to the driver template and to the type stub
# lossengine/_classification.pyi.tp. From a row the driver generates the option struct <kernel>Op, its
# member of the fused type the driver is specialized on, the dispatch to the row function, the entry
# points and the Python-visible kernel class lossengine._classification.<kernel>, whose __init__ takes
# the options by name (the names of the Python class's options). The keys:
#
#   kernel    the kernel class's name; the declaration in lossengine/losses/classification.py names it
#   row       ``cdef inline double f(const <kernel>Op* op, Buffers* b, Py_ssize_t p, Py_ssize_t off,
#             double g, floating_t* scratch, char* flags)``: position p (offset of its class 0: off,
#             class stride b.S), the scale g its gradient carries (upstream * b.scale), 3 C + 1 values
#             of scratch (doubles' worth) and C + 1 flags; it writes the position's gradient(s) (b.gx,
#             b.gt when set) and returns its loss
#   targets   how the kernel validates the int64 targets before any row runs: "ignorable" (class
#             indices in [0, C) or equal to the ignore_index option; 'mean' may divide by the sum of
#             their class weights), "indices" (class indices in [0, C)), "listed" (rows of class
#             indices ending at the first -1), None (float targets, nothing to validate)
#   options   [(C type, name)], the fields of <kernel>Op, in the order __init__ takes them (default [])
#   hessian   optional, True: the row function also writes the diagonal of the position's Hessian
#             wrt its scores into b.hx (scaled as the gradient is) when b.hx is set; the kernel
#             class's ``has_hessian``, gradient_hessian's mode. The others refuse it.
#   lanes     optional: ``cdef inline void f(const <kernel>Op* op, Buffers* b, Py_ssize_t p0,
#             Py_ssize_t R, double* values, floating_t dtype_tag)``, the row function for the R <=
#             LANE_ROWS rows p0 .. p0 + R - 1 of an (N, C) input of at most LANE_CLASSES classes at
#             once, one per vector lane (their losses into values[0 .. R)); the driver hands it such
#             blocks whole. Each row's bits must not depend on its place in the group.
#
# Formulas follow torch 2.13's CPU kernels and autograd (noted inline), quirks included.

from libc.math cimport exp, log, log1p, pow, fabs
from libc.stdint cimport int64_t
from lossengine.row_math cimport expf_nonpositive, row_max, row_maxf
from _common cimport floating_t, log_sigmoid, sigmoid


# Cross-entropy per position, in one pass over the row (two over L1-resident data):
#     m = max_c x_c;  e_c = exp(x_c - m) written straight into the gradient row (no other N x C
#     temporary);  s = sum e_c;  log p_c = x_c - m - log s;  then gradient = coef * e_c - (one-hot and
#     smoothing terms), with coef folding 1/s and the upstream scale into one multiply.
# Max subtraction is the standard overflow-free log-sum-exp. Sums run in double for both dtypes, over
# 8 independent lanes (16 for a float32 row's exps) combined in a fixed order: this breaks the add
# latency chain (a row is not bound by one accumulator) and keeps the result independent of vector
# width. float32 rows use a branch-free exp (below) that GCC vectorizes; float64 rows use libm's exp
# for full accuracy. Rows of at most LANE_CLASSES classes in the (N, C) layout take
# _ce_index_lanes instead: sixteen rows at once, one per vector lane, the same formulas (a short row's
# loops were all loop control and tails).


cdef inline double _exp(floating_t x) noexcept nogil:
    if floating_t is float:
        return expf_nonpositive(x)
    else:
        return exp(x)


# ---------------------------------------------------------------------------------------------
# Row helpers, over contiguous rows (a strided row is gathered into scratch first, so one set of
# loops serves both layouts and vectorizes). Sums use eight lanes combined in a fixed order (see the
# note above).
# ---------------------------------------------------------------------------------------------
cdef inline double _lanes(double* a) noexcept nogil:
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


cdef inline floating_t _row_max(const floating_t* x, Py_ssize_t C) noexcept nogil:
    if floating_t is float:
        return row_maxf(x, C)
    else:
        return row_max(x, C)


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


cdef inline double _row_sum16(const float* v, Py_ssize_t C) noexcept nogil:
    """_row_sum over sixteen lanes (two AVX-512 vectors of doubles: two addition chains instead of
    one, where the widening adds of a float32 row were latency-bound), combined pairwise in a fixed
    order."""
    cdef double acc[16]
    cdef double tail = 0.0
    cdef Py_ssize_t j, l, c16 = C - C % 16
    for l in range(16):
        acc[l] = 0.0
    for j in range(0, c16, 16):
        for l in range(16):
            acc[l] += v[j + l]
    for j in range(c16, C):
        tail += v[j]
    for l in range(8):
        acc[l] = acc[l] + acc[l + 8]
    return _lanes(acc) + tail


cdef inline double _row_exp(const floating_t* x, Py_ssize_t C, floating_t m, floating_t* e) noexcept nogil:
    """e[c] = exp(x[c] - m); returns sum e[c] in double. Two loops: the first has no reduction and
    vectorizes (with libmvec for double), the second re-reads e from L1."""
    cdef Py_ssize_t j
    for j in range(C):
        e[j] = <floating_t>_exp(<floating_t>(x[j] - m))
    if floating_t is float:
        return _row_sum16(e, C)
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
cdef inline void _softmax_hessian_diagonal(Buffers* b, Py_ssize_t off, const floating_t* e, double s,
                                           double k) noexcept nogil:
    """hx[j] = k p_j (1 - p_j) with p_j = e_j / s (the diagonal of k (diag(p) - p p^T)), written as
    k e_j (s - e_j) / s^2; nothing when the Hessian is not asked for."""
    cdef Py_ssize_t j
    cdef floating_t* hx = <floating_t*>b.hx
    cdef double k2 = k / (s * s)
    if hx == NULL:
        return
    for j in range(b.C):
        hx[off + j * b.S] = <floating_t>(k2 * <double>e[j] * (s - <double>e[j]))


cdef inline void _scale_row(floating_t* e, Py_ssize_t C, double coef) noexcept nogil:
    """e[j] *= coef. A float32 row is scaled in float32 (one more rounding, and a third fewer vector
    operations than widening to double and back) where coef is well inside float32's range."""
    cdef Py_ssize_t j
    cdef float coef_f
    if floating_t is float:
        if 1e-30 < fabs(coef) < 1e30:
            coef_f = <float>coef
            for j in range(C):
                e[j] = coef_f * e[j]
            return
    for j in range(C):
        e[j] = <floating_t>(coef * e[j])


# -- cross-entropy over class indices --------------------------------------------------------------
#@ loss(kernel="CrossEntropyIndex", row="_ce_index", options=[("double", "label_smoothing"), ("int64_t", "ignore_index")],
#@      targets="ignorable", hessian=True, lanes="_ce_index_lanes")
cdef inline double _ce_index(const CrossEntropyIndexOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off,
                             double g, floating_t* scratch, char* flags) noexcept nogil:
    # torch: (1 - eps) nll(log_softmax) + eps / C * sum_c w_c (-log p_c), both masked at
    # ignore_index; 'mean' divides both by sum of w[target] over non-ignored positions.
    cdef Py_ssize_t C = b.C, S = b.S, j
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + off
    cdef int64_t t = b.idx[p]
    cdef double eps = op.label_smoothing, wt, s, value, coef, sm_coef, log_s, xt_shifted, smooth_shifted, et, sm_t
    cdef const floating_t* x
    cdef floating_t m
    cdef floating_t* e
    if t == b.ignore_index:
        if gx != NULL:
            for j in range(C):
                gx[j * S] = 0
        if b.hx != NULL:
            for j in range(C):
                (<floating_t*>b.hx)[off + j * S] = 0
        return 0.0
    x = _gather(<const floating_t*>b.x + off, C, S, scratch + C)
    wt = 1.0 if b.w == NULL else b.w[t]
    m = _row_max(x, C)
    # Everything read from x is read before the exps are written: the gradient may be x itself
    # (LinearCrossEntropyLoss turns each chunk's logits into their gradient in place).
    xt_shifted = <double>x[t] - m
    # sum_c w_c (-log p_c) = W log s - sum_c w_c (x_c - m): both terms >= 0, no cancellation.
    smooth_shifted = _row_weighted_shifted_sum(b.w, x, m, C) if eps != 0.0 else 0.0
    e = gx if (gx != NULL and S == 1) else scratch
    s = _row_exp(x, C, m, e)
    log_s = log(s)
    # Every -log p_c has the Hessian diag(p) - p p^T, so the loss's is that times the gradient's
    # coefficient (1 - eps) w_t + eps / C W: its diagonal, before e turns into the gradient.
    _softmax_hessian_diagonal(b, off, e, s, g * ((1.0 - eps) * wt + eps / C * b.weight_sum))
    value = (1.0 - eps) * wt * (log_s - xt_shifted)
    if eps != 0.0:
        value += eps / C * (b.weight_sum * log_s - smooth_shifted)
    if gx != NULL:
        # d/dx_j = (1 - eps) w_t (p_j - [j == t]) + eps / C (W p_j - w_j)
        # Without smoothing the class-weight sum W must not enter at all: 0 * W is NaN when the
        # weights (finite or not) of classes no target uses sum to inf or NaN, and torch is finite.
        coef = g * wt / s if eps == 0.0 else g * ((1.0 - eps) * wt + eps / C * b.weight_sum) / s
        sm_coef = g * eps / C
        et = e[t]
        if eps == 0.0:
            _scale_row(e, C, coef)
        elif b.w == NULL:
            for j in range(C):
                e[j] = <floating_t>(coef * e[j] - sm_coef)
        else:
            for j in range(C):
                e[j] = <floating_t>(coef * e[j] - sm_coef * b.w[j])
        # The true class's entry from e_t in double, rounded once: rounding coef e_t to float32 first
        # left a residue of ~1e-8 where torch's p_t - 1 is exactly 0 (a single class, p_t = 1).
        sm_t = 0.0 if eps == 0.0 else sm_coef * (1.0 if b.w == NULL else b.w[t])
        e[t] = <floating_t>((coef * et - sm_t) - g * (1.0 - eps) * wt)
        _scatter(e, C, S, gx)
    return value


# -- cross-entropy over few classes: rows in vector lanes --------------------------------------
# Over a short row (C of 10 classes, as gradient boosting's multinomial has) the per-row loops of
# _ce_index are all prologue and tail: about 50 ns a row went to loop control, the scalar log and the
# tails of five loops of 10. _ce_index_lanes computes LANE_ROWS rows at once instead, one row per
# vector lane: the rows are transposed into scratch (class j of row r at j * LANE_ROWS + r), every
# loop then runs over LANE_ROWS lanes (a whole number of vectors, no tail), log included (libmvec's
# vector log, declared under its own name so that the module's other log calls are unchanged), and
# the results are transposed back. Each lane computes exactly what every other lane does, whatever
# its row's place in the block (a short last group is padded with zero rows whose results are
# dropped), so a row's bits do not depend on N, the block or the thread count. The formulas are
# _ce_index's; the sums over classes run in class order in one double per row.
cdef extern from *:
    """
    #if defined(__GNUC__) && defined(__x86_64__) && defined(LE_USE_LIBMVEC)
    __attribute__((__simd__("notinbranch"), const)) double lossengine_lane_log(double) __asm__("log");
    #else
    #define lossengine_lane_log log
    #endif
    """
    double lane_log "lossengine_lane_log"(double) noexcept nogil


cdef inline void _ce_index_lanes(const CrossEntropyIndexOp* op, Buffers* b, Py_ssize_t p0, Py_ssize_t R,
                                 double* values, floating_t dtype_tag) noexcept nogil:
    """_ce_index for the R <= LANE_ROWS rows p0 .. p0 + R - 1 of an (N, C) input (S == 1,
    C <= LANE_CLASSES): their losses into values[0 .. R), their gradient and Hessian rows written
    when asked for."""
    cdef Py_ssize_t C = b.C, j, r
    cdef floating_t xs[LANE_CLASSES * LANE_ROWS]     # scores; after the exps, the output rows' scratch
    cdef floating_t e[LANE_CLASSES * LANE_ROWS]
    cdef floating_t m[LANE_ROWS]
    cdef double s[LANE_ROWS]
    cdef double log_s[LANE_ROWS]
    cdef double g[LANE_ROWS]
    cdef double wt[LANE_ROWS]
    cdef double xt[LANE_ROWS]
    cdef double sm[LANE_ROWS]
    cdef double k[LANE_ROWS]
    cdef Py_ssize_t t[LANE_ROWS]
    cdef bint ignored[LANE_ROWS]
    cdef const floating_t* x = <const floating_t*>b.x + p0 * C
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + p0 * C
    cdef floating_t* hx = NULL if b.hx == NULL else <floating_t*>b.hx + p0 * C
    cdef double eps = op.label_smoothing, W = b.weight_sum, tj
    cdef double ec = eps / C, keep = 1.0 - eps    # the smoothing's weight per class, the target's
    cdef int64_t target
    # Everything read from x is read here, before any output row is written (gx may be x itself).
    for r in range(LANE_ROWS):
        if r < R:
            for j in range(C):
                xs[j * LANE_ROWS + r] = x[r * C + j]
            target = b.idx[p0 + r]
            ignored[r] = target == b.ignore_index
            t[r] = 0 if ignored[r] else target
            g[r] = b.scale * (<const floating_t*>b.upstream)[(p0 + r) * b.ustep]
        else:
            for j in range(C):
                xs[j * LANE_ROWS + r] = 0
            ignored[r] = True
            t[r] = 0
            g[r] = 0.0
        wt[r] = 1.0 if b.w == NULL else b.w[t[r]]
    for r in range(LANE_ROWS):
        m[r] = xs[r]
    for j in range(1, C):
        for r in range(LANE_ROWS):
            m[r] = xs[j * LANE_ROWS + r] if xs[j * LANE_ROWS + r] > m[r] else m[r]
    for r in range(LANE_ROWS):
        xt[r] = <double>xs[t[r] * LANE_ROWS + r] - m[r]
        sm[r] = 0.0
        s[r] = 0.0
    if eps != 0.0:
        for j in range(C):
            tj = 1.0 if b.w == NULL else b.w[j]
            for r in range(LANE_ROWS):
                sm[r] += tj * (<double>xs[j * LANE_ROWS + r] - m[r])
    for j in range(C):
        for r in range(LANE_ROWS):
            e[j * LANE_ROWS + r] = <floating_t>_exp(<floating_t>(xs[j * LANE_ROWS + r] - m[r]))
    for j in range(C):
        for r in range(LANE_ROWS):
            s[r] += e[j * LANE_ROWS + r]
    # Branches on the options stay outside the lane loops.
    for r in range(LANE_ROWS):
        log_s[r] = lane_log(s[r])
    if eps == 0.0:
        for r in range(LANE_ROWS):
            values[r] = keep * wt[r] * (log_s[r] - xt[r])
    else:
        for r in range(LANE_ROWS):
            values[r] = keep * wt[r] * (log_s[r] - xt[r]) + ec * (W * log_s[r] - sm[r])
    if hx != NULL:
        for r in range(LANE_ROWS):
            k[r] = g[r] * (keep * wt[r] + ec * W) / (s[r] * s[r])
        for j in range(C):
            for r in range(LANE_ROWS):
                xs[j * LANE_ROWS + r] = <floating_t>(k[r] * <double>e[j * LANE_ROWS + r]
                                                     * (s[r] - <double>e[j * LANE_ROWS + r]))
        _lanes_out(xs, hx, C, R, ignored)
    if gx != NULL:
        if eps == 0.0:
            for r in range(LANE_ROWS):
                k[r] = g[r] * wt[r] / s[r]
            for j in range(C):
                for r in range(LANE_ROWS):
                    xs[j * LANE_ROWS + r] = <floating_t>(k[r] * e[j * LANE_ROWS + r])
        else:
            for r in range(LANE_ROWS):
                k[r] = g[r] * (keep * wt[r] + ec * W) / s[r]
                sm[r] = g[r] * eps / C
            for j in range(C):
                tj = 1.0 if b.w == NULL else b.w[j]
                for r in range(LANE_ROWS):
                    xs[j * LANE_ROWS + r] = <floating_t>(k[r] * e[j * LANE_ROWS + r] - sm[r] * tj)
        # The true class's entry from e in double, one rounding (see _ce_index).
        for r in range(R):
            j = t[r]
            tj = 0.0 if eps == 0.0 else sm[r] * (1.0 if b.w == NULL else b.w[j])
            xs[j * LANE_ROWS + r] = <floating_t>((k[r] * e[j * LANE_ROWS + r] - tj) - g[r] * keep * wt[r])
        _lanes_out(xs, gx, C, R, ignored)
    for r in range(R):
        if ignored[r]:
            values[r] = 0.0


cdef inline void _lanes_out(const floating_t* lanes, floating_t* out, Py_ssize_t C, Py_ssize_t R,
                            const bint* ignored) noexcept nogil:
    """Rows 0 .. R - 1 of ``out`` (C each) from their lanes; an ignored row's are 0."""
    cdef Py_ssize_t j, r
    for r in range(R):
        if ignored[r]:
            for j in range(C):
                out[r * C + j] = 0
        else:
            for j in range(C):
                out[r * C + j] = lanes[j * LANE_ROWS + r]


# -- cross-entropy over class probabilities ---------------------------------------------------------
#@ loss(kernel="CrossEntropyProb", row="_ce_prob", options=[("double", "label_smoothing")], targets=None, hessian=True)
cdef inline double _ce_prob(const CrossEntropyProbOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off,
                            double g, floating_t* scratch, char* flags) noexcept nogil:
    # torch: t' = t (1 - eps) + eps / C; loss = -sum_c w_c t'_c log p_c; 'mean' divides by the
    # number of positions. d/dx_j = p_j sum_c w_c t'_c - w_j t'_j; d/dt_c = -(1 - eps) w_c log p_c.
    # Summed as torch sums, term by term and in its order: the value over (log p_c t'_c) w_c
    # (log p_c = (x_c - m) - log s, as log_softmax computes it; torch: -(input * target * weight))
    # and the gradient's sum over (g w_c) t'_c, as autograd takes that product apart. Factoring out
    # sum_c w_c t'_c instead overflows where targets sum past 1.8e308 (torch finite) and gives
    # -inf * 0 = NaN for a -inf target on the max logit (torch -inf); w_c t'_c first overflows for
    # a target near 1e308 with a weight above 1 (torch finite).
    cdef Py_ssize_t C = b.C, S = b.S, j
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + off
    cdef floating_t* gt = NULL if b.gt == NULL else <floating_t*>b.gt + off
    cdef const floating_t* x = _gather(<const floating_t*>b.x + off, C, S, scratch + C)
    cdef const floating_t* t = _gather(<const floating_t*>b.t + off, C, S, scratch + 2 * C)
    cdef double eps = op.label_smoothing, s, log_s, tj, gw, value = 0.0, g_sum = 0.0, wj, coef
    cdef floating_t m
    cdef floating_t* e
    m = _row_max(x, C)
    e = gx if (gx != NULL and S == 1) else scratch
    s = _row_exp(x, C, m, e)
    log_s = log(s)
    for j in range(C):
        wj = 1.0 if b.w == NULL else b.w[j]
        tj = (1.0 - eps) * <double>t[j] + eps / C
        g_sum += (g * wj) * tj
        value -= (((<double>x[j] - m) - log_s) * tj) * wj
    _softmax_hessian_diagonal(b, off, e, s, g_sum)      # g t_sum (diag(p) - p p^T), as for _ce_index
    if gx != NULL:
        coef = g_sum / s
        for j in range(C):
            gw = g if b.w == NULL else g * b.w[j]
            e[j] = <floating_t>(coef * e[j] - gw * ((1.0 - eps) * <double>t[j] + eps / C))
        _scatter(e, C, S, gx)
    if gt != NULL:
        # Written after gx: for S > 1, e (scratch) is free again and holds the target gradient.
        e = gt if S == 1 else scratch
        for j in range(C):
            wj = 1.0 if b.w == NULL else b.w[j]
            e[j] = <floating_t>(-g * (1.0 - eps) * wj * ((<double>x[j] - m) - log_s))
        _scatter(e, C, S, gt)
    return value


# -- negative log-likelihood ---------------------------------------------------------------------
#@ loss(kernel="NLL", row="_nll", options=[("int64_t", "ignore_index")], targets="ignorable")
cdef inline double _nll(const NLLOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off, double g,
                        floating_t* scratch, char* flags) noexcept nogil:
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


# -- multi-class hinge -----------------------------------------------------------------------------
#@ loss(kernel="MultiMargin", row="_multi_margin", options=[("int", "p"), ("double", "margin")], targets="indices")
cdef inline double _multi_margin_row(const MultiMarginOp* op, Buffers* b, Py_ssize_t p, double g, int power,
                                     double* scratch, floating_t dtype_tag) noexcept nogil:
    cdef Py_ssize_t C = b.C, j
    cdef const floating_t* x = <const floating_t*>b.x + p * C
    cdef double* terms = scratch                    # each class's loss term
    cdef double* hs = scratch + C                   # each class's gradient, in double for the sum
    # Without a gradient to return, the row's goes to scratch and is dropped.
    cdef floating_t* gx = <floating_t*>(scratch + 2 * C) if b.gx == NULL else <floating_t*>b.gx + p * C
    cdef int64_t t = b.idx[p]
    cdef double wt = 1.0 if b.w == NULL else b.w[t]
    cdef double base = op.margin - <double>x[t]     # z = (margin - x_t) + x_j, torch's order
    cdef double gc = g / C
    # the weight multiplies last, as in torch: a weight near the float maximum stays finite
    cdef double on = gc * wt                        # p = 1: an active class's gradient
    cdef double g2 = 2.0 * gc                       # p = 2: (2 g) z first: 2 z alone can overflow
    # torch scales the whole row by grad_output last: 0 * g, so NaN reaches every class
    cdef double inactive = 0.0 * g
    cdef double z, h, h_sum
    cdef bint other, active
    for j in range(C):
        z = base + <double>x[j]
        other = j != t
        active = (z > 0.0) & other
        # each term weighted before the sum, as torch's h *= weight[target]: a sum of terms near
        # 1e308 stays finite under a weight below 1
        if power == 1:
            terms[j] = z * wt if active else 0.0
            h = on if active else (inactive if other else 0.0)
        else:
            terms[j] = (z * z) * wt if active else 0.0
            h = g2 * z * wt if active else (inactive if other else 0.0)
        hs[j] = h
        gx[j] = <floating_t>h
    h_sum = _row_sum(hs, C)
    gx[t] = <floating_t>(-h_sum)
    return _row_sum(terms, C) / C


cdef inline double _multi_margin(const MultiMarginOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off,
                                 double g, floating_t* scratch, char* flags) noexcept nogil:
    # torch's CPU kernel: sum_{j != t} w[t] max(0, margin - x_t + x_j)^p / C, the hinge active only
    # where z > 0 (so z == 0 has zero gradient). Written so that it vectorizes: p is tested once per
    # row; one loop without branches or reductions computes every class (selects mask the inactive
    # ones and j == t, whose terms are exactly +0) into double scratch, summed by _row_sum (eight
    # lanes) after; the driver's scratch holds 3 C doubles.
    if op.p == 1:
        return _multi_margin_row(op, b, p, g, 1, <double*>scratch, <floating_t>0)
    return _multi_margin_row(op, b, p, g, 2, <double*>scratch, <floating_t>0)


# -- multi-label hinge -----------------------------------------------------------------------------
#@ loss(kernel="MultiLabelMargin", row="_multilabel_margin", targets="listed")
cdef inline double _multilabel_margin(const MultiLabelMarginOp* op, Buffers* b, Py_ssize_t p,
                                      Py_ssize_t off, double g, floating_t* scratch,
                                      char* is_target) noexcept nogil:
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
            gx[j] = <floating_t>(0.0 * g)   # torch scales the row by grad_output last: NaN reaches every class
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


# -- multi-label soft margin -----------------------------------------------------------------------
#@ loss(kernel="MultiLabelSoftMargin", row="_multilabel_soft_margin", targets=None, hessian=True)
cdef inline double _multilabel_soft_margin(const MultiLabelSoftMarginOp* op, Buffers* b, Py_ssize_t p,
                                           Py_ssize_t off, double g, floating_t* scratch,
                                           char* flags) noexcept nogil:
    # torch: sum_c w_c (-(y log_sigmoid(x) + (1 - y) log_sigmoid(-x))) / C over the last axis.
    # d/dx = w (sigmoid(x) - y) / C; d/dy = -w x / C (torch's log_sigmoid(x) - log_sigmoid(-x),
    # which is x exactly).
    cdef Py_ssize_t C = b.C, j
    cdef const floating_t* x = <const floating_t*>b.x + p * C
    cdef const floating_t* y = <const floating_t*>b.t + p * C
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + p * C
    cdef floating_t* gt = NULL if b.gt == NULL else <floating_t*>b.gt + p * C
    cdef const double* w = NULL if b.w == NULL else b.w + p * b.weight_row_step
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
        if b.hx != NULL:
            (<floating_t*>b.hx)[p * C + j] = <floating_t>(gc * wj * sigmoid(xj) * sigmoid(-xj))
    return total / C


# -- losses of the true class's probability: w_t phi(p_t) (+ label smoothing) -------------------
# With p = softmax(x), d p_t / d x_j = p_t (d_j - p_j) (d_j = [j == t]), so for any phi
#   d/dx_j  w phi(p_t)   = w A (d_j - p_j),                                   A = phi'(p_t) p_t
#   d2/dx_j2 w phi(p_t)  = w ((A + B)(d_j - p_j)^2 - A p_j (1 - p_j)),         B = phi''(p_t) p_t^2
# (cross-entropy: phi = -log p, A = -1, B = 1). A loss of this form supplies phi, A and B; the row,
# its gradient and its Hessian diagonal are _softmax_target_row's.
cdef struct TargetTerms:
    double phi
    double A
    double B


cdef inline double _softmax_target_row(Buffers* b, Py_ssize_t p, Py_ssize_t off, double g, floating_t* scratch,
                                       int kind, double param, double eps) noexcept nogil:
    """One position of w_t phi(p_t) + eps / C sum_c w_c (-log p_c) (label smoothing eps): kind 0 is
    the focal term, phi = -(1 - p)^param log p (Lin et al. 2017; used with eps = 0); kind 1 is Poly-1
    over torch's smoothed cross-entropy, phi = -(1 - eps) log p + param (1 - p) (Leng et al. 2022).
    0 at ignore_index. Writes gx and hx when set."""
    cdef Py_ssize_t C = b.C, S = b.S, j
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + off
    cdef floating_t* hx = NULL if b.hx == NULL else <floating_t*>b.hx + off
    cdef int64_t t = b.idx[p]
    cdef const floating_t* x
    cdef floating_t m, et
    cdef double wt, s, others, pt, a, lp, ag, ag1, ag2, value, k, ks, pj, dj, pq
    cdef TargetTerms f
    if t == b.ignore_index:
        for j in range(C):
            if gx != NULL:
                gx[j * S] = 0
            if hx != NULL:
                hx[j * S] = 0
        return 0.0
    x = _gather(<const floating_t*>b.x + off, C, S, scratch + C)
    wt = 1.0 if b.w == NULL else b.w[t]
    m = _row_max(x, C)
    s = _row_exp(x, C, m, scratch)
    # 1 - p_t as the other classes' share, summed without e_t: no cancellation as p_t -> 1.
    et = scratch[t]
    scratch[t] = 0
    others = _row_sum(scratch, C)
    scratch[t] = et
    pt = et / s
    a = others / s
    lp = (<double>x[t] - m) - log(s) if pt < 0.5 else -log1p(others / et)    # log p_t, accurate both ways
    if kind == 0:
        # phi = -a^gam lp: A = gam a^(gam-1) p lp - a^gam, B = -gam (gam-1) a^(gam-2) p^2 lp + 2 gam a^(gam-1) p + a^gam.
        # At a == 0 the terms with negative powers multiply p lp = 0 (and vanish faster): taken as 0.
        ag = pow(a, param)
        ag1 = param * pow(a, param - 1.0) if a > 0.0 and param != 0.0 else (1.0 if param == 1.0 else 0.0)
        ag2 = param * (param - 1.0) * pow(a, param - 2.0) if a > 0.0 and param != 0.0 and param != 1.0 else 0.0
        f.phi = -ag * lp
        f.A = ag1 * pt * lp - ag
        f.B = -ag2 * pt * pt * lp + 2.0 * ag1 * pt + ag
    else:
        f.phi = -(1.0 - eps) * lp + param * a
        f.A = -(1.0 - eps) - param * pt
        f.B = 1.0 - eps
    value = wt * f.phi
    if eps != 0.0:
        value += eps / C * (b.weight_sum * (log(s)) - _row_weighted_shifted_sum(b.w, x, m, C))
    k = g * wt
    ks = g * eps / C
    for j in range(C):
        pj = scratch[j] / s
        dj = a if j == t else -pj                    # d_j - p_j, exact for the true class too
        pq = pt * a if j == t else pj * (others + et - scratch[j]) / s     # p_j (1 - p_j)
        if hx != NULL:
            hx[j * S] = <floating_t>(k * ((f.A + f.B) * dj * dj - f.A * pq) + ks * b.weight_sum * pq)
        if gx != NULL:
            gx[j * S] = <floating_t>(k * f.A * dj + ks * (b.weight_sum * pj - (1.0 if b.w == NULL else b.w[j])))
    return value


#@ loss(kernel="SoftmaxFocal", row="_softmax_focal", options=[("double", "gamma"), ("int64_t", "ignore_index")],
#@      targets="ignorable", hessian=True)
cdef inline double _softmax_focal(const SoftmaxFocalOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off,
                                  double g, floating_t* scratch, char* flags) noexcept nogil:
    return _softmax_target_row(b, p, off, g, scratch, 0, op.gamma, 0.0)


#@ loss(kernel="Poly1CrossEntropy", row="_poly1_cross_entropy",
#@      options=[("double", "epsilon"), ("double", "label_smoothing"), ("int64_t", "ignore_index")],
#@      targets="ignorable", hessian=True)
cdef inline double _poly1_cross_entropy(const Poly1CrossEntropyOp* op, Buffers* b, Py_ssize_t p,
                                        Py_ssize_t off, double g, floating_t* scratch,
                                        char* flags) noexcept nogil:
    return _softmax_target_row(b, p, off, g, scratch, 1, op.epsilon, op.label_smoothing)


# -- Tversky and Dice over probabilities --------------------------------------------------------------
#@ loss(kernel="Tversky", row="_tversky", options=[("double", "alpha"), ("double", "beta"), ("double", "smooth"),
#@                                                 ("double", "tp_weight")], targets=None, hessian=True)
cdef inline double _tversky(const TverskyOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off, double g,
                            floating_t* scratch, char* flags) noexcept nogil:
    # Over a sample's row of probabilities x and targets y: TP = sum x y, FP = sum x (1 - y),
    # FN = sum (1 - x) y; loss = 1 - (c TP + s) / (c TP + alpha FP + beta FN + s). Tversky (Salehi et
    # al. 2017): c = 1; Dice (Milletari et al. 2016, with smoothing): c = 2, alpha = beta = 1, since
    # 2 TP + FP + FN = sum x + sum y. With N, D the fraction's terms and q_j = d D / d x_j
    #   = c y_j + alpha (1 - y_j) - beta y_j:
    #   d loss / d x_j = -(c y_j D - N q_j) / D^2,  d2 loss / d x_j^2 = 2 q_j (c y_j D - N q_j) / D^3.
    cdef Py_ssize_t C = b.C, j
    cdef const floating_t* x = <const floating_t*>b.x + p * C
    cdef const floating_t* y = <const floating_t*>b.t + p * C
    cdef floating_t* gx = NULL if b.gx == NULL else <floating_t*>b.gx + p * C
    cdef floating_t* hx = NULL if b.hx == NULL else <floating_t*>b.hx + p * C
    cdef double tp = 0.0, sx = 0.0, sy = 0.0, num, den, q, r, c = op.tp_weight
    for j in range(C):
        tp += <double>x[j] * <double>y[j]
        sx += x[j]
        sy += y[j]
    num = c * tp + op.smooth
    den = c * tp + op.alpha * (sx - tp) + op.beta * (sy - tp) + op.smooth
    for j in range(C):
        q = c * <double>y[j] + op.alpha * (1.0 - <double>y[j]) - op.beta * <double>y[j]
        r = c * <double>y[j] * den - num * q
        if gx != NULL:
            gx[j] = <floating_t>(-g * r / (den * den))
        if hx != NULL:
            hx[j] = <floating_t>(2.0 * g * q * r / (den * den * den))
    return 1.0 - num / den

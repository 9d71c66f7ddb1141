# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Connectionist temporal classification (CTC): the loss and its exact gradient, one sample per block.

Design
------
Per sample n (input length T_n, target l_0..l_{L-1}), the extended target l' = blank l_0 blank l_1
... l_{L-1} blank has 2L+1 states. alpha_t(s) sums the paths emitting l'_0..l'_s by time t
(including y_t(l'_s), y = exp(log_probs)); beta_t(s) sums the ways to finish from s at t, *excluding*
y_t, so that p = sum_s alpha_t(s) beta_t(s) at every t (Graves et al. 2006, eqs. 6-10, with beta
shifted by one emission). The loss is -log p and the true gradient wrt log_probs[t, c] is
-gamma_t(c) = -sum_{s: l'_s = c} alpha_t(s) beta_t(s) / p: no division by y (which may underflow).
torch instead returns exp(log_probs) - gamma, the gradient wrt the *logits* under the assumption
that log_probs came out of log_softmax (pytorch issues 52241, 181534); from_logits=True takes the
logits themselves, applies log_softmax here, and returns softmax - gamma, exactly that.

States are stored de-interleaved, blanks B[k] (k = 0..L) and labels Lb[k] (k = 0..L-1), so that
every recursion is a unit-stride loop the compiler vectorizes, blank emissions are one scalar per
step, and each step needs L+1 exps, not 2L+1:
    B_t[k]  = (B[k] + Lb[k-1]) y_b                       Lb_t[k] = (Lb[k] + B[k] + skip_k Lb[k-1]) y_{l_k}
    betaB_t[k] = uB[k] + uL[k]                           betaL_t[k] = uL[k] + uB[k+1] + skip_{k+1} uL[k+1]
with u = beta_{t+1} * y_{t+1} and skip_k = (l_k != l_{k-1}): a repeated label needs a blank between.
Pads around each row (zero, or -inf in log space) make the boundaries branch-free.

Probability space, rescaled; log space as the fallback (measured)
------------------------------------------------------------------
Log-space recursions (torch's CPU kernel) pay exps and a log per state and step. Here the
recursions run on probabilities, rescaled every step (Rabiner 1989, Graves 2006 sec. 4.1: normalize
each alpha_t and beta_t, add up the log scale factors). The scale is a power of two (frexp/ldexp):
multiplying by it is exact, and the scale exponents add up exactly in an integer, so log p =
ln2 * sum(exponents) + log(final alpha). The per-step work is then multiply-adds only, plus the
L+1 exps of the emissions. Measured (benchmarks/bench_ctc.py, log_space=True forces the log-space
recursions on every sample): at T=400, N=32, C=60, S=80 the rescaled recursions are several times
faster than the log-space ones, so they are the default; see README for the figures.

Rescaling cannot represent everything log space can: a state whose weight at step t is below
2^-1022 of that step's largest underflows, and exp(log_probs) underflows below -708. Such losses are
local errors of at most ~2^-1074 / m_t (m_t: the step's largest unscaled value), and a local error d
in alpha_t(s) (or beta_t(s)) changes p by d * beta_t(s) (alpha_t(s)), i.e. by at most d / D_t relative,
where D_t = sum_s alpha_t(s) beta_t(s) with both rows scaled to a maximum in [1/2, 1). So the
backward pass, which computes D_t anyway (the gradient is alpha beta / D_t), certifies every step:
m_t * D_t >= 2^-CERTIFY_EXP for alpha's and beta's scales bounds the total relative error from
underflow far below double rounding. A sample that fails the certificate, or whose probability is
0 although its target fits (log_probs of -inf), or that meets inf/NaN, is recomputed in log space:
results are exact either way, and ordinary inputs never fall back. The value alone runs the same
passes (the certificate needs beta), so forward and forward_backward give the same bits.

Work, memory, determinism
-------------------------
One block per sample (run_blocks), so results never depend on the thread count; the per-sample
losses are combined by combine_partials in sample order. Per sample one malloc'd workspace holds the
alpha table T_n x (2L+4) and the emissions T_n x (L+1), both O(T (2S+1)), plus O(L + C) rows; the
only (T, N, C) array is the gradient, written row by row. Everything is computed in double for
both dtypes. A sample whose target cannot fit (T_n < L + number of repeated neighbours) is
infeasible before any recursion: loss inf (0 with zero_infinity) and, as in torch, a NaN gradient
on its rows t < T_n (zero with zero_infinity); rows t >= T_n are always zero.

Every index is validated in ``CTCKernel.run`` before any sample runs (lengths, labels in [0, C) and
not blank, the 1-D targets' total), so the nogil code never reads out of bounds, whoever calls it.
"""

from libc.math cimport exp, log, frexp, ldexp, INFINITY, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.stdint cimport int64_t
cimport numpy as cnp

cnp.import_array()

from _common cimport floating_t, combine_partials, run_blocks, array_data

cdef extern from *:
    """
    #if defined(__GNUC__) && defined(__x86_64__) && defined(LE_USE_LIBMVEC)
    /* As in elementwise.pyx: libmvec's vector exp/log let GCC vectorize the emission and log-space
       loops without -ffast-math (libmvec: < 4 ulp). */
    __attribute__((__simd__("notinbranch"))) double exp(double);
    __attribute__((__simd__("notinbranch"))) double log(double);
    #endif
    """

cdef enum:
    # The certificate: every step must have m_t * D_t >= 2^-CERTIFY_EXP (see the design note). With
    # local underflow errors <= 2^-1073 / m_t, the relative error of p is then below 2^-170 per
    # state and step: far below rounding, while the bound fails only for adversarial inputs.
    CERTIFY_EXP = 900
    # A step whose largest value is below 2^-SCALE_FLOOR would need a scale factor near overflow.
    SCALE_FLOOR = 1000

cdef double LN2 = 0.693147180559945309417232121458176568


cdef struct Ctx:
    const void* x                   # log_probs or logits, (T, N, C), compute dtype
    Py_ssize_t T
    Py_ssize_t N
    Py_ssize_t C
    const int64_t* targets
    const int64_t* offsets          # per sample: where its labels start in targets
    const int64_t* input_lengths
    const int64_t* target_lengths
    int64_t blank
    bint zero_infinity
    bint from_logits
    bint per_target_length          # 'mean': each sample's loss divided by max(L_n, 1)
    bint log_space                  # force the log-space recursions (measurement, tests)
    void* grad                      # (T, N, C) compute dtype, or NULL for the value alone
    double* nll                     # per sample -log p (after zero_infinity)
    const double* upstream          # per-sample grad_output, step ustep
    Py_ssize_t ustep
    double scale
    double* partials                # per sample: its share of the reduced value
    char* failed                    # per sample: its workspace allocation failed


cdef struct Work:
    Py_ssize_t Ti                   # input length
    Py_ssize_t L                    # target length
    Py_ssize_t K                    # L + 1: blank states, and emissions per step
    Py_ssize_t W                    # 2L + 4: a state row with its pads
    const int64_t* lab              # the labels
    double* skip                    # skip[k] = (l_k != l_{k-1}) for k in 1..L-1; 0 at 0 and L
    double* em                      # Ti x K: y (probability space) or log y; [0] blank, [1 + k] l_k
    double* alpha                   # Ti x W
    int* alpha_exp                  # Ti: alpha's scale exponents
    double* beta                    # W
    double* u                       # W
    double* ab_b                    # K
    double* ab_l                    # L (+1)
    double* row                     # C: one gradient row, in double
    double* lse                     # Ti: log sum exp(logits row - its max) (from_logits)
    double* lmax                    # Ti: the logits row's max (from_logits)


# Row layout: [pad | B_0 .. B_L | pad | Lb_0 .. Lb_{L-1} | pad]; B[-1], Lb[-1], Lb[L] are pads.
cdef inline double* _blanks(double* row) noexcept nogil:
    return row + 1

cdef inline double* _labels(double* row, Py_ssize_t L) noexcept nogil:
    return row + L + 3


cdef inline void _fill(double* v, Py_ssize_t n, double value) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        v[j] = value


cdef inline double _max(const double* v, Py_ssize_t n) noexcept nogil:
    # Four lanes break the compare-select chain; max is exact in any order. NaN is skipped here and
    # caught by the certificate (D_t = NaN fails it).
    cdef double m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY, r
    cdef Py_ssize_t j, n4 = n - n % 4
    for j in range(0, n4, 4):
        m0 = v[j] if v[j] > m0 else m0
        m1 = v[j + 1] if v[j + 1] > m1 else m1
        m2 = v[j + 2] if v[j + 2] > m2 else m2
        m3 = v[j + 3] if v[j + 3] > m3 else m3
    r = m0 if m0 > m1 else m1
    r = m2 if m2 > r else r
    r = m3 if m3 > r else r
    for j in range(n4, n):
        r = v[j] if v[j] > r else r
    return r


cdef inline double _sum(const double* v, Py_ssize_t n) noexcept nogil:
    # Four lanes combined in a fixed order: vectorizable, and the same bits on every run.
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, tail = 0.0
    cdef Py_ssize_t j, n4 = n - n % 4
    for j in range(0, n4, 4):
        s0 += v[j]
        s1 += v[j + 1]
        s2 += v[j + 2]
        s3 += v[j + 3]
    for j in range(n4, n):
        tail += v[j]
    return ((s0 + s1) + (s2 + s3)) + tail


cdef inline bint _rescale(double* row, Py_ssize_t W, int* exponent) noexcept nogil:
    """Scale ``row`` by a power of two so its maximum lies in [1/2, 1) (exact), storing the
    exponent; False when the maximum is 0, not finite or too small to scale safely."""
    cdef double m = _max(row, W), scale
    cdef Py_ssize_t j
    cdef int e
    if not (m > 0.0 and m < INFINITY):
        return False
    frexp(m, &e)
    if e < -SCALE_FLOOR:
        return False
    exponent[0] = e
    scale = ldexp(1.0, -e)
    for j in range(W):
        row[j] = row[j] * scale
    return True


# ---------------------------------------------------------------------------------------------
# The two number systems, as semirings (Goodman 1999, "Semiring parsing"): the recursions below are
# written once and specialized for each at compile time. Probabilities add and multiply; log
# probabilities combine by log-sum-exp and add. ``none`` is the additive identity (no path).
# ---------------------------------------------------------------------------------------------
cdef struct Prob:
    char unused
cdef struct LogProb:
    char unused

ctypedef fused Space:
    Prob
    LogProb


cdef inline double _none(const Space* space) noexcept nogil:
    if Space is Prob:
        return 0.0
    else:
        return -INFINITY


cdef inline double _times(const Space* space, double a, double b) noexcept nogil:
    if Space is Prob:
        return a * b
    else:
        return a + b


cdef inline double _plus(const Space* space, double a, double b) noexcept nogil:
    cdef double m
    if Space is Prob:
        return a + b
    else:
        # torch's form: max subtracted, a max of -inf replaced by 0 (no -inf - -inf); branch-free.
        m = a if a > b else b
        m = 0.0 if m == -INFINITY else m
        return m + log(exp(a - m) + exp(b - m))


cdef inline double _plus3(const Space* space, double a, double b, double c) noexcept nogil:
    cdef double m
    if Space is Prob:
        return (a + b) + c
    else:
        m = a if a > b else b
        m = c if c > m else m
        m = 0.0 if m == -INFINITY else m
        return m + log(exp(a - m) + exp(b - m) + exp(c - m))


# ---------------------------------------------------------------------------------------------
# Emissions: em[t, 0] = log y_t(blank), em[t, 1 + k] = log y_t(l_k) (exponentiated in probability
# space), with log y = log_probs, or logits - logsumexp(logits row) when from_logits.
# ---------------------------------------------------------------------------------------------
cdef inline double _row_lse(const floating_t* x, Py_ssize_t C, double* row_max) noexcept nogil:
    """log sum_c exp(x_c - m), m (stored in row_max) the row's max. The caller subtracts m and this
    separately, (x_c - m) - lse, as torch's log_softmax does: folding them into one shift m + lse
    first would round lse away once m is large (1e-9 relative error at m = 1e8, all of it by 1e16)."""
    cdef floating_t m = x[0]
    cdef Py_ssize_t c
    cdef double s = 0.0
    for c in range(1, C):
        m = x[c] if x[c] > m else m
    for c in range(C):
        s += exp(<double>x[c] - m)
    row_max[0] = m
    return log(s)


cdef void _emissions(Work* w, const Ctx* c, Py_ssize_t n, bint exponentiate,
                     floating_t dtype_tag) noexcept nogil:
    cdef Py_ssize_t t, k, K = w.K, C = c.C
    cdef const floating_t* xr
    cdef double shift, m
    cdef double* e
    for t in range(w.Ti):
        xr = <const floating_t*>c.x + (t * c.N + n) * C
        shift = 0.0
        m = 0.0
        if c.from_logits:
            shift = _row_lse(xr, C, &m)
            w.lse[t] = shift
            w.lmax[t] = m
        e = w.em + t * K
        e[0] = (<double>xr[c.blank] - m) - shift
        for k in range(w.L):
            e[1 + k] = (<double>xr[w.lab[k]] - m) - shift
    if exponentiate:
        e = w.em
        for k in range(w.Ti * K):
            e[k] = exp(e[k])


# ---------------------------------------------------------------------------------------------
# One gradient row: out = g (softmax(logits) or 0) - g gamma, gamma = (alpha beta) / D summed per
# class; accumulated in double, in state order, then stored in the compute dtype.
# ---------------------------------------------------------------------------------------------
cdef inline void _emit_row(const Work* w, const Ctx* c, Py_ssize_t t, Py_ssize_t n, double g,
                           double inv_d, floating_t dtype_tag) noexcept nogil:
    cdef Py_ssize_t k, C = c.C
    cdef Py_ssize_t off = (t * c.N + n) * C
    cdef floating_t* out = <floating_t*>c.grad + off
    cdef const floating_t* xr
    cdef double* row = w.row
    cdef double gd = g * inv_d, lse, m
    if c.from_logits:
        xr = <const floating_t*>c.x + off
        lse = w.lse[t]
        m = w.lmax[t]
        for k in range(C):
            row[k] = g * exp((<double>xr[k] - m) - lse)
    else:
        _fill(row, C, 0.0)
    row[c.blank] -= gd * _sum(w.ab_b, w.K)
    for k in range(w.L):
        row[w.lab[k]] -= gd * w.ab_l[k]
    for k in range(C):
        out[k] = <floating_t>row[k]


cdef inline void _fill_rows(const Ctx* c, Py_ssize_t n, Py_ssize_t t0, Py_ssize_t t1, double value,
                            floating_t dtype_tag) noexcept nogil:
    cdef Py_ssize_t t, k
    cdef floating_t* out
    for t in range(t0, t1):
        out = <floating_t*>c.grad + (t * c.N + n) * c.C
        for k in range(c.C):
            out[k] = <floating_t>value


# ---------------------------------------------------------------------------------------------
# The recursions, once for both spaces. In probability space every row is rescaled by a power of
# two (its exponent kept), and the backward pass certifies every step; log space needs neither.
# ---------------------------------------------------------------------------------------------
cdef bint _forward(Work* w, const Space* space, double* log_p) noexcept nogil:
    """alpha for every step into w.alpha; log p into log_p. False (probability space only) when
    the rescaled recursion cannot represent this sample: log space must decide."""
    cdef Py_ssize_t t, k, L = w.L, K = w.K, W = w.W
    cdef double* prev
    cdef double* cur = w.alpha
    cdef double* pb
    cdef double* pl
    cdef double* cb
    cdef double* cl
    cdef const double* e
    cdef const double* sk = w.skip
    cdef double none = _none(space), yb, p
    cdef int64_t exponents = 0
    _fill(cur, W, none)
    _blanks(cur)[0] = w.em[0]
    if L:
        _labels(cur, L)[0] = w.em[1]
    if Space is Prob:
        if not _rescale(cur, W, &w.alpha_exp[0]):
            return False
    for t in range(1, w.Ti):
        prev = w.alpha + (t - 1) * W
        cur = w.alpha + t * W
        e = w.em + t * K
        yb = e[0]
        pb = _blanks(prev)
        pl = _labels(prev, L)
        cb = _blanks(cur)
        cl = _labels(cur, L)
        cur[0] = none
        cur[K + 1] = none
        cur[W - 1] = none
        for k in range(K):
            cb[k] = _times(space, _plus(space, pb[k], pl[k - 1]), yb)
        for k in range(L):
            cl[k] = _times(space, _plus3(space, pl[k], pb[k], pl[k - 1] if sk[k] != 0.0 else none), e[1 + k])
        if Space is Prob:
            if not _rescale(cur, W, &w.alpha_exp[t]):
                return False
    p = _plus(space, _blanks(cur)[L], _labels(cur, L)[L - 1] if L else none)
    if Space is Prob:
        if not (p > 0.0 and p < INFINITY):
            return False    # underflow, -inf log-probs or non-finite input: log space decides
        for t in range(w.Ti):
            exponents += w.alpha_exp[t]
        p = <double>exponents * LN2 + log(p)
    log_p[0] = p
    return True


cdef bint _backward(Work* w, const Ctx* c, Py_ssize_t n, double g, const Space* space,
                    floating_t dtype_tag) noexcept nogil:
    """beta from the end; at each step alpha beta / D, the gradient row when wanted, and (in
    probability space) the certificate: False when it fails."""
    cdef Py_ssize_t t, k, L = w.L, K = w.K, W = w.W
    cdef double* bb = _blanks(w.beta)
    cdef double* bl = _labels(w.beta, L)
    cdef double* ub = _blanks(w.u)
    cdef double* ul = _labels(w.u, L)
    cdef double* ab
    cdef double* al
    cdef const double* e
    cdef const double* sk = w.skip
    cdef double none = _none(space), yb, d, m
    cdef int beta_exp = 1, d_exp
    _fill(w.beta, W, none)
    _fill(w.u, W, none)
    # beta_{T-1} = 1 on the two final states (scaled to [1/2, 1) in probability space).
    bb[L] = 0.5 if Space is Prob else 0.0
    if L:
        bl[L - 1] = bb[L]
    t = w.Ti - 1
    while t >= 0:
        if t < w.Ti - 1:
            e = w.em + (t + 1) * K
            yb = e[0]
            for k in range(K):
                ub[k] = _times(space, bb[k], yb)
            for k in range(L):
                ul[k] = _times(space, bl[k], e[1 + k])
            for k in range(K):
                bb[k] = _plus(space, ub[k], ul[k])
            for k in range(L):
                bl[k] = _plus3(space, ul[k], ub[k + 1], ul[k + 1] if sk[k + 1] != 0.0 else none)
            if Space is Prob:
                if not _rescale(w.beta, W, &beta_exp):
                    return False
        ab = _blanks(w.alpha + t * W)
        al = _labels(w.alpha + t * W, L)
        for k in range(K):
            w.ab_b[k] = _times(space, ab[k], bb[k])
        for k in range(L):
            w.ab_l[k] = _times(space, al[k], bl[k])
        if Space is LogProb:
            # gamma = exp(ab - log D), log D = m + log(sum exp(ab - m)): exp(ab - m) over the sum.
            m = _max(w.ab_b, K)
            if L:
                m = max(m, _max(w.ab_l, L))
            for k in range(K):
                w.ab_b[k] = exp(w.ab_b[k] - m)
            for k in range(L):
                w.ab_l[k] = exp(w.ab_l[k] - m)
        d = _sum(w.ab_b, K) + _sum(w.ab_l, L)
        if Space is Prob:
            if not (d > 0.0 and d < INFINITY):
                return False
            frexp(d, &d_exp)
            if w.alpha_exp[t] + d_exp < -CERTIFY_EXP or beta_exp + d_exp < -CERTIFY_EXP:
                return False
        if c.grad != NULL:
            _emit_row(w, c, t, n, g, 1.0 / d, dtype_tag)
        t -= 1
    return True


# ---------------------------------------------------------------------------------------------
# One sample.
# ---------------------------------------------------------------------------------------------
cdef inline bint _fits(const int64_t* lab, Py_ssize_t L, Py_ssize_t Ti) noexcept nogil:
    """Whether some alignment exists: L labels plus a blank between each repeated pair."""
    cdef Py_ssize_t k, need = L
    for k in range(1, L):
        need += lab[k] == lab[k - 1]
    return Ti >= need


cdef double _solve(Work* w, const Ctx* c, Py_ssize_t n, double g, floating_t dtype_tag) noexcept nogil:
    """-log p for a sample whose target fits; gradient rows t < Ti when wanted and p > 0.
    Probability space first (the value alone too: its certificate needs beta); log space when it
    declines."""
    cdef Prob prob
    cdef LogProb log_prob
    cdef double log_p
    if not c.log_space:
        _emissions(w, c, n, True, dtype_tag)
        if _forward(w, &prob, &log_p) and _backward(w, c, n, g, &prob, dtype_tag):
            return -log_p
    _emissions(w, c, n, False, dtype_tag)
    _forward(w, &log_prob, &log_p)
    if c.grad != NULL and log_p > -INFINITY:
        _backward(w, c, n, g, &log_prob, dtype_tag)
    return -log_p


cdef void _sample(Ctx* c, Py_ssize_t n, floating_t dtype_tag) noexcept nogil:
    cdef Py_ssize_t Ti = c.input_lengths[n], L = c.target_lengths[n], K = L + 1, W = 2 * L + 4
    cdef double weight = 1.0 / (L if L > 1 else 1) if c.per_target_length else 1.0
    cdef double g = c.scale * c.upstream[n * c.ustep] * weight, nll
    cdef Work w
    cdef double* block
    cdef Py_ssize_t k
    c.failed[n] = 0
    if c.grad != NULL:
        _fill_rows(c, n, Ti, c.T, 0.0, dtype_tag)
    if Ti == 0:
        nll = -0.0 if L == 0 else INFINITY      # torch: -(log-likelihood 0 or -inf)
    elif not _fits(c.targets + c.offsets[n], L, Ti):
        nll = INFINITY
    else:
        w.Ti = Ti
        w.L = L
        w.K = K
        w.W = W
        w.lab = c.targets + c.offsets[n]
        block = <double*>malloc((Ti * K + Ti * W + 2 * W + 2 * K + c.C + 2 * Ti + K + 1) * sizeof(double))
        w.alpha_exp = <int*>malloc(Ti * sizeof(int))
        if block == NULL or w.alpha_exp == NULL:
            free(block)
            free(w.alpha_exp)
            c.failed[n] = 1
            c.partials[n] = 0.0
            return
        w.em = block
        w.alpha = w.em + Ti * K
        w.beta = w.alpha + Ti * W
        w.u = w.beta + W
        w.ab_b = w.u + W
        w.ab_l = w.ab_b + K
        w.row = w.ab_l + K
        w.lse = w.row + c.C
        w.lmax = w.lse + Ti
        w.skip = w.lmax + Ti
        w.skip[0] = 0.0
        for k in range(1, L):
            w.skip[k] = w.lab[k] != w.lab[k - 1]
        w.skip[L] = 0.0
        nll = _solve(&w, c, n, g, dtype_tag)
        free(block)
        free(w.alpha_exp)
    if nll == INFINITY:
        if c.zero_infinity:
            nll = 0.0
        if c.grad != NULL:
            _fill_rows(c, n, 0, Ti, 0.0 if c.zero_infinity else NAN, dtype_tag)
    elif nll != nll and c.grad != NULL:
        # NaN in the sample's log_probs (torch: NaN loss and NaN gradient on its rows). The
        # recursions stop early on it, so the rows must be written here, not left as they were.
        _fill_rows(c, n, 0, Ti, NAN, dtype_tag)
    c.nll[n] = nll
    c.partials[n] = weight * nll


cdef void _sample_f32(void* ctx, Py_ssize_t n) noexcept nogil:
    _sample(<Ctx*>ctx, n, <float>0)


cdef void _sample_f64(void* ctx, Py_ssize_t n) noexcept nogil:
    _sample(<Ctx*>ctx, n, <double>0)


# ---------------------------------------------------------------------------------------------
# Validation (with the GIL, before any sample runs) and the Python entry point.
# ---------------------------------------------------------------------------------------------
cdef str _where(bint padded, Py_ssize_t n, Py_ssize_t j, Py_ssize_t flat):
    if padded:
        return f"targets[{n}, {j}]"
    return f"targets[{flat}] (sample {n}'s label {j})"


cdef int64_t _validate(const int64_t* targets, Py_ssize_t n_targets, bint padded, Py_ssize_t S,
                      const int64_t* input_lengths, const int64_t* target_lengths, int64_t* offsets,
                      Py_ssize_t N, Py_ssize_t T, Py_ssize_t C, int64_t blank) except -1:
    """Raise for the first invalid length or label; fill offsets; return the recursion work."""
    cdef Py_ssize_t n, j
    cdef int64_t Ti, L, pos = 0, v, work = 0
    for n in range(N):
        Ti = input_lengths[n]
        L = target_lengths[n]
        if Ti < 0:
            raise ValueError(f"input_lengths[{n}] = {Ti} is negative (sample {n}): lengths must be >= 0")
        if Ti > T:
            raise ValueError(f"input_lengths[{n}] = {Ti} exceeds the {T} time steps of log_probs "
                             f"(sample {n}): input lengths must be <= T")
        if L < 0:
            raise ValueError(f"target_lengths[{n}] = {L} is negative (sample {n}): lengths must be >= 0")
        if padded:
            if L > S:
                raise ValueError(f"target_lengths[{n}] = {L} exceeds the padded targets' length {S} "
                                 f"(sample {n}): target lengths must be <= targets.shape[1]")
            offsets[n] = n * S
        else:
            if L > n_targets - pos:
                raise ValueError(f"target_lengths[:{n + 1}] sum to {pos + L}, more than the {n_targets} labels "
                                 f"of the 1-D (concatenated) targets (sample {n})")
            offsets[n] = pos
            pos += L
        work += Ti * (2 * L + 1)
    if not padded and pos != n_targets:
        raise ValueError(f"target_lengths sum to {pos}, but the 1-D (concatenated) targets hold "
                         f"{n_targets} labels: they must be equal")
    for n in range(N):
        for j in range(target_lengths[n]):
            v = targets[offsets[n] + j]
            if v < 0 or v >= C:
                raise IndexError(f"{_where(padded, n, j, offsets[n] + j)} = {v} is out of range "
                                 f"(sample {n}): labels must lie in [0, {C})")
            if v == blank:
                raise ValueError(f"{_where(padded, n, j, offsets[n] + j)} = {v} is the blank label "
                                 f"(sample {n}): the blank cannot be a target label")
    return work


cdef class CTCKernel:
    """The compiled CTC loss for one set of options. ``run`` validates every length and label,
    then computes every sample (in parallel over samples), writing per-sample losses and,
    when asked, the gradient."""

    cdef readonly int64_t blank
    cdef readonly bint zero_infinity
    cdef readonly bint from_logits
    cdef readonly bint per_target_length
    cdef readonly bint log_space

    def __init__(self, *, int64_t blank, bint zero_infinity, bint from_logits, bint per_target_length,
                 bint log_space=False):
        if blank < 0:
            raise ValueError(f"blank must be a non-negative class index, got {blank}")
        self.blank = blank
        self.zero_infinity = zero_infinity
        self.from_logits = from_logits
        self.per_target_length = per_target_length
        self.log_space = log_space

    def run(self, *, log_probs, targets, input_lengths, target_lengths, grad, nll, upstream,
            double scale, int num_threads, Py_ssize_t min_parallel):
        """Returns sum_n weight_n nll_n (weight 1/max(L_n, 1) when per_target_length, else 1).

        log_probs: (T, N, C) float32/float64, C-contiguous; targets: int64, (N, S) padded or 1-D
        concatenated; input_lengths, target_lengths: int64 (N,); grad: like log_probs (writable) or
        None; nll: float64 (N,) (writable); upstream: float64, N elements or 1 (per-sample
        grad_output); the gradient of sample n is scale * upstream[n] * weight_n * d nll_n.
        """
        cdef Ctx c
        cdef bint is_double
        cdef Py_ssize_t n, N, S = 0, n_targets
        cdef bint padded
        cdef int ftype
        cdef int64_t work
        cdef bint parallel
        cdef double total
        if log_probs.ndim != 3:
            raise ValueError(f"CTC kernel: log_probs must be (T, N, C), got shape {log_probs.shape}")
        c.T, c.N, c.C = log_probs.shape
        N = c.N
        is_double = log_probs.dtype.itemsize == 8
        ftype = cnp.NPY_DOUBLE if is_double else cnp.NPY_FLOAT
        padded = targets.ndim == 2
        if padded:
            if targets.shape[0] != N:
                raise ValueError(f"CTC kernel: padded targets must have {N} rows, got shape {targets.shape}")
            S = targets.shape[1]
        elif targets.ndim != 1:
            raise ValueError(f"CTC kernel: targets must be 1-D or 2-D, got shape {targets.shape}")
        n_targets = targets.size
        for name, arr in (("input_lengths", input_lengths), ("target_lengths", target_lengths), ("nll", nll)):
            if arr.shape != (N,):
                raise ValueError(f"CTC kernel: {name} must have shape ({N},), got {arr.shape}")
        if upstream.size not in (1, N):
            raise ValueError(f"CTC kernel: upstream must have 1 or {N} elements, got {upstream.size}")
        if grad is not None and grad.shape != log_probs.shape:
            raise ValueError(f"CTC kernel: grad must have log_probs' shape {log_probs.shape}, got {grad.shape}")
        if not 0 <= self.blank < c.C:
            raise ValueError(f"blank = {self.blank} must be a class index in [0, {c.C}): "
                             f"log_probs has {c.C} classes")
        c.x = array_data(log_probs, ftype, False, "ctc") if log_probs.size else NULL
        c.targets = <const int64_t*>array_data(targets, cnp.NPY_INT64, False, "ctc") if n_targets else NULL
        c.input_lengths = <const int64_t*>array_data(input_lengths, cnp.NPY_INT64, False, "ctc") if N else NULL
        c.target_lengths = <const int64_t*>array_data(target_lengths, cnp.NPY_INT64, False, "ctc") if N else NULL
        c.nll = <double*>array_data(nll, cnp.NPY_DOUBLE, True, "ctc") if N else NULL
        c.upstream = <const double*>array_data(upstream, cnp.NPY_DOUBLE, False, "ctc")
        c.ustep = 1 if upstream.size == N and N != 1 else 0
        c.grad = NULL if grad is None or grad.size == 0 else array_data(grad, ftype, True, "ctc")
        c.blank = self.blank
        c.zero_infinity = self.zero_infinity
        c.from_logits = self.from_logits
        c.per_target_length = self.per_target_length
        c.log_space = self.log_space
        c.scale = scale
        if N == 0:
            return 0.0
        c.offsets = NULL
        c.partials = NULL
        c.failed = NULL
        try:
            c.offsets = <int64_t*>malloc(N * sizeof(int64_t))
            c.partials = <double*>malloc(N * sizeof(double))
            c.failed = <char*>malloc(N)
            if c.offsets == NULL or c.partials == NULL or c.failed == NULL:
                raise MemoryError()
            work = _validate(c.targets, n_targets, padded, S, c.input_lengths, c.target_lengths,
                             <int64_t*>c.offsets, N, c.T, c.C, c.blank)
            if grad is not None:
                work += c.T * N * c.C
            parallel = work >= min_parallel
            with nogil:
                run_blocks(_sample_f64 if is_double else _sample_f32, &c, N, num_threads, parallel)
            for n in range(N):
                if c.failed[n]:
                    raise MemoryError(f"CTC: could not allocate the workspace of sample {n}")
            total = combine_partials(c.partials, N)
        finally:
            free(<void*>c.offsets)
            free(c.partials)
            free(c.failed)
        return total

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The elementwise loss family: one generic driver, specialized per loss at compile time.

Design
------
Every elementwise loss is a pure per-element function of up to four aligned values (its arguments,
e.g. input, target, var; option arrays such as BCE's weight ride along as extra arguments) that returns
the element's loss and writes its partial derivatives with respect to each of those values. That
function plus a struct holding the loss's scalar options is all a loss contributes.

The driver ``_run_blocks`` is written once. It is fused over ``ElementwiseOp`` (the option structs) and
over the float type, so Cython stamps out one specialization per (loss, dtype) in which the loss's
per-element function is inlined: there is no function pointer and no switch in the inner loop.
(scikit-learn measured that per-element function pointers cost real time and generates its loops
with Tempita instead; a fused type gives the same result in plain Cython.) The ``PluginOp`` member
routes through a function pointer: it is the door through which a separately compiled plugin gets
the very same driver.

One pass computes everything the caller asked for: the per-element loss ('none'), the block partial
sums ('mean'/'sum' value) and the gradients of every requested argument. The gradient's scale is
known before the pass (grad_output, grad_output / N, or the per-element grad_output array for
'none'), so values and gradients come out of the same loop. Elements are computed in double for both
dtypes; float32 loads are widened and stores narrowed.

Vectorization. Each block is walked in chunks of CHUNK elements, in three stages: load (widen each
operand, or repeat its one broadcast value, into a small local array), math (the loss's inlined
per-element function over local arrays only: no strides, no NULL checks, no aliasing, so GCC
vectorizes it), store (loss values, scaled gradients, and the block's sum in index order). The math
stage calls exp/log/log1p; glibc's libmvec supplies vector variants of them, which math.h declares
only under -ffast-math. We declare them ourselves (when setup.py finds libmvec), so the loop
vectorizes with IEEE semantics otherwise intact; libmvec is accurate to < 4 ulp. Per-element
functions are written branch-light (selects, one shared exp) so the compiler can if-convert them.
The block's sum stays a sequential loop: summation order never depends on vector width or threads.

Arrays reach the driver already normalized by lossengine/_arrays.py: C-contiguous, native byte order,
of the computation dtype, each either full length (step 1) or a single broadcast value (step 0).
"""

from libc.math cimport exp, log, log1p, fabs, NAN, M_PI
from libc.stdlib cimport malloc, free
from cython.parallel cimport prange
cimport numpy as cnp

cnp.import_array()

from _common cimport floating_t, REDUCTION_BLOCK, block_count, combine_partials, array_data

cdef extern from *:
    """
    #if defined(__GNUC__) && defined(__x86_64__) && defined(LE_USE_LIBMVEC)
    /* glibc's libmvec has vector variants of these; math.h declares them only under -ffast-math,
       which would also license unsafe rewrites. Declaring them here lets GCC vectorize the math
       loop with IEEE semantics otherwise intact (libmvec: < 4 ulp). */
    __attribute__((__simd__("notinbranch"))) double exp(double);
    __attribute__((__simd__("notinbranch"))) double log(double);
    __attribute__((__simd__("notinbranch"))) double log1p(double);
    #endif
    #ifdef _OPENMP
    #include <omp.h>
    #define LE_OPENMP 1
    static int le_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define LE_OPENMP 0
    static int le_max_threads(void) { return 1; }
    #endif
    #ifndef LE_COMPILE_FLAGS
    #define LE_COMPILE_FLAGS "unknown"
    #endif
    """
    const int LE_OPENMP
    const char* LE_COMPILE_FLAGS
    int le_max_threads() nogil

cdef enum:
    MAX_ARGS = 4

# ---------------------------------------------------------------------------------------------
# Per-loss options. C has no empty structs, so option-less losses carry a placeholder.
# ---------------------------------------------------------------------------------------------
cdef struct L1Op:
    char no_options
cdef struct MSEOp:
    char no_options
cdef struct SmoothL1Op:
    double beta
cdef struct HuberOp:
    double delta
cdef struct BCEOp:                     # arguments: input, target, weight
    char no_options
cdef struct BCEWithLogitsOp:           # arguments: input, target, weight, pos_weight
    bint has_pos_weight
cdef struct SoftMarginOp:
    char no_options
cdef struct KLDivOp:
    bint log_target
cdef struct PoissonNLLOp:
    bint log_input
    bint full
    double eps
cdef struct GaussianNLLOp:             # arguments: input, target, var
    bint full
    double eps
cdef struct HingeEmbeddingOp:
    double margin

ctypedef double (*element_fn)(const double* args, const double* params, double* partials) noexcept nogil
# fn over a whole chunk of local arrays (args[k][j] in, values[j] and partials[k][j] out), compiled by
# the plugin with fn inlined so it vectorizes like a built-in; NULL: fn is called per element.
ctypedef void (*chunk_fn)(Py_ssize_t m, const double* const* args, const double* params, double* values,
                          double* const* partials) noexcept nogil
cdef struct PluginOp:
    element_fn fn
    chunk_fn chunk
    const double* params
    int nops                           # operands the plugin loss has (2 to MAX_ARGS)

ctypedef fused ElementwiseOp:
    L1Op
    MSEOp
    SmoothL1Op
    HuberOp
    BCEOp
    BCEWithLogitsOp
    SoftMarginOp
    KLDivOp
    PoissonNLLOp
    GaussianNLLOp
    HingeEmbeddingOp
    PluginOp


# ---------------------------------------------------------------------------------------------
# Per-element math. a[k] are the element's argument values; d[k] receives d loss / d a[k].
# Each formula follows torch 2.13's CPU kernel or autograd formula, quirks included (noted inline).
# ---------------------------------------------------------------------------------------------
cdef inline double _sign(double x) noexcept nogil:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


cdef inline double l1(const double* a, double* d) noexcept nogil:
    cdef double diff = a[0] - a[1]
    d[0] = _sign(diff)
    d[1] = -d[0]
    return fabs(diff)


cdef inline double mse(const double* a, double* d) noexcept nogil:
    cdef double diff = a[0] - a[1]
    d[0] = 2.0 * diff
    d[1] = -d[0]
    return diff * diff


cdef inline double smooth_l1(const SmoothL1Op* op, const double* a, double* d) noexcept nogil:
    # torch: beta == 0 dispatches to l1_loss (so the gradient at diff == 0 is 0, not x / 0).
    if op.beta == 0.0:
        return l1(a, d)
    cdef double diff = a[0] - a[1]
    cdef double z = fabs(diff)
    d[0] = -1.0 if diff <= -op.beta else (1.0 if diff >= op.beta else diff / op.beta)
    d[1] = -d[0]
    return 0.5 * z * z / op.beta if z < op.beta else z - 0.5 * op.beta


cdef inline double huber(const HuberOp* op, const double* a, double* d) noexcept nogil:
    cdef double diff = a[0] - a[1]
    cdef double z = fabs(diff)
    d[0] = -op.delta if diff <= -op.delta else (op.delta if diff >= op.delta else diff)
    d[1] = -d[0]
    return 0.5 * z * z if z < op.delta else op.delta * (z - 0.5 * op.delta)


cdef double BCE_GRAD_EPS = <float>1e-12


cdef inline double bce(const double* a, double* d) noexcept nogil:
    # torch: each log is clamped at -100; the input gradient divides by max(x (1 - x), eps) where eps
    # is 1e-12 rounded to float32 (9.99999996e-13), in float64 too; the target gradient is -logit(x),
    # unclamped.
    cdef double x = a[0], y = a[1], w = a[2]
    cdef double log_x = log(x), log_1mx = log1p(-x)
    if log_x < -100.0:
        log_x = -100.0
    if log_1mx < -100.0:
        log_1mx = -100.0
    cdef double denom = (1.0 - x) * x
    if denom < BCE_GRAD_EPS:
        denom = BCE_GRAD_EPS
    d[0] = w * (x - y) / denom
    d[1] = -w * log(x / (1.0 - x))
    d[2] = 0.0
    return w * ((y - 1.0) * log_1mx - y * log_x)


cdef inline double bce_with_logits(const BCEWithLogitsOp* op, const double* a, double* d) noexcept nogil:
    # loss = w ((1 - y) x - (1 + (p - 1) y) log_sigmoid(x)), torch's form, finite at |x| = 1e4.
    # One exp(-|x|) serves log_sigmoid(x), log_sigmoid(-x) and sigmoid(x) (the kernel's hot cost).
    cdef double x = a[0], y = a[1], w = a[2], p = a[3]
    cdef double z = exp(-fabs(x))
    cdef double log1p_z = log1p(z)
    cdef double ls = (x if x < 0.0 else 0.0) - log1p_z          # log_sigmoid(x)
    cdef double sig = (1.0 if x >= 0.0 else z) / (1.0 + z)    # a select, not a mispredicted branch
    cdef double t
    if op.has_pos_weight:
        t = p * y
        d[0] = w * ((t + 1.0 - y) * sig - t)
        d[1] = w * (((-x) if x > 0.0 else 0.0) - log1p_z - ls * p)   # log_sigmoid(-x) - p log_sigmoid(x)
        ls = ls * ((p - 1.0) * y + 1.0)
    else:
        d[0] = w * (sig - y)
        d[1] = -w * x          # exact; log_sigmoid(-x) - log_sigmoid(x) would cancel near 0
    return w * ((1.0 - y) * x - ls)


cdef inline double soft_margin(const double* a, double* d) noexcept nogil:
    # log(1 + exp(v)), v = -x y, as max(v, 0) + log1p(exp(-|v|)): exact for every v, where torch's
    # log1p(exp(v)) overflows for v > 709. The one exp also gives sigmoid(v); no branch, so the
    # math loop vectorizes.
    cdef double x = a[0], y = a[1], v = -x * y
    cdef double z = exp(-fabs(v))
    d[0] = -y * (1.0 if v >= 0.0 else z) / (1.0 + z)
    return (v if v > 0.0 else 0.0) + log1p(z)


cdef inline double kl_div(const KLDivOp* op, const double* a, double* d) noexcept nogil:
    cdef double x = a[0], t = a[1], et
    if op.log_target:
        et = exp(t)
        d[0] = -et
        d[1] = et * (t - x + 1.0)
        return et * (t - x)
    d[0] = -t
    # torch differentiates xlogy(t, t) by autograd: log(t) + t / t, which is NaN at t == 0.
    d[1] = NAN if t == 0.0 else log(t) + 1.0 - x
    if t == 0.0:
        return -t * x           # xlogy(0, 0) = 0
    return t * log(t) - t * x


cdef inline double poisson_nll(const PoissonNLLOp* op, const double* a, double* d) noexcept nogil:
    cdef double x = a[0], y = a[1], value, log_xe
    if op.log_input:
        value = exp(x) - y * x
        d[0] = exp(x) - y
        d[1] = -x
    else:
        log_xe = log(x + op.eps)
        value = x - y * log_xe
        d[0] = 1.0 - y / (x + op.eps)
        d[1] = -log_xe
    if op.full:
        # Stirling term only where y > 1 (masked_fill). Autograd still multiplies the masked zero by
        # log(y) and 1/y, so torch's target gradient is NaN where y <= 0.
        if y > 1.0:
            value = value + y * log(y) - y + 0.5 * log(2.0 * M_PI * y)
            d[1] = d[1] + log(y) + 0.5 / y
        elif not (y > 0.0):
            d[1] = NAN
    return value


cdef inline double gaussian_nll(const GaussianNLLOp* op, const double* a, double* d) noexcept nogil:
    # torch clamps var at eps under no_grad: the clamped value is used, the gradient flows as if
    # unclamped (d/dvar uses the clamped value even where var < eps).
    cdef double diff = a[0] - a[1]
    cdef double v = a[2]
    if v < op.eps:
        v = op.eps
    cdef double r = diff / v
    d[0] = r
    d[1] = -r
    d[2] = 0.5 * (1.0 / v - r * r)
    cdef double value = 0.5 * (log(v) + diff * diff / v)
    if op.full:
        value = value + 0.5 * log(2.0 * M_PI)
    return value


cdef inline double hinge_embedding(const HingeEmbeddingOp* op, const double* a, double* d) noexcept nogil:
    # torch: where(y != 1, clamp_min(margin - x, 0), 0) + where(y != -1, x, 0), so a target outside
    # {1, -1} gets both terms. clamp_min's gradient passes at margin - x == 0.
    cdef double x = a[0], y = a[1], m = op.margin - x
    cdef double value = 0.0
    d[0] = 0.0
    d[1] = 0.0
    if y != 1.0:
        value = 0.0 if m < 0.0 else m
        if m >= 0.0:
            d[0] = -1.0
    if y != -1.0:
        value = value + x
        d[0] = d[0] + 1.0
    return value


cdef inline double value_and_partials(const ElementwiseOp* op, const double* a, double* d) noexcept nogil:
    if ElementwiseOp is L1Op:
        return l1(a, d)
    elif ElementwiseOp is MSEOp:
        return mse(a, d)
    elif ElementwiseOp is SmoothL1Op:
        return smooth_l1(op, a, d)
    elif ElementwiseOp is HuberOp:
        return huber(op, a, d)
    elif ElementwiseOp is BCEOp:
        return bce(a, d)
    elif ElementwiseOp is BCEWithLogitsOp:
        return bce_with_logits(op, a, d)
    elif ElementwiseOp is SoftMarginOp:
        return soft_margin(a, d)
    elif ElementwiseOp is KLDivOp:
        return kl_div(op, a, d)
    elif ElementwiseOp is PoissonNLLOp:
        return poisson_nll(op, a, d)
    elif ElementwiseOp is GaussianNLLOp:
        return gaussian_nll(op, a, d)
    elif ElementwiseOp is HingeEmbeddingOp:
        return hinge_embedding(op, a, d)
    else:
        return op.fn(a, op.params, d)


cdef inline int _first_outside_domain(const ElementwiseOp* op, const double* a0, const double* a1,
                                      const double* a2, const double* a3, Py_ssize_t m) noexcept nogil:
    """The domain bitmask of a chunk's first offending element (torch reports the first element in
    order, checking input before target). Runs only on the error path."""
    cdef double a[MAX_ARGS]
    cdef Py_ssize_t j
    cdef int code
    for j in range(m):
        a[0] = a0[j]
        a[1] = a1[j]
        a[2] = a2[j]
        a[3] = a3[j]
        code = outside_domain(op, a)
        if code:
            return code
    return 0


cdef inline int operand_count(const ElementwiseOp* op) noexcept nogil:
    """How many operands the loss reads: a compile-time constant for built-ins, so the driver's
    loads and stores of unused slots fold away."""
    if ElementwiseOp is BCEOp or ElementwiseOp is GaussianNLLOp:
        return 3
    elif ElementwiseOp is BCEWithLogitsOp:
        return MAX_ARGS
    elif ElementwiseOp is PluginOp:
        return op.nops
    else:
        return 2


cdef inline int outside_domain(const ElementwiseOp* op, const double* a) noexcept nogil:
    """Inputs torch rejects with an error, as a bitmask (bit k: operand k). Checked in-kernel: no
    extra pass over the data."""
    if ElementwiseOp is BCEOp:
        return (not (a[0] >= 0.0 and a[0] <= 1.0)) | ((not (a[1] >= 0.0 and a[1] <= 1.0)) << 1)
    elif ElementwiseOp is GaussianNLLOp:
        return (a[2] < 0.0) << 2
    else:
        return 0


# ---------------------------------------------------------------------------------------------
# The driver.
# ---------------------------------------------------------------------------------------------
cdef struct Buffers:
    Py_ssize_t n
    const void* args[MAX_ARGS]
    Py_ssize_t arg_step[MAX_ARGS]       # 1: full length; 0: one broadcast value
    void* grads[MAX_ARGS]               # NULL where that gradient is not wanted
    void* loss_out                      # per-element loss ('none'), else NULL
    const void* grad_output             # per-element upstream gradient, step grad_output_step
    Py_ssize_t grad_output_step
    double grad_scale                   # 1 for 'none', grad_output for 'sum', grad_output / N for 'mean'
    double* partials                    # one sum per block
    char* block_bad                     # per block: domain bitmask of its first element outside the domain


cdef enum:
    # Elements per chunk inside a block: the chunk's widened operands, partials and values live in
    # small stack arrays (~13 KB), so the math loop runs over plain local arrays and vectorizes.
    CHUNK = 256


cdef inline void _load(const floating_t* src, Py_ssize_t step, Py_ssize_t start, Py_ssize_t m,
                       double* dst) noexcept nogil:
    cdef Py_ssize_t j
    cdef double v
    if step:
        for j in range(m):
            dst[j] = src[start + j]
    else:
        v = src[0]
        for j in range(m):
            dst[j] = v


cdef inline void _store_grad(floating_t* g, const double* d, const floating_t* upstream, Py_ssize_t ustep,
                             double scale, Py_ssize_t start, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    cdef double u
    if g == NULL:
        return
    if ustep:
        for j in range(m):
            g[start + j] = <floating_t>(scale * upstream[start + j] * d[j])
    else:
        u = scale * upstream[0]
        for j in range(m):
            g[start + j] = <floating_t>(u * d[j])


cdef inline void _run_block(const ElementwiseOp* op, Buffers* b, Py_ssize_t block,
                            floating_t dtype_tag) noexcept nogil:
    cdef double a0[CHUNK]
    cdef double a1[CHUNK]
    cdef double a2[CHUNK]
    cdef double a3[CHUNK]
    cdef double d0[CHUNK]
    cdef double d1[CHUNK]
    cdef double d2[CHUNK]
    cdef double d3[CHUNK]
    cdef double values[CHUNK]
    cdef double a[MAX_ARGS]
    cdef double d[MAX_ARGS]
    cdef floating_t* loss_out = <floating_t*>b.loss_out
    cdef const floating_t* upstream = <const floating_t*>b.grad_output
    cdef Py_ssize_t block_end = min((block + 1) * REDUCTION_BLOCK, b.n)
    cdef Py_ssize_t start, m, mm, j
    cdef double total = 0.0
    cdef int bad = 0, first_bad = 0
    cdef int nops = operand_count(op)
    a[2] = a[3] = 0.0
    d[0] = d[1] = d[2] = d[3] = 0.0    # losses with fewer arguments leave the rest untouched
    start = block * REDUCTION_BLOCK
    while start < block_end:
        m = min(CHUNK, block_end - start)
        _load(<const floating_t*>b.args[0], b.arg_step[0], start, m, a0)
        _load(<const floating_t*>b.args[1], b.arg_step[1], start, m, a1)
        if nops > 2:
            _load(<const floating_t*>b.args[2], b.arg_step[2], start, m, a2)
        if nops > 3:
            _load(<const floating_t*>b.args[3], b.arg_step[3], start, m, a3)
        # The math loop: local arrays in, local arrays out, the loss's function inlined.
        mm = m
        if has_chunk_fn(op):        # a plugin's compiled chunk function is the whole math loop
            call_chunk_fn(op, m, a0, a1, a2, a3, values, d0, d1, d2, d3)
            mm = 0
        for j in range(mm):
            a[0] = a0[j]
            a[1] = a1[j]
            if nops > 2:
                a[2] = a2[j]
            if nops > 3:
                a[3] = a3[j]
            bad = bad | outside_domain(op, a)
            values[j] = value_and_partials(op, a, d)
            d0[j] = d[0]
            d1[j] = d[1]
            if nops > 2:
                d2[j] = d[2]
            if nops > 3:
                d3[j] = d[3]
        if bad and not first_bad:
            first_bad = _first_outside_domain(op, a0, a1, a2, a3, m)
        for j in range(m):     # in index order: the block's sum must not depend on vector width
            total += values[j]
        if loss_out != NULL:
            for j in range(m):
                loss_out[start + j] = <floating_t>values[j]
        _store_grad(<floating_t*>b.grads[0], d0, upstream, b.grad_output_step, b.grad_scale, start, m)
        _store_grad(<floating_t*>b.grads[1], d1, upstream, b.grad_output_step, b.grad_scale, start, m)
        if nops > 2:
            _store_grad(<floating_t*>b.grads[2], d2, upstream, b.grad_output_step, b.grad_scale, start, m)
        if nops > 3:
            _store_grad(<floating_t*>b.grads[3], d3, upstream, b.grad_output_step, b.grad_scale, start, m)
        start += m
    b.partials[block] = total
    b.block_bad[block] = first_bad


cdef void _run_blocks(const ElementwiseOp* op, Buffers* b, floating_t dtype_tag,
                      int num_threads, Py_ssize_t min_parallel) noexcept nogil:
    cdef Py_ssize_t block, nblocks = block_count(b.n)
    if num_threads == 1 or b.n < min_parallel:
        # Small inputs skip the OpenMP runtime altogether: waking a team costs more than the work.
        for block in range(nblocks):
            _run_block(op, b, block, dtype_tag)
        return
    for block in prange(nblocks, schedule="static", num_threads=num_threads):
        _run_block(op, b, block, dtype_tag)


cdef int _dispatch(const ElementwiseOp* op, Buffers* b, bint is_double, int num_threads,
                   Py_ssize_t min_parallel) noexcept nogil:
    if is_double:
        _run_blocks(op, b, <double>0, num_threads, min_parallel)
    else:
        _run_blocks(op, b, <float>0, num_threads, min_parallel)
    return 0


# ---------------------------------------------------------------------------------------------
# Python entry point.
# ---------------------------------------------------------------------------------------------
cdef inline const void* _read_ptr(object arr, bint is_double) except NULL:
    return array_data(arr, cnp.NPY_DOUBLE if is_double else cnp.NPY_FLOAT, False, "elementwise")


cdef inline void* _write_ptr(object arr, bint is_double) except NULL:
    return array_data(arr, cnp.NPY_DOUBLE if is_double else cnp.NPY_FLOAT, True, "elementwise")


cdef int _prepare_buffers(Buffers* b, Py_ssize_t n, list args, list grads, loss_out, grad_output,
                          double grad_scale) except -1:
    """Fill ``b`` from the entry point's arrays (checked: dtype, contiguity, sizes) and allocate the
    per-block partials. Shared by ``run`` and ``run_plugin``; release with ``_finish``."""
    cdef Py_ssize_t k
    cdef bint is_double = args[0].dtype.itemsize == 8
    if not 1 <= len(args) <= MAX_ARGS or len(grads) != len(args):
        raise ValueError(f"elementwise kernel: 1 to {MAX_ARGS} operands with one gradient slot each, "
                         f"got {len(args)} operands and {len(grads)} slots")
    for a in args + grads + [loss_out, grad_output]:
        if a is not None and a.size != n and a.size != 1:
            raise ValueError(f"elementwise kernel: operand of {a.size} elements for a loss of {n}")
    b.n = n
    for k in range(MAX_ARGS):
        if k < len(args):
            b.args[k] = _read_ptr(args[k], is_double)
            b.arg_step[k] = 1 if args[k].size == n else 0
            b.grads[k] = NULL if grads[k] is None else _write_ptr(grads[k], is_double)
        else:
            b.args[k] = b.args[0]       # never used by the loss; a valid address to load from
            b.arg_step[k] = 0
            b.grads[k] = NULL
    b.loss_out = NULL if loss_out is None else _write_ptr(loss_out, is_double)
    b.grad_output = _read_ptr(grad_output, is_double)
    b.grad_output_step = 1 if grad_output.size == n else 0
    b.grad_scale = grad_scale
    b.partials = <double*>malloc(block_count(n) * sizeof(double))
    b.block_bad = <char*>malloc(block_count(n) * sizeof(char))
    if b.partials == NULL or b.block_bad == NULL:
        _release(b)
        raise MemoryError()
    return 0


cdef void _release(Buffers* b) noexcept:
    free(b.partials)
    free(b.block_bad)
    b.partials = NULL
    b.block_bad = NULL


cdef tuple _finish(Buffers* b):
    """(sum of the element losses, domain bitmask of the first offending element or 0); frees."""
    cdef Py_ssize_t k, nblocks = block_count(b.n)
    cdef int domain_error = 0
    for k in range(nblocks):
        if b.block_bad[k]:
            domain_error = b.block_bad[k]
            break
    cdef double total = combine_partials(b.partials, nblocks)
    _release(b)
    return total, domain_error


LOSS_KINDS = ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
              "binary_cross_entropy_with_logits", "soft_margin_loss", "kl_div", "poisson_nll_loss",
              "gaussian_nll_loss", "hinge_embedding_loss")


def run(str kind, dict options, Py_ssize_t n, list args, list grads, loss_out, grad_output,
        double grad_scale, int num_threads, Py_ssize_t min_parallel):
    """One fused pass over n elements. Returns (sum of element losses, domain bitmask: int): 0, or
    the bitmask of the first element outside the domain torch accepts (bit k: operand k).

    args: up to 4 arrays of one dtype (float32/float64), each of n elements or of 1 (broadcast).
    grads: one output array (n elements) or None per argument. loss_out: n-element output or None.
    grad_output: array of n or 1 elements of the same dtype. The caller guarantees all of this.
    """
    cdef Buffers b
    cdef bint is_double = args[0].dtype.itemsize == 8
    cdef L1Op l1_op
    cdef MSEOp mse_op
    cdef SmoothL1Op smooth_l1_op
    cdef HuberOp huber_op
    cdef BCEOp bce_op
    cdef BCEWithLogitsOp bce_logits_op
    cdef SoftMarginOp soft_margin_op
    cdef KLDivOp kl_op
    cdef PoissonNLLOp poisson_op
    cdef GaussianNLLOp gaussian_op
    cdef HingeEmbeddingOp hinge_op

    if n == 0:
        return 0.0, 0
    _prepare_buffers(&b, n, args, grads, loss_out, grad_output, grad_scale)
    try:
        # One line per loss: fill its options, hand it to the shared driver.
        if kind == "l1_loss":
            with nogil: _dispatch(&l1_op, &b, is_double, num_threads, min_parallel)
        elif kind == "mse_loss":
            with nogil: _dispatch(&mse_op, &b, is_double, num_threads, min_parallel)
        elif kind == "smooth_l1_loss":
            smooth_l1_op.beta = options["beta"]
            with nogil: _dispatch(&smooth_l1_op, &b, is_double, num_threads, min_parallel)
        elif kind == "huber_loss":
            huber_op.delta = options["delta"]
            with nogil: _dispatch(&huber_op, &b, is_double, num_threads, min_parallel)
        elif kind == "binary_cross_entropy":
            with nogil: _dispatch(&bce_op, &b, is_double, num_threads, min_parallel)
        elif kind == "binary_cross_entropy_with_logits":
            bce_logits_op.has_pos_weight = options["has_pos_weight"]
            with nogil: _dispatch(&bce_logits_op, &b, is_double, num_threads, min_parallel)
        elif kind == "soft_margin_loss":
            with nogil: _dispatch(&soft_margin_op, &b, is_double, num_threads, min_parallel)
        elif kind == "kl_div":
            kl_op.log_target = options["log_target"]
            with nogil: _dispatch(&kl_op, &b, is_double, num_threads, min_parallel)
        elif kind == "poisson_nll_loss":
            poisson_op.log_input = options["log_input"]
            poisson_op.full = options["full"]
            poisson_op.eps = options["eps"]
            with nogil: _dispatch(&poisson_op, &b, is_double, num_threads, min_parallel)
        elif kind == "gaussian_nll_loss":
            gaussian_op.full = options["full"]
            gaussian_op.eps = options["eps"]
            with nogil: _dispatch(&gaussian_op, &b, is_double, num_threads, min_parallel)
        elif kind == "hinge_embedding_loss":
            hinge_op.margin = options["margin"]
            with nogil: _dispatch(&hinge_op, &b, is_double, num_threads, min_parallel)
        else:
            raise ValueError(f"unknown elementwise loss kind {kind!r}")
    except BaseException:
        _release(&b)
        raise
    return _finish(&b)


def openmp_enabled():
    """True when this module was compiled with OpenMP."""
    return bool(LE_OPENMP)


def max_threads():
    """omp_get_max_threads() (1 without OpenMP)."""
    return le_max_threads()


def compile_flags():
    """The C flags this module was compiled with."""
    return (<bytes>LE_COMPILE_FLAGS).decode().split()


# =============================================================================================
# Compiled plugins: a separately built module's per-element function through the same driver.
#
# The plugin builds against lossengine/elementwise_api.pxd, whose ``element_fn`` and ``chunk_fn`` are
# the typedefs above and whose capsule names are the two below (tests/test_plugins.py holds the two
# files to that). The functions reach ``_dispatch`` as a ``PluginOp``, so a plugin gets the very
# blocks, chunks, threads, reductions and grad_output handling of a built-in. With only an element
# function the math stage makes one indirect call per element (no vectorization); with a chunk
# function (the pxd's for_each_element over the plugin's inline element function) the plugin's own
# compiler vectorizes the math stage exactly as for a built-in.
# =============================================================================================
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_GetName, PyCapsule_New

PLUGIN_CAPSULE_NAME = "lossengine.elementwise_api.element_fn.v1"
PLUGIN_CHUNK_CAPSULE_NAME = "lossengine.elementwise_api.chunk_fn.v1"
PLUGIN_MAX_OPERANDS = MAX_ARGS
cdef bytes _PLUGIN_CAPSULE_NAME = PLUGIN_CAPSULE_NAME.encode()
cdef bytes _PLUGIN_CHUNK_CAPSULE_NAME = PLUGIN_CHUNK_CAPSULE_NAME.encode()


cdef inline bint has_chunk_fn(const ElementwiseOp* op) noexcept nogil:
    if ElementwiseOp is PluginOp:
        return op.chunk != NULL
    else:
        return False


cdef inline void call_chunk_fn(const ElementwiseOp* op, Py_ssize_t m, const double* a0, const double* a1,
                               const double* a2, const double* a3, double* values, double* d0, double* d1,
                               double* d2, double* d3) noexcept nogil:
    cdef const double* args[MAX_ARGS]
    cdef double* partials[MAX_ARGS]
    if ElementwiseOp is PluginOp:
        args[0], args[1], args[2], args[3] = a0, a1, a2, a3
        partials[0], partials[1], partials[2], partials[3] = d0, d1, d2, d3
        op.chunk(m, args, op.params, values, partials)


cdef void* _capsule_pointer(object capsule, bytes name, str what) except NULL:
    if not PyCapsule_IsValid(capsule, name):
        found = None
        if type(capsule).__name__ == "PyCapsule":
            cname = PyCapsule_GetName(capsule)
            found = None if cname == NULL else (<bytes>cname).decode(errors="replace")
        raise TypeError(
            f"{what} must be a PyCapsule named {name.decode()!r}, made by lossengine.elementwise_api; got "
            + (f"a capsule named {found!r} (built against another lossengine?)" if found is not None
               else repr(type(capsule).__name__))
        )
    return PyCapsule_GetPointer(capsule, name)


def run_plugin(object element_function, object chunk_function, const double[::1] params, Py_ssize_t n,
               list args, list grads, loss_out, grad_output, double grad_scale, int num_threads,
               Py_ssize_t min_parallel):
    """``run`` for a plugin: the same arguments, with the plugin's capsules (element function, and
    chunk function or None) and its float64 parameters in place of (kind, options).
    Returns (sum of element losses, 0): plugins have no in-kernel domain check."""
    cdef Buffers b
    cdef PluginOp op
    cdef bint is_double = args[0].dtype.itemsize == 8

    op.fn = <element_fn>_capsule_pointer(element_function, _PLUGIN_CAPSULE_NAME, "element_function")
    op.chunk = NULL if chunk_function is None else <chunk_fn>_capsule_pointer(
        chunk_function, _PLUGIN_CHUNK_CAPSULE_NAME, "chunk_function")
    op.params = &params[0] if params.shape[0] > 0 else NULL
    # The driver always loads the first two operand slots (a one-argument loss gets a broadcast copy
    # of its input in the second).
    op.nops = max(2, len(args))
    if n == 0:
        return 0.0, 0
    _prepare_buffers(&b, n, args, grads, loss_out, grad_output, grad_scale)
    with nogil:
        _dispatch(&op, &b, is_double, num_threads, min_parallel)
    return _finish(&b)


# A compiled element function living here, so the tests exercise the plugin route (capsules, params,
# every operand slot) without building a separate extension: params[0] (x - y)^2 + params[1] w.
cdef inline double _selftest_element(const double* a, const double* p, double* d) noexcept nogil:
    cdef double diff = a[0] - a[1]
    d[0] = 2.0 * p[0] * diff
    d[1] = -d[0]
    d[2] = p[1]
    return p[0] * diff * diff + p[1] * a[2]


cdef void _selftest_chunk(Py_ssize_t m, const double* const* a, const double* p, double* v,
                          double* const* d) noexcept nogil:
    cdef Py_ssize_t j
    cdef double e[MAX_ARGS]
    cdef double g[MAX_ARGS]
    for j in range(m):
        e[0], e[1], e[2] = a[0][j], a[1][j], a[2][j]
        v[j] = _selftest_element(e, p, g)
        d[0][j], d[1][j], d[2][j] = g[0], g[1], g[2]


def _selftest_capsules():
    """(element capsule, chunk capsule) of the self-test loss."""
    return (PyCapsule_New(<void*>_selftest_element, _PLUGIN_CAPSULE_NAME, NULL),
            PyCapsule_New(<void*>_selftest_chunk, _PLUGIN_CHUNK_CAPSULE_NAME, NULL))

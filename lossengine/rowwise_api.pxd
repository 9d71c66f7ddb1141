# cython: language_level=3
# The public Cython API for compiled row-wise (classification) loss plugins.
#
# A plugin writes one function over one row of class scores and the row's class index, with the
# signature ``row_fn``, and hands it to lossengine as a PyCapsule; lossengine's own classification
# driver (pyx/classification.pyx, its ``PluginRowOp`` route: the built-ins' fixed row blocks,
# threads, deterministic sums, target validation, 'mean' over the sum of w[target], class weights,
# ignore_index, grad_output, (N, C, d1..dK) inputs) then runs it. Everything here is a declaration
# or an inline function: a plugin needs this file at build time only and links against nothing of
# lossengine's.
#
#     from libc.stdint cimport int64_t
#     from lossengine.rowwise_api cimport row_fn_capsule
#
#     cdef double my_row(Py_ssize_t C, const double* x, int64_t target, const double* params,
#                        double* grad) noexcept nogil:
#         ...                                   # loss of the row; grad[c] = d loss / d x[c]
#
#     ROW = row_fn_capsule(my_row)              # CompiledRowLoss.row_function
#
# Optionally, a float32 form of the same function (``row_f32_fn``: float scores, float gradient;
# params and the returned loss stay double), for CompiledRowLoss.row_function_float32: float32
# inputs then reach it without widening, and its loops run twice as many lanes per vector (libmvec's
# expf/logf below, or lossengine/row_math.pxd's expf_nonpositive and row_maxf, the built-in
# cross-entropy's own float32 exp and row max). It must agree with the double form to float32
# accuracy (the validator holds float32 results to the float64 ones); float64 inputs always take
# the double form.
#
#     ROW_F32 = row_f32_fn_capsule(my_row_f32)  # CompiledRowLoss.row_function_float32
#
# Or, for float32 inputs, the scaled form (``row_f32_scaled_fn``: the same arguments plus ``scale``;
# it writes grad[c] = scale * d loss / d x[c] and still returns the unscaled loss), for
# CompiledRowLoss.row_function_float32_scaled, which float32 inputs then take instead. The driver
# hands it the row's whole gradient coefficient (w[target] * grad_output, and 'mean''s 1/sum of
# weights) and, for (N, C) inputs, the output row itself as grad: a row function that scales in its
# last pass anyway (softmax's 1/sum) saves the driver's pass over the row.
#
#     ROW_F32_SCALED = row_f32_scaled_fn_capsule(my_row_f32_scaled)
#
# Contract of a row function (the driver relies on every point):
# - x points at the row's C >= 1 scores, contiguous, as doubles whatever the input's dtype (a
#   float32 row or a strided (N, C, d1..dK) position is gathered into a double scratch row first).
# - target is the row's class index, already validated: 0 <= target < C. Rows whose target equals
#   the loss's ignore_index never reach the function (their loss and gradient are 0).
# - params points at the loss object's row_params() as doubles (NULL when there are none).
# - It returns the row's loss and writes grad[c] = d loss / d x[c] for every c < C, unscaled: the
#   driver multiplies both by the class weight w[target], and the gradient by grad_output (and
#   'mean''s 1/sum of weights). grad is scratch of C doubles, never aliasing x; an entry left
#   unwritten holds garbage.
# - It is pure: no global state, no I/O, no allocation; it runs concurrently on several threads
#   and must give the same bits for the same inputs (sum in a fixed order: no thread-dependent math).
# - It must not raise (noexcept nogil): report an invalid row through NaN, or validate the arrays
#   in Python (the loss class) before the pass.
#
# Speed: the function is called through a pointer once per row, which costs nothing next to a row's
# C classes of work; the loops inside it are the plugin's own, compiled with lossengine's flags
# (lossengine.plugin_build_options()), so a loop calling exp/log over the row vectorizes with the
# vector math declared below. Keep reductions (row sums) in several independent accumulators
# combined in a fixed order: the compiler will not reorder a single floating-point sum.

from libc.stdint cimport int64_t
from cpython.pycapsule cimport PyCapsule_New

# libmvec vector exp, log, log1p, expm1, tanh for the plugin's loops (lossengine/_libmvec.pxd).
from lossengine._libmvec cimport LIBMVEC_DECLARED

cdef extern from *:
    """
    #define LOSSENGINE_ROW_FN_CAPSULE_NAME "lossengine.rowwise_api.row_fn.v1"
    #define LOSSENGINE_ROW_F32_FN_CAPSULE_NAME "lossengine.rowwise_api.row_f32_fn.v1"
    #define LOSSENGINE_ROW_F32_SCALED_FN_CAPSULE_NAME "lossengine.rowwise_api.row_f32_scaled_fn.v1"
    #if defined(__GNUC__) && defined(__x86_64__) && defined(LE_USE_LIBMVEC)
    /* lossengine/_libmvec.pxd declares the double functions; float ones for row loops: */
    __attribute__((__simd__("notinbranch"))) float expf(float);
    __attribute__((__simd__("notinbranch"))) float logf(float);
    #endif
    """
    const char* ROW_FN_CAPSULE_NAME "LOSSENGINE_ROW_FN_CAPSULE_NAME"
    const char* ROW_F32_FN_CAPSULE_NAME "LOSSENGINE_ROW_F32_FN_CAPSULE_NAME"
    const char* ROW_F32_SCALED_FN_CAPSULE_NAME "LOSSENGINE_ROW_F32_SCALED_FN_CAPSULE_NAME"

ctypedef double (*row_fn)(Py_ssize_t C, const double* x, int64_t target, const double* params, double* grad) noexcept nogil
ctypedef double (*row_f32_fn)(Py_ssize_t C, const float* x, int64_t target, const double* params, float* grad) noexcept nogil
ctypedef double (*row_f32_scaled_fn)(Py_ssize_t C, const float* x, int64_t target, const double* params,
                                     double scale, float* grad) noexcept nogil


cdef inline object row_fn_capsule(row_fn fn):
    """Wrap ``fn`` for a CompiledRowLoss's ``row_function`` class attribute."""
    return PyCapsule_New(<void*>fn, ROW_FN_CAPSULE_NAME, NULL)


cdef inline object row_f32_fn_capsule(row_f32_fn fn):
    """Wrap ``fn`` for a CompiledRowLoss's optional ``row_function_float32`` class attribute."""
    return PyCapsule_New(<void*>fn, ROW_F32_FN_CAPSULE_NAME, NULL)


cdef inline object row_f32_scaled_fn_capsule(row_f32_scaled_fn fn):
    """Wrap ``fn`` for a CompiledRowLoss's optional ``row_function_float32_scaled`` class attribute."""
    return PyCapsule_New(<void*>fn, ROW_F32_SCALED_FN_CAPSULE_NAME, NULL)

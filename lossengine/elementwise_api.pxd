# cython: language_level=3
# The public Cython API for compiled elementwise loss plugins.
#
# A plugin writes one per-element function with the signature ``element_fn`` and hands it to
# lossengine as PyCapsules; lossengine's own elementwise driver (pyx/elementwise.pyx, its ``PluginOp``
# route: the built-ins' blocks, chunks, threads, deterministic sums, reductions, grad_output, wrt)
# then runs it. Everything here is a declaration or an inline function: a plugin needs this file
# at build time only and links against nothing of lossengine's.
#
#     from lossengine.elementwise_api cimport element_fn_capsule, chunk_fn_capsule, for_each_element
#
#     cdef inline double my_loss(const double* args, const double* params, double* partials) noexcept nogil:
#         cdef double d = args[0] - args[1]
#         partials[0] = 2.0 * d
#         partials[1] = -2.0 * d
#         return d * d
#
#     cdef void my_loss_chunk(Py_ssize_t m, const double* const* args, const double* params,
#                             double* values, double* const* partials) noexcept nogil:
#         for_each_element(my_loss, 2, m, args, params, values, partials)
#
#     ELEMENT = element_fn_capsule(my_loss)        # CompiledElementwiseLoss.element_function
#     CHUNK = chunk_fn_capsule(my_loss_chunk)      # CompiledElementwiseLoss.chunk_function
#
# The chunk function is optional but is what makes a plugin as fast as a built-in: inside it
# ``for_each_element`` inlines ``my_loss`` into a loop over plain local arrays, which the plugin's
# compiler vectorizes (with the flags of lossengine.extending.plugin_build_options()). Without it the
# driver calls the element function once per element through a pointer: same results, slower.
#
# Contract of an element function (the driver relies on every point):
# - args[k] is the element's value of the loss's k-th operand (its arguments in order, then the
#   extra operands its class adds), widened to double whatever the arrays' dtype.
# - params points at the loss object's element_params() as doubles (NULL when there are none).
# - It returns the element's loss and writes partials[k] = d loss / d args[k] for every operand k
#   it has (the array is reused between elements: an entry left unwritten keeps a stale value).
# - It is pure: no global state, no I/O, no allocation; it runs concurrently on several threads
#   and must give the same bits for the same inputs. (The chunk form may differ from the element
#   form in the last bits, as vector math does; each is deterministic, whatever the thread count.)
# - It must not raise (noexcept nogil): report an invalid element through NaN, or validate the
#   arrays in Python (the loss class) before the pass.

from cpython.pycapsule cimport PyCapsule_New

# libmvec vector exp, log, log1p, expm1, tanh for the plugin's loops (lossengine/_libmvec.pxd).
from lossengine._libmvec cimport LIBMVEC_DECLARED

cdef extern from *:
    """
    #define LOSSENGINE_ELEMENT_FN_CAPSULE_NAME "lossengine.elementwise_api.element_fn.v1"
    #define LOSSENGINE_CHUNK_FN_CAPSULE_NAME "lossengine.elementwise_api.chunk_fn.v1"
    #define LOSSENGINE_HESSIAN_FN_CAPSULE_NAME "lossengine.elementwise_api.hessian_fn.v1"
    """
    const char* ELEMENT_FN_CAPSULE_NAME "LOSSENGINE_ELEMENT_FN_CAPSULE_NAME"
    const char* CHUNK_FN_CAPSULE_NAME "LOSSENGINE_CHUNK_FN_CAPSULE_NAME"
    const char* HESSIAN_FN_CAPSULE_NAME "LOSSENGINE_HESSIAN_FN_CAPSULE_NAME"

ctypedef double (*element_fn)(const double* args, const double* params, double* partials) noexcept nogil
ctypedef void (*chunk_fn)(Py_ssize_t m, const double* const* args, const double* params, double* values,
                          double* const* partials) noexcept nogil
# Optional second derivative: does what the element function does and also writes
# hessian[0] = d^2 loss / d args[0]^2 (gradient_hessian; checked by the validator like the gradient).
ctypedef double (*hessian_fn)(const double* args, const double* params, double* partials,
                              double* hessian) noexcept nogil

cdef enum:
    # The most operands one element function sees (arguments plus extra operands).
    ELEMENT_MAX_OPERANDS = 4


cdef inline void for_each_element(element_fn fn, int operands, Py_ssize_t m, const double* const* args,
                                  const double* params, double* values, double* const* partials) noexcept nogil:
    """values[j], partials[k][j] = fn(args[.][j]) for j < m: the body of a chunk function.

    Called with a constant ``fn`` (an inline cdef function of the same module) and a constant
    ``operands``, the compiler inlines ``fn`` here and vectorizes the loop."""
    cdef const double* x0 = args[0]
    cdef const double* x1 = args[1]
    cdef const double* x2 = args[2]
    cdef const double* x3 = args[3]
    cdef double* g0 = partials[0]
    cdef double* g1 = partials[1]
    cdef double* g2 = partials[2]
    cdef double* g3 = partials[3]
    cdef double a[ELEMENT_MAX_OPERANDS]
    cdef double d[ELEMENT_MAX_OPERANDS]
    cdef Py_ssize_t j
    a[0] = a[1] = a[2] = a[3] = 0.0
    d[0] = d[1] = d[2] = d[3] = 0.0
    for j in range(m):
        a[0] = x0[j]
        if operands > 1:
            a[1] = x1[j]
        if operands > 2:
            a[2] = x2[j]
        if operands > 3:
            a[3] = x3[j]
        values[j] = fn(a, params, d)
        g0[j] = d[0]
        if operands > 1:
            g1[j] = d[1]
        if operands > 2:
            g2[j] = d[2]
        if operands > 3:
            g3[j] = d[3]


cdef inline object element_fn_capsule(element_fn fn):
    """Wrap ``fn`` for a CompiledElementwiseLoss's ``element_function`` class attribute."""
    return PyCapsule_New(<void*>fn, ELEMENT_FN_CAPSULE_NAME, NULL)


cdef inline object chunk_fn_capsule(chunk_fn fn):
    """Wrap ``fn`` for a CompiledElementwiseLoss's ``chunk_function`` class attribute."""
    return PyCapsule_New(<void*>fn, CHUNK_FN_CAPSULE_NAME, NULL)


cdef inline object hessian_fn_capsule(hessian_fn fn):
    """Wrap ``fn`` for a CompiledElementwiseLoss's optional ``hessian_function`` class attribute."""
    return PyCapsule_New(<void*>fn, HESSIAN_FN_CAPSULE_NAME, NULL)

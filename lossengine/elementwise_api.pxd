# cython: language_level=3
# The public Cython API for compiled elementwise loss plugins.
#
# A plugin writes one per-element function with the signature ``element_fn`` and hands it to
# lossengine as a PyCapsule made by ``element_fn_capsule``; lossengine's own multithreaded,
# deterministic driver (pyx/elementwise.pyx, the ``PluginOp`` route) then calls it for every element,
# for every reduction, grad_output and wrt. Everything here is a declaration or an inline function:
# a plugin needs this file at build time only and links against nothing of lossengine's.
#
#     from lossengine.elementwise_api cimport element_fn_capsule
#
#     cdef double my_loss(const double* args, const double* params, double* partials) noexcept nogil:
#         cdef double d = args[0] - args[1]
#         partials[0] = 2.0 * d
#         partials[1] = -2.0 * d
#         return d * d
#
#     MY_LOSS = element_fn_capsule(my_loss)     # the CompiledElementwiseLoss's element_function
#
# Contract of an element function (the driver relies on every point):
# - args[k] is the element's value of the loss's k-th operand (its arguments in order, then the
#   extra operands its class adds), widened to double whatever the arrays' dtype.
# - params points at the loss object's element_params() as doubles (may be NULL when there are none).
# - It returns the element's loss and writes partials[k] = d loss / d args[k] for every operand k
#   it has (the array is reused between elements: leaving an entry unwritten leaves a stale value).
# - It is pure: no global state, no I/O, no allocation; it runs concurrently on several threads
#   and must give the same bits for the same inputs.
# - It must not raise (noexcept nogil): report an invalid element through NaN, or validate the
#   arrays in Python before the pass.

from cpython.pycapsule cimport PyCapsule_New

ctypedef double (*element_fn)(const double* args, const double* params, double* partials) noexcept nogil

cdef enum:
    # The most operands one element function sees (arguments plus extra operands).
    ELEMENT_MAX_OPERANDS = 4

# The capsule's name carries the ABI version: a plugin built against an incompatible lossengine is
# refused with a clear error instead of being called with the wrong layout.
cdef extern from *:
    """
    #define LOSSENGINE_ELEMENT_FN_CAPSULE_NAME "lossengine.elementwise_api.element_fn.v1"
    """
    const char* ELEMENT_FN_CAPSULE_NAME "LOSSENGINE_ELEMENT_FN_CAPSULE_NAME"


cdef inline object element_fn_capsule(element_fn fn):
    """Wrap ``fn`` for a CompiledElementwiseLoss's ``element_function`` class attribute."""
    return PyCapsule_New(<void*>fn, ELEMENT_FN_CAPSULE_NAME, NULL)

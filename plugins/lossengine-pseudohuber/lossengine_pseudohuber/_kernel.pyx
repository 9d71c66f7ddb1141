# cython: language_level=3, cdivision=True
"""The per-element pseudo-Huber function, handed to lossengine's elementwise driver as capsules."""
from libc.math cimport sqrt

from lossengine.elementwise_api cimport (chunk_fn_capsule, element_fn_capsule, for_each_element,
                                         hessian_fn_capsule)


cdef inline double pseudo_huber_h(const double* args, const double* params, double* partials,
                                  double* hessian) noexcept nogil:
    # args = (input, target), params[0] = delta, r = (input - target) / delta, s = sqrt(1 + r^2):
    #   loss = delta^2 (s - 1) = delta^2 r^2 / (s + 1)   (the second form: no cancellation near 0)
    #   d/dinput = delta r / s,   d^2/dinput^2 = 1 / s^3.
    # The Hessian is written beside the loss and gradient once; the element function below is this
    # one with the Hessian dropped (dead code once inlined).
    cdef double delta = params[0]
    cdef double r = (args[0] - args[1]) / delta
    cdef double s = sqrt(1.0 + r * r)
    partials[0] = delta * r / s
    partials[1] = -partials[0]
    hessian[0] = 1.0 / (s * s * s)
    return delta * delta * r * r / (s + 1.0)


cdef inline double pseudo_huber(const double* args, const double* params, double* partials) noexcept nogil:
    cdef double unused
    return pseudo_huber_h(args, params, partials, &unused)


cdef void pseudo_huber_chunk(Py_ssize_t m, const double* const* args, const double* params, double* values,
                             double* const* partials) noexcept nogil:
    for_each_element(pseudo_huber, 2, m, args, params, values, partials)


PSEUDO_HUBER = element_fn_capsule(pseudo_huber)
PSEUDO_HUBER_CHUNK = chunk_fn_capsule(pseudo_huber_chunk)
PSEUDO_HUBER_HESSIAN = hessian_fn_capsule(pseudo_huber_h)

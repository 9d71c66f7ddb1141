# cython: language_level=3, cdivision=True
"""The per-element log-cosh function, handed to lossengine's elementwise driver as capsules."""
from libc.math cimport expm1, fabs, log1p

from lossengine.elementwise_api cimport chunk_fn_capsule, element_fn_capsule, for_each_element


cdef inline double log_cosh(const double* args, const double* params, double* partials) noexcept nogil:
    # args = (input, target), d = input - target, a = |d|, e = expm1(-2a) in (-1, 0]:
    #   cosh d = e^a (1 + e^-2a) / 2    =>  log cosh d = a + log1p(e / 2)   (no overflow at any a)
    #   tanh a = (1 - e^-2a) / (1 + e^-2a) = -e / (2 + e)                     (no cancellation)
    # a + log1p(e/2) cancels for small a (log cosh d ~ d^2/2 there); below a = 0.03 the Taylor
    # series takes over, its truncation and the main form's cancellation both < 1e-14 relative there.
    # Selects, not branches, so the chunk loop vectorizes.
    cdef double d = args[0] - args[1]
    cdef double a = fabs(d)
    cdef double e = expm1(-2.0 * a)
    cdef double t = -e / (2.0 + e)
    cdef double a2 = a * a
    cdef double series = a2 * (0.5 + a2 * (-1.0 / 12.0 + a2 * (1.0 / 45.0 + a2 * (-17.0 / 2520.0))))
    cdef double main = a + log1p(0.5 * e)
    t = t if d >= 0.0 else -t
    partials[0] = t
    partials[1] = -t
    return series if a < 0.03 else main


cdef void log_cosh_chunk(Py_ssize_t m, const double* const* args, const double* params, double* values,
                         double* const* partials) noexcept nogil:
    for_each_element(log_cosh, 2, m, args, params, values, partials)


LOG_COSH = element_fn_capsule(log_cosh)
LOG_COSH_CHUNK = chunk_fn_capsule(log_cosh_chunk)

# float32 vector math for the kernels: exp, log, log1p and expm1 written as branch-free polynomials
# (selects only), so that a loop calling them auto-vectorizes without -ffast-math, plus ``real_t``
# (float or double) versions of them that pick these for float and libm's (libmvec's where the
# module declares it) for double. Inline only: cimported without any runtime import.
#
# Why our own: libm's float functions are opaque scalar calls, and libmvec's vector ones differ
# from its scalar ones in the last bit, so which element got which would depend on the vector
# width. These are sequences of correctly rounded IEEE float operations in a fixed order (the
# build has -ffp-contract=off: no FMA contraction), so a scalar loop, an SSE2, AVX2 or AVX-512
# loop give the same bits: float32 results do not depend on the ISA variant loaded
# (tests/test_vecmath32.py checks both that and the accuracy below).
#
# Accuracy against a float64 reference, measured over every 61st float bit pattern plus every float
# in [87, 89.5], [-104.5, -86] (where exp overflows and underflows into the denormals), every
# positive denormal, [0.99, 1.01], [-1, -0.99], +-[2e-4, 1e-3] and +-[0.65, 0.75]:
#     exp 0.97 ulp, log 0.83 ulp, log1p 1.44 ulp, expm1 1.68 ulp (max), specials exact.
# Not for x86's rounding modes other than round-to-nearest (exp's 1.5 * 2^23 trick assumes it).

# row_math first: its C block (lossengine_expf_reduced, the Cephes core le_expf shares) must precede ours.
from lossengine.row_math cimport expf_nonpositive

cdef extern from *:
    """
    #include <stdint.h>
    typedef union { uint32_t i; float f; } le_f32_bits;
    static inline float le_f32_from_bits(uint32_t i) { le_f32_bits u; u.i = i; return u.f; }
    static inline uint32_t le_f32_to_bits(float f) { le_f32_bits u; u.f = f; return u.i; }

    /* exp(x): x = k ln2 + r, |r| <= ln2/2 (Cody-Waite, ln2 split so that k ln2_hi is exact), Cephes
       expf's degree-6 polynomial for exp(r) (S. Moshier, Cephes Math Library, expf.c), 2^k applied
       as two factors 2^(k/2) 2^(k - k/2), each a normal number, so that the result rounds once into
       the denormal range and overflows to inf exactly where exp does. k is rounded with the
       1.5 * 2^23 trick (rintf vectorizes only with SSE4.1). NaN propagates, -inf gives 0, inf inf. */
    static inline float le_expf(float x) {
        float xc = x > -104.0f ? x : -104.0f;    /* exp(-104) rounds to 0; NaN -> -104, restored below */
        xc = xc < 89.0f ? xc : 89.0f;            /* exp(89) overflows */
        float kf;
        float p = lossengine_expf_reduced(xc, &kf);   /* lossengine/row_math.pxd */
        int32_t k = (int32_t)kf;
        int32_t k1 = k >> 1;                     /* floor(k / 2): k1 and k - k1 in [-75, 64] */
        float s1 = le_f32_from_bits((uint32_t)(k1 + 127) << 23);
        float s2 = le_f32_from_bits((uint32_t)(k - k1 + 127) << 23);
        float y = (p * s1) * s2;
        return x == x ? y : x;
    }

    /* log(x), denormals included: x = m 2^e with m in [sqrt(1/2), sqrt(2)) (a denormal scaled by
       2^23 first), Cephes logf's degree-9 polynomial in f = m - 1 (exact), ln2 split in two.
       log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN propagates. */
    static inline float le_logf(float x) {
        int tiny = x < 1.17549435e-38f;
        float xs = tiny ? x * 8388608.0f : x;
        uint32_t shifted = le_f32_to_bits(xs) + (0x3f800000u - 0x3f3504f3u);
        int32_t e = (int32_t)(shifted >> 23) - 127 - (tiny ? 23 : 0);
        float f = le_f32_from_bits((shifted & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
        float ef = (float)e;
        float z = f * f;
        float y = 7.0376836292E-2f;
        y = y * f - 1.1514610310E-1f;
        y = y * f + 1.1676998740E-1f;
        y = y * f - 1.2420140846E-1f;
        y = y * f + 1.4249322787E-1f;
        y = y * f - 1.6668057665E-1f;
        y = y * f + 2.0000714765E-1f;
        y = y * f - 2.4999993993E-1f;
        y = y * f + 3.3333331174E-1f;
        y = y * f * z;
        y = y + ef * -2.12194440e-4f;
        y = y - 0.5f * z;
        float res = (f + y) + ef * 0.693359375f;
        res = x == 0.0f ? -__builtin_inff() : res;
        res = x < 0.0f ? __builtin_nanf("") : res;
        res = x == __builtin_inff() ? x : res;
        return x == x ? res : x;
    }

    /* log(1 + x): u = 1 + x rounded, log(u) plus the first-order correction (x - (u - 1)) / u for
       u's rounding (D. Goldberg, "What every computer scientist should know about floating-point
       arithmetic", 1991); exactly x where u == 1. */
    static inline float le_log1pf(float x) {
        float u = 1.0f + x;
        float c = (x - (u - 1.0f)) / u;
        c = (u == 0.0f || u == __builtin_inff()) ? 0.0f : c;
        return le_logf(u) + c;
    }

    /* exp(x) - 1: below |x| = 0.7 the degree-10 Taylor polynomial (truncation < 1e-9 relative),
       else exp(x) - 1 (which cancels by at most a factor 2 there). */
    static inline float le_expm1f(float x) {
        float p = 2.75573192e-7f;
        p = p * x + 2.75573192e-6f;
        p = p * x + 2.48015873e-5f;
        p = p * x + 1.98412698e-4f;
        p = p * x + 1.38888889e-3f;
        p = p * x + 8.33333333e-3f;
        p = p * x + 4.16666667e-2f;
        p = p * x + 1.66666667e-1f;
        p = p * x + 0.5f;
        p = p * (x * x) + x;
        float big = le_expf(x) - 1.0f;
        float ax = x < 0.0f ? -x : x;
        return ax < 0.7f ? p : big;
    }
    """
    float le_expf(float x) noexcept nogil
    float le_logf(float x) noexcept nogil
    float le_log1pf(float x) noexcept nogil
    float le_expm1f(float x) noexcept nogil

from libc.math cimport exp, log, log1p, expm1, pow, powf, fabs, fabsf


# The element math's float type: float32 inputs of a loss whose math is written over real_t run
# these functions in float (the polynomials above), float64 inputs in double (libm / libmvec).
ctypedef fused real_t:
    float
    double


cdef inline real_t r_exp(real_t x) noexcept nogil:
    if real_t is float:
        return le_expf(x)
    else:
        return exp(x)


cdef inline real_t r_log(real_t x) noexcept nogil:
    if real_t is float:
        return le_logf(x)
    else:
        return log(x)


cdef inline real_t r_log1p(real_t x) noexcept nogil:
    if real_t is float:
        return le_log1pf(x)
    else:
        return log1p(x)


cdef inline real_t r_expm1(real_t x) noexcept nogil:
    if real_t is float:
        return le_expm1f(x)
    else:
        return expm1(x)


cdef inline real_t r_fabs(real_t x) noexcept nogil:
    if real_t is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline real_t r_pow(real_t x, real_t y) noexcept nogil:
    # libm's powf (a scalar call: a loop calling it does not vectorize, in either precision).
    if real_t is float:
        return powf(x, y)
    else:
        return pow(x, y)

# cython: language_level=3
# Scalar math that row loops call and the compiler can still vectorize, shared by lossengine's own
# classification kernels (pyx/classification.pyx.tp) and compiled row-wise plugins
# (lossengine/rowwise_api.pxd):
#
#     from lossengine.row_math cimport expf_nonpositive, row_maxf, row_max
#
# Why a file of its own: cimporting a .pxd brings every verbatim C block in it, and the built-in
# kernels want this exp without rowwise_api.pxd's libmvec declarations of log, log1p, ... (which
# would change which of their loops vectorize, and so their last bits).

cdef extern from *:
    """
    /* exp(x) in float32, branch-free so that loops calling it auto-vectorize (libm's expf is an
       opaque call, and libmvec's vector expf a call per vector). Cephes expf: x = k ln2 + r with
       |r| <= ln2/2 (ln2 split in two for an exact k*ln2_hi), degree-6 polynomial for exp(r), 2^k
       built in the exponent bits. Max error about 1 ulp (S. Moshier, Cephes Math Library, expf.c).
       k is rounded with the 1.5 * 2^23 trick because rintf only vectorizes with SSE4.1. Below
       -87.3 (exp underflows float32's normal range) the result is 0; NaN propagates. For x <= 0
       only (scores minus their max): 2^k is not built for k > 127. */
    /* The shared core: exp(xc) = p * 2^kf for xc in the polynomial's range; kf (an integer in a
       float) is written to *kf. Callers clamp xc first and build 2^kf their way. */
    static inline float lossengine_expf_reduced(float xc, float* kf_out) {
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
        *kf_out = kf;
        return p;
    }

    static inline float lossengine_expf_nonpositive(float x) {
        const float lo = -87.33654f;
        float xc = x < lo ? lo : x;
        float kf;
        float p = lossengine_expf_reduced(xc, &kf);
        union { unsigned int i; float f; } u;
        u.i = ((unsigned int)((int)kf + 127)) << 23;
        float y = p * u.f;
        return x < lo ? 0.0f : y;
    }

    /* The largest of x[0..C), C >= 1. GCC does not vectorize a compare-select max reduction
       without -ffast-math (nor an 8-lane hand-unrolled one: it stays 8 scalar maxss chains); the
       OpenMP simd reduction lets it run 16 floats per AVX-512 instruction. The order cannot change
       the result: max is exact, and x's NaNs are skipped in any order, which is harmless for the
       callers, whose next step exp(x - max) turns a NaN row into NaN anyway. Needs -fopenmp or
       -fopenmp-simd (lossengine.plugin_build_options() passes the latter); otherwise the pragma is
       ignored and the loop runs scalar, with the same result. */
    static inline float lossengine_row_maxf(const float* x, Py_ssize_t C) {
        float r = x[0];
        #pragma omp simd reduction(max:r)
        for (Py_ssize_t j = 1; j < C; j++) r = x[j] > r ? x[j] : r;
        return r;
    }
    static inline double lossengine_row_max(const double* x, Py_ssize_t C) {
        double r = x[0];
        #pragma omp simd reduction(max:r)
        for (Py_ssize_t j = 1; j < C; j++) r = x[j] > r ? x[j] : r;
        return r;
    }
    """
    float expf_nonpositive "lossengine_expf_nonpositive"(float x) noexcept nogil
    float row_maxf "lossengine_row_maxf"(const float* x, Py_ssize_t C) noexcept nogil
    double row_max "lossengine_row_max"(const double* x, Py_ssize_t C) noexcept nogil

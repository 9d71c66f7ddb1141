# cython: language_level=3
# glibc's libmvec vector variants of exp, log, log1p, expm1 and tanh, declared for compiled plugins'
# loops (lossengine/elementwise_api.pxd and lossengine/rowwise_api.pxd cimport this). math.h declares
# them only under -ffast-math; declared here, a loop calling them vectorizes. Only when lossengine
# itself was built with libmvec: the plugin's build then defines LE_USE_LIBMVEC and links -lmvec
# (lossengine.plugin_build_options()). A .pxd of its own because cimporting a .pxd brings its
# verbatim C: the built-in kernels, which declare their own, do not cimport it.

cdef extern from *:
    """
    #define LOSSENGINE_LIBMVEC_DECLARED 1
    #if defined(__GNUC__) && defined(__x86_64__) && defined(LE_USE_LIBMVEC)
    __attribute__((__simd__("notinbranch"))) double exp(double);
    __attribute__((__simd__("notinbranch"))) double log(double);
    __attribute__((__simd__("notinbranch"))) double log1p(double);
    __attribute__((__simd__("notinbranch"))) double expm1(double);
    __attribute__((__simd__("notinbranch"))) double tanh(double);
    #endif
    """
    int LIBMVEC_DECLARED "LOSSENGINE_LIBMVEC_DECLARED"

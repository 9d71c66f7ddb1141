# Shared by every kernel family: the float types, numerically stable scalar math, and the
# deterministic blocked reduction. Inline only, so it is cimported without any runtime import.
#
# Determinism: a reduction splits its n items into fixed blocks of REDUCTION_BLOCK items, a number
# that does not depend on the thread count. Each block sums its items in index order into a double;
# block sums are then combined pairwise in a fixed order by combine_partials(). Threads only decide
# who computes which block, so any thread count gives the same bits.

from libc.math cimport exp, log, log1p, fabs
from cython.parallel cimport prange
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer, PyCapsule_IsValid
cimport numpy as cnp

ctypedef fused floating_t:
    float
    double

cdef enum:
    # Items per reduction block (elements, rows, ...). Large enough that a block's work dwarfs the
    # scheduling cost, small enough that 2 cores balance well on 1e5 elements.
    REDUCTION_BLOCK = 4096


cdef inline Py_ssize_t block_count(Py_ssize_t n) noexcept nogil:
    return (n + REDUCTION_BLOCK - 1) // REDUCTION_BLOCK


cdef inline double combine_partials(double* partials, Py_ssize_t m) noexcept nogil:
    """Pairwise sum of m block partials in a fixed order (overwrites partials)."""
    cdef Py_ssize_t j, half
    if m == 0:
        return 0.0
    while m > 1:
        half = m // 2
        for j in range(half):
            partials[j] = partials[2 * j] + partials[2 * j + 1]
        if m % 2:
            partials[half] = partials[m - 1]
            m = half + 1
        else:
            m = half
    return partials[0]


# The one block runner every family uses. A family's block function computes one block (its items in
# index order, its partial sum stored by the block itself) from an opaque context pointer; the
# runner decides only which thread runs which block. One indirect call per block (thousands of
# elements) costs nothing measurable, and keeps the per-element code fully inlined in the family.
ctypedef void (*block_fn)(void* ctx, Py_ssize_t block) noexcept nogil


cdef inline void run_blocks(block_fn fn, void* ctx, Py_ssize_t nblocks, int num_threads,
                            bint parallel) noexcept nogil:
    """fn(ctx, b) for every block b: serially in order when ``parallel`` is false, the thread count
    is 1 or there is one block (waking an OpenMP team costs more than a small call's work), else
    statically scheduled over ``num_threads`` threads."""
    cdef Py_ssize_t block
    if not parallel or num_threads <= 1 or nblocks < 2:
        for block in range(nblocks):
            fn(ctx, block)
        return
    for block in prange(nblocks, schedule="static", num_threads=num_threads):
        fn(ctx, block)


cdef inline double log_sigmoid(double x) noexcept nogil:
    """log(sigmoid(x)) in torch's CPU form: min(x, 0) - log1p(exp(-|x|)), finite for any finite x."""
    return (x if x < 0.0 else 0.0) - log1p(exp(-fabs(x)))


cdef inline double sigmoid(double x) noexcept nogil:
    # exp(-x) overflows to inf for x < -709, giving exactly 0: no NaN.
    return 1.0 / (1.0 + exp(-x))


cdef inline void* array_data(object arr, int typenum, bint writable, str who) except NULL:
    """An operand's data pointer. lossengine/_arrays.py already made the array C-contiguous, aligned,
    native and of the right dtype; checking that again costs a few flag tests, trusting it blindly
    could cost a crash. (The importing module must call cnp.import_array().)"""
    if not cnp.PyArray_Check(arr):
        raise TypeError(f"{who} kernel: expected an ndarray, got {type(arr).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>arr
    if (cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or not cnp.PyArray_ISNOTSWAPPED(a) or not cnp.PyArray_ISALIGNED(a)
            or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(f"{who} kernel: operand must be a C-contiguous, aligned, native array of type "
                         f"number {typenum}{' (writable)' if writable else ''}; got {a.dtype} with flags {a.flags}")
    return cnp.PyArray_DATA(a)


cdef inline void* capsule_pointer(object capsule, bytes name, str what, str api) except NULL:
    """The function pointer in a compiled plugin's PyCapsule, after checking the capsule's name (the
    versioned name of its typedef in the public .pxd ``api``): a TypeError naming ``what`` otherwise,
    never a call through a pointer of another signature."""
    if not PyCapsule_IsValid(capsule, name):
        found = None
        if type(capsule).__name__ == "PyCapsule":
            cname = PyCapsule_GetName(capsule)
            found = None if cname == NULL else (<bytes>cname).decode(errors="replace")
        raise TypeError(
            f"{what} must be a PyCapsule named {name.decode()!r}, made by {api}; got "
            + (f"a capsule named {found!r} (built against another lossengine?)" if found is not None
               else repr(type(capsule).__name__))
        )
    return PyCapsule_GetPointer(capsule, name)

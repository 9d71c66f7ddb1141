# Shared by every kernel family: the float types, numerically stable scalar math, and the
# deterministic blocked reduction. Inline only, so it is cimported without any runtime import.
#
# Determinism: a reduction splits its n items into fixed blocks of REDUCTION_BLOCK items, a number
# that does not depend on the thread count. Each block sums its items in index order into a double;
# block sums are then combined pairwise in a fixed order by combine_partials(). Threads only decide
# who computes which block, so any thread count gives the same bits.

from libc.math cimport exp, log, log1p, fabs
from libc.stdlib cimport free
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


# The thread count of one call, and the team that runs its blocks (docs/threads.md).
#
# ``num_threads`` as lossengine/_threads.py passes it: n > 0 is an explicit count (le.threads,
# le.set_num_threads, a forked child's 1), used as given; -cap is the default: the OpenMP runtime's
# current limit (omp_get_max_threads() of the calling thread, what threadpoolctl and
# omp_set_num_threads change), at most cap (the CPU quota and affinity), and fewer while the machine
# is seen to be oversubscribed (below). Inside another OpenMP parallel region every call runs on one
# thread: the outer region already has the cores.
#
# Oversubscription. Blocks are handed out dynamically (in chunks, about 8 per thread), so a thread the OS
# has descheduled holds up at most the chunk it has, not a static share. What dynamic scheduling cannot fix: OpenMP returns only when every thread of
# the team has arrived, and on a loaded machine a thread waits a scheduler time slice or several
# (milliseconds) to run at all. Measured with one busy process on a 2-core machine shared with other
# work (benchmarks/bench_contention.py), 2 threads took 10-60x one thread's median, statically or
# dynamically scheduled. So each default-count region times itself, one clock read per chunk: each
# thread notes when its chunks ended; a thread that started, paused inside a block, or arrived at the
# end more than LE_LATE_S late (and 8x its team's shortest chunk) was not running, and the default
# count drops to the threads that were, for a hold of LE_HOLD_MIN_S that doubles on each repeated
# detection up to LE_HOLD_MAX_S; a region without a late thread resets it. Waking a thread on an
# idle machine takes tens of microseconds, far below LE_LATE_S. The state is per family module and
# shared by the Python threads calling it (relaxed atomics: a race only moves a decision by a call).
# A self-measurement rather than the load average: /proc/loadavg counts the host's tasks (wrong
# inside a CPU quota) and our own spinning workers, and says nothing about whether ours ran.
cdef extern from *:
    """
    #include <time.h>
    #ifdef _OPENMP
    #include <omp.h>
    #define LE_OPENMP 1
    static int le_omp_max_threads(void) { return omp_get_max_threads(); }
    static int le_omp_in_parallel(void) { return omp_in_parallel(); }
    static int le_omp_thread_num(void) { return omp_get_thread_num(); }
    #else
    #define LE_OPENMP 0
    static int le_omp_max_threads(void) { return 1; }
    static int le_omp_in_parallel(void) { return 0; }
    static int le_omp_thread_num(void) { return 0; }
    #endif
    #define LE_TEAM_MAX 1024
    #include <stdlib.h>
    #define LE_LATE_S 2e-4
    #define LE_HOLD_MIN_S 0.05
    #define LE_HOLD_MAX_S 1.6

    static double le_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }

    static int le_hold_threads = 0;       /* 0: no hold */
    static double le_hold_until = 0.0, le_hold_len = 0.0;
    static double le_get(double* p) { double v; __atomic_load(p, &v, __ATOMIC_RELAXED); return v; }
    static void le_set(double* p, double v) { __atomic_store(p, &v, __ATOMIC_RELAXED); }

    /* The team size of a call given lossengine/_threads.py's num_threads (see above). */
    static int le_resolve_threads(int num_threads) {
        int n, held;
        if (le_omp_in_parallel()) return 1;
        if (num_threads > 0) return num_threads;
        n = le_omp_max_threads();
        if (n > -num_threads) n = -num_threads;
        held = __atomic_load_n(&le_hold_threads, __ATOMIC_RELAXED);
        if (held > 0 && held < n && le_now() < le_get(&le_hold_until)) return held;
        return n < 1 ? 1 : n;
    }

    /* One thread's record of a region, on a cache line of its own (no false sharing): when its last
       block ended, and its longest and shortest time from one block end (or the region's start) to
       the next. */
    typedef struct { double last, longest, shortest; } __attribute__((aligned(64))) le_slot;

    static void le_slot_note(le_slot* slot, double t0) {
        double now = le_now(), gap = now - (slot->last > 0.0 ? slot->last : t0);
        slot->last = now;
        if (gap > slot->longest) slot->longest = gap;
        if (slot->shortest == 0.0 || gap < slot->shortest) slot->shortest = gap;
    }

    /* After a default-count region of ``n`` threads that ended at t_end: hold the default count down
       to the threads that ran on time when some did not (see above). */
    static void le_note_region(int n, const le_slot* slots, double t_end) {
        double shortest = 0.0, end = 0.0, late, hold;
        int i, on_time = 0;
        for (i = 0; i < n; i++) {
            if (slots[i].last == 0.0) continue;          /* ran no block */
            if (shortest == 0.0 || slots[i].shortest < shortest) shortest = slots[i].shortest;
            if (slots[i].last > end) end = slots[i].last;
        }
        late = 8.0 * shortest > LE_LATE_S ? 8.0 * shortest : LE_LATE_S;
        for (i = 0; i < n; i++) on_time += slots[i].last > 0.0 && slots[i].longest <= late;
        if (on_time == n && t_end - end <= late) {       /* everyone ran: a clean region */
            if (le_get(&le_hold_len) != 0.0) {
                le_set(&le_hold_len, 0.0);
                __atomic_store_n(&le_hold_threads, 0, __ATOMIC_RELAXED);
            }
            return;
        }
        if (on_time == n) on_time = n - 1;               /* a thread without blocks arrived late */
        hold = 2.0 * le_get(&le_hold_len);
        hold = hold < LE_HOLD_MIN_S ? LE_HOLD_MIN_S : (hold > LE_HOLD_MAX_S ? LE_HOLD_MAX_S : hold);
        le_set(&le_hold_len, hold);
        __atomic_store_n(&le_hold_threads, on_time < 1 ? 1 : on_time, __ATOMIC_RELAXED);
        le_set(&le_hold_until, t_end + hold);
    }
    """
    const int LE_OPENMP
    const int LE_TEAM_MAX
    void* aligned_alloc(size_t alignment, size_t size) noexcept nogil
    ctypedef struct le_slot:
        double last
        double longest
        double shortest
    int le_omp_max_threads() noexcept nogil
    int le_omp_thread_num() noexcept nogil
    int le_resolve_threads(int num_threads) noexcept nogil
    double le_now() noexcept nogil
    void le_slot_note(le_slot* slot, double t0) noexcept nogil
    void le_note_region(int n, const le_slot* slots, double t_end) noexcept nogil
    int le_hold_threads
    double le_hold_until


cdef enum:
    LE_STACK_SLOTS = 64      # teams up to this size keep their records on the stack (4 KB)


cdef inline void run_blocks(block_fn fn, void* ctx, Py_ssize_t nblocks, int num_threads,
                            bint parallel) noexcept nogil:
    """fn(ctx, b) for every block b: serially in order when ``parallel`` is false, the call's team
    (le_resolve_threads) is one thread or there is one block (waking an OpenMP team costs more than a
    small call's work), else handed out to the team in chunks of consecutive blocks, dynamically
    (which thread runs a block never changes its bits)."""
    cdef Py_ssize_t block
    cdef int n = le_resolve_threads(num_threads) if parallel and nblocks >= 2 else 1
    cdef int i
    cdef double t0
    cdef Py_ssize_t chunk
    cdef le_slot on_stack[LE_STACK_SLOTS]
    cdef le_slot* slots = on_stack
    if n > LE_TEAM_MAX:
        n = LE_TEAM_MAX
    if n > LE_STACK_SLOTS:
        slots = <le_slot*>aligned_alloc(64, n * sizeof(le_slot))
        if slots == NULL:        # no memory for the records: the largest team that needs none
            slots = on_stack
            n = LE_STACK_SLOTS
    if n <= 1:
        for block in range(nblocks):
            fn(ctx, block)
        return
    for i in range(n):
        slots[i].last = 0.0
        slots[i].longest = 0.0
        slots[i].shortest = 0.0
    # Chunks of blocks, about 8 per thread: one block per grab cost MSE 2e6 float32 on 2 threads 15%
    # (0.46 -> 0.53 ms, best of 300) in grabs of the shared counter and clock reads; 8 per thread
    # still lets a thread that runs take over the work of one that does not.
    chunk = nblocks // (8 * n)
    if chunk < 1:
        chunk = 1
    t0 = le_now()
    for block in prange(nblocks, schedule="dynamic", chunksize=chunk, num_threads=n):
        fn(ctx, block)
        if (block + 1) % chunk == 0 or block == nblocks - 1:
            le_slot_note(&slots[le_omp_thread_num()], t0)
    if num_threads < 0:          # the default count adapts; an explicit one is left alone
        le_note_region(n, slots, le_now())
    if slots != on_stack:
        free(slots)


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

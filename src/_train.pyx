# cython: language_level=3
"""The fused training pass: forward, loss, accuracy, backward and gradient in one sweep.

Design
------
* Inputs arrive once per ``train()`` call split by measured density: the busy pixels as a
  dense block, the rest as CSR (uint16 pixel indices, values of the model's dtype; the
  threshold is ``mnist_native._fused.dense_threshold``).  MNIST is ~81% exact zeros: its
  sparse pixels cost work only where nonzero, while its busy central pixels (and all of a
  dense data set) run through register-blocked dense kernels.  The sums are the same minus
  exact-zero terms.
* A full-batch iteration is one call (``full_batch_pass``): the pending update, then one
  parallel pass over the training and validation chunks.
* Samples go through the kernels (fused_body.h) in groups: the hidden sums with the group's
  pixels in tiles of weight rows and each sample's sums in registers, then the outputs,
  metrics and deltas.
* Full batch (``full_batch_pass``): then the group's terms of its chunk's partial gradient,
  the input layer's from the entries regrouped once per ``train()`` by pixel
  (``pixel_runs``): each pixel's gradient row is loaded and stored once per group.  Samples
  are split into fixed chunks whose size depends only on the batch size, never on the
  thread count; threads take whole chunks and the partial gradients are added in chunk
  order.
* Mini-batches (``sgd_epoch``): every sample's deltas are kept, then each weight row's
  gradient is made whole, by one thread, and applied at once; only the rows of pixels
  present in the step are visited (see "Mini-batch SGD" below).
* So results are bit-identical for any number of threads.
* Precision: a sample's sums and a chunk's partial gradient are kept in the model's dtype
  (in float32 for float32 models, as BLAS's sgemm does); chunks are combined in double.
  Subnormal floats are flushed to zero while the kernels run (platform.h: they cost up to
  a hundred cycles an operation), each thread's own mode put back after.
* A whole epoch of mini-batches runs here without returning to Python, its steps in runs of
  a few milliseconds, each run one OpenMP region whose threads meet at a barrier after
  each phase (a region per phase made 2-thread epochs 3 to 11 % slower: Xeon, batch 16 to
  256).
* All arrays are allocated and checked by ``mnist_native._fused`` before the GIL is released.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport parallel, prange
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

cdef extern from "platform.h" nogil:
    int mn_thread_num()
    int mn_num_threads()
    void mn_barrier()
    int mn_lowest_bit(uint32_t bits)
    uint32_t mn_pack_flags8(const uint8_t *flags)
    ctypedef uint64_t mn_fp_mode
    mn_fp_mode mn_flush_subnormals()
    void mn_restore_fp_mode(mn_fp_mode saved)
    int mn_subnormals_flushed()

cdef extern from "fused.h" nogil:
    int mn_simd_count()
    const char *mn_simd_name(int level)
    int mn_cpu_simd_level()
    int mn_simd_init(int wanted)
    void mn_set_cache_tuning(int64_t hidden_short, int64_t hidden_long, int64_t scatter,
                             int64_t prefetch_above)
    int mn_dense_count(int64_t hp, int64_t itemsize)
    int MN_DENSE_MAX
    enum: MN_GROUP
    ctypedef struct mn_runs:
        const int64_t *group_runs
        const int64_t *run_start
        const uint16_t *run_pixel
        const uint8_t *sample
        const void *value
    void mn_chunk_f32(float *gw1, float *gw2t, float *gb2, double *stats, float *u,
                      float *d, int64_t *cursor, int64_t *rows, float *o, const int64_t *indptr,
                      const uint16_t *indices, const float *values, const float *xd, int64_t m,
                      const int64_t *dcols, const int64_t *order, const float *targets,
                      const int32_t *labels, const float *w1, const float *w2t, const float *w2,
                      int64_t r0, int64_t r1, int64_t n_in, int64_t h, int64_t hp, int64_t k,
                      int loss, int act, const mn_runs *runs, int64_t group0)
    void mn_chunk_f64(double *gw1, double *gw2t, double *gb2, double *stats, double *u,
                      double *d, int64_t *cursor, int64_t *rows, double *o, const int64_t *indptr,
                      const uint16_t *indices, const double *values, const double *xd,
                      int64_t m, const int64_t *dcols, const int64_t *order, const double *targets,
                      const int32_t *labels, const double *w1, const double *w2t,
                      const double *w2, int64_t r0, int64_t r1, int64_t n_in, int64_t h,
                      int64_t hp, int64_t k, int loss, int act, const mn_runs *runs,
                      int64_t group0)
    void mn_deltas_f32(float *u, float *d, float *dko, int64_t kstride, float *xc,
                       double *stats, float *o, int64_t *cursor, int64_t *rows,
                       const int64_t *indptr, const uint16_t *indices, const float *values,
                       const float *xd, int64_t m, const int64_t *dcols, const int64_t *order,
                       const float *targets, const int32_t *labels, const float *w1,
                       const float *w2t, const float *w2, int64_t r0, int64_t r1, int64_t n_in,
                       int64_t h, int64_t hp, int64_t k, int loss, int act)
    void mn_deltas_f64(double *u, double *d, double *dko, int64_t kstride, double *xc,
                       double *stats, double *o, int64_t *cursor, int64_t *rows,
                       const int64_t *indptr, const uint16_t *indices, const double *values,
                       const double *xd, int64_t m, const int64_t *dcols, const int64_t *order,
                       const double *targets, const int32_t *labels, const double *w1,
                       const double *w2t, const double *w2, int64_t r0, int64_t r1,
                       int64_t n_in, int64_t h, int64_t hp, int64_t k, int loss, int act)
    void mn_row_grad_f32(float *g, const float *v, int64_t vstride, const int32_t *idx,
                         const float *x, int64_t xstride, int64_t n, int64_t hp, int add)
    void mn_row_grad_f64(double *g, const double *v, int64_t vstride, const int32_t *idx,
                         const double *x, int64_t xstride, int64_t n, int64_t hp, int add)
    void mn_output_weights_f32(float *w2, const float *w2t, const float *b2, int64_t h,
                               int64_t hp, int64_t k)
    void mn_output_weights_f64(double *w2, const double *w2t, const double *b2, int64_t h,
                               int64_t hp, int64_t k)
    void mn_reduce_update_f32(float *w, const float *g, int64_t n_chunks, int64_t stride,
                              int64_t m, double step)
    void mn_reduce_update_f64(double *w, const double *g, int64_t n_chunks, int64_t stride,
                              int64_t m, double step)


# The kernel variants of this build, narrowest first: ("baseline", "avx2+fma", "avx512") on
# x86 (baseline = SSE2), ("neon",) on aarch64, ("portable",) elsewhere.
SIMD_LEVELS = tuple(mn_simd_name(i).decode() for i in range(mn_simd_count()))
GROUP = MN_GROUP  # samples the kernels keep together (scratch rows per thread)
SGD_ROW_BLOCK = ROW_BLOCK  # rows of sgd_epoch's gradient scratch per thread, per width
SIMD_BYTES = 64  # the widest vectors of any variant


def out_scratch_size(Py_ssize_t hp, Py_ssize_t k, Py_ssize_t itemsize):
    """Values of the per-thread ``o`` scratch: rows of k values padded to whole vectors,
    GROUP + 2 of them (outputs, a group's output deltas, the bias gradient; see mn_chunk)."""
    cdef Py_ssize_t lanes = SIMD_BYTES // itemsize
    return (k + lanes - 1) // lanes * lanes * (MN_GROUP + 2)


def output_weights_size(Py_ssize_t hp, Py_ssize_t k, Py_ssize_t itemsize):
    """Values of the shared ``w2s`` buffer: the output weights by hidden unit and the biases,
    hp + 1 rows of k padded to whole vectors (see mn_output_weights)."""
    cdef Py_ssize_t lanes = SIMD_BYTES // itemsize
    return (k + lanes - 1) // lanes * lanes * (hp + 1)


DENSE_MAX = MN_DENSE_MAX  # most samples (pixels) a dense-column pass serves at once


def dense_count(Py_ssize_t hp, Py_ssize_t itemsize):
    """Samples (pixels) each dense-column pass serves with the variant in use, for hp
    hidden units of ``itemsize`` bytes: DENSE_MAX when the registers hold that many."""
    return mn_dense_count(hp, itemsize)


def cpu_simd():
    """The widest kernel variant this CPU (and build) can run: one of SIMD_LEVELS."""
    return SIMD_LEVELS[mn_cpu_simd_level()]


def subnormals_flushed():
    """Whether the kernels flush subnormal floats to zero on this build and CPU (see
    platform.h: x86-64 and aarch64 do)."""
    return bool(mn_subnormals_flushed())


def simd_init(str wanted):
    """Use the widest variant up to ``wanted`` (one of SIMD_LEVELS) that the CPU can run;
    return the one in use."""
    if wanted not in SIMD_LEVELS:
        raise ValueError(f"SIMD variant must be one of {SIMD_LEVELS}, got {wanted!r}")
    return SIMD_LEVELS[mn_simd_init(SIMD_LEVELS.index(wanted))]


MIN_TILE_BYTES = 4096  # a tile holds at least one weight row of any variant (640 bytes at most)


def set_cache_tuning(int64_t hidden_short, int64_t hidden_long, int64_t scatter,
                     int64_t prefetch_above):
    """Bytes of weight rows per tile (fused.h): the hidden sums' for rows of up to 320
    bytes and for longer rows, and the scatter's; and the size of w1 above which the hidden
    sums prefetch rows.  No result depends on them (fused_body.h, "Tiling")."""
    for name, value in (("hidden_short", hidden_short), ("hidden_long", hidden_long),
                        ("scatter", scatter)):
        if value < MIN_TILE_BYTES:
            raise ValueError(f"tile {name} must be at least {MIN_TILE_BYTES} bytes, got {value}")
    if prefetch_above < 0:
        raise ValueError(f"prefetch_above must be at least 0, got {prefetch_above}")
    mn_set_cache_tuning(hidden_short, hidden_long, scatter, prefetch_above)


cdef inline void chunk(floating *gw1, floating *gw2t, floating *gb2, double *stats,
                       floating *u, floating *d, int64_t *cursor, int64_t *rows, floating *o,
                       const int64_t *indptr, const uint16_t *indices, const floating *values,
                       const floating *xd, int64_t m, const int64_t *dcols, const int64_t *order,
                       const floating *targets, const int32_t *labels, const floating *w1,
                       const floating *w2t, const floating *w2, int64_t r0, int64_t r1,
                       int64_t n_in, int64_t h, int64_t hp, int64_t k, int loss,
                       int act, const mn_runs *runs=NULL, int64_t group0=0) noexcept nogil:
    cdef mn_fp_mode mode = mn_flush_subnormals()  # platform.h: subnormals cost ~100 cycles
    if floating is float:
        mn_chunk_f32(gw1, gw2t, gb2, stats, u, d, cursor, rows, o, indptr, indices, values, xd,
                     m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp, k, loss,
                     act, runs, group0)
    else:
        mn_chunk_f64(gw1, gw2t, gb2, stats, u, d, cursor, rows, o, indptr, indices, values, xd,
                     m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp, k, loss,
                     act, runs, group0)
    mn_restore_fp_mode(mode)


cdef inline void output_weights(floating *w2s, const floating *w2t, const floating *b2,
                                int64_t h, int64_t hp, int64_t k) noexcept nogil:
    """w2s = the output layer's weights by hidden unit (w2t: k rows of hp), for every chunk
    of a pass or step."""
    if floating is float:
        mn_output_weights_f32(w2s, w2t, b2, h, hp, k)
    else:
        mn_output_weights_f64(w2s, w2t, b2, h, hp, k)


cdef inline void reduce_update(floating *w, const floating *g, int64_t n_chunks, int64_t stride,
                               int64_t m, double step) noexcept nogil:
    if floating is float:
        mn_reduce_update_f32(w, g, n_chunks, stride, m, step)
    else:
        mn_reduce_update_f64(w, g, n_chunks, stride, m, step)


cdef inline void reduce_update_flushed(floating *w, const floating *g, int64_t n_chunks,
                                       int64_t stride, int64_t m, double step) noexcept nogil:
    """reduce_update with subnormals flushed (platform.h), for a caller outside the kernels'
    runs (whose threads are in that mode already)."""
    cdef mn_fp_mode mode = mn_flush_subnormals()
    reduce_update(w, g, n_chunks, stride, m, step)
    mn_restore_fp_mode(mode)


cdef enum:
    SMALL_WORK = 1 << 15  # additions (weights x chunks) below which one thread beats two
    UPDATE_PIECE = 4096   # weights per piece of the parallel update


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void apply_step(floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, ::1] b2,
                     floating[:, :, ::1] gw1, floating[:, :, ::1] gw2t, floating[:, ::1] gb2,
                     int64_t n_chunks, double step, int n_threads) noexcept nogil:
    """w -= step * (chunk partial gradients summed in chunk order), w1 split over threads in
    pieces of UPDATE_PIECE weights."""
    cdef int64_t size = w1.shape[0] * w1.shape[1], k = w2t.shape[0], hp = w1.shape[1], i
    # Small work: waking threads would cost more than the work (and one thread opens no
    # OpenMP region, which would allocate a team each time).  Each weight's sum is the same
    # either way.
    if n_threads == 1 or size * n_chunks < SMALL_WORK:
        reduce_update_flushed(&w1[0, 0], &gw1[0, 0, 0], n_chunks, size, size, step)
    else:
        for i in prange(0, size, UPDATE_PIECE, schedule="static", num_threads=n_threads):
            reduce_update_flushed(&w1[0, 0] + i, &gw1[0, 0, 0] + i, n_chunks, size,
                                  UPDATE_PIECE if i + UPDATE_PIECE < size else size - i, step)
    reduce_update_flushed(&w2t[0, 0], &gw2t[0, 0, 0], n_chunks, k * hp, k * hp, step)
    reduce_update_flushed(&b2[0, 0], &gb2[0, 0], n_chunks, k, k, step)


# Internal callers allocate all the arrays; a mismatch would write out of bounds, so it is
# refused before the GIL is released.
cdef int check_buffers(floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, ::1] b2,
                       double[:, ::1] stats, floating[:, ::1] u, floating[:, ::1] d,
                       int64_t[:, ::1] cursor, int64_t[:, ::1] rows, floating[:, ::1] o,
                       floating[::1] w2s, Py_ssize_t h, int64_t stat_chunks,
                       int n_threads) except -1:
    """The weights, scratch and ``stat_chunks`` rows of stats fit each other and
    ``n_threads`` threads."""
    cdef int64_t hp = w1.shape[1], k = w2t.shape[0]
    if n_threads < 1:
        raise ValueError("n_threads must be >= 1")
    if stats.shape[0] < stat_chunks:
        raise ValueError(f"buffers hold {stats.shape[0]} chunks, {stat_chunks} needed")
    if (w2t.shape[1] != hp or b2.shape[1] != k or h > hp or u.shape[1] != MN_GROUP * hp
            or d.shape[1] != MN_GROUP * hp or cursor.shape[1] != MN_GROUP
            or rows.shape[1] != MN_GROUP or o.shape[1] < out_scratch_size(hp, k, sizeof(floating))
            or w2s.shape[0] < output_weights_size(hp, k, sizeof(floating))
            or min(u.shape[0], d.shape[0], cursor.shape[0], rows.shape[0], o.shape[0]) < n_threads):
        raise ValueError("inconsistent array shapes")
    return 0


cdef int check_gradients(floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, :, ::1] gw1,
                         floating[:, :, ::1] gw2t, floating[:, ::1] gb2,
                         int64_t grad_chunks) except -1:
    """``grad_chunks`` chunks of partial gradients for these weights."""
    cdef int64_t hp = w1.shape[1], k = w2t.shape[0]
    if min(gw1.shape[0], gw2t.shape[0], gb2.shape[0]) < grad_chunks:
        raise ValueError(f"buffers hold {gw1.shape[0]} chunks, {grad_chunks} needed")
    if (gw1.shape[1] != w1.shape[0] or gw1.shape[2] != hp or gw2t.shape[1] != k
            or gw2t.shape[2] != hp or gb2.shape[1] != k):
        raise ValueError("inconsistent array shapes")
    return 0


cdef int check_data(const int64_t[::1] indptr, const uint16_t[::1] indices,
                    const floating[::1] values, const floating[:, ::1] xd,
                    const int64_t[::1] dcols, const floating[:, ::1] targets,
                    const int32_t[::1] labels, int64_t n_in, int64_t k) except -1:
    """A data set: inputs as CSR plus a dense block (xd: the pixels dcols of every sample),
    one target row of k values and one label per sample."""
    cdef Py_ssize_t c
    if (indptr.shape[0] != targets.shape[0] + 1 or labels.shape[0] != targets.shape[0]
            or targets.shape[1] != k or xd.shape[0] != targets.shape[0]
            or xd.shape[1] != dcols.shape[0]):
        raise ValueError("inconsistent data shapes")
    for c in range(dcols.shape[0]):
        if not 0 <= dcols[c] < n_in:
            raise ValueError("dense column index out of range")
    if indices.shape[0] != values.shape[0] or indptr[indptr.shape[0] - 1] != values.shape[0]:
        raise ValueError("CSR arrays disagree")
    return 0


cdef int check_runs(const int64_t[::1] group_runs, const int64_t[::1] run_start,
                    const uint16_t[::1] run_pixel, const uint8_t[::1] run_sample,
                    const floating[::1] run_value, const int64_t[::1] indptr,
                    int64_t n_groups) except -1:
    """The runs arrays fit each other and the data set's CSR (as pixel_runs makes them)."""
    cdef int64_t n_runs = run_pixel.shape[0], nnz = run_sample.shape[0]
    if (group_runs.shape[0] != n_groups + 1 or run_start.shape[0] != n_runs + 1
            or run_value.shape[0] != nnz or nnz != indptr[indptr.shape[0] - 1]
            or group_runs[0] != 0 or group_runs[n_groups] != n_runs
            or run_start[0] != 0 or run_start[n_runs] != nnz):
        raise ValueError("the runs do not match the data set and its chunks")
    return 0


# Runs (see mn_runs in fused.h): pixel_runs counts them, mnist_native._fused allocates the
# arrays, runs_fill fills them.  The samples go in chunks of chunk_size and each chunk in
# groups of GROUP, as full_batch_pass visits them: group q of chunk c is number
# c * ceil(chunk_size / GROUP) + q.
cdef inline void group_bounds(int64_t gi, int64_t per_chunk, int64_t chunk_size, int64_t n,
                              int64_t *s0, int64_t *s1) noexcept nogil:
    cdef int64_t c = gi // per_chunk, chunk_end = min((c + 1) * chunk_size, n)
    s0[0] = min(c * chunk_size + (gi % per_chunk) * MN_GROUP, chunk_end)
    s1[0] = min(s0[0] + MN_GROUP, chunk_end)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int check_rows(const int64_t[::1] indptr, const uint16_t[::1] indices,
                    int64_t n_in) except -1:
    """CSR rows with pixel indices below n_in, strictly increasing within a row (so a pixel's
    run in a group has at most GROUP entries)."""
    cdef int64_t n = indptr.shape[0] - 1, i, e
    if indptr[0] != 0 or indices.shape[0] != indptr[n]:
        raise ValueError("indptr does not match the size of indices")
    for i in range(n):
        if indptr[i + 1] < indptr[i]:
            raise ValueError("indptr must not decrease")
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] >= n_in or (e > indptr[i] and indices[e] <= indices[e - 1]):
                raise ValueError(f"row {i}: pixel indices must increase and stay below {n_in}")
    return 0


cdef int64_t checked_groups(const int64_t[::1] group_runs, const int64_t[::1] indptr,
                            const uint16_t[::1] indices, Py_ssize_t n_in,
                            Py_ssize_t chunk_size) except -1:
    """The number of groups of these CSR rows in chunks of chunk_size, once the rows (see
    check_rows), the sizes and group_runs' length are checked."""
    cdef int64_t n = indptr.shape[0] - 1, n_groups
    if n < 1 or chunk_size < 1 or not 1 <= n_in <= 65536:
        raise ValueError("need samples, chunk_size >= 1 and 1 <= n_in <= 65536")
    n_groups = (n + chunk_size - 1) // chunk_size * ((chunk_size + MN_GROUP - 1) // MN_GROUP)
    if group_runs.shape[0] != n_groups + 1:
        raise ValueError(f"group_runs must have {n_groups + 1} entries")
    check_rows(indptr, indices, n_in)
    return n_groups


@cython.boundscheck(False)
@cython.wraparound(False)
def pixel_runs(int64_t[::1] group_runs, const int64_t[::1] indptr,
               const uint16_t[::1] indices, Py_ssize_t n_in, Py_ssize_t chunk_size):
    """group_runs[g + 1] = group_runs[g] + the number of distinct pixels among group g's
    entries; group_runs[0] = 0.  Shapes: group_runs (groups + 1,) for
    groups = ceil(n / chunk_size) * ceil(chunk_size / GROUP); indptr (n + 1,)."""
    cdef int64_t n = indptr.shape[0] - 1, per_chunk, n_groups, gi, s0, s1, e, p, total
    cdef int64_t *mark
    n_groups = checked_groups(group_runs, indptr, indices, n_in, chunk_size)
    per_chunk = (chunk_size + MN_GROUP - 1) // MN_GROUP
    mark = <int64_t *>malloc(n_in * sizeof(int64_t))
    if mark == NULL:
        raise MemoryError()
    with nogil:
        for p in range(n_in):
            mark[p] = -1
        group_runs[0] = 0
        for gi in range(n_groups):
            group_bounds(gi, per_chunk, chunk_size, n, &s0, &s1)
            total = 0
            for e in range(indptr[s0], indptr[s1]):
                p = indices[e]
                total = total + (mark[p] != gi)
                mark[p] = gi
            group_runs[gi + 1] = group_runs[gi] + total
    free(mark)


@cython.boundscheck(False)
@cython.wraparound(False)
def runs_fill(int64_t[::1] run_start, uint16_t[::1] run_pixel, uint8_t[::1] run_sample,
              floating[::1] run_value, const int64_t[::1] group_runs,
              const int64_t[::1] indptr, const uint16_t[::1] indices,
              const floating[::1] values, Py_ssize_t n_in, Py_ssize_t chunk_size):
    """The runs of each group: its entries by pixel, in sample order within a pixel, the
    pixels ordered by their entry count, then by index.  Shapes: run_start (runs + 1,),
    run_pixel (runs,), run_sample and run_value (entries,); group_runs from pixel_runs with
    the same data and chunk_size."""
    cdef int64_t n = indptr.shape[0] - 1, per_chunk, n_groups, gi, s, s0, s1, e, p, r, slot
    cdef int64_t total, n_runs
    cdef int64_t *count
    cdef int64_t *fill
    cdef int64_t next_run[MN_GROUP + 1]
    n_groups = checked_groups(group_runs, indptr, indices, n_in, chunk_size)
    per_chunk = (chunk_size + MN_GROUP - 1) // MN_GROUP
    n_runs = group_runs[n_groups]
    if (run_start.shape[0] != n_runs + 1 or run_pixel.shape[0] != n_runs
            or run_sample.shape[0] != indptr[n] or run_value.shape[0] != indptr[n]
            or values.shape[0] != indptr[n] or indices.shape[0] != indptr[n]):
        raise ValueError("the runs arrays do not match group_runs and the entries")
    count = <int64_t *>calloc(n_in, sizeof(int64_t))
    fill = <int64_t *>malloc(n_in * sizeof(int64_t))
    if count == NULL or fill == NULL:
        free(count)
        free(fill)
        raise MemoryError()
    with nogil:
        for gi in range(n_groups):
            group_bounds(gi, per_chunk, chunk_size, n, &s0, &s1)
            for e in range(indptr[s0], indptr[s1]):
                count[indices[e]] += 1
            # next_run[L]: the next slot for a run of L entries; runs by length, then pixel
            for r in range(MN_GROUP + 1):
                next_run[r] = 0
            for p in range(n_in):
                next_run[count[p]] += 1
            slot = group_runs[gi]
            for r in range(1, MN_GROUP + 1):
                total = next_run[r]
                next_run[r] = slot
                slot += total
            for p in range(n_in):
                if count[p] > 0:
                    run_pixel[next_run[count[p]]] = <uint16_t>p
                    next_run[count[p]] += 1
            e = indptr[s0]
            for r in range(group_runs[gi], group_runs[gi + 1]):
                p = run_pixel[r]
                run_start[r] = e
                fill[p] = e
                e += count[p]
                count[p] = 0
            for s in range(s0, s1):
                for e in range(indptr[s], indptr[s + 1]):
                    p = indices[e]
                    run_sample[fill[p]] = <uint8_t>(s - s0)
                    run_value[fill[p]] = values[e]
                    fill[p] += 1
        run_start[n_runs] = indptr[n]
    free(count)
    free(fill)

@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void pass_chunk(
        int64_t c, int t, int64_t n_train, int64_t chunk_size, int64_t v_chunk_size,
        bint gradient, int64_t groups_per_chunk, const mn_runs *runs,
        floating[:, ::1] w1, floating[:, ::1] w2t,
        floating[:, :, ::1] gw1, floating[:, :, ::1] gw2t, floating[:, ::1] gb2,
        double[:, ::1] stats, floating[:, ::1] u, floating[:, ::1] d,
        int64_t[:, ::1] cursor, int64_t[:, ::1] rows, floating[:, ::1] o, floating[::1] w2s,
        const int64_t[::1] indptr, const uint16_t[::1] indices, const floating[::1] values,
        const floating[:, ::1] xd, const floating[:, ::1] targets, const int32_t[::1] labels,
        const int64_t[::1] v_indptr, const uint16_t[::1] v_indices,
        const floating[::1] v_values, const floating[:, ::1] v_xd,
        const floating[:, ::1] v_targets, const int32_t[::1] v_labels,
        const int64_t[::1] dcols, int64_t h, int loss, int act) noexcept nogil:
    """Chunk ``c`` of full_batch_pass, on thread ``t``'s scratch: a training chunk (with its
    partial gradient when ``gradient``) or, from ``n_train`` on, a validation chunk."""
    cdef int64_t n = targets.shape[0], nv = v_targets.shape[0], n_in = w1.shape[0] - 1
    cdef int64_t hp = w1.shape[1], k = w2t.shape[0], m = dcols.shape[0], r0, r1
    cdef floating *g1 = NULL
    cdef floating *g2 = NULL
    cdef floating *gb = NULL
    if c < n_train:
        r0 = c * chunk_size
        r1 = r0 + chunk_size if r0 + chunk_size < n else n
        if gradient:
            g1, g2, gb = &gw1[c, 0, 0], &gw2t[c, 0, 0], &gb2[c, 0]
        chunk(g1, g2, gb, &stats[c, 0], &u[t, 0], &d[t, 0], &cursor[t, 0], &rows[t, 0],
              &o[t, 0], &indptr[0], &indices[0], &values[0], &xd[0, 0], m, &dcols[0], NULL,
              &targets[0, 0], &labels[0], &w1[0, 0], &w2t[0, 0], &w2s[0], r0, r1, n_in, h, hp,
              k, loss, act, runs, c * groups_per_chunk)
    else:
        r0 = (c - n_train) * v_chunk_size
        r1 = r0 + v_chunk_size if r0 + v_chunk_size < nv else nv
        chunk(<floating *>NULL, <floating *>NULL, <floating *>NULL, &stats[c, 0],
              &u[t, 0], &d[t, 0], &cursor[t, 0], &rows[t, 0], &o[t, 0],
              &v_indptr[0], &v_indices[0], &v_values[0], &v_xd[0, 0], m, &dcols[0],
              NULL, &v_targets[0, 0], &v_labels[0], &w1[0, 0], &w2t[0, 0], &w2s[0],
              r0, r1, n_in, h, hp, k, loss, act)


@cython.boundscheck(False)
@cython.wraparound(False)
def full_batch_pass(
        floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, ::1] b2,
        floating[:, :, ::1] gw1, floating[:, :, ::1] gw2t, floating[:, ::1] gb2,
        double[:, ::1] stats,
        floating[:, ::1] u, floating[:, ::1] d, int64_t[:, ::1] cursor, int64_t[:, ::1] rows,
        floating[:, ::1] o, floating[::1] w2s,
        # the training set, then the validation set: inputs as in measure, targets, labels
        const int64_t[::1] indptr, const uint16_t[::1] indices, const floating[::1] values,
        const floating[:, ::1] xd, const floating[:, ::1] targets, const int32_t[::1] labels,
        const int64_t[::1] v_indptr, const uint16_t[::1] v_indices,
        const floating[::1] v_values, const floating[:, ::1] v_xd,
        const floating[:, ::1] v_targets, const int32_t[::1] v_labels,
        # the pixels of the dense blocks xd, v_xd
        const int64_t[::1] dcols,
        # the training set's entries regrouped for the gradient (pixel_runs; group_runs
        # empty: none)
        const int64_t[::1] group_runs, const int64_t[::1] run_start,
        const uint16_t[::1] run_pixel, const uint8_t[::1] run_sample,
        const floating[::1] run_value,
        Py_ssize_t h, Py_ssize_t chunk_size, Py_ssize_t v_chunk_size, double step, int loss,
        int act, bint gradient, int n_threads):
    """One full-batch iteration's native work, in one call.

    First, when ``step`` > 0, the update ``w -= step * gradient`` from the partial gradients
    the previous call left (the training set in chunks of ``chunk_size``).  Then one
    parallel pass over the training chunks and the validation chunks (``v_chunk_size``
    samples) together: it measures the weights on both sets and, when ``gradient``, leaves
    the training set's partial gradients for the next call.  Shapes as in measure; stats
    holds a row per chunk of both sets.  Returns (training loss sum, correct count,
    validation loss sum, correct count), each summed in chunk order.
    """
    cdef int64_t n = targets.shape[0], nv = v_targets.shape[0], n_in = w1.shape[0] - 1
    cdef int64_t k = w2t.shape[0], n_train, n_all, c
    cdef int64_t groups_per_chunk
    cdef double train_loss = 0.0, train_correct = 0.0, val_loss = 0.0, val_correct = 0.0
    cdef mn_runs runs
    cdef const mn_runs *runs_or_null = NULL
    if chunk_size < 1 or v_chunk_size < 1 or n < 1 or nv < 1:
        raise ValueError("chunk sizes and both sets' sample counts must be >= 1")
    n_train = (n + chunk_size - 1) // chunk_size
    n_all = n_train + (nv + v_chunk_size - 1) // v_chunk_size
    groups_per_chunk = (chunk_size + MN_GROUP - 1) // MN_GROUP
    check_buffers(w1, w2t, b2, stats, u, d, cursor, rows, o, w2s, h, n_all, n_threads)
    check_gradients(w1, w2t, gw1, gw2t, gb2, n_train)
    check_data(indptr, indices, values, xd, dcols, targets, labels, n_in, k)
    check_data(v_indptr, v_indices, v_values, v_xd, dcols, v_targets, v_labels, n_in, k)
    if group_runs.shape[0] > 0:
        check_runs(group_runs, run_start, run_pixel, run_sample, run_value, indptr,
                   n_train * groups_per_chunk)
        runs.group_runs = &group_runs[0]
        runs.run_start = &run_start[0]
        runs.run_pixel = &run_pixel[0] if run_pixel.shape[0] > 0 else NULL
        runs.sample = &run_sample[0] if run_sample.shape[0] > 0 else NULL
        runs.value = &run_value[0] if run_value.shape[0] > 0 else NULL
        runs_or_null = &runs
    with nogil:
        if step > 0:
            apply_step(w1, w2t, b2, gw1, gw2t, gb2, n_train, step, n_threads)
        output_weights(&w2s[0], &w2t[0, 0], &b2[0, 0], h, w2t.shape[1], w2t.shape[0])
        # Chunks are handed out one at a time: the small validation chunks fill in around
        # the training ones.  Each chunk writes only its own rows, so any order gives the
        # same bits.  One thread opens no OpenMP region (it would allocate a team each time).
        if n_threads == 1:
            for c in range(n_all):
                pass_chunk(c, 0, n_train, chunk_size, v_chunk_size, gradient, groups_per_chunk,
                           runs_or_null, w1, w2t, gw1, gw2t, gb2, stats, u, d, cursor, rows,
                           o, w2s, indptr, indices, values, xd, targets, labels, v_indptr,
                           v_indices, v_values, v_xd, v_targets, v_labels, dcols, h, loss, act)
        else:
            for c in prange(n_all, schedule="static", chunksize=1,
                            num_threads=n_threads if n_threads < n_all else n_all):
                pass_chunk(c, mn_thread_num(), n_train, chunk_size, v_chunk_size, gradient,
                           groups_per_chunk, runs_or_null, w1, w2t, gw1, gw2t, gb2, stats, u,
                           d, cursor, rows, o, w2s, indptr, indices, values, xd, targets,
                           labels, v_indptr, v_indices, v_values, v_xd, v_targets, v_labels,
                           dcols, h, loss, act)
        for c in range(n_all):  # in chunk order: independent of the thread count
            if c < n_train:
                train_loss += stats[c, 0]
                train_correct += stats[c, 1]
            else:
                val_loss += stats[c, 0]
                val_correct += stats[c, 1]
    return train_loss, train_correct, val_loss, val_correct

@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void measure_chunk(
        int64_t c, int t, int64_t n, int64_t chunk_size, floating[:, ::1] w1,
        floating[:, ::1] w2t, double[:, ::1] stats, floating[:, ::1] u, floating[:, ::1] d,
        int64_t[:, ::1] cursor, int64_t[:, ::1] rows, floating[:, ::1] o, floating[::1] w2s,
        const int64_t[::1] indptr, const uint16_t[::1] indices, const floating[::1] values,
        const floating[:, ::1] xd, const int64_t[::1] dcols, const floating[:, ::1] targets,
        const int32_t[::1] labels, const int64_t[::1] order, int64_t h, int loss,
        int act) noexcept nogil:
    """Chunk ``c`` of measure's samples, on thread ``t``'s scratch."""
    cdef int64_t r0 = c * chunk_size, r1
    r1 = r0 + chunk_size if r0 + chunk_size < n else n
    chunk(<floating *>NULL, <floating *>NULL, <floating *>NULL, &stats[c, 0], &u[t, 0],
          &d[t, 0], &cursor[t, 0], &rows[t, 0], &o[t, 0], &indptr[0], &indices[0], &values[0],
          &xd[0, 0], dcols.shape[0], &dcols[0], &order[0], &targets[0, 0], &labels[0],
          &w1[0, 0], &w2t[0, 0], &w2s[0], r0, r1, w1.shape[0] - 1, h, w1.shape[1],
          w2t.shape[0], loss, act)


@cython.boundscheck(False)
@cython.wraparound(False)
def measure(
        # weights: w1 (n_in + 1, hp), w2t (k, hp), b2 (1, k); per-chunk [loss sum, correct
        # count]: stats (chunks, 2)
        floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, ::1] b2, double[:, ::1] stats,
        # per-thread scratch: u, d (threads, GROUP * hp), cursor, rows (threads, GROUP),
        # o (threads, out_scratch_size(hp, k)); shared: w2s (output_weights_size(hp, k))
        floating[:, ::1] u, floating[:, ::1] d, int64_t[:, ::1] cursor, int64_t[:, ::1] rows,
        floating[:, ::1] o, floating[::1] w2s,
        # the data: inputs (n samples) as CSR plus a dense block xd (n, m) holding the pixels
        # dcols (m), targets (n, k), labels (n), visiting order (n)
        const int64_t[::1] indptr, const uint16_t[::1] indices, const floating[::1] values,
        const floating[:, ::1] xd, const int64_t[::1] dcols,
        const floating[:, ::1] targets, const int32_t[::1] labels, const int64_t[::1] order,
        Py_ssize_t h, Py_ssize_t chunk_size, int loss, int act, int n_threads):
    """(loss sum, correct count) of the weights over the samples in ``order``: a forward
    pass in chunks of ``chunk_size``, the chunks' sums added in chunk order."""
    cdef int64_t n = order.shape[0], n_in = w1.shape[0] - 1, k = w2t.shape[0]
    cdef int64_t n_chunks, c
    cdef double loss_sum = 0.0, correct = 0.0
    if chunk_size < 1 or n < 1:
        raise ValueError("chunk_size and the sample count must be >= 1")
    n_chunks = (n + chunk_size - 1) // chunk_size
    check_buffers(w1, w2t, b2, stats, u, d, cursor, rows, o, w2s, h, n_chunks, n_threads)
    check_data(indptr, indices, values, xd, dcols, targets, labels, n_in, k)
    check_order(order, targets.shape[0])
    with nogil:
        output_weights(&w2s[0], &w2t[0, 0], &b2[0, 0], h, w2t.shape[1], w2t.shape[0])
        # One thread opens no OpenMP region (it would allocate a team each time).
        if n_threads == 1 or n_chunks == 1:
            for c in range(n_chunks):
                measure_chunk(c, 0, n, chunk_size, w1, w2t, stats, u, d, cursor, rows, o, w2s,
                              indptr, indices, values, xd, dcols, targets, labels, order, h,
                              loss, act)
        else:
            for c in prange(n_chunks, schedule="static",
                            num_threads=n_threads if n_threads < n_chunks else n_chunks):
                measure_chunk(c, mn_thread_num(), n, chunk_size, w1, w2t, stats, u, d, cursor,
                              rows, o, w2s, indptr, indices, values, xd, dcols, targets, labels,
                              order, h, loss, act)
        for c in range(n_chunks):  # in chunk order: independent of the thread count
            loss_sum += stats[c, 0]
            correct += stats[c, 1]
    return loss_sum, correct


# Mini-batch SGD (sgd_epoch).  A step's samples go in chunks (a function of the batch size
# only), and each chunk in two phases:
#   1. by pieces of samples, over the threads: the piece's samples copied together
#      (copy_piece), their forward and deltas (mn_deltas), every sample's hidden outputs,
#      deltas and dense inputs kept for the chunk; and the piece's sparse entries regrouped
#      by pixel (transpose_piece);
#   2. by weight rows, over the threads: the gradient of a row (mn_row_grad), its terms added
#      in sample order (piece by piece), so no partial gradients need combining; the pixels'
#      rows in blocks of ROW_BLOCK, piece by piece within a block (gradient_pixels).  Only
#      rows with a nonzero gradient are visited: the pixels present in the chunk, the dense
#      block's pixels, the bias row, and the output layer's rows and biases.
# A one-chunk step updates each row as soon as its gradient is made; with several chunks the
# rows' gradients are summed in double in chunk order (as full batch does) and the step's
# rows are updated once the last chunk is done.  Every sum has one fixed order: the weights
# are bit-identical for any number of threads.  The threads run the steps together
# (run_steps), each on its own copy of the Step and of the output weights by hidden unit,
# meeting at a barrier after each phase.
cdef struct Piece:
    # a piece's samples copied together, a data set of their own (indptr, indices, values,
    # xd, targets, labels as the data's; order 0, 1, ...): see copy_piece
    int64_t *indptr
    int64_t *order
    int32_t *labels
    uint16_t *indices
    void *values
    void *xd
    void *targets


cdef struct Step:
    # the data set, its visiting order, this chunk of it: samples order[r0..r1)
    const int64_t *indptr
    const uint16_t *indices
    const void *values
    const void *xd
    const int64_t *dcols
    const void *targets
    const int32_t *labels
    const int64_t *order
    int64_t r0, r1, piece, pieces
    int64_t n_in, h, hp, k, kstride, m
    int loss, act
    # the weights and the output weights by hidden unit (mn_output_weights): in sgd_epoch
    # a copy per thread, rows of w2s_stride
    void *w1
    void *w2t
    void *b2
    const void *w2s
    int64_t w2s_stride
    double step  # learning rate / batch size
    # phase 1's rows, one per sample of the chunk: hidden outputs u, hidden deltas d (rows of
    # hp), output deltas dk (rows of kstride), dense inputs xc (rows of m); stats per piece
    void *u
    void *d
    void *dk
    void *xc
    double *stats
    # per-thread scratch (rows of the given strides): outputs o, gradient row g
    void *o
    int64_t o_stride
    int64_t *cursor
    int64_t *rows
    void *g
    int64_t g_stride
    # each piece's sparse entries by pixel: piece q's pixel p has entries tstart[q, p] to
    # tstart[q, p + 1] (rows of n_in + 1) of its part of tsample, tvalue (piece * longest
    # entries from q * piece * longest), in sample order
    int64_t *tstart
    int32_t *tsample
    void *tvalue
    int64_t longest
    # this thread's copy of its current piece (copy_piece), in copies (copy_bytes a thread)
    Piece copy
    char *copies
    int64_t copy_bytes
    # several chunks per step: the pixels seen in the step so far (mark), and the gradient
    # sums acc (rows of acc_stride: w1's, w2t's, b2)
    bint several
    int64_t chunk_index
    uint8_t *mark
    double *acc
    int64_t acc_stride


cdef inline void deltas(floating *u, floating *d, floating *dk, floating *xc,
                        double *stats, floating *o, int64_t *cursor, int64_t *rows,
                        const Step *s, int64_t r0, int64_t r1) noexcept nogil:
    if floating is float:
        mn_deltas_f32(u, d, dk, s.kstride, xc, stats, o, cursor, rows, s.indptr, s.indices,
                      <const float *>s.values, <const float *>s.xd, s.m, s.dcols, s.order,
                      <const float *>s.targets, s.labels, <const float *>s.w1,
                      <const float *>s.w2t, <const float *>s.w2s, r0, r1, s.n_in, s.h, s.hp,
                      s.k, s.loss, s.act)
    else:
        mn_deltas_f64(u, d, dk, s.kstride, xc, stats, o, cursor, rows, s.indptr, s.indices,
                      <const double *>s.values, <const double *>s.xd, s.m, s.dcols, s.order,
                      <const double *>s.targets, s.labels, <const double *>s.w1,
                      <const double *>s.w2t, <const double *>s.w2s, r0, r1, s.n_in, s.h, s.hp,
                      s.k, s.loss, s.act)


cdef inline void row_grad(floating *g, const floating *v, int64_t vstride, const int32_t *idx,
                          const floating *x, int64_t xstride, int64_t n, int64_t width,
                          bint add) noexcept nogil:
    if floating is float:
        mn_row_grad_f32(g, v, vstride, idx, x, xstride, n, width, add)
    else:
        mn_row_grad_f64(g, v, vstride, idx, x, xstride, n, width, add)


cdef inline int64_t line_up(int64_t nbytes) noexcept nogil:
    return (nbytes + 63) // 64 * 64


cdef int64_t lay_out_piece_copy(Piece *c, char *at, int64_t piece, int64_t longest,
                                int64_t m, int64_t k, int64_t itemsize) noexcept nogil:
    """The bytes of a copy of ``piece`` samples of up to ``longest`` entries each, its arrays
    one after another, each on whole cache lines; with ``c``, its arrays placed from ``at``."""
    cdef int64_t size[7]
    cdef int64_t offset[8]
    cdef int i
    size[:] = [(piece + 1) * sizeof(int64_t), piece * sizeof(int64_t), piece * sizeof(int32_t),
               piece * longest * sizeof(uint16_t), piece * longest * itemsize,
               piece * m * itemsize, piece * k * itemsize]
    offset[0] = 0
    for i in range(7):
        offset[i + 1] = offset[i] + line_up(size[i])
    if c != NULL:
        c.indptr = <int64_t *>(at + offset[0])
        c.order = <int64_t *>(at + offset[1])
        c.labels = <int32_t *>(at + offset[2])
        c.indices = <uint16_t *>(at + offset[3])
        c.values, c.xd, c.targets = at + offset[4], at + offset[5], at + offset[6]
        for i in range(piece):
            c.order[i] = i
    return offset[7]


def piece_copy_size(Py_ssize_t piece, Py_ssize_t longest, Py_ssize_t m, Py_ssize_t k,
                    Py_ssize_t itemsize):
    """Bytes of sgd_epoch's ``copies`` per thread: a copy of a piece's samples."""
    return lay_out_piece_copy(NULL, NULL, piece, longest, m, k, itemsize)


cdef void copy_piece(Step *s, int64_t i0, int64_t i1, const floating *values) noexcept nogil:
    """Samples order[r0 + i0..r0 + i1) into s.copy, one after another.  Shuffled, their rows
    lie all over the data set, and each block of hidden sums met every sample as a short
    stream of its own; read from one copy, epochs at batch 64 to 256 are 8-16% quicker
    (AVX2 and AVX-512 kernels, 1 and 2 threads; the same bits).  Prefetching the next
    piece's rows in place instead won nothing."""
    cdef int64_t i, row, e0, count, pos = 0
    cdef floating *cvalues = <floating *>s.copy.values
    cdef floating *cxd = <floating *>s.copy.xd
    cdef floating *ctargets = <floating *>s.copy.targets
    for i in range(i1 - i0):
        row = s.order[s.r0 + i0 + i]
        e0 = s.indptr[row]
        count = s.indptr[row + 1] - e0
        s.copy.indptr[i] = pos
        memcpy(s.copy.indices + pos, s.indices + e0, count * sizeof(uint16_t))
        memcpy(cvalues + pos, values + e0, count * sizeof(floating))
        memcpy(cxd + i * s.m, <const floating *>s.xd + row * s.m, s.m * sizeof(floating))
        memcpy(ctargets + i * s.k, <const floating *>s.targets + row * s.k,
               s.k * sizeof(floating))
        s.copy.labels[i] = s.labels[row]
        pos += count
    s.copy.indptr[i1 - i0] = pos


cdef void transpose_piece(const Step *s, int64_t q, int64_t ns,
                          const floating *cvalues) noexcept nogil:
    """Piece q's sparse entries (its ns samples in s.copy, whose values are cvalues) by
    pixel, in sample order within a pixel: a counting sort."""
    cdef int64_t *start = s.tstart + q * (s.n_in + 1)
    cdef int64_t base = q * s.piece * s.longest, i0 = q * s.piece, p, r, e, pos
    cdef int32_t *sample = s.tsample + base
    cdef floating *value = <floating *>s.tvalue + base
    cdef const int64_t *cindptr = s.copy.indptr
    for p in range(s.n_in + 1):
        start[p] = 0
    for e in range(cindptr[ns]):
        start[s.copy.indices[e] + 1] += 1
    for p in range(s.n_in):
        start[p + 1] += start[p]
    for r in range(ns):
        for e in range(cindptr[r], cindptr[r + 1]):
            p = s.copy.indices[e]
            pos = start[p]
            sample[pos] = <int32_t>(i0 + r)
            value[pos] = cvalues[e]
            start[p] = pos + 1
    for p in range(s.n_in, 0, -1):  # each pixel's start is now its successor's
        start[p] = start[p - 1]
    start[0] = 0


cdef void deltas_piece(Step *s, int64_t q, int t, const floating *values) noexcept nogil:
    """Phase 1 for piece q of the chunk, on thread t's scratch: its samples copied together
    (copy_piece), their forward pass and deltas, their entries regrouped by pixel."""
    cdef int64_t i0 = q * s.piece, i1 = min(i0 + s.piece, s.r1 - s.r0)
    cdef Step own = s[0]  # the data set: the piece's copy
    copy_piece(s, i0, i1, values)
    own.indptr, own.indices, own.values = s.copy.indptr, s.copy.indices, s.copy.values
    own.xd, own.targets = s.copy.xd, s.copy.targets
    own.labels, own.order = s.copy.labels, s.copy.order
    deltas(<floating *>s.u + i0 * s.hp, <floating *>s.d + i0 * s.hp,
           <floating *>s.dk + i0 * s.kstride, <floating *>s.xc + i0 * s.m, s.stats + 2 * q,
           <floating *>s.o + t * s.o_stride, s.cursor + t * MN_GROUP, s.rows + t * MN_GROUP,
           &own, 0, i1 - i0)
    transpose_piece(s, q, i1 - i0, <const floating *>s.copy.values)


cdef inline int64_t fixed_row(const Step *s, int64_t j) noexcept nogil:
    """Row j of those every step updates (the dense pixels, the bias row, w2t's rows, b2):
    its number in acc, where w1's rows come first (the bias row is n_in), then w2t's, then
    b2."""
    if j < s.m:
        return s.dcols[j]
    return s.n_in + j - s.m


cdef inline floating *weight_row(const Step *s, int64_t row, int64_t *length,
                                 floating *w1) noexcept nogil:
    """The weights of acc's row ``row`` and their count."""
    length[0] = s.hp
    if row <= s.n_in:
        return w1 + row * s.hp
    if row <= s.n_in + s.k:
        return <floating *>s.w2t + (row - s.n_in - 1) * s.hp
    length[0] = s.k
    return <floating *>s.b2


cdef void apply_row(const Step *s, int64_t row, const floating *g, bint first,
                    floating *w1) noexcept nogil:
    """Row ``row``'s gradient g for this chunk: into the weights (a one-chunk step: the
    dense update's own kernel, mn_reduce_update of one chunk, vectorised for the target) or
    into acc (set when ``first``)."""
    cdef int64_t j, length
    cdef floating *w = weight_row(s, row, &length, w1)
    cdef double *a
    if not s.several:
        reduce_update(w, g, 1, 0, length, s.step)
        return
    a = s.acc + row * s.acc_stride
    if first:
        for j in range(length):
            a[j] = <double>g[j]
    else:
        for j in range(length):
            a[j] += <double>g[j]


cdef void gradient_pixels(const Step *s, int64_t b, int t, floating *w1) noexcept nogil:
    """Phase 2 for the rows of pixels b * ROW_BLOCK.. present in the chunk: piece after piece,
    each row's terms of the piece, so that the piece's deltas, read by every row of the
    block, come from L1 (a row at a time, all of the chunk's deltas passed through L2 for
    every row: at batch 256 and hidden 128 they are 128 kB).  Each row's terms are still
    added in sample order into its own sums: the same sums as a row at a time."""
    cdef floating *g = <floating *>s.g + t * s.g_stride  # ROW_BLOCK rows of hp
    cdef int64_t i0 = b * ROW_BLOCK, i1 = min(i0 + ROW_BLOCK, s.n_in), i, q, e0
    cdef int64_t *start
    cdef uint32_t seen = 0  # a bit per row of the block: has it a term yet
    cdef bint first
    for q in range(s.pieces):
        start = s.tstart + q * (s.n_in + 1)
        for i in range(i0, i1):
            if start[i + 1] > start[i]:
                e0 = q * s.piece * s.longest + start[i]
                row_grad(g + (i - i0) * s.hp, <floating *>s.d, s.hp, s.tsample + e0,
                         <floating *>s.tvalue + e0, 1, start[i + 1] - start[i], s.hp,
                         (seen >> (i - i0)) & 1)
                seen |= (<uint32_t>1) << (i - i0)
    for i in range(i0, i1):
        if (seen >> (i - i0)) & 1:
            first = True
            if s.several:
                first = not s.mark[i]
                s.mark[i] = 1
            apply_row(s, i, g + (i - i0) * s.hp, first, w1)


cdef void gradient_item(const Step *s, int64_t i, int t, floating *w1) noexcept nogil:
    """Phase 2, item i of the chunk: a block of pixels' rows (gradient_pixels), then, after
    the last block, each of the fixed rows."""
    cdef floating one = 1
    cdef floating *g = <floating *>s.g + t * s.g_stride
    cdef const floating *v = <floating *>s.d
    cdef const floating *x
    cdef int64_t vstride = s.hp, xstride = 0, width = s.hp, n = s.r1 - s.r0, j
    cdef int64_t blocks = (s.n_in + ROW_BLOCK - 1) // ROW_BLOCK
    if i < blocks:
        gradient_pixels(s, i, t, w1)
        return
    j = i - blocks
    if j < s.m:  # a dense pixel: its inputs, a column of xc
        x = <floating *>s.xc + j
        xstride = s.m
    elif j == s.m:  # the bias row: input 1
        x = &one
    elif j <= s.m + s.k:  # w2t's row: the output deltas dk[., j - m - 1] times u
        v = <floating *>s.u
        x = <floating *>s.dk + (j - s.m - 1)
        xstride = s.kstride
    else:  # b2: the output deltas
        v = <floating *>s.dk
        vstride = width = s.kstride
        x = &one
    row_grad(g, v, vstride, NULL, x, xstride, n, width, False)
    apply_row(s, fixed_row(s, j), g, s.chunk_index == 0, w1)


cdef void update_row(const Step *s, int64_t i, floating *w1) noexcept nogil:
    """A step of several chunks, once they are done: w -= step * acc for pixel i (if seen in
    the step) for i < n_in, then the fixed rows."""
    cdef int64_t row, j, length
    cdef floating *w
    cdef const double *a
    if i < s.n_in:
        if not s.mark[i]:
            return
        s.mark[i] = 0
        row = i
    else:
        row = fixed_row(s, i - s.n_in)
    w = weight_row(s, row, &length, w1)
    a = s.acc + row * s.acc_stride
    for j in range(length):
        w[j] = <floating>(<double>w[j] - s.step * a[j])


cdef enum:
    # Pixels whose rows phase 2 makes together (gradient_pixels; at most 32, a bit each).
    # Measured on Zen 3 (batch 256, hidden 128, one thread): 16 and 32 alike, mn_row_grad
    # and its callers about a fifth quicker than a row at a time.
    ROW_BLOCK = 16
    # Multiply-adds in a phase below which one thread beats two (a barrier, and the rows
    # the threads pass each other, cost microseconds).
    PARALLEL_WORK = 1 << 16
    # Multiply-adds in the steps of one OpenMP region (run_steps): signals are checked
    # between regions, so about every 5 ms (a 2-thread batch-64 MNIST step: 5 million in
    # about 80 us).
    RUN_WORK = 1 << 28


cdef inline int64_t item_work(const Step *s, int64_t i) noexcept nogil:
    """Phase 2's terms for item i (gradient_item; a term is a multiply-add per hidden unit):
    a block's entries in the chunk (its pixels' regrouped entries, piece by piece), or one
    per sample for a fixed row."""
    cdef int64_t blocks = (s.n_in + ROW_BLOCK - 1) // ROW_BLOCK, q, i0, i1, work = 0
    cdef const int64_t *start
    if i >= blocks:
        return s.r1 - s.r0
    i0 = i * ROW_BLOCK
    i1 = min(i0 + ROW_BLOCK, s.n_in)
    for q in range(s.pieces):
        start = s.tstart + q * (s.n_in + 1)
        work += start[i1] - start[i0]
    return work


cdef void gradient_share(const Step *s, int64_t share, int64_t shares, int t, int64_t n_items,
                         int64_t total, floating *w1) noexcept nogil:
    """Share ``share`` of ``shares`` of phase 2, on thread t's scratch: the items whose
    middle falls in that part of the chunk's work (item_work; ``total``, their sum), a run
    of them.  Static, with no counter shared between the threads (taking items one at a
    time from one, OpenMP's dynamic schedule, made 2-thread epochs 3 to 10% slower: Xeon,
    batch 16 to 256), and balanced by work (the blocks' work varies: the image's edges are
    nearly blank).  Every row's gradient is made whole by one thread: the same bits."""
    cdef int64_t i, done = 0, work
    for i in range(n_items):
        work = item_work(s, i)
        if min((2 * done + work) * shares // (2 * max(total, <int64_t>1)), shares - 1) == share:
            gradient_item(s, i, t, w1)
        done += work


cdef void step_chunk(Step *s, floating *w1, const floating *values, int t,
                     int n_threads) noexcept nogil:
    """Both phases for the chunk s.r0..s.r1, as thread t of the n_threads in the region
    (each calls it with its own copy of s).  A phase too small to share is thread 0's."""
    cdef int64_t ns = s.r1 - s.r0, q, i, n_rows, entries = 0
    cdef int threads
    s.pieces = (ns + s.piece - 1) // s.piece
    for i in range(s.r0, s.r1):  # the chunk's sparse entries: its work
        entries += s.indptr[s.order[i] + 1] - s.indptr[s.order[i]]
    # Phase 1: about three multiply-adds per entry and hidden unit (forward, delta and the
    # dense block's), by sample.
    threads = n_threads if n_threads < s.pieces else <int>s.pieces
    if threads == 1 or (entries + s.m * ns) * s.hp * 3 < PARALLEL_WORK:
        if t == 0:
            for q in range(s.pieces):
                deltas_piece(s, q, 0, values)
    else:
        q = t  # pieces t, t + threads, ...
        while q < s.pieces:
            deltas_piece(s, q, t, values)
            q += threads
    if n_threads > 1:
        mn_barrier()
    # Phase 2: one multiply-add per entry and hidden unit, by blocks of weight rows, each
    # thread taking a run of them of about equal work (gradient_share).
    n_rows = (s.n_in + ROW_BLOCK - 1) // ROW_BLOCK + s.m + 1 + s.k + 1
    if n_threads == 1 or (entries + (s.m + 1 + s.k) * ns) * s.hp < PARALLEL_WORK:
        if t == 0:
            for i in range(n_rows):
                gradient_item(s, i, 0, w1)
    else:
        # the items' work: the chunk's entries, and a term per sample for each fixed row
        gradient_share(s, t, n_threads, t, n_rows, entries + (s.m + 1 + s.k + 1) * ns, w1)
    if n_threads > 1:
        mn_barrier()


cdef void finish_step(Step *s, floating *w1, int t, int n_threads) noexcept nogil:
    """A step of several chunks: the update from acc, thread t's run of the rows."""
    cdef int64_t n_rows = s.n_in + s.m + 1 + s.k + 1, i, i0 = 0, i1 = n_rows
    if n_threads > 1 and n_rows * s.hp >= PARALLEL_WORK:
        i0, i1 = t * n_rows // n_threads, (t + 1) * n_rows // n_threads
    elif t != 0:
        i1 = 0
    for i in range(i0, i1):
        update_row(s, i, w1)
    if n_threads > 1:
        mn_barrier()


cdef void run_steps(const Step *shared, floating *w1, const floating *values,
                    int64_t start, int64_t end, int64_t n, int64_t batch_size,
                    int64_t chunk_size, double learning_rate, int t,
                    int n_threads) noexcept nogil:
    """The steps whose batches start in start..end, as thread t of n_threads: every thread
    runs the same loop on its own copy of the Step, meeting the others at each barrier."""
    cdef Step s = shared[0]
    cdef int64_t stop
    cdef mn_fp_mode mode = mn_flush_subnormals()  # this thread's, for the run (platform.h)
    cdef floating *w2s = <floating *>shared.w2s + t * shared.w2s_stride
    s.w2s = w2s
    lay_out_piece_copy(&s.copy, shared.copies + t * shared.copy_bytes, s.piece, s.longest, s.m,
                       s.k, sizeof(floating))
    while start < end:
        stop = start + batch_size if start + batch_size < n else n
        s.step = learning_rate / (stop - start)
        # the weights moved at the last step: this thread's copy
        output_weights(w2s, <const floating *>s.w2t, <const floating *>s.b2, s.h, s.hp, s.k)
        s.chunk_index = 0
        s.r0 = start
        while s.r0 < stop:
            s.r1 = s.r0 + chunk_size if s.r0 + chunk_size < stop else stop
            step_chunk(&s, w1, values, t, n_threads)
            s.chunk_index += 1
            s.r0 = s.r1
        if s.several:
            finish_step(&s, w1, t, n_threads)
        start = stop
    mn_restore_fp_mode(mode)


cdef int check_order(const int64_t[::1] order, int64_t n) except -1:
    """Every sample index in ``order`` is below n (the data set's size)."""
    cdef Py_ssize_t i
    cdef bint bad = False
    with nogil:
        for i in range(order.shape[0]):
            bad = bad | (order[i] < 0) | (order[i] >= n)
    if bad:
        raise ValueError("order holds a sample index out of range")
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def sgd_epoch(
        # weights, updated in place: w1 (n_in + 1, hp), w2t (k, hp), b2 (1, k)
        floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, ::1] b2,
        # the data, as measure's, and the visiting order
        const int64_t[::1] indptr, const uint16_t[::1] indices, const floating[::1] values,
        const floating[:, ::1] xd, const int64_t[::1] dcols, const floating[:, ::1] targets,
        const int32_t[::1] labels, const int64_t[::1] order,
        # phase 1's rows (see Step): u, d (chunk, hp), dk (chunk, kstride), xc (chunk, m);
        # stats (pieces per chunk, 2)
        floating[:, ::1] u, floating[:, ::1] d, floating[:, ::1] dk, floating[:, ::1] xc,
        double[:, ::1] stats,
        # the pieces' entries by pixel: tstart (pieces per chunk, n_in + 1), tsample and
        # tvalue (at least pieces * piece * the longest row's entries)
        int64_t[:, ::1] tstart, int32_t[::1] tsample, floating[::1] tvalue,
        # for steps of several chunks (else may be empty): mark (n_in, zeros),
        # acc (n_in + 2 + k, width)
        uint8_t[::1] mark, double[:, ::1] acc,
        # per-thread scratch: o (threads, >= kstride), cursor, rows (threads, GROUP),
        # g (threads, SGD_ROW_BLOCK * width), w2s (threads, >= output_weights_size(hp, k))
        floating[:, ::1] o, int64_t[:, ::1] cursor, int64_t[:, ::1] rows, floating[:, ::1] g,
        floating[:, ::1] w2s,
        # a copy of the thread's current piece: copies (threads, >= piece_copy_size(...)),
        # rows on whole cache lines
        uint8_t[:, ::1] copies,
        Py_ssize_t h, Py_ssize_t batch_size, Py_ssize_t chunk_size, Py_ssize_t piece,
        double learning_rate, int loss, int act, int n_threads):
    """One epoch of mini-batch SGD over the samples in ``order``: after each batch of
    ``batch_size``, ``w -= learning_rate * mean gradient`` (see Step for how), the batch in
    chunks of ``chunk_size`` and those in pieces of ``piece``.  Signals are checked after
    every few milliseconds' batches (RUN_WORK), so Ctrl-C stops a long epoch promptly (with
    the weights part-way through it).
    width = max(hp, kstride); kstride: k rounded up to whole vectors of SIMD_BYTES.  The CSR
    rows are trusted to hold increasing pixel indices below n_in, as to_csr and SparseRows
    make them (checking would cost a pass over the entries every epoch; check_rows does it).
    """
    cdef int64_t n = order.shape[0], n_in = w1.shape[0] - 1, hp = w1.shape[1]
    cdef int64_t k = w2t.shape[0], m = dcols.shape[0], start, stop, i, longest = 0
    cdef int64_t kstride = dk.shape[1], width = max(hp, kstride)
    cdef int64_t lanes = SIMD_BYTES // sizeof(floating), pieces
    cdef Step s
    cdef int64_t end, sample_work, run
    cdef int threads
    cdef bint several = chunk_size < min(batch_size, n)
    if n < 1 or not 1 <= chunk_size <= batch_size:  # so batch_size >= 1 too
        raise ValueError("need samples, batch_size >= 1 and 1 <= chunk_size <= batch_size")
    if not 1 <= piece <= MN_GROUP:
        raise ValueError(f"piece must be in 1..{MN_GROUP}")
    pieces = (chunk_size + piece - 1) // piece
    check_data(indptr, indices, values, xd, dcols, targets, labels, n_in, k)
    check_order(order, targets.shape[0])
    for i in range(targets.shape[0]):
        longest = max(longest, indptr[i + 1] - indptr[i])
    if (w2t.shape[1] != hp or b2.shape[1] != k or h > hp or hp % lanes
            or kstride < k or kstride % lanes
            or min(u.shape[0], d.shape[0], dk.shape[0], xc.shape[0]) < chunk_size
            or u.shape[1] != hp or d.shape[1] != hp or xc.shape[1] != m
            or stats.shape[0] < pieces or stats.shape[1] != 2
            or tstart.shape[0] < pieces or tstart.shape[1] != n_in + 1
            or min(tsample.shape[0], tvalue.shape[0]) < pieces * piece * longest
            or min(o.shape[0], cursor.shape[0], rows.shape[0], g.shape[0]) < n_threads
            or o.shape[1] < kstride or cursor.shape[1] != MN_GROUP or rows.shape[1] != MN_GROUP
            or g.shape[1] < ROW_BLOCK * width or n_threads < 1
            or w2s.shape[0] < n_threads
            or w2s.shape[1] < output_weights_size(hp, k, sizeof(floating))
            or copies.shape[0] < n_threads
            or copies.shape[1] < lay_out_piece_copy(NULL, NULL, piece, longest, m, k,
                                                   sizeof(floating))
            or (several and (mark.shape[0] < n_in or acc.shape[0] != n_in + 2 + k
                             or acc.shape[1] < width))):
        raise ValueError("inconsistent array shapes")
    s.indptr, s.indices, s.values, s.xd = &indptr[0], &indices[0], &values[0], &xd[0, 0]
    s.dcols, s.targets, s.labels, s.order = &dcols[0], &targets[0, 0], &labels[0], &order[0]
    s.piece, s.n_in, s.h, s.hp, s.k, s.kstride, s.m = piece, n_in, h, hp, k, kstride, m
    s.loss, s.act = loss, act
    s.w1, s.w2t, s.b2, s.w2s = &w1[0, 0], &w2t[0, 0], &b2[0, 0], &w2s[0, 0]
    s.w2s_stride = w2s.shape[1]
    s.u, s.d, s.dk, s.xc, s.stats = &u[0, 0], &d[0, 0], &dk[0, 0], &xc[0, 0], &stats[0, 0]
    s.o, s.o_stride, s.cursor, s.rows = &o[0, 0], o.shape[1], &cursor[0, 0], &rows[0, 0]
    s.g, s.g_stride = &g[0, 0], g.shape[1]
    s.tstart, s.tsample, s.tvalue, s.longest = &tstart[0, 0], &tsample[0], &tvalue[0], longest
    s.copies, s.copy_bytes = <char *>&copies[0, 0], copies.shape[1]
    s.several = several
    if several:
        s.mark, s.acc, s.acc_stride = &mark[0], &acc[0, 0], acc.shape[1]
    # Steps go in runs, each in one OpenMP region (opening one costs about three barriers),
    # of about RUN_WORK multiply-adds (a few milliseconds): signals are checked between runs.
    # No region is opened when a chunk's phase 2, the smaller phase, would be too small to
    # share.  Both by the data's mean entries per sample.
    # A batch beyond the samples is one step of them all (as the steps below cut it): the
    # same steps, and the products of batch_size stay in range.
    batch_size = min(batch_size, n)
    sample_work = (indptr[targets.shape[0]] // targets.shape[0] + m + 1 + k + 1) * hp
    threads = 1 if sample_work * chunk_size < PARALLEL_WORK else n_threads
    run = max(1, RUN_WORK // (sample_work * 4 * batch_size)) * batch_size  # 4: both phases
    with nogil:
        start = 0
        while start < n:
            end = start + run if n - start > run else n
            if threads == 1:
                run_steps(&s, &w1[0, 0], &values[0], start, end, n, batch_size, chunk_size,
                          learning_rate, 0, 1)
            else:
                with parallel(num_threads=threads):
                    run_steps(&s, &w1[0, 0], &values[0], start, end, n, batch_size,
                              chunk_size, learning_rate, mn_thread_num(), mn_num_threads())
            start = end
            if start < n:
                with gil:  # Ctrl-C is seen between runs; raises KeyboardInterrupt
                    PyErr_CheckSignals()


@cython.boundscheck(False)
@cython.wraparound(False)
def column_counts(int64_t[::1] counts, const floating[:, ::1] x, int n_threads=1,
                  int64_t[::1] row_counts=None):
    """counts[j] = nonzero entries of column j of x (n, d), and, given row_counts (n,),
    row_counts[i] = those of row i, from the same pass.  Row by row, without branches, so
    the compiler vectorises it; rows in n_threads blocks, each thread with its own column
    counts, added up after."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i, j, t, block
    cdef int64_t *part
    cdef int64_t *rows = NULL
    if counts.shape[0] != d or n_threads < 1:
        raise ValueError("counts must have one entry per column of x, and n_threads >= 1")
    if row_counts is not None:
        if row_counts.shape[0] != n:
            raise ValueError("row_counts must have one entry per row of x")
        if n > 0:
            rows = &row_counts[0]
    part = <int64_t *>calloc(n_threads * d + 1, sizeof(int64_t))
    if part == NULL:
        raise MemoryError()
    block = (n + n_threads - 1) // n_threads
    with nogil:
        if n_threads == 1:
            count_block(part, rows, x, 0, n)
        else:
            for t in prange(n_threads, schedule="static", num_threads=n_threads):
                count_block(part + t * d, rows, x, t * block, min(n, (t + 1) * block))
        for j in range(d):
            counts[j] = 0
        for t in range(n_threads):
            for j in range(d):
                counts[j] += part[t * d + j]
    free(part)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void count_block(int64_t *counts, int64_t *rows, const floating[:, ::1] x,
                      Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    """counts[j] += nonzero entries of column j in rows i0..i1 of x; rows[i] = those of row
    i (unless rows is NULL)."""
    cdef Py_ssize_t i, j
    cdef int64_t c
    for i in range(i0, i1):
        c = 0
        for j in range(x.shape[1]):
            counts[j] += x[i, j] != 0
            c = c + (x[i, j] != 0)
        if rows != NULL:
            rows[i] = c


@cython.boundscheck(False)
@cython.wraparound(False)
def csr_row_counts(int64_t[::1] counts, const floating[:, ::1] x, const uint8_t[::1] skip,
                   int n_threads):
    """counts[i] = nonzero entries of row i outside the columns where skip is 1.
    Shapes: counts (n,), x (n, d), skip (d,)."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i, j
    cdef int64_t c
    if counts.shape[0] != n or skip.shape[0] != d:
        raise ValueError("counts must have one entry per row of x, skip one per column")
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            c = 0
            for j in range(d):  # no branch: zeros are common and unpredictable
                c = c + ((x[i, j] != 0) & (skip[j] == 0))
            counts[i] = c


@cython.boundscheck(False)
@cython.wraparound(False)
def csr_fill(uint16_t[::1] indices, floating[::1] values, const int64_t[::1] indptr,
             const floating[:, ::1] x, const uint8_t[::1] skip, int n_threads):
    """Column indices and values of x's nonzeros outside the skipped columns, row by row, at
    the offsets in indptr; a row never writes past its end in indptr.

    Shapes: indices, values (nnz,); indptr (n + 1,) from csr_row_counts; x (n, d), d <= 65536;
    skip (d,).
    """
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i, j
    cdef uint32_t *keep
    if indptr.shape[0] != n + 1 or d > 65536 or skip.shape[0] != d:
        raise ValueError("indptr must have n + 1 entries, x at most 65536 columns and skip d")
    if indptr[0] != 0 or indptr[n] != indices.shape[0] or values.shape[0] != indices.shape[0]:
        raise ValueError("indptr does not match the size of indices and values")
    for i in range(n):
        if indptr[i + 1] < indptr[i]:
            raise ValueError(f"indptr decreases at row {i}")
    keep = <uint32_t *>calloc(d // 32 + 1, sizeof(uint32_t))
    if keep == NULL:
        raise MemoryError()
    for j in range(d):
        keep[j >> 5] |= (<uint32_t>(skip[j] == 0)) << (j & 31)
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            fill_row(&indices[0] + indptr[i], &values[0] + indptr[i], &x[i, 0], d, keep,
                     indptr[i + 1] - indptr[i])
    free(keep)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void fill_row(uint16_t *indices, floating *values, const floating *x, Py_ssize_t d,
                          const uint32_t *keep, int64_t room) noexcept nogil:
    """The first ``room`` nonzeros of x[0:d] in the columns whose bit is set in keep, in
    column order.  32 columns at a time: their nonzero flags (GCC vectorises the
    comparisons), packed into bits, then one step per nonzero.  MNIST's rows are 81 % zeros: a branchless
    step per column took about twice as long."""
    cdef Py_ssize_t j0, q, width
    cdef int64_t p = 0
    cdef uint32_t bits
    cdef uint8_t nonzero[32]
    for j0 in range(0, d, 32):
        width = d - j0 if d - j0 < 32 else 32
        for q in range(width):
            nonzero[q] = x[j0 + q] != 0
        for q in range(width, 32):
            nonzero[q] = 0
        bits = (mn_pack_flags8(nonzero) | mn_pack_flags8(nonzero + 8) << 8
                | mn_pack_flags8(nonzero + 16) << 16 | mn_pack_flags8(nonzero + 24) << 24)
        bits = bits & keep[j0 >> 5]
        while bits != 0 and p < room:
            q = mn_lowest_bit(bits)
            indices[p] = <uint16_t>(j0 + q)
            values[p] = x[j0 + q]
            p += 1
            bits = bits & (bits - 1)

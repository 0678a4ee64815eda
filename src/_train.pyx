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
  pixels in tiles of weight rows and each sample's sums in registers, then the outputs, metrics and
  deltas, then the group's terms of the chunk's partial gradient.  For mini-batches the
  input layer's terms are scattered from the CSR entries; for full batches (fixed groups)
  they come from the entries regrouped once per ``train()`` by pixel (``pixel_runs``):
  each pixel's gradient row is then loaded and stored once per group, and the same sums
  come out bit for bit.
* Samples are split into fixed chunks whose size depends only on the batch size, never on the
  thread count; threads take whole chunks and the partial gradients are added in chunk order.
  So results are bit-identical for any number of threads.
* Precision: a sample's sums and a chunk's partial gradient are kept in the model's dtype
  (in float32 for float32 models, as BLAS's sgemm does); chunks are combined in double.
* A whole epoch of mini-batches runs here without returning to Python.
* All arrays are allocated and checked by ``mnist_native._fused`` before the GIL is released.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport calloc, free, malloc

cdef extern from "platform.h" nogil:
    int mn_thread_num()

cdef extern from "fused.h" nogil:
    int mn_simd_count()
    const char *mn_simd_name(int level)
    int mn_cpu_simd_level()
    int mn_simd_init(int wanted)
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


def simd_init(str wanted):
    """Use the widest variant up to ``wanted`` (one of SIMD_LEVELS) that the CPU can run;
    return the one in use."""
    if wanted not in SIMD_LEVELS:
        raise ValueError(f"SIMD variant must be one of {SIMD_LEVELS}, got {wanted!r}")
    return SIMD_LEVELS[mn_simd_init(SIMD_LEVELS.index(wanted))]


cdef inline void chunk(floating *gw1, floating *gw2t, floating *gb2, double *stats,
                       floating *u, floating *d, int64_t *cursor, int64_t *rows, floating *o,
                       const int64_t *indptr, const uint16_t *indices, const floating *values,
                       const floating *xd, int64_t m, const int64_t *dcols, const int64_t *order,
                       const floating *targets, const int32_t *labels, const floating *w1,
                       const floating *w2t, const floating *w2, int64_t r0, int64_t r1,
                       int64_t n_in, int64_t h, int64_t hp, int64_t k, int loss,
                       int act, const mn_runs *runs=NULL, int64_t group0=0) noexcept nogil:
    if floating is float:
        mn_chunk_f32(gw1, gw2t, gb2, stats, u, d, cursor, rows, o, indptr, indices, values, xd,
                     m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp, k, loss,
                     act, runs, group0)
    else:
        mn_chunk_f64(gw1, gw2t, gb2, stats, u, d, cursor, rows, o, indptr, indices, values, xd,
                     m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp, k, loss,
                     act, runs, group0)


cdef inline void output_weights(floating[::1] w2s, floating[:, ::1] w2t, floating[:, ::1] b2,
                                int64_t h) noexcept nogil:
    """w2s = the output layer's weights by hidden unit, for every chunk of a pass."""
    if floating is float:
        mn_output_weights_f32(&w2s[0], &w2t[0, 0], &b2[0, 0], h, w2t.shape[1], w2t.shape[0])
    else:
        mn_output_weights_f64(&w2s[0], &w2t[0, 0], &b2[0, 0], h, w2t.shape[1], w2t.shape[0])


cdef inline void reduce_update(floating *w, const floating *g, int64_t n_chunks, int64_t stride,
                               int64_t m, double step) noexcept nogil:
    if floating is float:
        mn_reduce_update_f32(w, g, n_chunks, stride, m, step)
    else:
        mn_reduce_update_f64(w, g, n_chunks, stride, m, step)


# run_epoch modes
cdef enum:
    MODE_MEASURE = 0   # forward only: loss and accuracy
    MODE_STEP = 1      # gradient and weight update after every batch
MEASURE, STEP = MODE_MEASURE, MODE_STEP
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
        reduce_update(&w1[0, 0], &gw1[0, 0, 0], n_chunks, size, size, step)
    else:
        for i in prange(0, size, UPDATE_PIECE, schedule="static", num_threads=n_threads):
            reduce_update(&w1[0, 0] + i, &gw1[0, 0, 0] + i, n_chunks, size,
                          UPDATE_PIECE if i + UPDATE_PIECE < size else size - i, step)
    reduce_update(&w2t[0, 0], &gw2t[0, 0, 0], n_chunks, k * hp, k * hp, step)
    reduce_update(&b2[0, 0], &gb2[0, 0], n_chunks, k, k, step)


# Internal callers allocate all the arrays; a mismatch would write out of bounds, so it is
# refused before the GIL is released.
cdef int check_buffers(floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, ::1] b2,
                       floating[:, :, ::1] gw1, floating[:, :, ::1] gw2t, floating[:, ::1] gb2,
                       double[:, ::1] stats, floating[:, ::1] u, floating[:, ::1] d,
                       int64_t[:, ::1] cursor, int64_t[:, ::1] rows, floating[:, ::1] o,
                       floating[::1] w2s, Py_ssize_t h, int64_t stat_chunks, int64_t grad_chunks,
                       int n_threads) except -1:
    """The weights, scratch, ``stat_chunks`` rows of stats and (unless ``grad_chunks`` is 0)
    that many chunks of partial gradients fit each other and ``n_threads`` threads."""
    cdef int64_t n_in = w1.shape[0] - 1, hp = w1.shape[1], k = w2t.shape[0]
    cdef bint grad = grad_chunks > 0
    if n_threads < 1:
        raise ValueError("n_threads must be >= 1")
    if stats.shape[0] < stat_chunks or (grad and gw1.shape[0] < grad_chunks):
        raise ValueError(f"buffers hold {stats.shape[0]} chunks, {stat_chunks} needed")
    if (w2t.shape[1] != hp or b2.shape[1] != k or h > hp or u.shape[1] != MN_GROUP * hp
            or d.shape[1] != MN_GROUP * hp or cursor.shape[1] != MN_GROUP
            or rows.shape[1] != MN_GROUP or o.shape[1] < out_scratch_size(hp, k, sizeof(floating))
            or w2s.shape[0] < output_weights_size(hp, k, sizeof(floating))
            or min(u.shape[0], d.shape[0], cursor.shape[0], rows.shape[0], o.shape[0]) < n_threads
            or (grad and (gw1.shape[1] != n_in + 1 or gw1.shape[2] != hp
                          or gw2t.shape[1] != k or gw2t.shape[2] != hp or gb2.shape[1] != k))):
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
        # the training set, then the validation set: inputs as in run_epoch, targets, labels
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
    the training set's partial gradients for the next call.  Shapes as in run_epoch; stats
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
    check_buffers(w1, w2t, b2, gw1, gw2t, gb2, stats, u, d, cursor, rows, o, w2s, h, n_all,
                  n_train, n_threads)
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
        output_weights(w2s, w2t, b2, h)
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
cdef inline void epoch_chunk(
        int64_t c, int t, int64_t start, int64_t stop, int64_t chunk_size, bint grad,
        floating[:, ::1] w1, floating[:, ::1] w2t,
        floating[:, :, ::1] gw1, floating[:, :, ::1] gw2t, floating[:, ::1] gb2,
        double[:, ::1] stats, floating[:, ::1] u, floating[:, ::1] d,
        int64_t[:, ::1] cursor, int64_t[:, ::1] rows, floating[:, ::1] o, floating[::1] w2s,
        const int64_t[::1] indptr, const uint16_t[::1] indices, const floating[::1] values,
        const floating[:, ::1] xd, const int64_t[::1] dcols, const floating[:, ::1] targets,
        const int32_t[::1] labels, const int64_t[::1] order, int64_t h, int loss,
        int act) noexcept nogil:
    """Chunk ``c`` of run_epoch's batch [start, stop) of ``order``, on thread ``t``'s
    scratch, with its partial gradient when ``grad``."""
    cdef int64_t r0 = start + c * chunk_size, r1
    cdef floating *g1 = NULL
    cdef floating *g2 = NULL
    cdef floating *gb = NULL
    r1 = r0 + chunk_size if r0 + chunk_size < stop else stop
    if grad:
        g1, g2, gb = &gw1[c, 0, 0], &gw2t[c, 0, 0], &gb2[c, 0]
    chunk(g1, g2, gb, &stats[c, 0], &u[t, 0], &d[t, 0], &cursor[t, 0], &rows[t, 0],
          &o[t, 0], &indptr[0], &indices[0], &values[0], &xd[0, 0], dcols.shape[0], &dcols[0],
          &order[0], &targets[0, 0], &labels[0], &w1[0, 0], &w2t[0, 0], &w2s[0], r0, r1,
          w1.shape[0] - 1, h, w1.shape[1], w2t.shape[0], loss, act)


@cython.boundscheck(False)
@cython.wraparound(False)
def run_epoch(
        # weights, updated in place: w1 (n_in + 1, hp), w2t (k, hp), b2 (1, k)
        floating[:, ::1] w1, floating[:, ::1] w2t, floating[:, ::1] b2,
        # per-chunk partial gradients: gw1 (chunks, n_in + 1, hp), gw2t (chunks, k, hp),
        # gb2 (chunks, k); per-chunk [loss sum, correct count]: stats (chunks, 2)
        floating[:, :, ::1] gw1, floating[:, :, ::1] gw2t, floating[:, ::1] gb2,
        double[:, ::1] stats,
        # per-thread scratch: u, d (threads, GROUP * hp), cursor, rows (threads, GROUP),
        # o (threads, out_scratch_size(hp, k)); shared: w2s (output_weights_size(hp, k))
        floating[:, ::1] u, floating[:, ::1] d, int64_t[:, ::1] cursor, int64_t[:, ::1] rows,
        floating[:, ::1] o, floating[::1] w2s,
        # the data: inputs (n samples) as CSR plus a dense block xd (n, m) holding the pixels
        # dcols (m), targets (n, k), labels (n), visiting order (n)
        const int64_t[::1] indptr, const uint16_t[::1] indices, const floating[::1] values,
        const floating[:, ::1] xd, const int64_t[::1] dcols,
        const floating[:, ::1] targets, const int32_t[::1] labels, const int64_t[::1] order,
        Py_ssize_t h, Py_ssize_t batch_size, Py_ssize_t chunk_size, double learning_rate,
        int loss, int act, int mode, int n_threads):
    """One pass over the samples in ``order``, in batches of ``batch_size``.

    ``mode`` STEP: each batch is followed by the gradient step ``w -= learning_rate *
    mean gradient``; MEASURE: a forward pass that only measures.  Returns the first batch's
    (loss sum, correct count), measured with the weights before its step.  Signals are
    checked between batches, so Ctrl-C stops a long epoch promptly (with the weights
    part-way through it).
    """
    cdef int64_t n = order.shape[0], n_in = w1.shape[0] - 1, k = w2t.shape[0]
    cdef int64_t start, stop, n_chunks, c, worst
    cdef double first_loss = 0.0, first_correct = 0.0
    cdef bint grad = mode == MODE_STEP
    cdef bint first = True
    if mode not in (MODE_MEASURE, MODE_STEP):
        raise ValueError("mode must be MEASURE or STEP")
    if batch_size < 1 or chunk_size < 1 or n < 1:
        raise ValueError("batch_size, chunk_size and the sample count must be >= 1")
    worst = (min(batch_size, n) + chunk_size - 1) // chunk_size
    check_buffers(w1, w2t, b2, gw1, gw2t, gb2, stats, u, d, cursor, rows, o, w2s, h, worst,
                  worst if grad else 0, n_threads)
    check_data(indptr, indices, values, xd, dcols, targets, labels, n_in, k)
    with nogil:
        start = 0
        while start < n:
            stop = start + batch_size if start + batch_size < n else n
            n_chunks = (stop - start + chunk_size - 1) // chunk_size
            output_weights(w2s, w2t, b2, h)  # the weights moved at the last step
            # No more threads than chunks: an idle thread still has to be woken and waited
            # for; and one thread opens no OpenMP region (it would allocate a team each time).
            if n_threads == 1 or n_chunks == 1:
                for c in range(n_chunks):
                    epoch_chunk(c, 0, start, stop, chunk_size, grad, w1, w2t, gw1, gw2t, gb2,
                                stats, u, d, cursor, rows, o, w2s, indptr, indices, values, xd,
                                dcols, targets, labels, order, h, loss, act)
            else:
                for c in prange(n_chunks, schedule="static",
                                num_threads=n_threads if n_threads < n_chunks else n_chunks):
                    epoch_chunk(c, mn_thread_num(), start, stop, chunk_size, grad, w1, w2t,
                                gw1, gw2t, gb2, stats, u, d, cursor, rows, o, w2s, indptr,
                                indices, values, xd, dcols, targets, labels, order, h, loss,
                                act)
            if first:  # chunk sums added in chunk order: independent of the thread count
                for c in range(n_chunks):
                    first_loss += stats[c, 0]
                    first_correct += stats[c, 1]
                first = False
            if mode == MODE_STEP:
                apply_step(w1, w2t, b2, gw1, gw2t, gb2, n_chunks, learning_rate / (stop - start),
                           n_threads)
            start = stop
            if start < n:
                with gil:  # Ctrl-C is seen between batches; raises KeyboardInterrupt
                    PyErr_CheckSignals()
    return first_loss, first_correct


@cython.boundscheck(False)
@cython.wraparound(False)
def column_counts(int64_t[::1] counts, const floating[:, ::1] x):
    """counts[j] = nonzero entries of column j of x (n, d).  Row by row, without branches,
    so the compiler vectorises it."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i, j
    if counts.shape[0] != d:
        raise ValueError("counts must have one entry per column of x")
    with nogil:
        for j in range(d):
            counts[j] = 0
        for i in range(n):
            for j in range(d):
                counts[j] += x[i, j] != 0


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
    the offsets in indptr.

    Shapes: indices, values (nnz,); indptr (n + 1,) from csr_row_counts; x (n, d), d <= 65536;
    skip (d,).
    """
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i, j
    cdef int64_t p, end
    if indptr.shape[0] != n + 1 or d > 65536 or skip.shape[0] != d:
        raise ValueError("indptr must have n + 1 entries, x at most 65536 columns and skip d")
    if indptr[0] != 0 or indptr[n] != indices.shape[0] or values.shape[0] != indices.shape[0]:
        raise ValueError("indptr does not match the size of indices and values")
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            p = indptr[i]
            end = indptr[i + 1]
            # Every entry is written at p and p moves on only past a kept one (no branch);
            # the slot after a row's last kept entry is the next row's, so stop there.
            for j in range(d):
                if p == end:
                    break
                indices[p] = <uint16_t>j
                values[p] = x[i, j]
                p = p + ((x[i, j] != 0) & (skip[j] == 0))

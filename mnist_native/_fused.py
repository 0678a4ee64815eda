"""The fused native trainer: the arrays of one ``train()`` call and the calls that use them.

The training inputs are converted once: their busy columns (chosen by measured density) to a
dense block, the rest to CSR (uint16 pixel indices); the weights to a padded layout the SIMD
kernels read; and every buffer is allocated here, once, so the iterations allocate nothing
in the kernels.
"""
import os

import numpy as np

from . import _kernels, _train
from . import _validation as v
from ._cpu_caches import cache_sizes
from ._sparse_rows import SparseRows


def _wanted_simd():
    """MNIST_NATIVE_SIMD caps the kernel variant: one of this build's ``_train.SIMD_LEVELS``
    (``baseline``, ``avx2+fma`` (or ``avx2``), ``avx512`` on x86-64; ``neon`` on aarch64),
    ``baseline`` for the narrowest anywhere; default: the widest the CPU runs."""
    levels = _train.SIMD_LEVELS
    wanted = os.environ.get("MNIST_NATIVE_SIMD", "").strip().lower()
    aliases = {"": levels[-1], "auto": levels[-1], "native": levels[-1],
               "baseline": levels[0], "avx2": "avx2+fma"}
    wanted = aliases.get(wanted, wanted)
    if wanted not in levels:
        raise ImportError(f"MNIST_NATIVE_SIMD={wanted!r}: use one of "
                          f"{', '.join(dict.fromkeys(('baseline',) + levels))}")
    return wanted


# The kernel variant in use for this process.
SIMD = _train.simd_init(_wanted_simd())
FLUSHES_SUBNORMALS = _train.subnormals_flushed()  # inside the kernels only (platform.h)


def cache_tuning(l1d, l2):
    """The kernels' cache-dependent sizes (``_train.set_cache_tuning``), in bytes, for a CPU
    whose cores have ``l1d`` bytes of L1 data cache and ``l2`` of L2.

    Tiles: a sample of a group adds its pixels of one tile of weight rows before the next
    tile (fused_body.h, "Tiling"), so each row crosses from L2 once per group.  Measured
    with MNIST, the sparse forward kernel alone or the whole iteration:

    * ``hidden_short``, rows of up to 320 bytes (hp's blocks on every variant but
      AVX-512's, and AVX-512's for hidden 75 in float32): on an AVX-512 Xeon (48 kB L1,
      2 MB L2), 160 kB tiles were the fastest, 10-30% faster than 28 kB; on an AMD EPYC
      Zen 3 (32 kB L1, 512 kB L2), tiles of 24 to 400 kB were alike within the noise (5%),
      12 to 20 kB 20-40% slower.  So: a quarter of L2 (the group's sums and the other
      rows share it), 24 to 160 kB.
    * ``hidden_long``, longer rows (AVX-512, hidden 128 in float32 or 75 in float64): on
      that Xeon 56 kB, about 7% faster than 28 kB and 10-15% faster than 160 kB: the L1
      and a sixth.
    * ``scatter`` (the gradient from CSR entries): 28 kB, seven twelfths of that L1: with
      a group's sums, the tile stays in L1.

    ``prefetch_above``: the hidden sums ask for each entry's weight rows a few entries
    ahead when w1 is larger than this: half of L2.  On Zen 3, w1 of 402 kB (hidden 128,
    float32) ran the forward pass 12-25% faster so; w1 of 251 kB (hidden 75) 5-10% slower
    (the rows come from L2 in time, and the requests cost issue slots).

    No result depends on them: the weights are the same bits on CPUs with other caches
    (of the same SIMD variant).  Blocks of interleaved sums are not tiled for that.
    """
    return {"hidden_short": min(160 * 1024, max(24 * 1024, l2 // 4)),
            "hidden_long": max(_train.MIN_TILE_BYTES, l1d * 7 // 6),
            "scatter": max(_train.MIN_TILE_BYTES, l1d * 7 // 12),
            "prefetch_above": l2 // 2}


# The running CPU's caches, and the sizes that follow from them, for this process.
L1D, L2, CACHE_SOURCE = cache_sizes()
CACHE_TUNING = cache_tuning(L1D, L2)
_train.set_cache_tuning(**CACHE_TUNING)

# Samples per chunk: a function of the batch size only (never of the thread count), so the
# order in which partial gradients are added, and so every bit of the result, is fixed.  A
# mini-batch step of up to MIN_CHUNK samples is one chunk: its gradient needs no partial
# sums at all (see _train.sgd_epoch).
MIN_CHUNK, MAX_CHUNK, TARGET_CHUNKS = 512, 1024, 8
SIMD_BYTES = _train.SIMD_BYTES  # hidden units are padded to whole vectors of the widest variant


def chunk_size(batch):
    return min(batch, MAX_CHUNK, max(MIN_CHUNK, -(-batch // TARGET_CHUNKS)))


def n_chunks(batch):
    return -(-batch // chunk_size(batch))


# A mini-batch chunk's forward pass goes over the threads in pieces of samples (a piece
# shares each tile of weight rows it loads): TARGET_PIECES of them, or more to keep each
# within GROUP samples, their count rounded up to a multiple of the thread count (so each
# thread gets as many); fewer when pieces would hold under MIN_PIECE samples.  Any piece
# size gives the same weights: each sample's values are its own.  The gradient makes a call
# per weight row and piece, so fewer pieces cost less: 2 rather than 4 made epochs at batch
# 32 and 64 6-12% quicker on 1 and 2 threads (AMD EPYC Zen 4, AVX-512); batch 128 1-4%.
MIN_PIECE, TARGET_PIECES = 8, 2


def piece_size(chunk, threads=1):
    wanted = max(TARGET_PIECES, -(-chunk // _train.GROUP))
    wanted = -(-wanted // threads) * threads
    return min(_train.GROUP, chunk, max(MIN_PIECE, -(-chunk // wanted)))


# Measuring passes have no partial gradients to keep, so their chunks can be small: many
# chunks share out evenly over the threads, even for the lab's 200 validation images.
MIN_MEASURE_CHUNK, TARGET_MEASURE_CHUNKS = 16, 16


def measure_chunk_size(n):
    return min(n, max(MIN_MEASURE_CHUNK, -(-n // TARGET_MEASURE_CHUNKS)))


def measure_chunks(n):
    return -(-n // measure_chunk_size(n))


def aligned_zeros(shape, dtype):
    """Zeros whose first element sits on a SIMD_BYTES boundary: the kernels' vector loads
    then never straddle two cache lines (unaligned rows measured up to 1.4x slower)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n * dtype.itemsize + SIMD_BYTES, dtype=np.uint8)
    start = -raw.ctypes.data % SIMD_BYTES
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def whole_lines(n, dtype, line=64):
    """n values of dtype, rounded up to whole cache lines: each thread's row of a per-thread
    array then shares no line with another's."""
    per_line = line // np.dtype(dtype).itemsize
    return -(-n // per_line) * per_line


# Pixels nonzero in at least this share of the training samples go to a dense block, the
# rest to CSR.  Measured here (MNIST, 2 threads): with the dense kernels' full register
# blocking (DENSE_MAX samples per weight row loaded) half-full pixels break even (1,000
# images, hidden 30: 242 us per iteration with them dense, 241 to 247 us with thresholds up
# to all CSR; before the full-batch gradient came from pixel runs, dense was about 4 %
# faster); with less blocking (on AVX-512: hidden 75 in float64, hidden 128 in float32)
# MNIST's half-full pixels ran slower dense (hidden 75 float64: 64 vs 56 ms per iteration),
# so only nearly full columns go dense.  Fully dense inputs (10,000 x 784, hidden 75) run
# 1.8x (float32) and 1.5x (float64) faster dense.
DENSE_MIN_DENSITY = 0.5
NEARLY_FULL_DENSITY = 0.9


def dense_threshold(hp, dtype):
    """The density from which a column goes to the dense block, for hp padded hidden units."""
    full = _train.dense_count(hp, np.dtype(dtype).itemsize) == _train.DENSE_MAX
    return DENSE_MIN_DENSITY if full else NEARLY_FULL_DENSITY


def nonzero_counts(x, n_threads=1):
    """(per column, per row) nonzero entries of the inputs ``x``: of an array, from one pass
    over it; of ``SparseRows``, its column counts and None (its split needs no row
    counts)."""
    if isinstance(x, SparseRows):
        return x.column_counts(), None
    columns, rows = np.empty(x.shape[1], dtype=np.int64), np.empty(len(x), dtype=np.int64)
    _train.column_counts(columns, x, n_threads, rows)
    return columns, rows


# A mini-batch step is shared by the threads only when the weight rows it touches serve at
# least SHARE_USES of its samples each, on average: a row one thread reads after the other
# has written it crosses between the cores, a cost in cache lines, while a use of it costs
# its vectors; so the uses that repay a crossing grow with the vector width.  Measured
# (Xeon, MNIST, hidden 128, float32; an epoch on 2 threads against 1, the rows' mean uses):
# AVX-512 kernels 0.60x at batch 4 (2.0 uses), 0.66x at 8 (3.3), 0.83x at 10 (3.9), 0.88x
# at 12 (4.6), 0.96x at 16 (5.8), 1.17x at 24 (8.2); AVX2 kernels 0.92x at 8, 1.02x at 10,
# 1.17x at 12, 1.34x at 16.  So the vector's bytes over 9: 7.1 uses with AVX-512, 3.6
# with AVX2, 1.8 with 16-byte vectors (SSE2, NEON; not measured).
VECTOR_BYTES = {"avx512": 64, "avx2+fma": 32}.get(SIMD, 16)  # of the variant in use
SHARE_USES = VECTOR_BYTES / 9


def row_uses(column_counts, n, batch):
    """The mean uses of each weight row a batch of ``batch`` samples touches: its expected
    entries over its expected distinct columns, from the columns' nonzero counts over n
    samples drawn at random."""
    density = np.asarray(column_counts, dtype=np.float64) / n
    touched = np.sum(1 - (1 - density) ** batch)
    return batch * density.sum() / touched if touched > 0 else 0.0


def step_threads(column_counts, n, chunk, threads):
    """The threads that share a mini-batch step's chunks (see SHARE_USES)."""
    return threads if row_uses(column_counts, n, chunk) >= SHARE_USES else 1


def dense_columns(column_counts, n, hp, dtype):
    """The columns of n training inputs that go to the dense block (int64 indices), chosen by
    their nonzero counts: sparse data stays CSR, dense data goes all dense."""
    return np.flatnonzero(column_counts >= dense_threshold(hp, dtype) * n).astype(np.int64)


def to_csr(x, n_threads=1, skip=None, row_counts=None):
    """(indptr int64, indices uint16, values) of the nonzero entries of a C-contiguous 2-D
    array, in row order, leaving out the columns where ``skip`` (uint8, one per column)
    is 1.  ``row_counts``: each row's kept entries when already known (int64), saving a
    pass over x."""
    if skip is None:
        skip = np.zeros(x.shape[1], dtype=np.uint8)
    indptr = np.zeros(len(x) + 1, dtype=np.int64)
    if row_counts is None:
        _train.csr_row_counts(indptr[1:], x, skip, n_threads)
    else:
        indptr[1:] = row_counts
    np.cumsum(indptr, out=indptr)
    indices = np.empty(indptr[-1], dtype=np.uint16)
    values = np.empty(indptr[-1], dtype=x.dtype)
    _train.csr_fill(indices, values, indptr, x, skip, n_threads)
    return indptr, indices, values


class Batches:
    """One data set in the kernels' form: the columns ``dcols`` as a dense block, the rest as
    CSR; targets, labels, identity order.  ``inputs``: a C-contiguous array, or
    ``SparseRows`` for inputs that already are CSR; ``row_counts``: each row's nonzero
    entries over all columns, when already counted (``nonzero_counts``)."""

    def __init__(self, inputs, targets, dcols, n_threads, row_counts=None):
        if isinstance(inputs, SparseRows):
            self.indptr, self.indices, self.values, self.dense = inputs.split(dcols)
        else:
            skip = np.zeros(inputs.shape[1], dtype=np.uint8)
            skip[dcols] = 1
            self.dense = np.ascontiguousarray(inputs[:, dcols])
            if row_counts is not None:  # each row's nonzeros: those in CSR are the rest
                row_counts = row_counts - np.count_nonzero(self.dense, axis=1)
            self.indptr, self.indices, self.values = to_csr(inputs, n_threads, skip,
                                                            row_counts)
        self.targets = targets
        self.labels = np.argmax(targets, axis=1).astype(np.int32)
        self.identity = np.arange(len(inputs), dtype=np.int64)
        self.n = len(inputs)


# Multiply-adds of a forward pass over both sets below which the passes run on one thread
# (FusedTrainer.pass_threads).  Measured (Xeon, AVX-512 kernels, idle, hidden 30, 300
# full-batch iterations, MNIST with a fifth as many validation images; best of 5): 2
# threads against 1 at 10, 100, 300, 400, 500, 700 and 1,000 training images (1e5 to 8e6
# multiply-adds a pass; up to 512 images are one training chunk) 0.66, 0.81, 0.90 to 0.95,
# 0.97, 0.95, 1.28 and 1.8x (the last in the benchmark's own run).  On a machine busy with
# other work the small runs were far slower.
PASS_SHARE_WORK = 1 << 22


def pass_work(train, val, hp):
    """Multiply-adds of one forward pass over the ``Batches`` train and val, for hp hidden
    units: every stored entry and dense value, and the bias, times hp."""
    return sum(int(b.indptr[-1]) + b.n * (b.dense.shape[1] + 1) for b in (train, val)) * hp


def pixel_runs(batches, n_in, chunk):
    """The sparse entries of ``batches`` regrouped for the gradient kernel, for chunks of
    ``chunk`` samples: (group_runs, run_start, run_pixel, run_sample, run_value), see
    _train.pixel_runs."""
    groups = -(-batches.n // chunk) * -(-chunk // _train.GROUP)
    group_runs = np.empty(groups + 1, dtype=np.int64)
    _train.pixel_runs(group_runs, batches.indptr, batches.indices, n_in, chunk)
    n_runs, n_entries = int(group_runs[-1]), len(batches.indices)
    arrays = (np.empty(n_runs + 1, dtype=np.int64), np.empty(n_runs, dtype=np.uint16),
              np.empty(n_entries, dtype=np.uint8), np.empty(n_entries, dtype=batches.values.dtype))
    _train.runs_fill(*arrays, group_runs, batches.indptr, batches.indices, batches.values,
                     n_in, chunk)
    return (group_runs,) + arrays


def no_runs(dtype):
    """Runs arrays that tell full_batch_pass to scatter the gradient instead."""
    return (np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.uint16),
            np.zeros(0, np.uint8), np.zeros(0, dtype))


def fits(n_inputs):
    """Whether pixel indices fit the kernels' uint16."""
    return n_inputs + 1 <= np.iinfo(np.uint16).max


class FusedTrainer:
    """Training steps of a ``NeuralNetwork`` done by the fused kernels (see src/_train.pyx)."""

    def __init__(self, model, data_arrays, val_arrays, learning_rate, cross_entropy,
                 batch_size, activation):
        self.model = model
        dtype = model.dtype
        w1, w2 = model._weights()
        n_in, h, k = w1.shape[0] - 1, w1.shape[1], w2.shape[1]
        lanes = SIMD_BYTES // dtype.itemsize
        hp = -(-h // lanes) * lanes
        x = data_arrays[0]
        column_counts, row_counts = nonzero_counts(x, model.num_threads)
        self.dcols = dense_columns(column_counts, len(x), hp, dtype)
        if batch_size is not None:
            self.step_threads = step_threads(column_counts, len(x),
                                             chunk_size(min(batch_size, len(x))),
                                             model.num_threads)
        self.train = Batches(*data_arrays, self.dcols, model.num_threads, row_counts)
        self.val = Batches(*val_arrays, self.dcols, model.num_threads)
        self.n_samples = self.train.n
        self.learning_rate = learning_rate
        self.loss = _kernels.LOSS_XE if cross_entropy else _kernels.LOSS_MSE
        self.act = activation
        self.threads = model.num_threads
        # The passes over whole sets (full batch, measuring) run on one thread when a pass is
        # too little work to share: waking a second thread costs microseconds, and far more
        # when other programs keep the cores busy.  The same bits either way.
        self.pass_threads = (1 if pass_work(self.train, self.val, hp) < PASS_SHARE_WORK
                             else self.threads)
        self.h = h
        # Padded weights: padding columns are zero and stay zero (their gradient is zero).
        self.w1 = aligned_zeros((n_in + 1, hp), dtype)
        self.w2t = aligned_zeros((k, hp), dtype)
        self.b2 = np.zeros((1, k), dtype=dtype)
        self._load_weights(w1, w2)
        t = self.threads
        self.u = aligned_zeros((t, _train.GROUP * hp), dtype)
        self.d = aligned_zeros((t, _train.GROUP * hp), dtype)
        self.cursor = np.empty((t, _train.GROUP), dtype=np.int64)
        self.rows = np.empty((t, _train.GROUP), dtype=np.int64)
        # per thread: outputs, output deltas, bias gradient; shared: the output weights by
        # hidden unit (see mn_chunk)
        self.o = aligned_zeros((t, _train.out_scratch_size(hp, k, dtype.itemsize)), dtype)
        self.w2s = aligned_zeros((_train.output_weights_size(hp, k, dtype.itemsize),), dtype)
        self.best = (np.empty_like(self.w1), np.empty_like(self.w2t), np.empty_like(self.b2))
        self.batch_size = batch_size
        if batch_size is None:
            self._full_batch_buffers(n_in, hp, k, dtype)
        else:
            self._sgd_buffers(n_in, hp, k, dtype)
        # Measuring passes run over whole data sets, in chunks of their own size.
        self.stats = np.empty((max(measure_chunks(self.train.n), n_chunks(self.train.n)
                                   + measure_chunks(self.val.n)), 2), dtype=np.float64)
        if batch_size is None:
            train, val = self.train, self.val
            # full_batch_pass's arrays and sizes, the same every iteration: gathered once.
            self._pass_arrays = (
                self.w1, self.w2t, self.b2, self.gw1, self.gw2t, self.gb2, self.stats, self.u,
                self.d, self.cursor, self.rows, self.o, self.w2s, train.indptr, train.indices,
                train.values, train.dense, train.targets, train.labels, val.indptr,
                val.indices, val.values, val.dense, val.targets, val.labels, self.dcols,
                *self._runs, self.h, chunk_size(train.n), measure_chunk_size(val.n))

    def _full_batch_buffers(self, n_in, hp, k, dtype):
        """The chunks' partial gradients, and the training set's runs (its groups are fixed,
        so they are made once)."""
        chunks = n_chunks(self.train.n)
        v.check_fits_in_memory(chunks * (n_in + 1 + k) * hp * dtype.itemsize,
                               "the training buffers")
        self.gw1 = aligned_zeros((chunks, n_in + 1, hp), dtype)
        self.gw2t = aligned_zeros((chunks, k, hp), dtype)
        self.gb2 = np.empty((chunks, k), dtype=dtype)
        self._runs = pixel_runs(self.train, n_in, chunk_size(self.train.n))

    def _sgd_buffers(self, n_in, hp, k, dtype):
        """sgd_epoch's arrays, in the order it takes them (see _train.sgd_epoch)."""
        chunk = chunk_size(min(self.batch_size, self.train.n))
        piece = piece_size(chunk, self.threads)
        lanes = SIMD_BYTES // dtype.itemsize
        kstride = -(-k // lanes) * lanes
        width = max(hp, kstride)
        m = len(self.dcols)
        longest = int(np.diff(self.train.indptr).max(initial=0))
        several = chunk < min(self.batch_size, self.train.n)
        pieces = -(-chunk // piece)
        entries = pieces * piece * longest  # room for each piece's entries regrouped
        t, acc_rows = self.threads, (n_in + 2 + k) if several else 0
        copy = _train.piece_copy_size(piece, longest, m, k, dtype.itemsize)
        v.check_fits_in_memory(chunk * (2 * hp + kstride + m) * dtype.itemsize
                               + entries * (4 + dtype.itemsize) + t * copy
                               + several * (n_in + 2 + k) * width * 8, "the training buffers")
        self._sgd_arrays = (
            aligned_zeros((chunk, hp), dtype), aligned_zeros((chunk, hp), dtype),
            aligned_zeros((chunk, kstride), dtype), np.zeros((chunk, m), dtype),
            np.empty((pieces, 2), np.float64), np.empty((pieces, n_in + 1), np.int64),
            np.empty(entries, np.int32), np.empty(entries, dtype),
            np.zeros(n_in if several else 0, np.uint8), np.empty((acc_rows, width), np.float64),
            self.o, self.cursor, self.rows,
            aligned_zeros((t, _train.SGD_ROW_BLOCK * width), dtype),
            aligned_zeros((t, whole_lines(_train.output_weights_size(hp, k, dtype.itemsize),
                                          dtype)), dtype),
            aligned_zeros((t, copy), np.uint8))
        self._sgd_sizes = (chunk, piece)

    def _load_weights(self, w1, w2):
        h = self.h
        self.w1[:, :h] = w1
        self.w2t[:, :h] = w2[:h].T
        self.b2[0] = w2[h]

    def _measure(self, batches):
        """(accuracy %, mean loss) of the current weights on ``batches``."""
        loss_sum, correct = _train.measure(
            self.w1, self.w2t, self.b2, self.stats, self.u, self.d, self.cursor, self.rows,
            self.o, self.w2s, batches.indptr, batches.indices, batches.values, batches.dense,
            self.dcols, batches.targets, batches.labels, batches.identity, self.h,
            measure_chunk_size(batches.n), self.loss, self.act, self.pass_threads)
        return 100.0 * correct / batches.n, loss_sum / batches.n

    def _full_batch_pass(self, step, gradient):
        """(training accuracy %, mean loss), validation accuracy %: see
        _train.full_batch_pass."""
        train_loss, train_correct, _, val_correct = _train.full_batch_pass(
            *self._pass_arrays, step, self.loss, self.act, gradient, self.pass_threads)
        n, n_val = self.train.n, self.val.n
        return (100.0 * train_correct / n, train_loss / n), 100.0 * val_correct / n_val

    def measure_and_gradient(self):
        """Measure the current weights on both sets and leave their full-batch gradient
        ready for ``step_and_measure``: one native pass."""
        return self._full_batch_pass(0.0, True)

    def step_and_measure(self, gradient=True):
        """The step from the last gradient, then ``measure_and_gradient`` (without the
        gradient when ``gradient`` is false)."""
        return self._full_batch_pass(self.learning_rate / self.train.n, gradient)

    def epoch(self, order, batch_size):
        """One epoch of mini-batch SGD in ``order`` (int64 already: no copy per epoch)."""
        train = self.train
        _train.sgd_epoch(self.w1, self.w2t, self.b2, train.indptr, train.indices, train.values,
                         train.dense, self.dcols, train.targets, train.labels,
                         np.asarray(order, dtype=np.int64), *self._sgd_arrays, self.h,
                         batch_size, *self._sgd_sizes, self.learning_rate, self.loss, self.act,
                         self.step_threads)

    def measure_training(self):
        return self._measure(self.train)

    def measure_validation(self):
        return self._measure(self.val)[0]

    def snapshot(self):
        """Keep the current weights as the best (one preallocated copy: no allocation)."""
        for kept, current in zip(self.best, (self.w1, self.w2t, self.b2)):
            np.copyto(kept, current)
        return self.best

    def restore(self, snapshot):
        """Put ``snapshot`` into the model's weights, in the lab's layout."""
        w1, w2t, b2 = snapshot
        W1, W2 = self.model._weights()
        W1[:] = w1[:, :self.h]
        W2[:self.h] = w2t[:, :self.h].T
        W2[self.h] = b2[0]

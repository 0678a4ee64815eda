"""The fused training kernels (src/_train.pyx): against the reference, across thread counts,
SIMD variants and batch modes."""
import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import mnist_native as mn
from mnist_native import _fused, _train, reference
from mnist_native._sparse_rows import SparseRows

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


def make_data(rng, n, n_in, n_out, density=0.3):
    """Inputs with many exact zeros and negative values; one-hot targets that a network can
    learn (the argmax of a fixed random projection), so training makes progress.
    ``density``: the share of nonzero entries, or "mixed" for columns from empty to full
    (so that some go to the kernels' dense block and some to CSR)."""
    if isinstance(density, str):
        density = np.random.default_rng(54321).random(n_in)
    x = rng.normal(size=(n, n_in)) * (rng.random((n, n_in)) < density)
    projection = np.random.default_rng(12345).normal(size=(n_in, n_out))
    y = np.eye(n_out)[np.argmax(x @ projection, axis=1)]
    return x, y


def train(cls, shape, data, val, dtype, xe=False, seed=5, **kwargs):
    model = cls(*shape, dtype=dtype, seed=seed, **({"num_threads": kwargs.pop("threads")}
                                                     if "threads" in kwargs else {}))
    fit = model.train_xe if xe else model.train
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(data, val, plot=False, **kwargs)
    return model, history


def assert_same_training(a, b, dtype):
    (ma, ha), (mb, hb) = a, b
    np.testing.assert_allclose(ma.W_input_to_hidden, mb.W_input_to_hidden, **TOL[dtype])
    np.testing.assert_allclose(ma.W_hidden_to_output, mb.W_hidden_to_output, **TOL[dtype])
    assert ha.train_accuracy == hb.train_accuracy
    assert ha.validation_accuracy == hb.validation_accuracy
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-9 if dtype == np.float64 else 1e-4)
    assert ha.best_iteration == hb.best_iteration


SHAPES = [(1, 1, 1, 1), (5, 3, 2, 7), (784, 75, 10, 1500), (60, 300, 12, 300), (33, 9, 4, 257)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xe", [False, True])
@pytest.mark.parametrize("n_in,hidden,n_out,n", SHAPES)
def test_full_batch_training_matches_reference(n_in, hidden, n_out, n, xe, dtype):
    rng = np.random.default_rng(n_in * 1000 + hidden)
    data, val = make_data(rng, n, n_in, n_out), make_data(rng, 40, n_in, n_out)
    # A learning rate that makes progress, so the kept weights are not the starting ones.
    kwargs = dict(iterations=4, learning_rate=2.0)
    native = train(mn.NeuralNetwork, (n_in, hidden, n_out), data, val, dtype, xe, **kwargs)
    ref = train(reference.NeuralNetwork, (n_in, hidden, n_out), data, val, dtype, xe, **kwargs)
    assert_same_training(native, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xe", [False, True])
@pytest.mark.parametrize("batch_size,shuffle", [(16, True), (100, False), (7, True), (1, True)])
def test_minibatch_training_matches_reference(batch_size, shuffle, xe, dtype):
    rng = np.random.default_rng(batch_size)
    data, val = make_data(rng, 300, 50, 4), make_data(rng, 30, 50, 4)
    kwargs = dict(iterations=2, learning_rate=0.5, batch_size=batch_size, shuffle=shuffle)
    native = train(mn.NeuralNetwork, (50, 20, 4), data, val, dtype, xe, **kwargs)
    ref = train(reference.NeuralNetwork, (50, 20, 4), data, val, dtype, xe, **kwargs)
    assert_same_training(native, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_minibatch_training_with_the_longest_row_last_matches_reference(dtype):
    """Every row with 5 nonzeros but the last, with 9, in full pieces visited in order: the
    pieces' buffers are sized by the longest row of all, the last included."""
    rng = np.random.default_rng(9)
    x = np.zeros((128, 30))
    for i, row in enumerate(x):
        count = 9 if i == len(x) - 1 else 5
        row[rng.choice(30, count, replace=False)] = rng.normal(size=count) + 3
    y = np.eye(3)[np.argmax(x @ np.random.default_rng(1).normal(size=(30, 3)), axis=1)]
    assert _fused.piece_size(64, 2) == 32  # the last piece: 31 rows of 5 and one of 9
    kwargs = dict(iterations=2, learning_rate=0.5, batch_size=64, shuffle=False)
    native = train(mn.NeuralNetwork, (30, 10, 3), (x, y), (x, y), dtype, True, threads=2,
                   **kwargs)
    ref = train(reference.NeuralNetwork, (30, 10, 3), (x, y), (x, y), dtype, True, **kwargs)
    assert_same_training(native, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_minibatch_training_with_a_batch_beyond_a_run_matches_reference(dtype):
    """A batch of more multiply-adds than an OpenMP region runs (RUN_WORK, 2**28: steps go
    in runs of at least one)."""
    rng = np.random.default_rng(11)
    data, val = make_data(rng, 1400, 300, 4, 0.9), make_data(rng, 20, 300, 4, 0.9)
    inputs = (data[0] != 0).sum() / 1400  # a sample's, sparse or dense
    assert 1400 * (inputs + 1 + 4 + 1) * 200 * 4 > 2 ** 28  # sgd_epoch's estimate of the work
    kwargs = dict(iterations=1, learning_rate=0.1, batch_size=1400)
    native = train(mn.NeuralNetwork, (300, 200, 4), data, val, dtype, threads=2, **kwargs)
    ref = train(reference.NeuralNetwork, (300, 200, 4), data, val, dtype, **kwargs)
    assert_same_training(native, ref, dtype)


# Steps that span several chunks: 1,100 samples (chunks of 512, 512 and 76) and 1,030 (512,
# 512 and 6: a last chunk smaller than a group), over 2,500 samples (a last batch of 300 or
# 440), for several epochs.
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xe", [False, True])
@pytest.mark.parametrize("batch_size,shuffle", [(1100, True), (1030, False)])
def test_multi_chunk_minibatch_training_matches_reference(batch_size, shuffle, xe, dtype):
    assert _fused.n_chunks(batch_size) > 1 and 2500 % batch_size
    rng = np.random.default_rng(batch_size)
    data, val = make_data(rng, 2500, 40, 5, "mixed"), make_data(rng, 60, 40, 5, "mixed")
    kwargs = dict(iterations=3, learning_rate=0.5, batch_size=batch_size, shuffle=shuffle)
    native = train(mn.NeuralNetwork, (40, 21, 5), data, val, dtype, xe, threads=2, **kwargs)
    ref = train(reference.NeuralNetwork, (40, 21, 5), data, val, dtype, xe, **kwargs)
    assert_same_training(native, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xe", [False, True])
@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("n_in,density", [(70, 0.1), (70, "mixed"), (70, 1.0), (7, 1.0)])
def test_dense_and_csr_columns_match_reference(n_in, density, batch_size, xe, dtype):
    """Columns at least half full go to the dense kernels, the rest to CSR: all CSR, a mix,
    and all dense; all dense also with as many columns as outputs + 2, where the terms of
    sgd_epoch's per-sample work estimate would cancel if one had the wrong sign (a mutant
    dividing by zero there survived the other tests)."""
    rng = np.random.default_rng(3)
    data, val = make_data(rng, 300, n_in, 5, density), make_data(rng, 41, n_in, 5, density)
    hp = 32  # 21 hidden units, padded
    x = data[0].astype(dtype)
    dense = _fused.dense_columns(_fused.nonzero_counts(x)[0], len(x), hp, dtype)
    share = np.count_nonzero(data[0], axis=0) / len(data[0])
    threshold = _fused.dense_threshold(hp, dtype)
    assert threshold in (_fused.DENSE_MIN_DENSITY, _fused.NEARLY_FULL_DENSITY)
    assert np.array_equal(dense, np.flatnonzero(share >= threshold))
    assert len(dense) == {0.1: 0, 1.0: n_in}.get(density, len(dense))
    assert density != "mixed" or 0 < len(dense) < n_in
    kwargs = dict(iterations=3, learning_rate=1.0, batch_size=batch_size)
    trainers = []
    with record_trainers(trainers):
        native = train(mn.NeuralNetwork, (n_in, 21, 5), data, val, dtype, xe, threads=2,
                       **kwargs)
    ref = train(reference.NeuralNetwork, (n_in, 21, 5), data, val, dtype, xe, **kwargs)
    assert_same_training(native, ref, dtype)
    # What the trainer itself sent to the kernels: the dense block holds exactly the
    # columns above the threshold, CSR every nonzero of the others, for both data sets.
    (trainer,) = trainers
    assert np.array_equal(trainer.dcols, np.flatnonzero(share >= threshold))
    for batches, (x, _) in ((trainer.train, data), (trainer.val, val)):
        np.testing.assert_array_equal(rebuilt_inputs(batches, trainer.dcols, x.shape),
                                      x.astype(dtype))
        assert len(batches.values) == np.count_nonzero(np.delete(x, trainer.dcols, axis=1))


@contextlib.contextmanager
def record_trainers(trainers):
    """Collect every FusedTrainer made inside the block."""
    init = _fused.FusedTrainer.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        trainers.append(self)

    _fused.FusedTrainer.__init__ = recording
    try:
        yield trainers
    finally:
        _fused.FusedTrainer.__init__ = init


def rebuilt_inputs(batches, dcols, shape):
    """A data set's inputs put back together from the dense block and the CSR entries."""
    x = np.zeros(shape, dtype=batches.values.dtype)
    x[:, dcols] = batches.dense
    for row in range(shape[0]):
        span = slice(batches.indptr[row], batches.indptr[row + 1])
        assert not np.isin(batches.indices[span], dcols).any()
        x[row, batches.indices[span]] = batches.values[span]
    return x


def test_weights_actually_move():
    """Guards the comparisons above: identical because trained alike, not because untouched."""
    rng = np.random.default_rng(0)
    data = make_data(rng, 200, 30, 3)
    model = mn.NeuralNetwork(30, 10, 3, seed=1)
    before = model.W_input_to_hidden.copy()
    with contextlib.redirect_stdout(io.StringIO()):
        history = model.train(data, data, iterations=5, learning_rate=2.0, plot=False)
    assert history.best_iteration > 0
    assert not np.array_equal(before, model.W_input_to_hidden)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xe", [False, True])
@pytest.mark.parametrize("batch_size", [None, 10])
def test_padding_columns_stay_zero(dtype, xe, batch_size):
    """The kernels' weights are padded to whole vectors with columns that must stay zero
    (_fused.FusedTrainer): training moves every real column and no padding one."""
    rng = np.random.default_rng(3)
    x, y = (a.astype(dtype) for a in make_data(rng, 60, 12, 3))
    model = mn.NeuralNetwork(12, 9, 3, dtype=dtype, num_threads=2, seed=1)
    t = _fused.FusedTrainer(model, (x, y), (x, y), 2.0, xe, batch_size, model._activation)
    assert t.w1.shape[1] > 9  # 9 hidden units are never whole vectors
    before = t.w1.copy(), t.w2t.copy()
    if batch_size is None:
        t.measure_and_gradient()
        for _ in range(3):
            t.step_and_measure()
    else:
        t.epoch(np.arange(60, dtype=np.int64), batch_size)
    for w, w0 in zip((t.w1, t.w2t), before):
        assert (w[:, :9] != w0[:, :9]).any(axis=0).all()
        assert not w[:, 9:].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
# Mini-batches of 64 (one chunk per step) and of 1,100 (chunks of 512, 512 and 76: a step's
# partial gradients summed across chunks, with a last partial batch of 800).
@pytest.mark.parametrize("batch_size", [None, 64, 1100])
def test_bitwise_identical_for_any_thread_count(dtype, batch_size):
    rng = np.random.default_rng(7)
    data = make_data(rng, 3000, 784, 10, density="mixed")
    val = make_data(rng, 500, 784, 10, density="mixed")
    runs = [train(mn.NeuralNetwork, (784, 75, 10), data, val, dtype, threads=t,
                  iterations=3, learning_rate=1.0, batch_size=batch_size) for t in (1, 2, 3)]
    for model, history in runs[1:]:
        assert np.array_equal(model.W_input_to_hidden, runs[0][0].W_input_to_hidden)
        assert np.array_equal(model.W_hidden_to_output, runs[0][0].W_hidden_to_output)
        assert history.loss == runs[0][1].loss
        assert history.train_accuracy == runs[0][1].train_accuracy
    if batch_size == 1100:
        assert _fused.n_chunks(batch_size) == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_last_batch_too_small_to_share_same_bits(dtype):
    """An epoch's steps run in OpenMP regions of many steps; a step whose phases are too small
    to share (here the epoch's last batch, 2 samples) is thread 0's while the others wait:
    the same bits on 1, 2 and 3 threads."""
    rng = np.random.default_rng(8)
    data = make_data(rng, 40 * 64 + 2, 784, 10, density="mixed")
    val = make_data(rng, 100, 784, 10, density="mixed")
    runs = [train(mn.NeuralNetwork, (784, 40, 10), data, val, dtype, threads=t,
                  iterations=2, learning_rate=1.0, batch_size=64) for t in (1, 2, 3)]
    for model, history in runs[1:]:
        assert np.array_equal(model.W_input_to_hidden, runs[0][0].W_input_to_hidden)
        assert np.array_equal(model.W_hidden_to_output, runs[0][0].W_hidden_to_output)
        assert history.loss == runs[0][1].loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [64, 1100])
def test_sgd_weights_do_not_depend_on_the_piece_size(dtype, batch_size, monkeypatch):
    """A step's forward pass goes over the threads in pieces of samples; each row's gradient
    adds its terms in sample order across pieces, so any piece size gives the same bits
    (here pieces of 1, 8 (the default's floor), 13 and a whole group)."""
    rng = np.random.default_rng(11)
    data, val = make_data(rng, 1300, 120, 6, "mixed"), make_data(rng, 50, 120, 6, "mixed")
    runs, pieces = [], []
    for floor, target in ((1, 10**6), (8, 10**6), (13, 10**6), (_train.GROUP, 1)):
        monkeypatch.setattr(_fused, "MIN_PIECE", floor)
        monkeypatch.setattr(_fused, "TARGET_PIECES", target)
        pieces.append(_fused.piece_size(_fused.chunk_size(batch_size), 2))
        runs.append(train(mn.NeuralNetwork, (120, 37, 6), data, val, dtype, threads=2,
                          iterations=2, learning_rate=0.5, batch_size=batch_size))
    assert pieces == [1, 8, 13, _train.GROUP]
    for model, history in runs[1:]:
        assert np.array_equal(model.W_input_to_hidden, runs[0][0].W_input_to_hidden)
        assert np.array_equal(model.W_hidden_to_output, runs[0][0].W_hidden_to_output)
        assert history.loss == runs[0][1].loss


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("chunk", [64, 200, 300, 512, 1024])
def test_sgd_pieces_share_out_over_the_threads(chunk, threads):
    """A chunk has TARGET_PIECES pieces, or as many as it takes to keep them within a group,
    rounded up to a multiple of the thread count, unless that would make them smaller than
    MIN_PIECE: every thread gets as many pieces of the forward pass."""
    piece = _fused.piece_size(chunk, threads)
    pieces = -(-chunk // piece)
    assert _fused.MIN_PIECE <= piece <= _train.GROUP
    assert pieces >= min(threads, chunk // _fused.MIN_PIECE)
    if piece > _fused.MIN_PIECE:
        wanted = max(_fused.TARGET_PIECES, -(-chunk // _train.GROUP))
        assert pieces == -(-wanted // threads) * threads


def test_row_uses_counts_each_touched_rows_samples():
    """A batch's mean uses of the weight rows it touches: every sample uses every row when
    the columns are full; a column in 1 sample of 4 is touched by a batch of 2 with chance
    1 - 0.75 ** 2 (= 0.4375) and has 0.5 entries in it on average."""
    assert _fused.row_uses(np.full(7, 100), 100, 16) == pytest.approx(16)
    assert _fused.row_uses(np.full(3, 25), 100, 2) == pytest.approx(0.5 / 0.4375)
    assert _fused.row_uses(np.zeros(5), 100, 8) == 0.0  # no entries: nothing to share
    sparse = np.random.default_rng(3).integers(0, 200, 50)
    uses = [_fused.row_uses(sparse, 1000, b) for b in (1, 4, 16, 64, 256)]
    assert uses[0] == pytest.approx(1) and uses == sorted(uses)


def test_steps_too_sparse_to_share_run_on_one_thread():
    """Threads share a step only when its rows serve SHARE_USES samples each on average."""
    rng = np.random.default_rng(6)
    (x, y), (xv, yv) = make_data(rng, 300, 20, 3, density=0.02), make_data(rng, 30, 20, 3)
    model = mn.NeuralNetwork(20, 5, 3, seed=1, num_threads=2)  # 1 in a build without OpenMP
    for batch, dense in ((4, False), (64, True)):
        trainer = _fused.FusedTrainer(model, (x if not dense else x + 1, y), (xv, yv), 0.5,
                                      False, batch, 1)
        shared = _fused.row_uses(_fused.nonzero_counts(x if not dense else x + 1)[0], 300,
                                 batch) >= _fused.SHARE_USES
        assert shared == dense
        assert trainer.step_threads == (model.num_threads if dense else 1)


def test_trainer_pieces_follow_its_threads():
    rng = np.random.default_rng(5)
    (x, y), (xv, yv) = make_data(rng, 300, 20, 3), make_data(rng, 30, 20, 3)
    model = mn.NeuralNetwork(20, 5, 3, seed=1, num_threads=3)  # 1 in a build without OpenMP
    trainer = _fused.FusedTrainer(model, (x, y), (xv, yv), 0.5, False, 64, 1)
    assert trainer._sgd_sizes == (64, _fused.piece_size(64, model.num_threads))
    assert trainer._sgd_sizes == ((64, 22) if model.num_threads == 3 else (64, 32))


@pytest.fixture
def restore_cache_tuning():
    yield
    _train.set_cache_tuning(**_fused.CACHE_TUNING)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [None, 64])
@pytest.mark.parametrize("hidden", [200, 20])  # blocks of many vectors; of few (interleaved)
def test_weights_do_not_depend_on_the_cache_tuning(hidden, dtype, batch_size,
                                                   restore_cache_tuning):
    """The tiles of weight rows and the prefetching follow the CPU's caches; a sample still
    adds its pixels in index order (blocks of interleaved sums are not tiled), so any
    tuning gives the same bits, for any thread count: here the smallest tiles allowed (a
    few rows: many tiles per sample) with and without prefetching, the CPU's own, and tiles
    larger than all of w1.  Full batch also runs the scatter (the gradient without runs)
    under the smallest tiles."""
    rng = np.random.default_rng(13)
    data, val = make_data(rng, 700, 300, 5, "mixed"), make_data(rng, 50, 300, 5, "mixed")
    tile = _train.MIN_TILE_BYTES
    smallest = dict(hidden_short=tile, hidden_long=tile, scatter=tile, prefetch_above=0)
    largest = dict(hidden_short=1 << 24, hidden_long=1 << 24, scatter=1 << 24,
                   prefetch_above=1 << 40)

    def run(tuning, threads=2, scatter=False):
        _train.set_cache_tuning(**tuning)
        with pytest.MonkeyPatch.context() as patch:
            if scatter:
                patch.setattr(_fused, "pixel_runs", lambda batches, n_in, chunk:
                              _fused.no_runs(batches.values.dtype))
            return train(mn.NeuralNetwork, (300, hidden, 5), data, val, dtype, threads=threads,
                         iterations=2, learning_rate=0.5, batch_size=batch_size)

    def same_bits(a, b):
        assert np.array_equal(a[0].W_input_to_hidden, b[0].W_input_to_hidden)
        assert np.array_equal(a[0].W_hidden_to_output, b[0].W_hidden_to_output)
        assert a[1].loss == b[1].loss

    base = run(smallest)
    same_bits(base, run(dict(smallest, prefetch_above=1 << 40)))
    same_bits(base, run(smallest, threads=1))
    same_bits(base, run(smallest, threads=3))
    if batch_size is None:
        same_bits(base, run(smallest, scatter=True))
    for tuning in (_fused.CACHE_TUNING, largest):
        same_bits(base, run(tuning))


def test_cache_tuning_refuses_sizes_below_a_row(restore_cache_tuning):
    ok = dict(hidden_short=8192, hidden_long=8192, scatter=8192, prefetch_above=0)
    for name, value in (("hidden_short", 1024), ("hidden_long", 0), ("scatter", -1)):
        with pytest.raises(ValueError, match=f"tile {name} must be at least 4096 bytes"):
            _train.set_cache_tuning(**dict(ok, **{name: value}))
    with pytest.raises(ValueError, match="prefetch_above must be at least 0"):
        _train.set_cache_tuning(**dict(ok, prefetch_above=-1))


def test_sgd_leaves_the_rows_of_absent_pixels_alone():
    """Only the rows of pixels present in a step move: a pixel that is zero in every sample
    keeps its weights bit for bit (its gradient is zero; the step never visits its row)."""
    rng = np.random.default_rng(12)
    x, y = make_data(rng, 400, 30, 3)
    x[:, [0, 17]] = 0
    model, _ = train(mn.NeuralNetwork, (30, 11, 3), (x, y), (x[:40], y[:40]), np.float32,
                     threads=2, iterations=2, learning_rate=0.5, batch_size=32)
    start = mn.NeuralNetwork(30, 11, 3, dtype=np.float32, seed=5).W_input_to_hidden
    moved = np.any(model.W_input_to_hidden != start, axis=1)
    assert not moved[0] and not moved[17] and moved[[1, 2, 16, 18, 30]].all()


def fused_double_sigmoid(x, dtype):
    """sigmoid(sigmoid(x)) as the fused kernels compute it (their vector sigmoid, twice): a
    1-1-1 MSE network with unit weights and zero biases makes the hidden sum x and the
    output's sum the hidden output exactly; the loss against a target of 0 is then the
    output squared, in double, whose square root gives the output back exactly."""
    model = mn.NeuralNetwork(1, 1, 1, dtype=dtype, num_threads=1, seed=0)
    model.weights_init(np.array([[1.0], [0.0]], dtype), np.array([[1.0], [0.0]], dtype))
    data = (np.array([[x]], dtype), np.zeros((1, 1), dtype))
    trainer = _fused.FusedTrainer(model, data, data, 1.0, False, None, model._activation)
    return np.sqrt(trainer.measure_training()[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vector_sigmoid_is_accurate_to_the_last_bits(dtype):
    """The kernels' own sigmoid (a polynomial for exp, fused_body.h) against long double, to
    2 ulps for the two applied in turn (measured: 1.29 ulps in float64 and 1.19 in float32,
    the same on AVX2, SSE2 and the portable layer).  Inputs across the range, and where the
    polynomial's argument is largest (|r| = ln 2 / 2: |x| a half-integer multiple of ln 2;
    x near -0.633, where the outer sigmoid's argument is ln 2 / 2): a coefficient of the
    polynomial a few ulps off shows."""
    if dtype == np.float64 and np.finfo(np.longdouble).nmant <= 52:
        pytest.skip("long double is no wider than double here (MSVC, Apple arm64)")
    half = (np.arange(40) + 0.5) * np.log(2)
    xs = np.concatenate([np.linspace(-30, 30, 241), half, -half, half * (1 + 1e-9),
                         np.linspace(-0.66, -0.6, 31)]).astype(dtype)
    got = np.array([fused_double_sigmoid(x, dtype) for x in xs], dtype=np.longdouble)
    wide = xs.astype(np.longdouble)
    want = 1 / (1 + np.exp(-1 / (1 + np.exp(-wide))))
    ulps = np.abs(got - want) / np.spacing(want.astype(dtype)).astype(np.longdouble)
    assert ulps.max() <= 2, (float(ulps.max()), xs[ulps.argmax()])


def test_kernels_flush_subnormals_where_they_can():
    """64-bit x86 and aarch64 builds flush subnormal floats to zero inside the kernels
    (platform.h; not MSVC on ARM64); build_info says so."""
    import platform
    import struct
    machine = platform.machine().lower()
    if struct.calcsize("P") == 8 and (machine in ("x86_64", "amd64") or (
            machine in ("aarch64", "arm64") and sys.platform != "win32")):
        assert _train.subnormals_flushed()
    assert mn.build_info()["flushes_subnormals"] == _train.subnormals_flushed()


needs_flush = pytest.mark.skipif(not _train.subnormals_flushed(),
                                 reason="this build leaves subnormals alone (platform.h)")


@needs_flush
def test_a_subnormal_hidden_output_is_flushed_to_zero():
    """1-1-1 tanh network, x = w = 1e-20: the hidden sum, 1e-40, is a float32 subnormal;
    with the kernels' mode it is 0, and so is the output, so the loss against a target of
    0 (the output squared, summed in double, where 1e-80 would be normal) is 0."""
    from mnist_native.transfer_functions import dtanh, tanh
    model = mn.NeuralNetwork(1, 1, 1, tanh, dtanh, dtype=np.float32, num_threads=1, seed=0)
    model.weights_init(np.array([[1e-20], [0.0]], np.float32),
                       np.array([[1.0], [0.0]], np.float32))
    data = (np.array([[1e-20]], np.float32), np.zeros((1, 1), np.float32))
    trainer = _fused.FusedTrainer(model, data, data, 1.0, False, None, model._activation)
    assert trainer.measure_training()[1] == 0.0
    assert np.tanh(np.float32(1e-20) * np.float32(1e-20)) != 0  # NumPy, outside: subnormal


@needs_flush
@pytest.mark.parametrize("batch_size", [None, 1])
def test_a_subnormal_weight_update_is_flushed_to_zero(batch_size):
    """1-1-1 sigmoid network, output weights 0, target 1: the output bias's gradient is
    -0.25, so a step of lr 4e-40 would move it to 1e-40, a float32 subnormal (as NumPy
    stores it); in the kernels' mode it stays 0.  The full-batch update (None) and a run
    of mini-batch steps (1) each set that mode on their own."""
    lr = 4e-40
    assert np.float32(0.25 * lr) != 0
    model = mn.NeuralNetwork(1, 1, 1, dtype=np.float32, num_threads=1, seed=0)
    model.weights_init(np.array([[1.0], [0.0]], np.float32), np.zeros((2, 1), np.float32))
    data = (np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))
    trainer = _fused.FusedTrainer(model, data, data, lr, False, batch_size, model._activation)
    if batch_size is None:
        trainer.measure_and_gradient()
        trainer.step_and_measure(gradient=False)
    else:
        trainer.epoch(np.zeros(1, np.int64), 1)
    assert trainer.b2[0, 0] == 0 and not trainer.w2t.any()


def float_modes():
    """Whether a float32 subnormal comes out as one on the calling thread (NumPy) and on
    OpenMP's other thread (the lab's per-call kernels, which leave the mode alone; static
    schedule: sample 1 is thread 1's); None for the latter without OpenMP."""
    here = bool(np.float32(1e-30) * np.float32(1e-10) != 0)
    if not mn.build_info()["openmp"]:
        return here, None
    u, o = np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32)
    tiny = np.full((2, 1), 1e-20, np.float32)
    mn._kernels.affine_forward(u, o, tiny, tiny[:1], np.zeros((2, 1)), 0, 2)
    return here, bool(u[1, 0] != 0)


@pytest.mark.parametrize("batch_size", [None, 1, 64])
def test_training_gives_every_thread_its_float_mode_back(batch_size):
    """Each thread puts the caller's floating-point mode back where a kernel ends: after
    training on 2 threads both threads' modes are what they were before.  (Both keep
    subnormals before it, unless something earlier in this process, a test's kernel run
    or an imported library, left a thread flushing them: that fails here too.)"""
    before = float_modes()
    assert before[0] and before[1] is not False, f"flushed before training: {before}"
    rng = np.random.default_rng(11)
    data = make_data(rng, 3000, 784, 10, density="mixed")
    train(mn.NeuralNetwork, (784, 75, 10), data, data, np.float32, threads=2, iterations=2,
          learning_rate=1.0, batch_size=batch_size)
    assert float_modes() == before


def sgd_arrays(dtype=np.float64, n=40, n_in=12, hidden=8, k=3, batch=10, threads=2,
               equal_rows=False):
    """A small trainer's arguments for _train.sgd_epoch, as a list to spoil one at a time.
    ``equal_rows``: every input row with 5 nonzeros (none of them dense), so each piece's
    regrouped entries fill their buffers to the last value."""
    rng = np.random.default_rng(4)
    x, y = make_data(rng, n, n_in, k)
    if equal_rows:
        x = np.zeros_like(x)
        for row in x:
            row[rng.choice(n_in, 5, replace=False)] = rng.normal(size=5) + 3
    model = mn.NeuralNetwork(n_in, hidden, k, dtype=dtype, num_threads=threads, seed=1)
    t = _fused.FusedTrainer(model, (x.astype(dtype), y.astype(dtype)),
                            (x.astype(dtype), y.astype(dtype)), 0.5, True, batch,
                            model._activation)
    tr = t.train
    return [t.w1, t.w2t, t.b2, tr.indptr, tr.indices, tr.values, tr.dense, t.dcols,
            tr.targets, tr.labels, np.arange(n, dtype=np.int64), *t._sgd_arrays, t.h, batch,
            *t._sgd_sizes, 0.5, t.loss, t.act, t.threads]  # 1 in a build without OpenMP


def test_sgd_epoch_refuses_inconsistent_arrays():
    _train.sgd_epoch(*sgd_arrays())  # as the trainer makes them: runs
    threads = sgd_arrays()[-1]  # 2, or 1 in a build without OpenMP
    for position, spoiled, match in (
            (10, np.array([0, 1, 40], dtype=np.int64), "order holds a sample index"),
            (10, np.array([-1], dtype=np.int64), "order holds a sample index"),
            (10, np.array([], dtype=np.int64), "need samples"),     # an empty epoch
            (11, np.zeros((9, 8)), "inconsistent array shapes"),    # u: fewer rows than a chunk
            (16, np.zeros((1, 13), np.int64), "inconsistent array shapes"),  # tstart
            (17, np.zeros(3, np.int32), "inconsistent array shapes"),  # tsample too short
            (28, 0, "batch_size >= 1"),
            (29, 11, "chunk_size"),                                 # chunk > batch
            (29, 0, "chunk_size"),                  # chunks of no samples: an endless loop
            (30, _train.GROUP + 1, "piece must be"),
            (30, 0, "piece must be"),                               # no samples per piece
            (25, np.zeros((0, 4096)), "inconsistent array shapes"),  # w2s: no row per thread
            (25, np.zeros((2, 3)), "inconsistent array shapes"),     # w2s: rows too short
            # cursor and copies with a row fewer than the threads
            (22, np.zeros((threads - 1, _train.GROUP), np.int64), "inconsistent array shapes"),
            (26, np.zeros((threads - 1, 4096), np.uint8), "inconsistent array shapes"),
            (26, np.zeros((2, 64), np.uint8), "inconsistent array shapes"),  # copies: short
            (-1, 3, "inconsistent array shapes")):                  # more threads than scratch
        args = sgd_arrays()
        args[position] = spoiled
        with pytest.raises(ValueError, match=match):
            _train.sgd_epoch(*args)


def guarded(a, sentinel):
    """A copy of ``a`` inside a larger aligned buffer, with a cache line of ``sentinel`` before
    it and after it: what a kernel writes outside ``a`` shows."""
    line = 64 // a.itemsize
    buf = _fused.aligned_zeros((a.size + 2 * line,), a.dtype)
    buf[:] = sentinel
    view = buf[line:line + a.size].reshape(a.shape)
    view[...] = a
    return buf, view, line


def guard_arrays(args, positions):
    """Replace args[i], for each i in positions, by a guarded copy (see guarded); the
    guards, for assert_guards_untouched."""
    guards = []
    for i in positions:
        if args[i].size:
            sentinel = {"i": -7, "u": 201}.get(args[i].dtype.kind, 1e30)
            buf, args[i], line = guarded(args[i], sentinel)
            guards.append((i, buf, line, sentinel))
    return guards


def assert_guards_untouched(guards):
    for i, buf, line, sentinel in guards:
        assert (buf[:line] == sentinel).all() and (buf[-line:] == sentinel).all(), i


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
# one thread; steps shared by 2 and 3 threads, rows of any length or all the longest; steps
# of several chunks (512, 512 and 76)
@pytest.mark.parametrize("n, n_in, hidden, batch, threads, equal_rows", [
    (60, 12, 8, 10, 1, False), (300, 200, 40, 64, 2, False), (300, 200, 40, 64, 3, False),
    (300, 200, 40, 64, 2, True), (1200, 50, 20, 1100, 2, False)])
def test_sgd_epoch_writes_only_inside_its_arrays(dtype, n, n_in, hidden, batch, threads,
                                                 equal_rows):
    """Every buffer sgd_epoch is given, weights and scratch, with a guard line on each side:
    an epoch writes none of them.  (Numpy's allocations have slack that the sanitizers
    cannot tell from the array, so an index off by one could pass them.)"""
    args = sgd_arrays(dtype, n=n, n_in=n_in, hidden=hidden, batch=batch, threads=threads,
                      equal_rows=equal_rows)
    guards = guard_arrays(args, [0, 1, 2, *range(11, 27)])
    _train.sgd_epoch(*args)
    assert np.abs(args[0]).max() < 1e3  # the weights trained (not overwritten by a guard)
    assert_guards_untouched(guards)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_column_counts_over_threads(threads):
    rng = np.random.default_rng(threads)
    x = rng.normal(size=(101, 37)) * (rng.random((101, 37)) < 0.4)
    counts, rows = np.empty(37, np.int64), np.empty(101, np.int64)
    _train.column_counts(counts, x, threads)
    assert np.array_equal(counts, np.count_nonzero(x, axis=0))
    counts[:] = -1
    _train.column_counts(counts, x, threads, rows)
    assert np.array_equal(counts, np.count_nonzero(x, axis=0))
    assert np.array_equal(rows, np.count_nonzero(x, axis=1))
    with pytest.raises(ValueError, match="one entry per row of x"):
        _train.column_counts(counts, x, threads, rows[1:])


def test_known_row_counts_give_the_same_csr():
    """Batches reuses the training inputs' row counts (from the dense-column pass), minus
    the dense block's: the same arrays as counting again."""
    rng = np.random.default_rng(8)
    x, y = make_data(rng, 300, 50, 3, density="mixed")
    columns, rows = _fused.nonzero_counts(x, 2)
    dcols = _fused.dense_columns(columns, len(x), 16, x.dtype)
    assert 0 < len(dcols) < 50
    known, counted = (_fused.Batches(x, y, dcols, 2, r) for r in (rows, None))
    for name in ("indptr", "indices", "values", "dense"):
        assert np.array_equal(getattr(known, name), getattr(counted, name)), name


def cannot_start_sys_executable():
    """Under qemu-user (MNIST_NATIVE_UNDER_QEMU=1, set by .ci/aarch64.sh) with no binfmt
    handler, starting sys.executable fails ("Exec format error") when it is the arm64 binary
    itself; .ci/aarch64.sh makes it a launcher script (which can start) instead."""
    if os.environ.get("MNIST_NATIVE_UNDER_QEMU", "") in ("", "0"):
        return False
    with open(sys.executable, "rb") as f:
        return f.read(4) == b"\x7fELF"


# Samples per dense-column pass at hp = 16 float32, by variant: each variant's vectors
# (and registers) differ, so this tells which variant's code the dispatch really ran.
DENSE_COUNT_AT_16_FLOATS = {"baseline": 3, "avx2+fma": 4, "avx512": 4, "neon": 4,
                            "portable": 1}


def test_the_dispatch_runs_the_variant_in_use():
    """SSE2's 4-float vectors make 4 per row of 16 floats, leaving room for 3 samples' sums
    in its 12 registers; AVX2's 8-float vectors make 2, room for 4; the plain-C lane, 16
    (cut to a block of 10), room for 1."""
    assert _train.dense_count(16, 4) == DENSE_COUNT_AT_16_FLOATS[_fused.SIMD]


@pytest.mark.skipif(cannot_start_sys_executable(), reason="under qemu-user a subprocess "
                    "cannot start sys.executable, an arm64 binary (Exec format error)")
def test_baseline_simd_variant_matches_reference(tmp_path):
    """MNIST_NATIVE_SIMD=baseline, in a fresh interpreter, picks the narrowest kernels of
    this architecture, which match the reference."""
    script = (
        "import contextlib, io, numpy as np, mnist_native as mn\n"
        "from mnist_native import _train, reference\n"
        "assert mn.build_info()['simd'] == _train.SIMD_LEVELS[0], mn.build_info()\n"
        f"assert _train.dense_count(16, 4) == {DENSE_COUNT_AT_16_FLOATS}[_train.SIMD_LEVELS[0]]\n"
        "rng = np.random.default_rng(3)\n"
        "x = rng.normal(size=(400, 90)) * (rng.random((400, 90)) < 0.3)\n"
        "y = np.eye(5)[np.argmax(x[:, :5], axis=1)]\n"
        "out = []\n"
        "for cls in (mn.NeuralNetwork, reference.NeuralNetwork):\n"
        "    m = cls(90, 21, 5, seed=2)\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        h = m.train((x, y), (x[:50], y[:50]), iterations=3, learning_rate=2.0, plot=False)\n"
        "    assert h.best_iteration > 0, h\n"
        "    out.append(m.W_input_to_hidden)\n"
        "np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-12)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, MNIST_NATIVE_SIMD="baseline")
    # Run outside the source tree, so the installed (built) package is the one imported.
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_conversion(dtype):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(57, 300)) * (rng.random((57, 300)) < 0.25)).astype(dtype)
    x[3] = 0  # an empty row
    indptr, indices, values = _fused.to_csr(x, n_threads=2)
    rebuilt = np.zeros_like(x)
    for i in range(len(x)):
        rebuilt[i, indices[indptr[i]:indptr[i + 1]]] = values[indptr[i]:indptr[i + 1]]
    assert np.array_equal(rebuilt, x)
    assert indices.dtype == np.uint16 and values.dtype == dtype
    assert indptr[4] == indptr[3]
    # Skipped columns (the dense block's) are left out.
    skip = (np.arange(300) % 3 == 0).astype(np.uint8)
    indptr, indices, values = _fused.to_csr(x, n_threads=2, skip=skip)
    rebuilt = np.zeros_like(x)
    for i in range(len(x)):
        rebuilt[i, indices[indptr[i]:indptr[i + 1]]] = values[indptr[i]:indptr[i + 1]]
    assert np.array_equal(rebuilt, x * (1 - skip))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [8, 37, 64, 784])
def test_csr_conversion_of_every_pattern_of_eight(dtype, width):
    """Rows whose blocks of 8 columns take each of the 256 patterns of zeros and nonzeros
    (the conversion packs 8 flags at a time, see platform.h), at widths that end mid-block,
    with and without skipped columns, -0.0 counting as zero."""
    patterns = (np.arange(256)[:, None] >> np.arange(8)) & 1  # (256, 8): pattern p's bits
    shifts = np.arange(max(1, width // 8 + 1))
    flags = np.concatenate([np.roll(patterns, int(s), axis=0) for s in shifts], axis=1)
    x = (flags[:, :width] * np.arange(1, width + 1)).astype(dtype)
    x[x == 0] = -0.0
    for skip in (None, (np.arange(width) % 5 == 1).astype(np.uint8)):
        indptr, indices, values = _fused.to_csr(x, n_threads=2, skip=skip)
        kept = x != 0 if skip is None else (x != 0) & (skip == 0)
        assert np.array_equal(np.diff(indptr), kept.sum(axis=1))
        assert np.array_equal(indices, np.nonzero(kept)[1])
        assert np.array_equal(values, x[kept])


def test_csr_conversion_refuses_mismatched_arrays():
    x = np.eye(4, 6, dtype=np.float32)
    skip = np.zeros(6, np.uint8)
    indptr = np.array([0, 1, 2, 3, 4], np.int64)
    indices, values = np.empty(4, np.uint16), np.empty(4, np.float32)
    with pytest.raises(ValueError, match=r"indptr must have n \+ 1 entries"):
        _train.csr_fill(indices, values, indptr[:-1], x, skip, 1)
    with pytest.raises(ValueError, match="does not match the size of indices and values"):
        _train.csr_fill(indices[:3], values, indptr, x, skip, 1)
    with pytest.raises(ValueError, match="one entry per row of x, skip one per column"):
        _train.csr_row_counts(np.empty(3, np.int64), x, skip, 1)
    with pytest.raises(ValueError, match="indptr decreases at row 1"):
        _train.csr_fill(indices, values, np.array([0, 3, 1, 2, 4], np.int64), x, skip, 1)
    _train.csr_fill(indices, values, indptr, x, skip, 1)
    assert indices.tolist() == [0, 1, 2, 3] and values.tolist() == [1, 1, 1, 1]


def test_chunking_depends_on_batch_only():
    assert _fused.chunk_size(50000) == _fused.MAX_CHUNK
    assert _fused.chunk_size(10) == 10
    sizes = [_fused.chunk_size(b) for b in (1, 255, 256, 2000, 8193, 10**6)]
    assert all(1 <= s <= _fused.MAX_CHUNK for s in sizes)


def test_overridden_transfer_functions_fall_back_to_method_calls():
    """A transfer pair the kernels do not know still trains, through the per-call path."""
    calls = []

    def relu(u):
        calls.append(1)
        return np.maximum(u, 0)

    def drelu(u):
        return (np.asarray(u) > 0).astype(float)

    rng = np.random.default_rng(2)
    data = make_data(rng, 50, 8, 3)
    out = []
    for cls in (mn.NeuralNetwork, reference.NeuralNetwork):
        m = cls(8, 6, 3, relu, drelu, seed=4)
        with contextlib.redirect_stdout(io.StringIO()):
            m.train(data, data, iterations=3, learning_rate=0.1, plot=False)
        out.append(m.W_input_to_hidden)
    assert calls
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-12)


def csr_of(x):
    return _fused.to_csr(np.ascontiguousarray(x), n_threads=2)


class CSR:
    def __init__(self, x):
        self.indptr, self.indices, self.values = csr_of(x)
        self.n = len(x)


@pytest.mark.parametrize("n,chunk", [(1, 1), (40, 40), (257, 100), (1000, 512), (96, 32)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixel_runs_regroup_each_groups_entries(n, chunk, dtype):
    """Every entry lands in its group's run for its pixel, in sample order; a group's runs
    go by length, then pixel."""
    rng = np.random.default_rng(n)
    x = (rng.normal(size=(n, 70)) * (rng.random((n, 70)) < 0.3)).astype(dtype)
    data = CSR(x)
    group_runs, run_start, run_pixel, run_sample, run_value = _fused.pixel_runs(data, 70, chunk)
    per_chunk = -(-chunk // _train.GROUP)
    assert len(group_runs) == -(-n // chunk) * per_chunk + 1
    for g in range(len(group_runs) - 1):
        c, q = divmod(g, per_chunk)
        s0 = min(c * chunk + q * _train.GROUP, min((c + 1) * chunk, n))
        s1 = min(s0 + _train.GROUP, (c + 1) * chunk, n)
        want = {(s - s0, p): x[s, p] for s in range(s0, s1) for p in np.flatnonzero(x[s])}
        got, keys = {}, []
        for r in range(group_runs[g], group_runs[g + 1]):
            samples = run_sample[run_start[r]:run_start[r + 1]]
            assert len(samples) > 0 and np.all(np.diff(samples.astype(int)) > 0)
            keys.append((len(samples), run_pixel[r]))
            for s, v in zip(samples, run_value[run_start[r]:run_start[r + 1]]):
                got[int(s), int(run_pixel[r])] = v
        assert got == want
        assert keys == sorted(keys)


def test_pixel_runs_refuse_malformed_rows():
    """A pixel repeated within a row would make a run longer than a group: refused."""
    data = CSR(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=np.float32))
    for row1, match in (([2, 1], "must increase"), ([1, 1], "must increase"),
                        ([1, 3], "below 3")):
        data.indices = np.array([0, 1] + row1 + [0, 2], dtype=np.uint16)
        with pytest.raises(ValueError, match=match):
            _fused.pixel_runs(data, 3, 3)
    data.indices = np.array([0, 1, 1, 2, 0, 2], dtype=np.uint16)
    data.indptr = np.array([0, 2, 1, 6], dtype=np.int64)  # row 1 ends before it starts
    with pytest.raises(ValueError, match="indptr must not decrease"):
        _fused.pixel_runs(data, 3, 3)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.uint32])
def test_sparse_rows_refuse_a_decreasing_indptr(dtype):
    """Unsigned too, whose differences wrap round to huge positive numbers."""
    with pytest.raises(ValueError, match="indptr must not decrease"):
        SparseRows(np.array([0, 5, 3, 5], dtype=dtype), np.arange(5) % 3, np.ones(5), 3,
                   np.float32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden", [1, 9, 30, 75, 200])
@pytest.mark.parametrize("density", [0.2, "mixed"])
def test_gradient_from_runs_is_bitwise_the_scatter(density, hidden, dtype, monkeypatch):
    """The full-batch gradient from pixel runs adds the same terms in the same order as a
    plain scatter of each sample's entries (full_batch_pass without runs): the weights agree
    bit for bit."""
    rng = np.random.default_rng(hidden)
    data, val = make_data(rng, 700, 50, 4, density), make_data(rng, 60, 50, 4, density)
    shape = (50, hidden, 4)
    runs = train(mn.NeuralNetwork, shape, data, val, dtype, iterations=4, learning_rate=0.5,
                 threads=2)
    monkeypatch.setattr(_fused, "pixel_runs", lambda batches, n_in, chunk:
                        _fused.no_runs(batches.values.dtype))
    scatter = train(mn.NeuralNetwork, shape, data, val, dtype, iterations=4, learning_rate=0.5,
                    threads=2)
    assert np.array_equal(runs[0].W_input_to_hidden, scatter[0].W_input_to_hidden)
    assert np.array_equal(runs[0].W_hidden_to_output, scatter[0].W_hidden_to_output)
    assert runs[1].loss == scatter[1].loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [400, 2300])
def test_one_sgd_step_of_the_whole_set_is_bitwise_a_full_batch_iteration(n, dtype):
    """Two independent paths to the same step: full_batch_pass (chunk partial gradients from
    pixel runs) and sgd_epoch with one batch of every sample, unshuffled (each row's
    gradient whole; with 2,300 samples, 5 chunks summed in double as full batch sums them).
    With no dense block (whose full-batch sums go group by group) every weight agrees.  The
    trainers are driven directly: train() would keep the starting weights wherever the
    step does not raise the validation accuracy."""
    rng = np.random.default_rng(n)
    (x, y), val = make_data(rng, n, 60, 5, 0.2), make_data(rng, 40, 60, 5, 0.2)
    assert _fused.n_chunks(n) == (1 if n < 512 else 5)
    assert len(_fused.dense_columns(_fused.nonzero_counts(x)[0], n, 64, dtype)) == 0
    stepped = []
    for batch_size in (None, n):
        model = mn.NeuralNetwork(60, 19, 5, dtype=dtype, num_threads=2, seed=5)
        trainer = _fused.FusedTrainer(model, (x.astype(dtype), y.astype(dtype)),
                                      [a.astype(dtype) for a in val], 0.7, False, batch_size, 1)
        start = [a.copy() for a in (trainer.w1, trainer.w2t, trainer.b2)]
        if batch_size is None:
            trainer.measure_and_gradient()
            trainer.step_and_measure(gradient=False)
        else:
            trainer.epoch(np.arange(n, dtype=np.int64), n)
        weights = (trainer.w1, trainer.w2t, trainer.b2)
        assert not any(np.array_equal(a, b) for a, b in zip(start, weights))  # it stepped
        stepped.append(weights)
    for full, sgd in zip(*stepped):
        assert np.array_equal(full, sgd)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_full_batch_pass_writes_only_inside_its_arrays(dtype, threads):
    """full_batch_pass's weights, partial gradients and scratch, each with a guard line on
    each side: a pass writes none of them.  Training chunks of 512, 512 and 76 samples and
    validation chunks of 69, so every thread's chunks, the last thread's validation ones too,
    hold a whole group of GROUP samples: its scratch rows are filled to their end."""
    rng = np.random.default_rng(threads)
    data, val = make_data(rng, 1100, 30, 3), make_data(rng, 1100, 30, 3)
    model = mn.NeuralNetwork(30, 9, 3, dtype=dtype, num_threads=threads, seed=1)
    trainer = _fused.FusedTrainer(model, *[[a.astype(dtype) for a in d] for d in (data, val)],
                                  0.5, False, None, 1)
    assert (_fused.n_chunks(1100), _fused.chunk_size(1100)) == (3, 512)
    assert _fused.measure_chunk_size(1100) == 69 > _train.GROUP
    arrays = list(trainer._pass_arrays)
    guards = guard_arrays(arrays, range(13))  # the ones it writes: w1 to w2s
    _train.full_batch_pass(*arrays, 0.1, 0, 1, True, trainer.threads)  # 1 without OpenMP
    assert np.abs(arrays[0]).max() < 1e3  # the weights stepped (not overwritten by a guard)
    assert_guards_untouched(guards)


def test_full_batch_pass_refuses_runs_of_other_data():
    rng = np.random.default_rng(3)
    (x, y), (xv, yv) = make_data(rng, 100, 20, 3), make_data(rng, 30, 20, 3)
    model = mn.NeuralNetwork(20, 5, 3, seed=1)
    trainer = _fused.FusedTrainer(model, (x, y), (xv, yv), 0.5, False, None, 1)
    other = _fused.pixel_runs(CSR(x[:50]), 20, 50)
    arrays = list(trainer._pass_arrays)
    at = next(i for i, a in enumerate(arrays) if a is trainer._runs[0])
    arrays[at:at + 5] = other
    with pytest.raises(ValueError, match="runs do not match"):
        _train.full_batch_pass(*arrays, 0.0, 0, 1, True, 1)


def test_passes_refuse_no_threads():
    rng = np.random.default_rng(5)
    (x, y), (xv, yv) = make_data(rng, 100, 20, 3), make_data(rng, 30, 20, 3)
    model = mn.NeuralNetwork(20, 5, 3, seed=1)
    trainer = _fused.FusedTrainer(model, (x, y), (xv, yv), 0.5, False, None, 1)
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        _train.full_batch_pass(*trainer._pass_arrays, 0.0, 0, 1, True, 0)
    trainer.pass_threads = 0  # what the measuring pass runs on
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        trainer.measure_training()


@pytest.mark.parametrize("column", [-1, 20, 21])
def test_full_batch_pass_refuses_dense_columns_out_of_range(column):
    """A dense column past the inputs (20 of them: 0 to 19) would read past the weights."""
    rng = np.random.default_rng(3)
    (x, y), (xv, yv) = make_data(rng, 100, 20, 3, 1.0), make_data(rng, 30, 20, 3, 1.0)
    model = mn.NeuralNetwork(20, 5, 3, seed=1)
    trainer = _fused.FusedTrainer(model, (x, y), (xv, yv), 0.5, False, None, 1)
    arrays = list(trainer._pass_arrays)
    at = next(i for i, a in enumerate(arrays) if a is trainer.dcols)
    assert len(trainer.dcols) == 20  # all dense
    dcols = trainer.dcols.copy()
    dcols[-1] = column
    arrays[at] = dcols
    with pytest.raises(ValueError, match="dense column index out of range"):
        _train.full_batch_pass(*arrays, 0.0, 0, 1, True, 1)


def test_csr_fill_writes_only_the_room_indptr_gives_a_row():
    """Rows with more nonzeros than indptr makes room for: each gets its first ones, and
    nothing is written past a row's room (guard lines around the output)."""
    x, skip = np.arange(1.0, 7.0).reshape(2, 3), np.zeros(3, np.uint8)
    indptr = np.array([0, 1, 2], np.int64)  # room for one nonzero a row, of three
    ibuf, indices, line_i = guarded(np.zeros(2, np.uint16), 7)
    vbuf, values, line_v = guarded(np.zeros(2), 1e30)
    _train.csr_fill(indices, values, indptr, x, skip, 1)
    assert indices.tolist() == [0, 0] and values.tolist() == [1.0, 4.0]
    assert (ibuf[-line_i:] == 7).all() and (vbuf[-line_v:] == 1e30).all()


def test_csr_fill_takes_as_many_columns_as_uint16_indices_hold():
    """Pixel indices are uint16: 65,536 columns fit, one more is refused by name."""
    for d in (65536, 65537):
        x, skip = np.zeros((1, d)), np.zeros(d, np.uint8)
        args = (np.empty(0, np.uint16), np.empty(0), np.zeros(2, np.int64), x, skip, 1)
        if d == 65536:
            _train.csr_fill(*args)
        else:
            with pytest.raises(ValueError, match="x at most 65536 columns"):
                _train.csr_fill(*args)


def test_passes_too_small_to_share_run_on_one_thread(monkeypatch):
    """The cut-off the other tests turn off (conftest.py): a pass below PASS_SHARE_WORK
    multiply-adds runs on one thread, a larger one on the model's; the same bits."""
    monkeypatch.setattr(_fused, "PASS_SHARE_WORK", 1 << 18)  # a smaller cut, smaller data
    rng = np.random.default_rng(8)
    for n, want_one in ((40, True), (4000, False)):
        data, val = make_data(rng, n, 60, 5, 0.3), make_data(rng, n // 4, 60, 5, 0.3)
        model = mn.NeuralNetwork(60, 30, 5, num_threads=2, seed=1)
        trainer = _fused.FusedTrainer(model, data, val, 0.5, False, None, 1)
        work = _fused.pass_work(trainer.train, trainer.val, 32)
        assert (work < 1 << 18) == want_one
        assert trainer.pass_threads == (1 if want_one else model.num_threads)
        one = train(mn.NeuralNetwork, (60, 30, 5), data, val, np.float64, threads=1,
                    iterations=3, learning_rate=0.5)
        two = train(mn.NeuralNetwork, (60, 30, 5), data, val, np.float64, threads=2,
                    iterations=3, learning_rate=0.5)
        assert np.array_equal(one[0].W_input_to_hidden, two[0].W_input_to_hidden)

"""Concurrency and numerics at the edges of the native network (memory: test_memory.py)."""
import contextlib
import io
import threading
import warnings

import numpy as np
import pytest

import mnist_native as mn
from mnist_native import _kernels, reference
from mnist_native._kernels import all_finite


def learnable(seed, n=1500, n_in=200, n_out=10):
    rng = np.random.default_rng(seed)
    x = rng.random((n, n_in)) * (rng.random((n, n_in)) < 0.2)
    y = np.eye(n_out)[np.argmax(x @ rng.normal(size=(n_in, n_out)), axis=1)]
    return x, y


def fit(model, data, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return model.train(data, (data[0][:200], data[1][:200]), plot=False, **kwargs)


@pytest.mark.parametrize("batch_size", [None, 50])
def test_two_models_training_at_once_match_one_after_the_other(batch_size):
    datasets = [learnable(1), learnable(2)]

    def run(i, out):
        model = mn.NeuralNetwork(200, 40, 10, seed=i, num_threads=2)
        history = fit(model, datasets[i], iterations=15, learning_rate=1.0,
                      batch_size=batch_size)
        out[i] = (model.W_input_to_hidden.copy(), model.W_hidden_to_output.copy(),
                  history.loss)

    alone = {}
    for i in range(2):
        run(i, alone)
    together = {}
    threads = [threading.Thread(target=run, args=(i, together)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert np.array_equal(alone[i][0], together[i][0])
        assert np.array_equal(alone[i][1], together[i][1])
        assert alone[i][2] == together[i][2]


@pytest.mark.parametrize("cls", [mn.NeuralNetwork, reference.NeuralNetwork])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_give_no_nan_and_no_warning(cls, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]])
    y = np.eye(2)[[0, 1, 0]]
    model = cls(3, 4, 2, seed=0, dtype=dtype)
    model.weights_init(np.full((4, 4), 3.0), np.array([[5.0, -5.0]] * 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for forward, backward, fit_ in ((model.feedforward, model.backpropagate, model.train),
                                        (model.feedforward_xe, model.backpropagate_xe,
                                         model.train_xe)):
            forward(x)
            assert np.isfinite(model.o_output).all()
            backward(y, 1.0)
            assert np.isfinite(model.W_input_to_hidden).all()
            with contextlib.redirect_stdout(io.StringIO()):
                history = fit_((x, y), (x, y), iterations=3, plot=False)
            assert np.isfinite(history.loss).all()


@pytest.mark.parametrize("cls", [mn.NeuralNetwork, reference.NeuralNetwork])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("winner", [0, 1, 2, 3])
def test_softmax_of_huge_logits_is_exact(cls, dtype, winner):
    """Logits hundreds apart: the softmax subtracts the largest (wherever it is), so nothing
    overflows and the winner gets probability 1."""
    model = cls(2, 1, 4, seed=0, dtype=dtype)
    w2 = np.zeros((2, 4))
    w2[1, winner] = 800.0  # the bias row: logit 800 for the winner, 0 for the others
    model.weights_init(np.zeros((3, 1)), w2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.feedforward_xe(np.ones((3, 2)))
    assert np.array_equal(model.o_output, np.tile(np.eye(4)[winner], (3, 1)).astype(dtype))


def test_transfer_functions_at_the_edges():
    x = np.array([-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = mn.sigmoid(x)
        d = mn.dsigmoid(x)
        p = mn.softmax(np.array([x, -x]))
    assert np.isfinite(s).all() and np.isfinite(d).all() and np.isfinite(p).all()
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_sizes_that_cannot_fit_are_refused_before_allocating():
    with pytest.raises(ValueError, match="GiB"):
        mn.NeuralNetwork(10**6, 10**6, 10)


@pytest.mark.parametrize("cls", [mn.NeuralNetwork, reference.NeuralNetwork])
def test_targets_must_be_one_hot_for_accuracy_and_distributions_for_cross_entropy(cls):
    x = np.random.default_rng(0).random((4, 3))
    one_hot = np.eye(2)[[0, 1, 1, 0]]
    soft = np.array([[0.3, 0.3]] * 4)
    model = cls(3, 5, 2, seed=0)
    before = model.W_input_to_hidden.copy()
    with pytest.raises(ValueError, match="data targets must be one-hot"):
        model.train((x, soft), (x, one_hot), iterations=2, plot=False)
    with pytest.raises(ValueError, match="validation_data targets must be one-hot"):
        model.train((x, one_hot), (x, soft), iterations=2, plot=False)
    with pytest.raises(ValueError, match="test_data targets must be one-hot"):
        model.predict((x, np.zeros((4, 2))))
    model.feedforward_xe(x)
    with pytest.raises(ValueError, match="summing to 1"):
        model.backpropagate_xe(soft, 1.0)
    assert np.array_equal(before, model.W_input_to_hidden)
    model.feedforward(x)
    model.backpropagate(soft, 1.0)  # MSE takes any finite targets
    assert not np.array_equal(before, model.W_input_to_hidden)




def train_xe_both(w2, y, dtype, **train_args):
    """A one-hidden-unit network with output weights w2 (its last row the biases), trained
    by train_xe on inputs of ones and targets y: [(model, history)], native then reference."""
    x = np.ones((len(y), 2))
    out = []
    for cls in (mn.NeuralNetwork, reference.NeuralNetwork):
        model = cls(2, 1, w2.shape[1], seed=0, dtype=dtype)
        model.weights_init(np.zeros((3, 1)), w2)
        with contextlib.redirect_stdout(io.StringIO()):
            history = model.train_xe((x, y), (x, y), plot=False, shuffle=False, **train_args)
        out.append((model, history))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [None, 2])
def test_training_on_huge_logits_leaves_the_losers_alone(dtype, batch_size):
    """Logits hundreds apart in the fused training pass: a class neither winning nor wanted
    has probability exactly 0, so its output weights stay exactly 0, as in the reference
    (not moved by a tiny probability such as exp(-87)).  The step is large enough to flip
    the winner, so that its weights are the best and kept."""
    y = np.eye(4)[[1, 1, 2, 2]]  # class 0 wins every logit, 3 is never wanted
    w2 = np.zeros((2, 4))
    w2[1, 0] = 800.0
    (native, _), (ref, _) = train_xe_both(w2, y, dtype, iterations=1, learning_rate=2000.0,
                                          batch_size=batch_size)
    assert np.all(native.W_hidden_to_output[:, 3] == 0.0)
    np.testing.assert_allclose(native.W_hidden_to_output, ref.W_hidden_to_output, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [None, 2])
def test_training_on_logits_far_below_zero_matches_reference(dtype, batch_size):
    """Every logit hundreds below zero (the largest, -700, gets probability 1): the softmax
    subtracts the largest real logit, never a padding lane's 0, or every exponential would
    underflow and the loss be NaN."""
    y = np.eye(3)[[0, 1, 2, 0]]
    w2 = np.zeros((2, 3))
    w2[1] = [-700.0, -800.0, -800.0]
    (_, native), (_, ref) = train_xe_both(w2, y, dtype, iterations=2, learning_rate=0.5,
                                          batch_size=batch_size)
    assert np.isfinite(native.loss).all()
    np.testing.assert_allclose(native.loss, ref.loss, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_all_finite_sees_every_position(dtype, threads):
    """The native finiteness check, on shapes whose rows end inside and on its blocks of
    sums: a NaN or an infinity anywhere is seen; finite values whose sum overflows, negative
    zeros and subnormals are accepted, without a warning."""
    rng = np.random.default_rng(7)
    tiny, huge = np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max
    for n, d in [(1, 1), (3, 15), (2, 16), (5, 17), (4, 33), (7, 50)]:
        x = rng.standard_normal((n, d)).astype(dtype)
        assert all_finite(x, threads)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert all_finite(np.full((n, d), huge, dtype), threads)
            assert all_finite(np.full((n, d), -huge, dtype), threads)
            assert all_finite(np.full((n, d), -0.0, dtype), threads)
            assert all_finite(np.full((n, d), tiny, dtype), threads)
        for i, j in np.ndindex(n, d):
            for bad in (np.nan, np.inf, -np.inf):
                y = x.copy()
                y[i, j] = bad
                assert not all_finite(y, threads), (n, d, i, j, bad)


@pytest.mark.parametrize("threads", [1, 2])
def test_all_finite_on_rows_split_between_threads(threads):
    """Large enough to be split between threads: an infinity in the first or last row of
    either thread's half is seen; read-only arrays are accepted."""
    x = np.zeros((801, 784), dtype=np.float32)
    x.setflags(write=False)
    assert all_finite(x, threads)
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        all_finite(x, threads - 2)
    for i in (0, 399, 400, 401, 800):
        y = x.copy()
        y[i, 392] = np.inf
        assert not all_finite(y, threads), i


@pytest.mark.parametrize("before, after", [(1, 2), (1, 3), (3, 1)])
def test_num_threads_set_between_feedforward_and_backpropagate(before, after):
    """The backprop runs on the new count, its per-thread scratch grown (it was sized for the
    forward pass's count, and indexed by thread): the same bits as a model that had that
    count all along."""
    rng = np.random.default_rng(7)
    x, y = rng.random((20, 30)), np.eye(4)[rng.integers(0, 4, 20)]
    changed, fixed = (mn.NeuralNetwork(30, 50, 4, num_threads=t, seed=1) for t in (before, after))
    changed.feedforward(x)
    changed.num_threads = after
    fixed.feedforward(x)
    for model in (changed, fixed):
        model.backpropagate(y, 0.5)
    assert np.array_equal(changed.W_input_to_hidden, fixed.W_input_to_hidden)
    assert np.array_equal(changed.W_hidden_to_output, fixed.W_hidden_to_output)


def test_kernels_refuse_a_scratch_smaller_than_their_threads():
    """Each thread sums in its own row of scratch, unchecked in the loop: checked first."""
    a, w, delta = np.ones((4, 3)), np.ones((3, 5)), np.ones((4, 5))
    u, o = np.empty((4, 5)), np.empty((4, 5))
    for scratch in (np.empty((1, 5)), np.empty((2, 4))):  # a row short, a column short
        with pytest.raises(ValueError, match="scratch"):
            _kernels.affine_forward(u, o, a, w, scratch, _kernels.ACT_IDENTITY, 2)
    with pytest.raises(ValueError, match="scratch"):
        _kernels.weight_update(w, a, delta, 0.1, np.empty((2, 14)), 2)  # 3 rows of 5 needed
    _kernels.affine_forward(u, o, a, w, np.empty((2, 5)), _kernels.ACT_IDENTITY, 2)
    _kernels.weight_update(w, a, delta, 0.1, np.empty((2, 15)), 2)
    np.testing.assert_allclose(u, 3.0)
    np.testing.assert_allclose(w, 1.0 - 0.1 * 4)


@pytest.mark.parametrize("cls", [mn.NeuralNetwork, reference.NeuralNetwork])
@pytest.mark.parametrize("seed, exc", [(-1, ValueError), ("x", TypeError), (1.5, TypeError)])
def test_a_bad_seed_is_named(cls, seed, exc):
    with pytest.raises(exc, match="seed must be"):
        cls(3, 2, 2, seed=seed)

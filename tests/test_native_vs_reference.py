"""The native kernels against the NumPy reference, on random networks.

Shapes are drawn with a seeded RNG (inputs 1..800, hidden 1..300, outputs 1..12, batch
1..2000) next to two fixed ones: the 1-1-1 edge with one sample and an MNIST-like 784-75-10.
Inputs have many exact zeros (the kernels skip zero terms), whole zero rows and columns, and
negative values.  Both classes share the initialisation code, so the same seed gives the same
starting weights.

float64 must agree to ~1e-12, float32 to ~1e-5 (relative, with an absolute floor scaled by the
array's magnitude: the kernels sum in double, the reference in the array's dtype).
"""
import warnings

import numpy as np
import pytest

import mnist_native
from mnist_native import reference

SEED = 20261125
ATTRIBUTES = ("input", "u_hidden", "o_hidden", "u_output", "o_output")
DTYPES = [np.float64, np.float32]
THREADS = [1, 2]
LOSSES = ["mse", "xe"]


def _random_shapes(count):
    rng = np.random.default_rng(SEED)
    return [(int(rng.integers(1, 801)), int(rng.integers(1, 301)), int(rng.integers(1, 13)),
             int(rng.integers(1, 2001))) for _ in range(count)]


# (n_in, n_hidden, n_out, batch)
SHAPES = [(1, 1, 1, 1), (784, 75, 10, 1000)] + _random_shapes(6)
SHAPE_IDS = ["{}-{}-{}x{}".format(*s) for s in SHAPES]


def make_inputs(rng, batch, n_in, dtype=np.float64):
    """(batch, n_in): ~70% exact zeros, negatives, a zero row and a zero column when possible."""
    x = rng.normal(0.0, 1.0, size=(batch, n_in))
    x[rng.random((batch, n_in)) < 0.7] = 0.0
    if batch > 1:
        x[batch // 2] = 0.0
    if n_in > 1:
        x[:, n_in // 2] = 0.0
    return x.astype(dtype)


def make_targets(rng, batch, n_out, loss, dtype=np.float64):
    """MSE: any values in [0, 1); cross-entropy: one-hot rows (softmax targets sum to 1)."""
    if loss == "xe":
        return np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, batch)]
    return rng.random((batch, n_out)).astype(dtype)


def models(shape, dtype, num_threads, seed=SEED, **kw):
    n_in, n_hidden, n_out, _ = shape
    native = mnist_native.NeuralNetwork(n_in, n_hidden, n_out, dtype=dtype,
                                        num_threads=num_threads, seed=seed, **kw)
    ref = reference.NeuralNetwork(n_in, n_hidden, n_out, dtype=dtype, seed=seed, **kw)
    return native, ref


def methods(loss):
    return ("feedforward", "backpropagate") if loss == "mse" else \
        ("feedforward_xe", "backpropagate_xe")


def assert_close(actual, expected, dtype, what=""):
    """Within the dtype's tolerance; the absolute floor scales with the expected magnitude."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    tol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-5
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol, atol=tol * scale,
                               err_msg=what)


def assert_weights_close(native, ref, dtype, what=""):
    for name in ("W_input_to_hidden", "W_hidden_to_output"):
        w = getattr(native, name)
        assert w.dtype == np.dtype(dtype), f"{what}{name} dtype {w.dtype}"
        assert_close(w, getattr(ref, name), dtype, f"{what}{name}")


def assert_attributes_close(native, ref, dtype):
    for name in ATTRIBUTES:
        value = getattr(native, name)
        assert isinstance(value, np.ndarray) and value.dtype == np.dtype(dtype), name
        assert_close(value, getattr(ref, name), dtype, name)


# --------------------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_gives_the_same_initial_weights(dtype):
    native, ref = models((784, 75, 10, 1), dtype, 1, seed=7)
    np.testing.assert_array_equal(native.W_input_to_hidden, ref.W_input_to_hidden)
    np.testing.assert_array_equal(native.W_hidden_to_output, ref.W_hidden_to_output)
    assert native.W_input_to_hidden.dtype == np.dtype(dtype)
    other, _ = models((784, 75, 10, 1), dtype, 1, seed=8)
    assert not np.array_equal(native.W_input_to_hidden, other.W_input_to_hidden)


# --------------------------------------------------------------------------------------
# one forward pass, one or two gradient steps
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_feedforward_matches_reference(shape, dtype, loss, num_threads):
    rng = np.random.default_rng(SHAPES.index(shape) * 10)
    n_in, n_hidden, n_out, batch = shape
    x = make_inputs(rng, batch, n_in, dtype)
    native, ref = models(shape, dtype, num_threads)
    forward, _ = methods(loss)
    getattr(native, forward)(x)
    getattr(ref, forward)(x)
    assert native.input.shape == (batch, n_in + 1)
    assert native.o_hidden.shape == (batch, n_hidden + 1)
    assert native.o_output.shape == (batch, n_out)
    assert np.all(native.input[:, -1] == 1) and np.all(native.o_hidden[:, -1] == 1)
    assert_attributes_close(native, ref, dtype)
    if loss == "xe":
        assert_close(native.o_output.sum(axis=1), np.ones(batch), dtype, "softmax row sums")


@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backpropagate_matches_reference(shape, dtype, loss, num_threads):
    rng = np.random.default_rng(SHAPES.index(shape) * 10 + 1)
    n_in, _, n_out, batch = shape
    x = make_inputs(rng, batch, n_in, dtype)
    y = make_targets(rng, batch, n_out, loss, dtype)
    native, ref = models(shape, dtype, num_threads)
    forward, backward = methods(loss)
    for step, learning_rate in enumerate((2.0, 0.5)):
        for model in (native, ref):
            getattr(model, forward)(x)
            getattr(model, backward)(y, learning_rate)
        assert_weights_close(native, ref, dtype, f"after step {step + 1}: ")
    start, _ = models(shape, dtype, num_threads)
    moved = [not np.array_equal(getattr(start, name), getattr(native, name))
             for name in ("W_input_to_hidden", "W_hidden_to_output")]
    if loss == "xe" and n_out == 1:
        assert moved == [False, False]  # a softmax of one unit is 1 = the target: no gradient
    else:
        assert moved == [True, True]


TANH_SHAPES = [SHAPES[0], SHAPES[1], SHAPES[2]]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", TANH_SHAPES, ids=SHAPE_IDS[:len(TANH_SHAPES)])
def test_tanh_pair_matches_reference(shape, dtype, loss):
    rng = np.random.default_rng(SHAPES.index(shape) * 10 + 3)
    n_in, _, n_out, batch = shape
    x = make_inputs(rng, batch, n_in, dtype)
    y = make_targets(rng, batch, n_out, loss, dtype)
    native, ref = models(shape, dtype, 2, transfer_f=mnist_native.tanh,
                         transfer_df=mnist_native.dtanh)
    forward, backward = methods(loss)
    for model in (native, ref):
        getattr(model, forward)(x)
    assert_attributes_close(native, ref, dtype)
    for model in (native, ref):
        getattr(model, backward)(y, 1.0)
    assert_weights_close(native, ref, dtype)
    data, validation = learnable_data(rng, shape, dtype)
    train = "train" if loss == "mse" else "train_xe"
    h = getattr(native, train)(data, validation, iterations=3, learning_rate=0.5, plot=False)
    h_ref = getattr(ref, train)(data, validation, iterations=3, learning_rate=0.5, plot=False)
    assert_histories_match(h, h_ref, dtype, len(data[0]), len(validation[0]))
    assert_weights_close(native, ref, dtype)


# --------------------------------------------------------------------------------------
# input layouts: lists, C, Fortran, non-contiguous, read-only
# --------------------------------------------------------------------------------------

def _layout(a, layout):
    if layout == "list":
        return a.tolist()
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "Fortran":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.full((2 * a.shape[0], 2 * a.shape[1] + 1), np.nan, dtype=a.dtype)
        big[::2, 1::2] = a
        view = big[::2, 1::2]
        assert not view.flags.c_contiguous and not view.flags.f_contiguous
        return view
    if layout == "readonly":
        ro = a.copy()
        ro.flags.writeable = False
        return ro
    raise AssertionError(layout)


LAYOUTS = ["list", "C", "Fortran", "strided", "readonly"]
LAYOUT_SHAPE = (97, 31, 7, 150)


@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_input_layouts(layout, dtype, num_threads):
    rng = np.random.default_rng(11)
    n_in, _, n_out, batch = LAYOUT_SHAPE
    x = make_inputs(rng, batch, n_in, dtype)
    targets = {loss: make_targets(rng, batch, n_out, loss, dtype) for loss in LOSSES}
    x_in = _layout(x, layout)
    for loss in LOSSES:
        y_in = _layout(targets[loss], layout)
        native, ref = models(LAYOUT_SHAPE, dtype, num_threads)
        forward, backward = methods(loss)
        getattr(native, forward)(x_in)
        getattr(ref, forward)(x)
        assert_attributes_close(native, ref, dtype)
        getattr(native, backward)(y_in, 1.5)
        getattr(ref, backward)(targets[loss], 1.5)
        assert_weights_close(native, ref, dtype, f"{loss}: ")
        # training and predict (which need one-hot targets) accept the layout too
        labels = make_targets(rng, batch, n_out, "xe", dtype)
        labels_in = _layout(labels, layout)
        train = native.train if loss == "mse" else native.train_xe
        train_ref = ref.train if loss == "mse" else ref.train_xe
        h = train((x_in, labels_in), (x_in, labels_in), iterations=2, learning_rate=1.0,
                  plot=False)
        h_ref = train_ref((x, labels), (x, labels), iterations=2, learning_rate=1.0,
                          plot=False)
        assert_close(h.loss, h_ref.loss, dtype, "history.loss")
        assert_weights_close(native, ref, dtype, f"{loss} trained: ")
        assert native.predict((x_in, labels_in)) == ref.predict((x, labels))
    # the caller's data is never written
    if layout == "list":
        assert x_in == x.tolist()
    else:
        np.testing.assert_array_equal(x_in, x)


# --------------------------------------------------------------------------------------
# a few training iterations
# --------------------------------------------------------------------------------------

def learnable_data(rng, shape, dtype):
    """Training and validation pairs whose one-hot labels a teacher network gives the inputs."""
    n_in, _, n_out, batch = shape
    x = make_inputs(rng, batch, n_in, dtype)
    teacher = rng.normal(size=(n_in, n_out))
    y = np.eye(n_out, dtype=dtype)[np.argmax(x @ teacher, axis=1)]
    n_val = max(1, batch // 3)
    return (x, y), (x[:n_val], y[:n_val])


def assert_histories_match(h, h_ref, dtype, n_train, n_val):
    assert h.iterations == h_ref.iterations
    assert h.loss_name == h_ref.loss_name
    assert_close(h.loss, h_ref.loss, dtype, "history.loss")
    if np.dtype(dtype) == np.float64:
        assert h.train_accuracy == h_ref.train_accuracy
        assert h.validation_accuracy == h_ref.validation_accuracy
        assert h.initial_validation_accuracy == h_ref.initial_validation_accuracy
        assert h.best_iteration == h_ref.best_iteration
        assert h.best_validation_accuracy == h_ref.best_validation_accuracy
    else:  # an argmax near-tie may break differently in float32: one sample at most
        for a, b, n in ((h.train_accuracy, h_ref.train_accuracy, n_train),
                        (h.validation_accuracy, h_ref.validation_accuracy, n_val)):
            np.testing.assert_allclose(a, b, rtol=0, atol=100.0 / n * 1.001)


TRAIN_CASES = [(shape, dtype, loss)
               for shape in SHAPES for dtype in DTYPES for loss in LOSSES]


@pytest.mark.parametrize(
    "shape, dtype, loss", TRAIN_CASES,
    ids=[f"{sid}-{np.dtype(d).name}-{loss}"
         for sid in SHAPE_IDS for d in DTYPES for loss in LOSSES])
def test_training_matches_reference(shape, dtype, loss):
    rng = np.random.default_rng(SHAPES.index(shape) * 10 + 2)
    data, validation = learnable_data(rng, shape, dtype)
    num_threads = 1 + SHAPES.index(shape) % 2  # alternate, to cover both
    native, ref = models(shape, dtype, num_threads)
    method = "train" if loss == "mse" else "train_xe"
    h = getattr(native, method)(data, validation, iterations=3, learning_rate=1.0, plot=False)
    h_ref = getattr(ref, method)(data, validation, iterations=3, learning_rate=1.0, plot=False)
    assert isinstance(h, mnist_native.TrainingHistory)
    assert len(h.loss) == len(h.train_accuracy) == len(h.validation_accuracy) == 3
    assert_histories_match(h, h_ref, dtype, len(data[0]), len(validation[0]))
    assert_weights_close(native, ref, dtype)


# --------------------------------------------------------------------------------------
# transfer pairs the kernels do not know run through NumPy
# --------------------------------------------------------------------------------------

def arctan(x):
    return np.arctan(x)


def darctan(x):
    return 1.0 / (1.0 + np.asarray(x) ** 2)


@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("loss", LOSSES)
def test_custom_transfer_pair_matches_reference(loss, num_threads):
    shape = (40, 13, 5, 64)
    rng = np.random.default_rng(5)
    x = make_inputs(rng, shape[3], shape[0])
    y = make_targets(rng, shape[3], shape[2], loss)
    native, ref = models(shape, np.float64, num_threads, transfer_f=arctan, transfer_df=darctan)
    forward, backward = methods(loss)
    for model in (native, ref):
        getattr(model, forward)(x)
    assert_attributes_close(native, ref, np.float64)
    np.testing.assert_allclose(native.o_hidden[:, :-1], np.arctan(native.u_hidden), rtol=1e-14)
    for model in (native, ref):
        getattr(model, backward)(y, 1.0)
    assert_weights_close(native, ref, np.float64)
    # and training, which then goes through the methods rather than the fused kernels
    data, validation = learnable_data(rng, shape, np.float64)
    train = "train" if loss == "mse" else "train_xe"
    h = getattr(native, train)(data, validation, iterations=3, learning_rate=1.0, plot=False)
    h_ref = getattr(ref, train)(data, validation, iterations=3, learning_rate=1.0, plot=False)
    assert_histories_match(h, h_ref, np.float64, len(data[0]), len(validation[0]))
    assert_weights_close(native, ref, np.float64)


# --------------------------------------------------------------------------------------
# saturation: huge activations stay finite and silent
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("pair", ["sigmoid", "tanh"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_network_is_finite_and_matches(dtype, loss, pair):
    f, df = ((mnist_native.sigmoid, mnist_native.dsigmoid) if pair == "sigmoid"
             else (mnist_native.tanh, mnist_native.dtanh))
    shape = (20, 8, 4, 30)
    rng = np.random.default_rng(3)
    x = (make_inputs(rng, shape[3], shape[0]) * 1e4).astype(dtype)
    y = make_targets(rng, shape[3], shape[2], loss, dtype)
    native, ref = models(shape, dtype, 2, transfer_f=f, transfer_df=df)
    big = np.linspace(-1e3, 1e3, 9 * 4).reshape(9, 4)  # drives u_output to +-1e4 and beyond
    for model in (native, ref):
        model.weights_init(wo=big)
    forward, backward = methods(loss)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        for model in (native, ref):
            getattr(model, forward)(x)
            getattr(model, backward)(y, 1.0)
            assert np.isfinite(model.o_output).all()
            assert np.isfinite(model.W_input_to_hidden).all()
            assert np.isfinite(model.W_hidden_to_output).all()
    assert np.abs(native.u_output).max() > 1e3
    assert_close(native.o_output, ref.o_output, dtype, "o_output")
    assert_weights_close(native, ref, dtype)


# --------------------------------------------------------------------------------------
# determinism across thread counts
# --------------------------------------------------------------------------------------

DET_SHAPE = (300, 64, 10, 1500)  # 1500 samples and 76 weight-row blocks: every thread works


def _requires_openmp():
    if not mnist_native.build_info()["openmp"]:
        pytest.skip("built without OpenMP: every model runs one thread")


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(dtype, loss):
    _requires_openmp()
    rng = np.random.default_rng(99)
    (x, y), validation = learnable_data(rng, DET_SHAPE, dtype)
    forward, backward = methods(loss)
    train = "train" if loss == "mse" else "train_xe"
    results = {}
    for num_threads in (1, 2, 3):
        model = mnist_native.NeuralNetwork(*DET_SHAPE[:3], dtype=dtype, seed=SEED,
                                           num_threads=num_threads)
        assert model.num_threads == num_threads
        getattr(model, forward)(x)
        attrs = {name: getattr(model, name).copy() for name in ATTRIBUTES}
        getattr(model, backward)(y, 2.0)
        stepped = (model.W_input_to_hidden.copy(), model.W_hidden_to_output.copy())
        history = getattr(model, train)((x, y), validation, iterations=3, learning_rate=1.0,
                                        plot=False)
        trained = (model.W_input_to_hidden.copy(), model.W_hidden_to_output.copy())
        results[num_threads] = (attrs, stepped, history, trained)
    attrs1, stepped1, history1, trained1 = results[1]
    for num_threads in (2, 3):
        attrs, stepped, history, trained = results[num_threads]
        for name in ATTRIBUTES:
            assert np.array_equal(attrs[name], attrs1[name]), (num_threads, name)
        for a, b in zip(stepped + trained, stepped1 + trained1):
            assert np.array_equal(a, b), num_threads
        assert history.loss == history1.loss
        assert history.train_accuracy == history1.train_accuracy
        assert history.validation_accuracy == history1.validation_accuracy
        assert history.best_iteration == history1.best_iteration

"""The lab's training loop and ``predict`` (LAB_SPEC "NeuralNetwork"), and clear errors.

Full-batch gradient descent: each iteration is one ``feedforward`` on all of ``data`` and one
``backpropagate``; the history's entry t describes the weights after iteration t + 1; the
best-validation weights are kept; ``Training time:`` is printed; training again continues from
the current weights; plots never block nor pile up.  Bad inputs raise an error that names the
argument and leave the model as it was.
"""
import itertools
import math
import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

import mnist_native
from mnist_native import reference

N_IN, N_HIDDEN, N_OUT = 30, 12, 5

CLASSES = {
    "native": lambda *a, **kw: mnist_native.NeuralNetwork(*a, num_threads=2, **kw),
    "reference": reference.NeuralNetwork,
}
TRAIN = {"mse": "train", "xe": "train_xe"}


@pytest.fixture(params=list(CLASSES))
def make(request):
    return CLASSES[request.param]


@pytest.fixture(params=list(TRAIN))
def loss(request):
    return request.param


def lab_data(seed, n, n_val):
    """(data, validation_data) as lists, like load_data's, with labels a teacher net gives."""
    rng = np.random.default_rng(seed)
    x = rng.random((n + n_val, N_IN))
    x[x < 0.6] = 0.0
    labels = np.argmax(x @ rng.normal(size=(N_IN, N_OUT)), axis=1)
    y = np.eye(N_OUT, dtype=int)[labels]
    return (x[:n].tolist(), y[:n].tolist()), (x[n:].tolist(), y[n:].tolist())


DATA, VALIDATION = lab_data(0, 120, 40)


def weights(model):
    return model.W_input_to_hidden.copy(), model.W_hidden_to_output.copy()


def assert_weights_equal(model, saved):
    np.testing.assert_array_equal(model.W_input_to_hidden, saved[0])
    np.testing.assert_array_equal(model.W_hidden_to_output, saved[1])


def accuracy(model, pair):
    return 100.0 * model.predict(pair) / len(pair[0])


def lab_steps(model, loss):
    """The model's (feedforward, backpropagate) pair for ``loss``."""
    if loss == "xe":
        return model.feedforward_xe, model.backpropagate_xe
    return model.feedforward, model.backpropagate


def lab_loss(o, y, loss):
    """The lab's mean loss of outputs o against one-hot y."""
    total = -np.sum(y * np.log(o)) if loss == "xe" else np.sum((o - y) ** 2)
    return total / len(y)


# --------------------------------------------------------------------------------------
# the history and the loop
# --------------------------------------------------------------------------------------

def test_train_returns_a_history_with_one_entry_per_iteration(make, loss, capsys):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=1)
    history = getattr(model, TRAIN[loss])(DATA, VALIDATION, iterations=7, learning_rate=1.0,
                                          plot=False)
    assert isinstance(history, mnist_native.TrainingHistory)
    assert history.iterations == 7
    for name in ("train_accuracy", "validation_accuracy", "loss", "seconds"):
        assert len(getattr(history, name)) == 7, name
    assert history.loss_name.lower() == {"mse": "mse", "xe": "cross-entropy"}[loss]
    assert all(0.0 <= a <= 100.0 for a in history.train_accuracy + history.validation_accuracy)
    assert all(math.isfinite(v) and v >= 0 for v in history.loss)
    assert history.seconds == sorted(history.seconds)
    out = capsys.readouterr().out
    match = re.search(r"Training time:\s*([0-9.eE+-]+)", out)
    assert match, out
    assert float(match.group(1)) >= 0.0


SCHEDULES = {"constant": 2.0, "schedule": [2.0, 0.5, 3.0, 1.0, 0.25]}


@pytest.mark.parametrize("rates", list(SCHEDULES))
def test_each_iteration_is_one_full_batch_step(make, loss, rates):
    """Replay by hand: feedforward on all of data, one backpropagate (at that iteration's
    rate, with a schedule); history entry t is measured on the weights after t + 1 steps."""
    iterations, rates = 5, SCHEDULES[rates]
    model = make(N_IN, N_HIDDEN, N_OUT, seed=2)
    history = getattr(model, TRAIN[loss])(DATA, VALIDATION, iterations, rates, plot=False)

    hand = make(N_IN, N_HIDDEN, N_OUT, seed=2)
    forward, backward = lab_steps(hand, loss)
    y = np.array(DATA[1], dtype=float)
    assert accuracy(hand, VALIDATION) == history.initial_validation_accuracy
    for t in range(iterations):
        forward(DATA[0])
        backward(DATA[1], rates[t] if isinstance(rates, list) else rates)
        forward(DATA[0])
        o = hand.o_output
        expected_loss = lab_loss(o, y, loss)
        train_acc = 100.0 * np.mean(np.argmax(o, axis=1) == np.argmax(y, axis=1))
        assert history.loss[t] == pytest.approx(expected_loss, rel=1e-10), t
        assert history.train_accuracy[t] == pytest.approx(train_acc, abs=1e-9), t
        assert history.validation_accuracy[t] == pytest.approx(accuracy(hand, VALIDATION),
                                                               abs=1e-9), t


def test_a_schedule_sets_each_epochs_rate(make, loss):
    """Mini-batch: replay by hand, batch by batch in order (no shuffle), each epoch at its
    own rate; the history's loss after each epoch matches."""
    rates, batch = [1.5, 0.2, 3.0], 32
    model = make(N_IN, N_HIDDEN, N_OUT, seed=4)
    history = getattr(model, TRAIN[loss])(DATA, VALIDATION, len(rates), rates, plot=False,
                                          batch_size=batch, shuffle=False)
    hand = make(N_IN, N_HIDDEN, N_OUT, seed=4)
    forward, backward = lab_steps(hand, loss)
    for t, rate in enumerate(rates):
        for i in range(0, len(DATA[0]), batch):
            forward(DATA[0][i:i + batch])
            backward(DATA[1][i:i + batch], rate)
        forward(DATA[0])
        expected = lab_loss(hand.o_output, np.array(DATA[1], dtype=float), loss)
        assert history.loss[t] == pytest.approx(expected, rel=1e-10), t


@pytest.mark.parametrize("form", [tuple, np.array, lambda r: (x for x in r)],
                         ids=["tuple", "array", "generator"])
def test_a_schedule_may_be_any_sequence_array_or_iterator(make, form):
    rates = [1.5, 0.2, 3.0]
    runs = []
    for value in (rates, form(rates)):
        model = make(N_IN, N_HIDDEN, N_OUT, seed=5)
        history = model.train(DATA, VALIDATION, 3, value, plot=False)
        runs.append((history.loss, weights(model)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_bad_data_leaves_a_schedule_iterator_unread(make):
    """The data is checked before the schedule is read: the error names the data, and the
    caller's generator is still whole for the call that follows the fix."""
    rates = iter([1.5, 0.2, 3.0])
    model = make(N_IN, N_HIDDEN, N_OUT, seed=5)
    bad = (np.full((len(DATA[0]), N_IN), np.nan), DATA[1])
    with pytest.raises(ValueError, match="data inputs"):
        model.train(bad, VALIDATION, 3, rates, plot=False)
    assert list(rates) == [1.5, 0.2, 3.0]


def test_a_number_is_every_iterations_rate(make):
    runs = []
    for value in (0.7, np.float64(0.7), np.array(0.7), [0.7] * 3):
        model = make(N_IN, N_HIDDEN, N_OUT, seed=6)
        runs.append(model.train(DATA, VALIDATION, 3, value, plot=False).loss)
    assert all(r == runs[0] for r in runs), runs


def test_keeps_the_best_validation_weights(make, loss):
    # a learning rate high enough that validation accuracy does not just climb
    iterations = 12
    model = make(N_IN, N_HIDDEN, N_OUT, seed=3)
    history = getattr(model, TRAIN[loss])(DATA, VALIDATION, iterations, 10.0, plot=False)
    best = history.best_iteration
    assert 0 < best < iterations, history  # the data is chosen so that keeping matters
    assert history.best_validation_accuracy == max(history.validation_accuracy)
    assert history.validation_accuracy[best - 1] == history.best_validation_accuracy
    assert history.best_validation_accuracy > max(history.validation_accuracy[:best - 1],
                                                  default=history.initial_validation_accuracy)
    # the kept weights reproduce the best validation accuracy ...
    assert accuracy(model, VALIDATION) == pytest.approx(history.best_validation_accuracy)
    # ... and are those after `best` iterations, not the last ones
    replay = make(N_IN, N_HIDDEN, N_OUT, seed=3)
    getattr(replay, TRAIN[loss])(DATA, VALIDATION, best, 10.0, plot=False)
    np.testing.assert_allclose(model.W_input_to_hidden, replay.W_input_to_hidden, rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(model.W_hidden_to_output, replay.W_hidden_to_output, rtol=1e-12,
                               atol=1e-14)
    # (the accuracy right after the best iteration is lower: keeping one step too late fails)
    assert history.validation_accuracy[best] < history.best_validation_accuracy


def test_starting_weights_are_kept_when_never_beaten(make, loss):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=4)
    start = weights(model)
    # validation data whose labels the network can only get worse at: all of one class the
    # untrained network already predicts, trained towards another
    model.feedforward(VALIDATION[0])
    predicted = np.argmax(model.o_output, axis=1)
    label = np.bincount(predicted, minlength=N_OUT).argmax()
    keep = predicted == label
    val_inputs = [x for x, k in zip(VALIDATION[0], keep) if k]
    val = (val_inputs, [np.eye(N_OUT, dtype=int)[label].tolist()] * len(val_inputs))
    other = (label + 1) % N_OUT
    data = (DATA[0], [np.eye(N_OUT, dtype=int)[other].tolist()] * len(DATA[0]))
    history = getattr(model, TRAIN[loss])(data, val, 5, 5.0, plot=False)
    assert history.initial_validation_accuracy == 100.0
    assert history.best_iteration == 0
    assert min(history.validation_accuracy) < 100.0  # training did move the weights
    assert_weights_equal(model, start)


def test_training_again_continues_from_the_current_weights(make, loss):
    method = TRAIN[loss]
    model = make(N_IN, N_HIDDEN, N_OUT, seed=2)
    first = getattr(model, method)(DATA, DATA, 4, 5.0, plot=False)
    assert first.best_iteration > 0  # the first call did move the weights
    after_first = weights(model)
    accuracy_now = accuracy(model, DATA)
    second = getattr(model, method)(DATA, DATA, 4, 5.0, plot=False)
    assert second.initial_validation_accuracy == pytest.approx(accuracy_now)

    # the same as a fresh model given those weights ...
    restarted = make(N_IN, N_HIDDEN, N_OUT, seed=99)
    restarted.weights_init(*after_first)
    again = getattr(restarted, method)(DATA, DATA, 4, 5.0, plot=False)
    np.testing.assert_allclose(second.loss, again.loss, rtol=1e-12)
    np.testing.assert_allclose(model.W_input_to_hidden, restarted.W_input_to_hidden, rtol=1e-12,
                               atol=1e-14)
    # ... and not a restart from the seed's initial weights
    fresh = make(N_IN, N_HIDDEN, N_OUT, seed=2)
    first_again = getattr(fresh, method)(DATA, DATA, 4, 5.0, plot=False)
    assert not np.allclose(second.loss, first_again.loss)


def test_zero_iterations_only_evaluates(make, loss, capsys):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=6)
    start = weights(model)
    history = getattr(model, TRAIN[loss])(DATA, VALIDATION, iterations=0, plot=True)
    assert history.iterations == 0
    assert history.train_accuracy == history.validation_accuracy == history.loss == []
    assert history.best_iteration == 0
    assert history.initial_validation_accuracy == pytest.approx(accuracy(model, VALIDATION))
    assert history.best_validation_accuracy == history.initial_validation_accuracy
    assert_weights_equal(model, start)
    assert "Training time:" in capsys.readouterr().out
    assert plt.get_fignums() == []


def test_verbose_reports_every_iteration(make, capsys):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=7)
    model.train(DATA, VALIDATION, iterations=3, learning_rate=1.0, plot=False)
    quiet = capsys.readouterr().out
    model.train(DATA, VALIDATION, iterations=3, learning_rate=1.0, verbose=True, plot=False)
    loud = capsys.readouterr().out
    assert len(loud.splitlines()) >= len(quiet.splitlines()) + 3


# --------------------------------------------------------------------------------------
# plotting
# --------------------------------------------------------------------------------------

@pytest.fixture
def count_figures(monkeypatch):
    """Counts figures created through pyplot (plt.figure, plt.subplots, ...)."""
    assert matplotlib.get_backend().lower() == "agg"
    plt.close("all")
    created = []
    real_figure = plt.figure

    def figure(*args, **kwargs):
        fig = real_figure(*args, **kwargs)
        created.append(fig)
        return fig

    monkeypatch.setattr(plt, "figure", figure)
    return created


def test_plot_under_agg_does_not_block_nor_leak_figures(make, loss, count_figures):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=8)
    history = getattr(model, TRAIN[loss])(DATA, VALIDATION, iterations=3, learning_rate=1.0,
                                          plot=True)
    assert history.iterations == 3
    assert len(count_figures) >= 1  # the learning curves were drawn ...
    assert plt.get_fignums() == []  # ... and closed, Agg having no one to show them to


def test_plot_false_draws_nothing(make, count_figures):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=8)
    model.train(DATA, VALIDATION, iterations=2, learning_rate=1.0, plot=False)
    assert count_figures == []
    assert plt.get_fignums() == []


def test_plot_is_the_default(make, count_figures):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=8)
    model.train(DATA, VALIDATION, iterations=2, learning_rate=1.0)
    assert len(count_figures) >= 1
    assert plt.get_fignums() == []


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------

def test_predict_returns_the_number_correct_as_a_python_int(make):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=9)
    for pair in (VALIDATION, (np.array(VALIDATION[0]), np.array(VALIDATION[1]))):
        result = model.predict(pair)
        assert type(result) is int
        model.feedforward(np.array(pair[0]))
        expected = np.count_nonzero(np.argmax(model.o_output, axis=1)
                                    == np.argmax(np.array(pair[1]), axis=1))
        assert result == expected
        assert 0 < result < len(pair[0])  # not trivially all or nothing


# --------------------------------------------------------------------------------------
# clear errors, model unchanged
# --------------------------------------------------------------------------------------

def _model_and_weights(make, **kw):
    model = make(N_IN, N_HIDDEN, N_OUT, seed=10, **kw)
    return model, weights(model)


def _with_nan(rows, i, j):
    rows = [list(r) for r in rows]
    rows[i][j] = float("nan")
    return rows


BAD_INPUTS = {
    # name: (inputs, exception, what the message must name)
    "too few features": ([[0.5] * (N_IN - 1)] * 3, ValueError, "inputs"),
    "too many features": (np.zeros((3, N_IN + 1)), ValueError, "inputs"),
    "ragged lists": ([[0.5] * N_IN, [0.5] * (N_IN - 1)], TypeError, "inputs"),
    "NaN": (_with_nan([[0.5] * N_IN] * 3, 1, 4), ValueError, "inputs"),
    "inf": (np.full((2, N_IN), np.inf), ValueError, "inputs"),
    "one sample, not wrapped": ([0.5] * N_IN, ValueError, "wrap it in a list"),
    "strings": ([["a"] * N_IN], TypeError, "inputs"),
    "empty": ([], ValueError, "inputs is empty"),
}


@pytest.mark.parametrize("fit", ["train", "predict"])
def test_class_labels_for_targets_are_told_to_go_one_hot(make, fit):
    """Integer labels where one-hot rows belong (load_mnist gives labels): the message says
    how to make the rows, not to wrap the labels in a list."""
    model, saved = _model_and_weights(make)
    labels = np.argmax(np.asarray(DATA[1]), axis=1)
    with pytest.raises(ValueError, match=rf"one-hot rows.*np\.eye\({N_OUT}\)\[labels\]"):
        if fit == "train":
            model.train((DATA[0], labels), VALIDATION, iterations=1, plot=False)
        else:
            model.predict((DATA[0], labels))
    assert_weights_equal(model, saved)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("forward", ["feedforward", "feedforward_xe"])
def test_feedforward_rejects_bad_inputs(make, forward, case):
    inputs, exc, name = BAD_INPUTS[case]
    model, saved = _model_and_weights(make)
    with pytest.raises(exc, match=name):
        getattr(model, forward)(inputs)
    assert_weights_equal(model, saved)


@pytest.mark.parametrize("where", ["data", "validation_data"])
@pytest.mark.parametrize("case", ["too few features", "ragged lists", "NaN"])
def test_train_rejects_bad_inputs_before_moving_any_weight(make, loss, where, case):
    bad_inputs, exc, _ = BAD_INPUTS[case]
    n = len(bad_inputs)
    bad = (bad_inputs, DATA[1][:n])
    data, validation = (bad, VALIDATION) if where == "data" else (DATA, bad)
    model, saved = _model_and_weights(make)
    with pytest.raises(exc, match=where):
        getattr(model, TRAIN[loss])(data, validation, iterations=3, plot=False)
    assert_weights_equal(model, saved)


def test_train_rejects_nan_in_the_last_validation_sample(make, loss):
    model, saved = _model_and_weights(make)
    validation = (_with_nan(VALIDATION[0], -1, 0), VALIDATION[1])
    with pytest.raises(ValueError, match="validation_data"):
        getattr(model, TRAIN[loss])(DATA, validation, iterations=3, plot=False)
    assert_weights_equal(model, saved)


def test_train_rejects_mismatched_targets(make, loss):
    model, saved = _model_and_weights(make)
    with pytest.raises(ValueError, match="data"):
        getattr(model, TRAIN[loss])((DATA[0], DATA[1][:-1]), VALIDATION, iterations=3,
                                    plot=False)
    wrong_width = (DATA[0], [row + [0] for row in DATA[1]])
    with pytest.raises(ValueError, match="targets"):
        getattr(model, TRAIN[loss])(wrong_width, VALIDATION, iterations=3, plot=False)
    assert_weights_equal(model, saved)


@pytest.mark.parametrize("iterations, exc", [(-1, ValueError), (2.5, TypeError)])
def test_train_rejects_bad_iterations(make, iterations, exc):
    model, saved = _model_and_weights(make)
    with pytest.raises(exc, match="iterations"):
        model.train(DATA, VALIDATION, iterations=iterations, plot=False)
    assert_weights_equal(model, saved)


# The last two are finite as a long double (on x86) and as an int, infinite as a float.
BAD_RATES = [0, 0.0, -1.0, float("nan"), float("inf"),
             pytest.param(np.longdouble("1e4000"), id="longdouble-1e4000"),
             pytest.param(10**400, id="int-10**400")]


@pytest.mark.parametrize("learning_rate", BAD_RATES)
def test_train_rejects_a_learning_rate_that_is_not_positive(make, loss, learning_rate):
    model, saved = _model_and_weights(make)
    with pytest.raises(ValueError, match="learning_rate"):
        getattr(model, TRAIN[loss])(DATA, VALIDATION, iterations=3,
                                    learning_rate=learning_rate, plot=False)
    assert_weights_equal(model, saved)


@pytest.mark.parametrize("rates, exc, match", [
    ([1.0, 1.0], ValueError, r"one rate per iteration \(3\), got 2"),
    ([1.0] * 4, ValueError, r"one rate per iteration \(3\), got more"),
    ([1.0, 0.0, 1.0], ValueError, r"learning_rate\[1\]"),
    ([1.0, "fast", 1.0], TypeError, r"learning_rate\[1\]"),
    ([1.0, True, 1.0], TypeError, r"learning_rate\[1\]"),
    ("1.0", TypeError, "learning_rate must be a number"),
    ({1.0, 0.5, 0.1}, TypeError, "learning_rate must be a number"),  # no order
    (np.ones((3, 1)), ValueError, "must be 1-D, got shape"),
    (itertools.repeat(1.0), ValueError, "got more"),  # endless: refused, not a hang
])
def test_train_rejects_a_bad_schedule(make, loss, rates, exc, match):
    model, saved = _model_and_weights(make)
    with pytest.raises(exc, match=match):
        getattr(model, TRAIN[loss])(DATA, VALIDATION, iterations=3, learning_rate=rates,
                                    plot=False)
    assert_weights_equal(model, saved)


@pytest.mark.parametrize("learning_rate", [0.0, -1.0, float("nan")])
def test_backpropagate_rejects_a_learning_rate_that_is_not_positive(make, loss, learning_rate):
    model, saved = _model_and_weights(make)
    x = np.array(DATA[0][:4])
    y = np.array(DATA[1][:4])
    if loss == "xe":
        model.feedforward_xe(x)
        backward = model.backpropagate_xe
    else:
        model.feedforward(x)
        backward = model.backpropagate
    with pytest.raises(ValueError, match="learning_rate"):
        backward(y, learning_rate)
    assert_weights_equal(model, saved)


def test_backpropagate_rejects_targets_that_do_not_match(make, loss):
    model, saved = _model_and_weights(make)
    x = np.array(DATA[0][:4])
    forward, backward = ((model.feedforward_xe, model.backpropagate_xe) if loss == "xe"
                         else (model.feedforward, model.backpropagate))
    forward(x)
    with pytest.raises(ValueError, match="targets"):
        backward(np.array(DATA[1][:3]), 1.0)  # one sample short
    with pytest.raises(ValueError, match="targets"):
        backward(np.zeros((4, N_OUT + 1)), 1.0)  # one column too many
    with pytest.raises(ValueError, match="targets"):
        backward(_with_nan(DATA[1][:4], 0, 0), 1.0)
    assert_weights_equal(model, saved)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex128, "float80", "not a dtype"])
def test_constructor_rejects_a_dtype_other_than_float32_or_float64(make, dtype):
    with pytest.raises(TypeError, match="dtype"):
        make(N_IN, N_HIDDEN, N_OUT, dtype=dtype)


@pytest.mark.parametrize("sizes, exc, name", [
    ((0, 3, 2), ValueError, "input_layer_size"),
    ((4, -1, 2), ValueError, "hidden_layer_size"),
    ((4, 3, 2.0), TypeError, "output_layer_size"),
])
def test_constructor_rejects_bad_sizes(make, sizes, exc, name):
    with pytest.raises(exc, match=name):
        make(*sizes)


def test_weights_init_rejects_a_wrong_shape_and_keeps_both_weights(make):
    model, saved = _model_and_weights(make)
    good_wo = np.zeros((N_HIDDEN + 1, N_OUT))
    with pytest.raises(ValueError, match="wi"):
        model.weights_init(np.zeros((N_IN, N_HIDDEN)), good_wo)  # the bias row is missing
    assert_weights_equal(model, saved)

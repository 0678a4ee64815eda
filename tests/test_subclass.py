"""Students' overrides: ``class NeuralNetwork(NeuralNetwork)`` with their own feedforward and/or
backpropagate (and the ``_xe`` pair), written the lab's way with lists and NumPy.

``train``, ``train_xe`` and ``predict`` must call the overrides (counted), hand them the data
as the caller gave it (lists), and training must reach the same weights as the class without
overrides.
"""
import numpy as np
import pytest

import mnist_native

N_IN, N_HIDDEN, N_OUT = 12, 7, 4
ITERATIONS = 4
LEARNING_RATE = 0.5


def student_class(override_forward, override_backward, counts):
    """The notebook's subclass, overriding the chosen methods, counting calls in ``counts``."""

    class NeuralNetwork(mnist_native.NeuralNetwork):
        if override_forward:
            def feedforward(self, inputs):
                counts["feedforward"] += 1
                counts["input types"].add(type(inputs))
                self._forward(inputs)
                self.o_output = self.transfer_f(self.u_output)

            def feedforward_xe(self, inputs):
                counts["feedforward_xe"] += 1
                counts["input types"].add(type(inputs))
                self._forward(inputs)
                e = np.exp(self.u_output - self.u_output.max(axis=1, keepdims=True))
                self.o_output = e / e.sum(axis=1, keepdims=True)

            def _forward(self, inputs):
                inputs = [x + [1.] for x in inputs]  # list concatenation: inputs are lists
                self.input = np.array(inputs)
                self.u_hidden = self.input.dot(self.W_input_to_hidden)
                self.o_hidden = np.hstack((self.transfer_f(self.u_hidden),
                                           np.ones((len(inputs), 1))))
                self.u_output = self.o_hidden.dot(self.W_hidden_to_output)

        if override_backward:
            def backpropagate(self, targets, learning_rate=5.0):
                counts["backpropagate"] += 1
                delta = 2 * (self.o_output - np.array(targets)) * self.transfer_df(self.u_output)
                self._update(delta, learning_rate, len(targets))

            def backpropagate_xe(self, targets, learning_rate=5.0):
                counts["backpropagate_xe"] += 1
                self._update(self.o_output - np.array(targets), learning_rate, len(targets))

            def _update(self, delta_out, learning_rate, batch):
                # new arrays, not in-place updates, as students often write it
                delta_hidden = (delta_out.dot(self.W_hidden_to_output[:-1].T)
                                * self.transfer_df(self.u_hidden))
                self.W_hidden_to_output = (self.W_hidden_to_output
                                           - learning_rate * self.o_hidden.T.dot(delta_out) / batch)
                self.W_input_to_hidden = (self.W_input_to_hidden
                                          - learning_rate * self.input.T.dot(delta_hidden) / batch)

    return NeuralNetwork


def _counts():
    return {"feedforward": 0, "feedforward_xe": 0, "backpropagate": 0, "backpropagate_xe": 0,
            "input types": set()}


def _lab_data(seed, n):
    """Lists, as ``load_data`` gives them: inputs in [0, 1) with many zeros, one-hot targets."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, N_IN))
    x[x < 0.5] = 0.0
    labels = np.argmax(x @ rng.normal(size=(N_IN, N_OUT)), axis=1)
    y = np.eye(N_OUT, dtype=int)[labels]
    return x.tolist(), y.tolist()


DATA = _lab_data(3, 60)
VALIDATION = (DATA[0][:30], DATA[1][:30])  # so that training improves it: best_iteration > 0

OVERRIDES = {
    "feedforward": (True, False),
    "backpropagate": (False, True),
    "both": (True, True),
}


@pytest.mark.parametrize("xe", [False, True], ids=["mse", "xe"])
@pytest.mark.parametrize("which", list(OVERRIDES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_train_calls_the_overrides_and_matches_the_plain_class(which, xe, dtype):
    counts = _counts()
    cls = student_class(*OVERRIDES[which], counts)
    student = cls(N_IN, N_HIDDEN, N_OUT, dtype=dtype, seed=5)
    plain = mnist_native.NeuralNetwork(N_IN, N_HIDDEN, N_OUT, dtype=dtype, seed=5)
    train = "train_xe" if xe else "train"
    h = getattr(student, train)(DATA, VALIDATION, ITERATIONS, LEARNING_RATE, plot=False)
    h_plain = getattr(plain, train)(DATA, VALIDATION, ITERATIONS, LEARNING_RATE, plot=False)

    forward = "feedforward_xe" if xe else "feedforward"
    backward = "backpropagate_xe" if xe else "backpropagate"
    other_forward = "feedforward" if xe else "feedforward_xe"
    other_backward = "backpropagate" if xe else "backpropagate_xe"
    if OVERRIDES[which][0]:
        # every iteration runs a forward pass on the training data, plus validation passes
        assert counts[forward] >= ITERATIONS + 1
        assert counts["input types"] == {list}  # handed the lab's lists, never arrays
    if OVERRIDES[which][1]:
        assert counts[backward] == ITERATIONS  # one gradient step per iteration
    assert counts[other_forward] == 0 and counts[other_backward] == 0

    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(h.loss, h_plain.loss, **tol)
    assert h.validation_accuracy == h_plain.validation_accuracy
    assert h.train_accuracy == h_plain.train_accuracy
    assert h.best_iteration == h_plain.best_iteration
    for name in ("W_input_to_hidden", "W_hidden_to_output"):
        np.testing.assert_allclose(getattr(student, name), getattr(plain, name), **tol,
                                   err_msg=name)
    # the training did change the weights (else the comparison above proves nothing)
    start = mnist_native.NeuralNetwork(N_IN, N_HIDDEN, N_OUT, dtype=dtype, seed=5)
    assert h.best_iteration > 0
    assert not np.allclose(start.W_input_to_hidden, student.W_input_to_hidden)


@pytest.mark.parametrize("which", list(OVERRIDES))
def test_predict_calls_the_feedforward_override(which):
    counts = _counts()
    cls = student_class(*OVERRIDES[which], counts)
    student = cls(N_IN, N_HIDDEN, N_OUT, seed=5)
    plain = mnist_native.NeuralNetwork(N_IN, N_HIDDEN, N_OUT, seed=5)
    result = student.predict(VALIDATION)
    assert type(result) is int
    assert result == plain.predict(VALIDATION)
    assert counts["feedforward"] == (1 if OVERRIDES[which][0] else 0)


def test_student_feedforward_then_native_backpropagate_by_hand():
    """The Part-1 hand example through a student's feedforward and the native backpropagate."""
    counts = _counts()
    cls = student_class(True, False, counts)
    model = cls(2, 2, 1)
    model.weights_init(np.array([[0.3, -0.5], [0.8, 0.2], [0.2, -0.4]]),
                       np.array([[-0.6], [0.4], [0.5]]))
    model.feedforward([[0.8, 0.2]])
    assert abs(model.o_output[0, 0] - 0.5597295991095776) <= 1e-12
    model.backpropagate([[0.4]])
    np.testing.assert_allclose(model.W_hidden_to_output,
                               [[-0.8541467506279605], [0.2745727217772572],
                                [0.10637455535192786]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.W_input_to_hidden,
                               [[0.3432265432215471, -0.5273473101875394],
                                [0.8108066358053868, 0.19316317245311515],
                                [0.2540331790269339, -0.4341841377344243]], rtol=0, atol=1e-12)
    assert counts["feedforward"] == 1


@pytest.mark.parametrize("breaks", ["nan", "raises"])
def test_an_override_that_fails_midway_leaves_the_best_weights(breaks):
    """A backpropagate that leaves NaN in the weights (caught by the next measure) or raises,
    at its 6th call: train() puts the best weights so far back (NaN-free, the same as a run
    of that many iterations), keeps the history, and says in which iteration it happened
    (a note, on Python 3.11+)."""
    rng = np.random.default_rng(3)
    x = rng.random((60, N_IN))
    y = np.eye(N_OUT)[rng.integers(0, N_OUT, 60)]
    calls = []

    class Broken(mnist_native.NeuralNetwork):
        def backpropagate(self, targets, learning_rate=5.0):
            super().backpropagate(targets, learning_rate)
            calls.append(1)
            if len(calls) == 6:
                if breaks == "raises":
                    raise RuntimeError("student's bug")
                self.W_hidden_to_output[0, 0] = np.nan

    model = Broken(N_IN, N_HIDDEN, N_OUT, seed=1)
    with pytest.raises((ValueError, RuntimeError)) as info:
        model.train((x, y), (x[:20], y[:20]), 10, 2.0, plot=False)
    history = model.history
    assert history.iterations == 5  # the 6th iteration's step, or the measure after it, failed
    assert not history.interrupted
    kept = mnist_native.NeuralNetwork(N_IN, N_HIDDEN, N_OUT, seed=1)  # the same steps, whole
    kept.train((x, y), (x[:20], y[:20]), history.best_iteration, 2.0, plot=False)
    np.testing.assert_array_equal(model.W_input_to_hidden, kept.W_input_to_hidden)
    np.testing.assert_array_equal(model.W_hidden_to_output, kept.W_hidden_to_output)
    assert model.predict((x, y)) == kept.predict((x, y))
    if hasattr(info.value, "add_note"):
        assert "iteration 6 of 10" in str(info.value.__notes__)


@pytest.mark.parametrize("mistake, exc, message", [
    ("one row", ValueError, r"self\.o_output has shape \(4,\).*expected \(30, 4\)"),
    ("never set", AttributeError, "feedforward did not set self.o_output"),
])
@pytest.mark.parametrize("call", ["predict", "train"])
def test_a_feedforward_that_leaves_wrong_outputs_is_named(mistake, exc, message, call):
    """An override whose o_output is not one row a sample gets a message naming it, not
    NumPy's broadcasting error (or a bare AttributeError) from inside the package."""
    rng = np.random.default_rng(4)
    x, y = rng.random((30, N_IN)), np.eye(N_OUT)[rng.integers(0, N_OUT, 30)]

    class Wrong(mnist_native.NeuralNetwork):
        def feedforward(self, inputs):
            if mistake == "one row":
                super().feedforward(inputs)
                self.o_output = self.o_output[0]

    model = Wrong(N_IN, N_HIDDEN, N_OUT, seed=1)
    with pytest.raises(exc, match=message):
        if call == "predict":
            model.predict((x, y))
        else:
            model.train((x, y), (x, y), 2, 1.0, plot=False)

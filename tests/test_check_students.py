"""Student networks for the checker's tests, written as students of the lab write them.

``LAB_STYLE`` is a complete, correct ``NeuralNetwork.py`` in the lab's style: Python lists in
(``x + [1.]``), ``np.dot``, the lab's ``train``/``train_xe``/``predict`` (with the best weights
kept as copies).  ``LOOP_STYLE`` does ``feedforward``/``backpropagate`` sample by sample.
``student(source, *edits)`` makes a class from a source with edits, each one the typo-sized
change that puts one mistake in: ``(method, old, new)`` replaces ``old`` (which must be
there) inside that method only.  ``ORIGINAL_LAB`` is the lab's original code: the best
weights of ``train``/``train_xe`` kept as aliases of arrays that ``backpropagate`` updates in
place.

The tests here only check the fixtures themselves (a correct student reproduces the lab's
Part 1 numbers); the checker's tests import them.
"""
import re
import textwrap

import numpy as np
import pytest

LAB_STYLE = textwrap.dedent('''
    import time

    import numpy as np


    def sigmoid(x):
        return 1 / (1 + np.exp(-x))


    def dsigmoid(x):
        return sigmoid(x) * (1.0 - sigmoid(x))


    def softmax(x):
        e = np.exp(x - np.max(x, axis=1, keepdims=True))
        return e / np.sum(e, axis=1, keepdims=True)


    class NeuralNetwork(object):
        def __init__(self, input_layer_size, hidden_layer_size, output_layer_size,
                     transfer_f=sigmoid, transfer_df=dsigmoid):
            self.transfer_f = transfer_f
            self.transfer_df = transfer_df
            self.input_layer_size = input_layer_size + 1
            self.hidden_layer_size = hidden_layer_size + 1
            self.output_layer_size = output_layer_size
            self.u_hidden = np.zeros((1, self.hidden_layer_size - 1))
            self.u_output = np.zeros((1, self.output_layer_size))
            self.o_hidden = np.zeros((1, self.hidden_layer_size))
            self.o_output = np.zeros((1, self.output_layer_size))
            self.weights_init()

        def weights_init(self, wi=None, wo=None):
            input_range = 1.0 / self.input_layer_size ** (1 / 2)
            if wi is not None:
                self.W_input_to_hidden = wi
            else:
                self.W_input_to_hidden = np.random.normal(
                    loc=0, scale=input_range, size=(self.input_layer_size, self.hidden_layer_size - 1))
            if wo is not None:
                self.W_hidden_to_output = wo
            else:
                self.W_hidden_to_output = np.random.uniform(
                    size=(self.hidden_layer_size, self.output_layer_size)) / np.sqrt(self.hidden_layer_size)

        def train(self, data, validation_data, iterations=50, learning_rate=5.0, verbose=False):
            start_time = time.time()
            training_accuracies = []
            validation_accuracies = []
            inputs = data[0]
            targets = data[1]
            best_val_acc = 100 * self.predict(validation_data) / len(validation_data[0])
            best_i2h_W = self.W_input_to_hidden.copy()
            best_h2o_W = self.W_hidden_to_output.copy()
            for it in range(iterations):
                self.feedforward(inputs)
                self.backpropagate(targets, learning_rate=learning_rate)
                training_accuracies.append(100 * self.predict(data) / len(data[0]))
                validation_accuracies.append(100 * self.predict(validation_data) / len(validation_data[0]))
                if validation_accuracies[-1] > best_val_acc:
                    best_val_acc = validation_accuracies[-1]
                    best_i2h_W = self.W_input_to_hidden.copy()
                    best_h2o_W = self.W_hidden_to_output.copy()
                if verbose:
                    print("[Iteration %2d/%2d]  -Training_Accuracy:  %2.2f %%  -Validation_Accuracy: %2.2f %%  -time: %2.2f "
                          % (it + 1, iterations, training_accuracies[-1], validation_accuracies[-1], time.time() - start_time))
            print("Training time:", time.time() - start_time)
            self.W_input_to_hidden = best_i2h_W
            self.W_hidden_to_output = best_h2o_W

        def train_xe(self, data, validation_data, iterations=50, learning_rate=5.0, verbose=False):
            start_time = time.time()
            training_accuracies = []
            validation_accuracies = []
            inputs = data[0]
            targets = data[1]
            best_val_acc = 100 * self.predict(validation_data) / len(validation_data[0])
            best_i2h_W = self.W_input_to_hidden.copy()
            best_h2o_W = self.W_hidden_to_output.copy()
            for it in range(iterations):
                self.feedforward_xe(inputs)
                self.backpropagate_xe(targets, learning_rate=learning_rate)
                training_accuracies.append(100 * self.predict(data) / len(data[0]))
                validation_accuracies.append(100 * self.predict(validation_data) / len(validation_data[0]))
                if validation_accuracies[-1] > best_val_acc:
                    best_val_acc = validation_accuracies[-1]
                    best_i2h_W = self.W_input_to_hidden.copy()
                    best_h2o_W = self.W_hidden_to_output.copy()
                if verbose:
                    print("[Iteration %2d/%2d]  -Training_Accuracy:  %2.2f %%  -Validation_Accuracy: %2.2f %%  -time: %2.2f "
                          % (it + 1, iterations, training_accuracies[-1], validation_accuracies[-1], time.time() - start_time))
            print("Training time:", time.time() - start_time)
            self.W_input_to_hidden = best_i2h_W
            self.W_hidden_to_output = best_h2o_W

        def predict(self, test_data):
            self.feedforward(test_data[0])
            answer = np.argmax(test_data[1], axis=1)
            prediction = np.argmax(self.o_output, axis=1)
            return len(test_data[0]) - np.count_nonzero(answer - prediction)

        def feedforward(self, inputs):
            inputs = [x + [1.] for x in inputs]
            self.input = np.array(inputs)
            self.u_hidden = np.dot(self.input, self.W_input_to_hidden)
            self.o_hidden = np.hstack((self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))))
            self.u_output = np.dot(self.o_hidden, self.W_hidden_to_output)
            self.o_output = self.transfer_f(self.u_output)

        def backpropagate(self, targets, learning_rate=5.0):
            self.dE_du_output = 2 * (self.o_output - np.array(targets)) * self.transfer_df(self.u_output)
            self.dE_du_hidden = np.dot(self.dE_du_output, self.W_hidden_to_output[:-1].T) * self.transfer_df(self.u_hidden)
            self.W_hidden_to_output -= learning_rate * np.dot(self.o_hidden.T, self.dE_du_output) / len(targets)
            self.W_input_to_hidden -= learning_rate * np.dot(self.input.T, self.dE_du_hidden) / len(targets)

        def feedforward_xe(self, inputs):
            inputs = [x + [1.] for x in inputs]
            self.input = np.array(inputs)
            self.u_hidden = np.dot(self.input, self.W_input_to_hidden)
            self.o_hidden = np.hstack((self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))))
            self.u_output = np.dot(self.o_hidden, self.W_hidden_to_output)
            self.o_output = softmax(self.u_output)

        def backpropagate_xe(self, targets, learning_rate=5.0):
            self.dE_du_output = self.o_output - np.array(targets)
            self.dE_du_hidden = np.dot(self.dE_du_output, self.W_hidden_to_output[:-1].T) * self.transfer_df(self.u_hidden)
            self.W_hidden_to_output -= learning_rate * np.dot(self.o_hidden.T, self.dE_du_output) / len(targets)
            self.W_input_to_hidden -= learning_rate * np.dot(self.input.T, self.dE_du_hidden) / len(targets)
''')

# feedforward and backpropagate sample by sample, the rest as LAB_STYLE.
_LOOP_METHODS = textwrap.indent(textwrap.dedent('''
    def feedforward(self, inputs):
        self.input = np.array([x + [1.] for x in inputs])
        u_hidden, o_hidden, u_output, o_output = [], [], [], []
        for x in self.input:
            u_h = np.dot(x, self.W_input_to_hidden)
            o_h = np.append(self.transfer_f(u_h), 1.)
            u_o = np.dot(o_h, self.W_hidden_to_output)
            u_hidden.append(u_h)
            o_hidden.append(o_h)
            u_output.append(u_o)
            o_output.append(self.transfer_f(u_o))
        self.u_hidden = np.array(u_hidden)
        self.o_hidden = np.array(o_hidden)
        self.u_output = np.array(u_output)
        self.o_output = np.array(o_output)

    def backpropagate(self, targets, learning_rate=5.0):
        grad_wo = np.zeros(self.W_hidden_to_output.shape)
        grad_wi = np.zeros(self.W_input_to_hidden.shape)
        for n in range(len(targets)):
            d_out = 2 * (self.o_output[n] - np.array(targets[n])) * self.transfer_df(self.u_output[n])
            d_hid = np.dot(self.W_hidden_to_output[:-1], d_out) * self.transfer_df(self.u_hidden[n])
            grad_wo += np.outer(self.o_hidden[n], d_out)
            grad_wi += np.outer(self.input[n], d_hid)
        self.W_hidden_to_output -= learning_rate * grad_wo / len(targets)
        self.W_input_to_hidden -= learning_rate * grad_wi / len(targets)
'''), "    ")


def _replace_method(source, method, body):
    start, end = _method_span(source, method)
    return source[:start] + body.strip("\n") + "\n" + source[end:]


def _method_span(source, method):
    """Where ``def method(`` of the class starts and ends (at the next method or the end)."""
    match = re.search(rf"^    def {method}\(", source, re.M)
    assert match, method
    following = re.search(r"^    def \w+\(", source[match.end():], re.M)
    end = match.end() + following.start() if following else len(source)
    return match.start(), end


def _loop_style():
    source = LAB_STYLE
    for method in ("feedforward", "backpropagate"):
        body = _LOOP_METHODS[_method_span(_LOOP_METHODS, method)[0]:
                             _method_span(_LOOP_METHODS, method)[1]]
        source = _replace_method(source, method, body)
    return source


LOOP_STYLE = _loop_style()


def edit(source, method, old, new, count=1):
    """``source`` with ``old`` replaced by ``new`` inside ``method`` (exactly ``count``
    occurrences there, else AssertionError: an edit must hit what it means to)."""
    start, end = _method_span(source, method)
    block = source[start:end]
    assert block.count(old) == count, (method, old, block.count(old))
    return source[:start] + block.replace(old, new) + source[end:]


def student(source=LAB_STYLE, *edits, name="NeuralNetwork"):
    """The class ``name`` of ``source`` after ``edits`` (each ``(method, old, new)`` or
    ``(method, old, new, count)``)."""
    for e in edits:
        source = edit(source, *e)
    namespace = {"__name__": "student_network"}
    exec(compile(source, "NeuralNetwork.py", "exec"), namespace)
    return namespace[name]


def source_with(source=LAB_STYLE, *edits):
    for e in edits:
        source = edit(source, *e)
    return source


# The lab's original train/train_xe: the best weights kept as aliases; backpropagate updates
# them in place (``-=``), so the kept "best" are the last.
ORIGINAL_LAB_EDITS = [
    (m, f"best_{w}_W = self.{full}.copy()", f"best_{w}_W = self.{full}", 2)
    for m in ("train", "train_xe")
    for w, full in (("i2h", "W_input_to_hidden"), ("h2o", "W_hidden_to_output"))
]
ORIGINAL_LAB = source_with(LAB_STYLE, *ORIGINAL_LAB_EDITS)


# ------------------------------------------------------------------------------------------
# the fixtures are what they claim
# ------------------------------------------------------------------------------------------

WI = [[0.3, -0.5], [0.8, 0.2], [0.2, -0.4]]
WO = [[-0.6], [0.4], [0.5]]


@pytest.mark.parametrize("source", [LAB_STYLE, LOOP_STYLE, ORIGINAL_LAB],
                         ids=["lab-style", "loop-style", "original-lab"])
def test_student_fixtures_reproduce_part1(source):
    net = student(source)(2, 2, 1)
    net.weights_init(np.array(WI), np.array(WO))
    net.feedforward([[0.8, 0.2]])
    assert abs(net.o_output[0][0] - 0.5597295991095776) < 1e-12
    net.backpropagate([[0.4]])
    np.testing.assert_allclose(net.W_hidden_to_output,
                               [[-0.8541467506279605], [0.2745727217772572],
                                [0.10637455535192786]], atol=1e-12)
    net.feedforward([[0.8, 0.2]])
    assert abs(net.o_output[0][0] - 0.40648823589210104) < 1e-12


def test_edit_must_hit_exactly():
    with pytest.raises(AssertionError):
        edit(LAB_STYLE, "feedforward", "no such text", "x")
    with pytest.raises(AssertionError):  # in backpropagate, not in feedforward
        edit(LAB_STYLE, "feedforward", "self.transfer_df(self.u_hidden)", "x")

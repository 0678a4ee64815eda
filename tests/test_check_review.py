"""Mistakes an independent review of the checker found undiagnosed, each written once more
by hand into a short notebook-style student (a subclass of mnist_native's NeuralNetwork,
as the lab's students write it): each is diagnosed as itself, at the method holding it."""
import pytest

from mnist_native.checker import check

STUDENT = '''
import numpy as np
from mnist_native import NeuralNetwork


class NeuralNetwork(NeuralNetwork):
    def feedforward(self, inputs):
        self.input = np.array([x + [1.] for x in inputs])
        self.u_hidden = np.dot(self.input, self.W_input_to_hidden)
        self.o_hidden = np.array([list(h) + [1.] for h in self.transfer_f(self.u_hidden)])
        self.u_output = np.dot(self.o_hidden, self.W_hidden_to_output)
        self.o_output = self.transfer_f(self.u_output)

    def backpropagate(self, targets, learning_rate=5.0):
        n = len(targets)
        d_out = 2 * (self.o_output - np.array(targets)) * self.transfer_df(self.u_output)
        d_hid = np.dot(d_out, self.W_hidden_to_output[:-1].T) * self.transfer_df(self.u_hidden)
        self.W_hidden_to_output = self.W_hidden_to_output - learning_rate * np.dot(self.o_hidden.T, d_out) / n
        self.W_input_to_hidden = self.W_input_to_hidden - learning_rate * np.dot(self.input.T, d_hid) / n
'''

W2_STEP = "self.W_hidden_to_output - learning_rate * np.dot(self.o_hidden.T, d_out) / n"
W1_STEP = "self.W_input_to_hidden - learning_rate * np.dot(self.input.T, d_hid) / n"

# mistake -> (the method holding it, the text replaced, its replacement)
MISSES = {
    # W = W - rate * gradient^T broadcasts to a new shape where W is not square: the
    # mistake does the same
    "output_gradient_transposed": ("backpropagate", "np.dot(self.o_hidden.T, d_out)",
                                   "np.dot(d_out.T, self.o_hidden)"),
    "hidden_activation_transposed": ("feedforward", "self.W_input_to_hidden)",
                                     "self.W_input_to_hidden.T)"),
    "output_activation_transposed": ("feedforward", "self.W_hidden_to_output)",
                                     "self.W_hidden_to_output.T)"),
    "input_bias_first": ("feedforward", "[x + [1.] for x in inputs]",
                         "[[1.] + x for x in inputs]"),
    "hidden_bias_first": ("feedforward", "list(h) + [1.]", "[1.] + list(h)"),
    "output_gradient_summed": ("backpropagate", W2_STEP, W2_STEP[:-4]),
    "hidden_gradient_summed": ("backpropagate", W1_STEP, W1_STEP[:-4]),
    "output_learning_rate_sign_flipped": ("backpropagate", W2_STEP,
                                          W2_STEP.replace(" - ", " + ")),
    "hidden_learning_rate_sign_flipped": ("backpropagate", W1_STEP,
                                          W1_STEP.replace(" - ", " + ")),
}


def student(old=None, new=None):
    source = STUDENT
    if old is not None:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    namespace = {"__name__": "student_network"}
    exec(compile(source, "NeuralNetwork.py", "exec"), namespace)
    return namespace["NeuralNetwork"]


def test_the_student_without_mistakes_passes():
    report = check(student())
    assert report.passed, str(report)


@pytest.mark.parametrize("name", list(MISSES))
def test_mistake_is_diagnosed_at_its_method(name):
    method, old, new = MISSES[name]
    report = check(student(old, new))
    failing = {m for m, s in report.methods.items() if s != "passed"}
    # predict is "not checked" when the feedforward it calls raises
    assert failing - {"predict"} == {method}, str(report)
    assert failing <= {method} or report.methods["predict"] == "not checked"
    assert report.diagnoses == [name], str(report)

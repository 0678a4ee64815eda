"""The NumPy reference: the lab's network in plain, batch-vectorised NumPy.

Each method is the equation it implements; the native kernels are tested against it.  Same API
as ``mnist_native.NeuralNetwork`` (constructor, attributes, methods, training loop).

Notation, for a batch of B samples: X (B, n_in + 1) the inputs with a 1 appended (the bias
input); W1 (n_in + 1, n_hidden), W2 (n_hidden + 1, n_out), bias weights in the last rows.

    u_hidden = X W1              o_hidden = [f(u_hidden), 1]
    u_output = o_hidden W2       o_output = f(u_output)   (softmax for the _xe pair)

MSE, L = ||o - y||^2 per sample:       delta_out = 2 (o - y) f'(u_output)
cross-entropy, L = -sum y log o:       delta_out = o - y   (softmax's Jacobian cancels the log)
both:                                  delta_hidden = (delta_out W2[:-1]^T) f'(u_hidden)
and each weight matrix moves by -learning_rate * (its gradient summed over the batch) / B:
    W2 -= lr * o_hidden^T delta_out / B      W1 -= lr * X^T delta_hidden / B
"""
import numpy as np

from ._base import LabNetwork
from .transfer_functions import softmax


class NeuralNetwork(LabNetwork):
    """The lab's one-hidden-layer network in NumPy (see the module docstring for the maths)."""

    def feedforward(self, inputs):
        """Forward pass with ``transfer_f`` at both layers; sets input, u_/o_hidden, u_/o_output."""
        self._forward_hidden(inputs)
        self.o_output = self.transfer_f(self.u_output)

    def feedforward_xe(self, inputs):
        """Forward pass with a softmax output layer."""
        self._forward_hidden(inputs)
        self.o_output = softmax(self.u_output)

    def _forward_hidden(self, inputs):
        w1, w2 = self._weights()
        x = self._inputs(inputs)
        ones = np.ones((len(x), 1), dtype=self.dtype)
        self.input = np.hstack([x, ones])
        self.u_hidden = self.input @ w1
        self.o_hidden = np.hstack([self.transfer_f(self.u_hidden).astype(self.dtype), ones])
        self.u_output = self.o_hidden @ w2

    def backpropagate(self, targets, learning_rate=5.0):
        """One gradient step on the mean MSE of the last ``feedforward``."""
        y, learning_rate = self._backprop_args(targets, learning_rate)
        delta_out = 2 * (self.o_output - y) * self.transfer_df(self.u_output)
        self._step(delta_out, learning_rate)

    def backpropagate_xe(self, targets, learning_rate=5.0):
        """One gradient step on the mean cross-entropy of the last ``feedforward_xe``."""
        y, learning_rate = self._backprop_args(targets, learning_rate, cross_entropy=True)
        self._step(self.o_output - y, learning_rate)

    def _step(self, delta_out, learning_rate):
        w1, w2 = self._weights()
        batch = len(delta_out)
        delta_hidden = (delta_out @ w2[:-1].T) * self.transfer_df(self.u_hidden)
        w2 -= (learning_rate * (self.o_hidden.T @ delta_out) / batch).astype(self.dtype)
        w1 -= (learning_rate * (self.input.T @ delta_hidden) / batch).astype(self.dtype)

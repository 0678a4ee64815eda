"""The lab's computation split into the steps a student writes, so that each mistake of the
catalogue can change exactly one of them.

``LabSteps`` computes what ``mnist_native.reference.NeuralNetwork`` computes (the tests hold
them equal); ``TrainLoop`` is the bookkeeping of the lab's ``train`` (which weights it keeps),
played on a model of the weights that only counts gradient steps.  A mistake is a subclass
that overrides one step (see ``catalogue.py``).
"""
import numpy as np

from ..transfer_functions import dsigmoid, sigmoid

#: The attributes ``feedforward`` sets, in the order the lab computes them.
FORWARD_QUANTITIES = ("input", "u_hidden", "o_hidden", "u_output", "o_output")


def with_bias(a):
    """``a`` with a column of 1s appended: the bias unit, LAST, as the lab has it."""
    return np.hstack([a, np.ones((len(a), 1))])


class LabSteps:
    """The lab's forward and backward passes, batch-vectorised, one method per step.

    Notation as in ``mnist_native.reference``: X the inputs with the bias 1 appended, W1
    (n_in + 1, n_hidden) and W2 (n_hidden + 1, n_out) with the bias weights in the last row.
    Products are ``np.dot``, as the lab writes them, so that a mistake that cannot run
    fails with the same error a student's code gets.
    """

    transfer_f = staticmethod(sigmoid)
    transfer_df = staticmethod(dsigmoid)

    # -- forward: u_hidden = X W1, o_hidden = [f(u_hidden), 1], u_output = o_hidden W2 --------

    def feedforward(self, x, w1, w2, cross_entropy=False):
        """The five attributes ``feedforward`` (or ``feedforward_xe``) sets, as a dict."""
        inputs = self.input_with_bias(x)
        u_hidden = self.hidden_activation(inputs, w1)
        o_hidden = self.hidden_output(u_hidden)
        u_output = self.output_activation(o_hidden, w2)
        o_output = self.output_softmax(u_output) if cross_entropy else self.output(u_output)
        return dict(input=inputs, u_hidden=u_hidden, o_hidden=o_hidden, u_output=u_output,
                    o_output=o_output)

    def input_with_bias(self, x):
        return with_bias(x)

    def hidden_activation(self, inputs, w1):
        return np.dot(inputs, w1)

    def hidden_output(self, u_hidden):
        return with_bias(self.transfer_f(u_hidden))

    def output_activation(self, o_hidden, w2):
        return np.dot(o_hidden, w2)

    def output(self, u_output):
        return self.transfer_f(u_output)

    def output_softmax(self, u_output):
        e = np.exp(u_output - self.softmax_shift(u_output))
        return e / self.softmax_total(e)

    def softmax_shift(self, u_output):
        """Each row's maximum, subtracted before exp: same result, no overflow."""
        return u_output.max(axis=1, keepdims=True)

    def softmax_total(self, e):
        """Each row (sample) is divided by its own sum."""
        return e.sum(axis=1, keepdims=True)

    # -- backward, from the forward pass ``fw`` (the dict above) ------------------------------

    def backpropagate(self, fw, y, learning_rate, w1, w2, cross_entropy=False):
        """The weights after one step: ``(new W1, new W2)``; the given ones are not changed."""
        if cross_entropy:
            delta_output = self.delta_output_xe(fw, y)
        else:
            delta_output = self.delta_output(fw, y)
        new_w2 = self.update_output_layer(w2, self.output_layer_gradient(fw, delta_output),
                                          learning_rate)
        delta_hidden = self.delta_hidden(fw, delta_output,
                                         self.w2_for_hidden_delta(w2, new_w2))
        new_w1 = self.update_hidden_layer(w1, self.hidden_layer_gradient(fw, delta_hidden),
                                          learning_rate)
        return new_w1, new_w2

    #: d||o - y||^2 / do = 2 (o - y)
    mse_factor = 2.0

    def delta_output(self, fw, y):
        """MSE: dL/du_output = 2 (o - y) f'(u_output)."""
        return self.mse_factor * (fw["o_output"] - y) * self.output_derivative(fw)

    def delta_output_xe(self, fw, y):
        """Softmax + cross-entropy: dL/du_output = o - y."""
        return fw["o_output"] - y

    def output_derivative(self, fw):
        return self.transfer_df(fw["u_output"])

    def hidden_derivative(self, fw):
        return self.transfer_df(fw["u_hidden"])

    def w2_for_hidden_delta(self, w2, new_w2):
        """The hidden delta goes back through the weights as they were before the step."""
        return w2

    def delta_hidden(self, fw, delta_output, w2):
        """dL/du_hidden = (dL/du_output W2[:-1]^T) f'(u_hidden)."""
        return self.back_through_w2(delta_output, w2) * self.hidden_derivative(fw)

    def back_through_w2(self, delta_output, w2):
        """The output delta sent back through the hidden units' rows of W2 (not the bias row)."""
        return np.dot(delta_output, w2[:-1].T)

    def output_layer_gradient(self, fw, delta_output):
        return self.batch_mean(np.dot(fw["o_hidden"].T, delta_output), len(delta_output))

    def hidden_layer_gradient(self, fw, delta_hidden):
        return self.batch_mean(np.dot(fw["input"].T, delta_hidden), len(delta_hidden))

    def batch_mean(self, summed, batch):
        """The gradient is the per-sample gradients summed over the batch, divided by it."""
        return summed / batch

    def update_output_layer(self, w2, gradient, learning_rate):
        return self.update(w2, gradient, learning_rate)

    def update_hidden_layer(self, w1, gradient, learning_rate):
        return self.update(w1, gradient, learning_rate)

    def update(self, w, gradient, learning_rate):
        """Gradient DEscent: every row, bias row included, moves by -learning_rate * gradient."""
        return w - learning_rate * gradient


class Weights:
    """A weight matrix reduced to what ``train``'s bookkeeping can tell apart: how many
    gradient steps it has had.  Shared (aliased) or copied exactly as an array would be."""

    def __init__(self, steps):
        self.steps = steps


class TrainLoop:
    """The lab's ``train`` bookkeeping, played on step-counting weights.

    ``run`` gives the step counts of (W1, W2) that ``train`` leaves in the model, and the
    accuracies it records per iteration, for accuracy tables ``train_accuracy[k]`` /
    ``validation_accuracy[k]`` (in %) of the weights after ``k`` steps.  ``in_place`` says
    how ``backpropagate`` moves the weights: in place (``W -= ...``, the same array) or by
    rebinding (``W = W - ...``, a new array); a kept alias only shows with the former.
    """

    def run(self, train_accuracy, validation_accuracy, iterations, in_place):
        model = {"W1": Weights(0), "W2": Weights(0)}

        def measure():  # past the tables' end (too many steps), accuracy 0
            k = model["W1"].steps
            return tuple(table[k] if k < len(table) else 0.0
                         for table in (train_accuracy, validation_accuracy))

        best_score = self.score(measure())
        kept = self.keep(model)
        recorded = []
        for _ in range(iterations):
            before = measure()
            self.step(model, in_place)
            measured = self.recorded(before, measure())
            recorded.append(measured)
            if self.score(measured) > best_score:
                best_score = self.new_best(best_score, self.score(measured))
                kept = self.keep(model)
        self.restore(model, kept)
        return (model["W1"].steps, model["W2"].steps), recorded

    @staticmethod
    def step(model, in_place):
        for name in ("W1", "W2"):
            if in_place:
                model[name].steps += 1
            else:
                model[name] = Weights(model[name].steps + 1)

    def score(self, measured):
        """What "best" means: the validation accuracy."""
        return measured[1]

    def recorded(self, before, after):
        """The accuracies of an iteration are those of the weights after its step."""
        return after

    def new_best(self, best_score, score):
        return score

    def keep(self, model):
        """The best weights are kept as copies."""
        return {name: Weights(w.steps) for name, w in model.items()}

    def restore(self, model, kept):
        """At the end the kept weights are put back, both matrices."""
        for name in ("W1", "W2"):
            model[name] = Weights(kept[name].steps)

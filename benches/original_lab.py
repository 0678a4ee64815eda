"""The lab's ORIGINAL pure-Python/NumPy ``NeuralNetwork``: the slow baseline for benchmarks.

This is a re-implementation of the list-based network that students of "Artificial Neural
Networks for Handwritten Digits Recognition" have (``NeuralNetwork.py`` +
``transfer_functions.py``, with ``feedforward`` / ``backpropagate`` completed the way the lab
asks), interface as in ``LAB_SPEC.md``.  It exists only so benchmarks can compare mnist_native
with what students actually ran.  It is slow ON PURPOSE, and the slowness must not be optimised
away, because it is what mnist_native is measured against:

* It takes Python lists.  Every ``feedforward`` call rebuilds the whole batch as lists
  (``inputs = [x + [1.] for x in inputs]``, one list concatenation per sample, to append the
  bias input) and converts those lists to a float64 array with ``np.array`` -- for 1,000 MNIST
  samples that is 785,000 Python floats, every call.
* ``train`` / ``train_xe`` run THREE forward passes per iteration: ``feedforward`` on the
  training data followed by ``backpropagate``, then ``predict(data)`` and
  ``predict(validation_data)``, each of which calls ``feedforward`` again (with the list
  conversion again).  One more ``predict`` on the validation data runs before the loop.
* ``dsigmoid`` takes the activation u and evaluates ``sigmoid`` twice, as the lab's does.

Deliberate differences from the students' file, none of which changes the cost profile:

* Plotting is OFF by default (``plot=False``); matplotlib is imported only if ``plot=True``.
* The best-validation bookkeeping works: the best accuracy is updated as it improves and both
  ``train`` and ``train_xe`` put the best weights back at the end.  (Weight updates build new
  arrays rather than updating in place, so the kept references stay valid and weight arrays
  given to ``weights_init`` are never modified.)
* ``seed=`` (keyword-only) makes the initialisation reproducible through a private
  ``np.random.RandomState``; without it the global ``np.random`` functions are used, as in
  the lab.
* Per-iteration histories are kept on the model (``training_accuracies``,
  ``validation_accuracies``, ``errors`` (MSE), ``cross_entropies`` for ``train_xe``) and the
  wall time in ``training_time``.
* ``softmax`` subtracts the row maximum before ``exp`` (same values, no overflow).
* ``feedforward`` refuses an ndarray with a TypeError: the original's ``x + [1.]`` would
  silently broadcast-add 1 to every pixel of an array row.  Pass lists (``a.tolist()``).
"""
import time

import numpy as np

__all__ = ["NeuralNetwork", "sigmoid", "dsigmoid", "tanh", "dtanh", "softmax"]


# --------------------------------------------------------------------------------------
# transfer_functions.py
# --------------------------------------------------------------------------------------

def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x))."""
    return 1 / (1 + np.exp(-x))


def dsigmoid(x):
    """Derivative of the sigmoid, taking the ACTIVATION x (not the output)."""
    return sigmoid(x) * (1.0 - sigmoid(x))


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def dtanh(x):
    """Derivative of tanh, taking the activation x."""
    return 1.0 - np.tanh(x) ** 2


def softmax(x):
    """Row-wise softmax of a 2-D array (each row sums to 1)."""
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


# --------------------------------------------------------------------------------------
# utils.plot_train_val (only used with plot=True)
# --------------------------------------------------------------------------------------

def _plot_train_val(x, train_values, validation_values, label):
    import matplotlib.pyplot as plt  # lazy: benchmarks never import matplotlib

    plt.plot(x, train_values, label="Training")
    plt.plot(x, validation_values, label="Validation")
    plt.xlabel("Iteration")
    plt.ylabel(label)
    plt.legend()
    plt.show()


# --------------------------------------------------------------------------------------
# NeuralNetwork.py
# --------------------------------------------------------------------------------------

class NeuralNetwork(object):
    """One-hidden-layer network, list-based, exactly as the lab's students have it.

    Sizes stored WITH the bias units: ``input_layer_size == n_in + 1``,
    ``hidden_layer_size == n_hidden + 1``, ``output_layer_size == n_out``.  Bias weights are
    the last row of each weight matrix; the bias input is a 1 appended as the last column.
    """

    def __init__(self, input_layer_size, hidden_layer_size, output_layer_size,
                 transfer_f=sigmoid, transfer_df=dsigmoid, *, seed=None):
        self.transfer_f = transfer_f
        self.transfer_df = transfer_df

        # +1 for the bias node in the input and in the hidden layer
        self.input_layer_size = input_layer_size + 1
        self.hidden_layer_size = hidden_layer_size + 1
        self.output_layer_size = output_layer_size

        # The global np.random functions, as in the lab, unless a seed is asked for.
        self._random = np.random if seed is None else np.random.RandomState(seed)

        # activations, outputs and partial derivatives (one-sample placeholders)
        self.u_hidden = np.zeros((1, self.hidden_layer_size - 1))
        self.u_output = np.zeros((1, self.output_layer_size))
        self.input = np.ones((1, self.input_layer_size))
        self.o_hidden = np.ones((1, self.hidden_layer_size))
        self.o_output = np.ones((1, self.output_layer_size))
        self.dE_du_hidden = np.zeros((1, self.hidden_layer_size - 1))
        self.dE_du_output = np.zeros((1, self.output_layer_size))

        self.training_accuracies = []
        self.validation_accuracies = []
        self.errors = []
        self.cross_entropies = []
        self.training_time = None

        self.weights_init()

    def weights_init(self, wi=None, wo=None):
        """Set the given weight matrices, or draw new random ones (LeCun 1988 scaling).

        W_input_to_hidden: (n_in + 1, n_hidden) ~ normal(0, 1/sqrt(n_in + 1)).
        W_hidden_to_output: (n_hidden + 1, n_out) ~ uniform(0, 1) / sqrt(n_hidden + 1).
        """
        if wi is not None:
            self.W_input_to_hidden = wi
        else:
            scale = 1.0 / self.input_layer_size ** (1 / 2)
            self.W_input_to_hidden = self._random.normal(
                loc=0, scale=scale, size=(self.input_layer_size, self.hidden_layer_size - 1))
        if wo is not None:
            self.W_hidden_to_output = wo
        else:
            self.W_hidden_to_output = self._random.uniform(
                size=(self.hidden_layer_size, self.output_layer_size)) / np.sqrt(self.hidden_layer_size)

    # ---------------------------------------------------------------- forward passes

    def _forward_to_hidden(self, inputs):
        if isinstance(inputs, np.ndarray):
            raise TypeError("original_lab.NeuralNetwork takes Python lists of samples, as the lab "
                            "does; convert arrays with .tolist()")
        # list concatenation, sample by sample, then list -> array: the lab's cost
        inputs = [x + [1.] for x in inputs]
        self.input = np.array(inputs)
        self.u_hidden = self.input.dot(self.W_input_to_hidden)
        self.o_hidden = np.hstack((self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))))
        self.u_output = self.o_hidden.dot(self.W_hidden_to_output)

    def feedforward(self, inputs):
        """Forward pass on a LIST of samples (each a list of n_in floats); output transfer_f."""
        self._forward_to_hidden(inputs)
        self.o_output = self.transfer_f(self.u_output)

    def feedforward_xe(self, inputs):
        """Forward pass with a softmax output layer (for the cross-entropy loss)."""
        self._forward_to_hidden(inputs)
        self.o_output = softmax(self.u_output)

    # ---------------------------------------------------------------- backward passes

    def _update_weights(self, learning_rate, batch):
        # dE/du_hidden uses the weights BEFORE this update; drop the bias row (the hidden
        # bias unit has no incoming weights).
        self.dE_du_hidden = (self.dE_du_output.dot(self.W_hidden_to_output[:-1].T)
                             * self.transfer_df(self.u_hidden))
        self.W_hidden_to_output = (self.W_hidden_to_output
                                   - learning_rate * self.o_hidden.T.dot(self.dE_du_output) / batch)
        self.W_input_to_hidden = (self.W_input_to_hidden
                                  - learning_rate * self.input.T.dot(self.dE_du_hidden) / batch)

    def backpropagate(self, targets, learning_rate=5.0):
        """One gradient step on L = ||o - y||^2 averaged over the batch of the last feedforward."""
        self.dE_du_output = 2 * (self.o_output - np.array(targets)) * self.transfer_df(self.u_output)
        self._update_weights(learning_rate, len(targets))

    def backpropagate_xe(self, targets, learning_rate=5.0):
        """One gradient step on L = -sum t log o (softmax output): dL/du_output = o - t."""
        self.dE_du_output = self.o_output - np.array(targets)
        self._update_weights(learning_rate, len(targets))

    # ---------------------------------------------------------------- training / evaluation

    def train(self, data, validation_data, iterations=50, learning_rate=5.0, verbose=False,
              plot=False):
        """Full-batch gradient descent on the MSE loss (see module docstring for the costs)."""
        self._train(self.feedforward, self.backpropagate, False, data, validation_data,
                    iterations, learning_rate, verbose, plot)

    def train_xe(self, data, validation_data, iterations=50, learning_rate=5.0, verbose=False,
                 plot=False):
        """Full-batch gradient descent on the cross-entropy loss with a softmax output."""
        self._train(self.feedforward_xe, self.backpropagate_xe, True, data, validation_data,
                    iterations, learning_rate, verbose, plot)

    def _train(self, forward, backward, xe, data, validation_data, iterations, learning_rate,
               verbose, plot):
        start_time = time.time()
        training_accuracies = []
        validation_accuracies = []
        errors = []
        cross_entropies = []
        inputs, targets = data[0], data[1]

        best_val_acc = 100 * self.predict(validation_data) / len(validation_data[0])
        best_i2h_W = self.W_input_to_hidden
        best_h2o_W = self.W_hidden_to_output
        for it in range(iterations):
            forward(inputs)                                   # forward pass 1
            backward(targets, learning_rate=learning_rate)
            error = targets - self.o_output
            error *= error
            errors.append(float(np.sum(error) / len(targets)))
            if xe:
                cross_entropies.append(
                    float(np.sum(targets * np.log(self.o_output) * (-1)) / len(targets)))
            training_accuracies.append(100 * self.predict(data) / len(data[0]))       # pass 2
            validation_accuracies.append(
                100 * self.predict(validation_data) / len(validation_data[0]))         # pass 3
            if validation_accuracies[-1] > best_val_acc:
                best_val_acc = validation_accuracies[-1]
                best_i2h_W = self.W_input_to_hidden
                best_h2o_W = self.W_hidden_to_output
            if verbose:
                print("[Iteration %2d/%2d]  -Training_Accuracy:  %2.2f %%  -Validation_Accuracy: "
                      "%2.2f %%  -time: %2.2f " % (it + 1, iterations, training_accuracies[-1],
                                                   validation_accuracies[-1],
                                                   time.time() - start_time))
                print("    - MSE:", errors[-1])
                if xe:
                    print("    - X-Entropy:", cross_entropies[-1])
        self.training_time = time.time() - start_time
        print("Training time:", self.training_time)
        self.W_input_to_hidden = best_i2h_W
        self.W_hidden_to_output = best_h2o_W
        self.training_accuracies = training_accuracies
        self.validation_accuracies = validation_accuracies
        self.errors = errors
        self.cross_entropies = cross_entropies
        if plot:
            _plot_train_val(range(1, iterations + 1), training_accuracies, validation_accuracies,
                            "Accuracy")

    def predict(self, test_data):
        """Number (int) of samples of (inputs, one-hot targets) whose argmax output is right."""
        self.feedforward(test_data[0])
        answer = np.argmax(test_data[1], axis=1)
        prediction = np.argmax(self.o_output, axis=1)
        return int(len(test_data[0]) - np.count_nonzero(answer - prediction))

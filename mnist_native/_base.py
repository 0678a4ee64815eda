"""What the native network and the NumPy reference share: the lab's constructor, weights,
training loop and ``predict``.  Subclasses supply ``feedforward``/``backpropagate`` (and the
``_xe`` pair); the loop here only ever calls them through ``self``, so a student's override is
what runs.
"""
import time
import warnings

import numpy as np

from . import _model_file as model_file
from . import _validation as v
from .history import TrainingHistory
from .plotting import plot_learning_curves, show_without_blocking
from .transfer_functions import dsigmoid, sigmoid

LOSS_NAMES = {False: "mse", True: "cross-entropy"}


def mean_loss(outputs, targets, cross_entropy, logits=None):
    """Mean per-sample loss: ||o - y||^2 (MSE) or -sum y log o (cross-entropy).

    For cross-entropy, log o is taken as the log-softmax of ``logits`` (u_output) when given:
    exact even where o has underflowed to 0, and what the native kernels compute.  Without
    logits, o is clipped away from 0 (a large finite loss, never inf or NaN).
    """
    targets = np.asarray(targets, dtype=np.float64)
    if cross_entropy:
        if logits is not None:
            u = np.asarray(logits, dtype=np.float64)
            shifted = u - u.max(axis=1, keepdims=True)
            log_o = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        else:
            tiny = np.finfo(np.float64).tiny
            log_o = np.log(np.clip(np.asarray(outputs, dtype=np.float64), tiny, None))
        return float(-np.sum(targets * log_o) / len(targets))
    outputs = np.asarray(outputs, dtype=np.float64)
    return float(np.sum((outputs - targets) ** 2) / len(outputs))


def percent_correct(outputs, labels):
    """% of rows whose argmax equals ``labels``."""
    return 100.0 * np.count_nonzero(np.argmax(outputs, axis=1) == labels) / len(labels)


def outputs_of(model, n, method):
    """``model.o_output`` once ``method`` (the name of a forward pass, maybe a student's
    own) has run on ``n`` samples: checked to be one row of numbers per sample."""
    out = getattr(model, "o_output", None)
    if out is None:
        raise AttributeError(f"{method} did not set self.o_output: the lab's forward pass "
                             "leaves the network's outputs there")
    out = np.asarray(out)
    if out.dtype.kind not in "fiub" or out.shape != (n, model.output_layer_size):
        raise ValueError(f"after {method} on {n} samples, self.o_output has shape "
                         f"{out.shape} ({out.dtype}); expected ({n}, "
                         f"{model.output_layer_size}) numbers: one row of outputs a sample")
    return out


class LabNetwork:
    """One-hidden-layer network with the lab's interface (see ``mnist_native.NeuralNetwork``)."""

    num_threads = 1  # for the input checks; NeuralNetwork sets its own

    def __init__(self, input_layer_size, hidden_layer_size, output_layer_size,
                 transfer_f=sigmoid, transfer_df=dsigmoid, *, dtype=np.float64, seed=None):
        n_in = v.check_positive_int(input_layer_size, "input_layer_size")
        n_hidden = v.check_positive_int(hidden_layer_size, "hidden_layer_size")
        n_out = v.check_positive_int(output_layer_size, "output_layer_size")
        if not callable(transfer_f) or not callable(transfer_df):
            raise TypeError("transfer_f and transfer_df must be callables, e.g. sigmoid and dsigmoid")
        # The lab counts the bias units in the stored sizes.
        self.input_layer_size = n_in + 1
        self.hidden_layer_size = n_hidden + 1
        self.output_layer_size = n_out
        self.transfer_f = transfer_f
        self.transfer_df = transfer_df
        self.dtype = v.check_dtype(dtype)
        weights = (n_in + 1) * n_hidden + (n_hidden + 1) * n_out
        v.check_fits_in_memory(weights * self.dtype.itemsize, f"a {n_in}-{n_hidden}-{n_out} network")
        try:
            self.rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:  # NumPy's message does not name the argument
            raise type(exc)(f"seed must be None, a non-negative int or a numpy Generator, "
                            f"got {seed!r} ({exc})") from exc
        self.loss_kind = None  # "mse" or "cross-entropy" once trained
        self.weights_init()

    # -- weights -------------------------------------------------------------------------

    @property
    def _w1_shape(self):
        return (self.input_layer_size, self.hidden_layer_size - 1)

    @property
    def _w2_shape(self):
        return (self.hidden_layer_size, self.output_layer_size)

    def weights_init(self, wi=None, wo=None):
        """Set the given weight matrices (copied), or draw new random ones.

        ``W_input_to_hidden`` ~ normal(0, 1/sqrt(n_in + 1)), shape (n_in + 1, n_hidden);
        ``W_hidden_to_output`` ~ uniform(0, 1)/sqrt(n_hidden + 1), shape (n_hidden + 1, n_out).
        Bias weights are the last row of each.
        """
        # Check both before setting either, so a bad call leaves the model unchanged.
        if wi is not None:
            wi = v.as_weight(wi, "wi (W_input_to_hidden)", self._w1_shape, self.dtype)
        if wo is not None:
            wo = v.as_weight(wo, "wo (W_hidden_to_output)", self._w2_shape, self.dtype)
        if wi is None:
            scale = 1.0 / np.sqrt(self.input_layer_size)
            wi = self.rng.normal(0.0, scale, size=self._w1_shape).astype(self.dtype)
        if wo is None:
            wo = (self.rng.uniform(0.0, 1.0, size=self._w2_shape)
                  / np.sqrt(self.hidden_layer_size)).astype(self.dtype)
        self.W_input_to_hidden = wi
        self.W_hidden_to_output = wo

    def _weights(self):
        """Both weight matrices as writable C-contiguous arrays of the model's dtype.

        Students assign these attributes directly (lists, other dtypes): such a value is
        converted once and stored back, so in-place updates then hit the stored array.
        """
        for name, shape in (("W_input_to_hidden", self._w1_shape),
                            ("W_hidden_to_output", self._w2_shape)):
            w = getattr(self, name)
            if not (isinstance(w, np.ndarray) and w.dtype == self.dtype and w.shape == shape
                    and w.flags.c_contiguous and w.flags.writeable):
                setattr(self, name, v.as_weight(w, name, shape, self.dtype))
            elif not np.isfinite(w).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        return self.W_input_to_hidden, self.W_hidden_to_output

    def _copy_weights(self):
        w1, w2 = self._weights()
        return w1.copy(), w2.copy()

    def _set_weights(self, weights):
        """Put ``weights`` (w1, w2) in place: into the current arrays where they can hold
        them, NaN in them or not (what refers to them sees the change), else as new ones."""
        for (name, shape), value in zip((("W_input_to_hidden", self._w1_shape),
                                         ("W_hidden_to_output", self._w2_shape)), weights):
            w = getattr(self, name, None)
            if (isinstance(w, np.ndarray) and w.dtype == self.dtype and w.shape == shape
                    and w.flags.writeable):
                np.copyto(w, value)
            else:
                setattr(self, name, np.array(value, dtype=self.dtype, order="C"))

    # -- files -------------------------------------------------------------------------

    FORMAT_VERSION = model_file.FORMAT_VERSION

    def save(self, path):
        """Write the model to ``path`` (``.npz``, no pickle): weights, sizes, dtype, the loss
        it was last trained with and its transfer functions' names."""
        model_file.write(path, model_file.network_fields(self))

    @classmethod
    def load(cls, path, **kwargs):
        """A model read from a file written by ``save``; ``kwargs`` go to the constructor
        (``num_threads``, ``seed``...).

        Nothing in the file is run or trusted: every array's header is checked (dtype,
        shape, size against the bytes the file really holds) before its data is read, and a
        file that ``save`` could not have written (truncated, not a zip, unknown format
        version, loss or transfer names, weights that are not float32/float64 or do not
        make one network) raises ``ValueError``; one that cannot be opened, ``OSError``.
        """
        return cls._from_network_file(model_file.read_network(path), **kwargs)

    @classmethod
    def _from_network_file(cls, contents, **kwargs):
        """A model from ``model_file.read_network``'s checked contents."""
        kwargs.setdefault("dtype", contents["dtype"])
        model = cls(*contents["sizes"], *model_file.TRANSFER_PAIRS[contents["transfer"]],
                    **kwargs)
        model.weights_init(*contents["weights"])
        model.loss_kind = contents["loss"]
        return model

    # -- pickling ------------------------------------------------------------------------

    def __getstate__(self):
        """Everything but the scratch of the last forward pass (the lab's attributes
        ``input``... stay), tagged with this package's version."""
        from . import __version__

        state = dict(self.__dict__)
        state.pop("_last", None)
        state["_mnist_native_version"] = __version__
        return state

    def __setstate__(self, state):
        from . import __version__

        state = dict(state)
        saved = state.pop("_mnist_native_version", None)
        if saved != __version__:
            warnings.warn(f"unpickling a {type(self).__name__} pickled by mnist_native "
                          f"{saved}, into version {__version__}: pickles are meant for "
                          "copies within one version; share models with save()/load()",
                          UserWarning, stacklevel=2)
        self.__dict__.update(state)

    # -- evaluation ----------------------------------------------------------------------

    def _inputs(self, inputs, name="inputs"):
        return v.as_matrix(inputs, name, self.input_layer_size - 1, self.dtype,
                           self.num_threads)

    def _targets(self, targets, name="targets"):
        return v.as_matrix(targets, name, self.output_layer_size, self.dtype,
                           self.num_threads)

    def _backprop_args(self, targets, learning_rate, cross_entropy=False):
        """``targets``, checked against the outputs of the last forward pass they must match
        (and, for cross-entropy, to be distributions), and the learning rate, checked."""
        learning_rate = v.check_learning_rate(learning_rate)
        if getattr(self, "o_output", None) is None:
            raise ValueError("backpropagate needs a forward pass first: call "
                             "feedforward(inputs) (feedforward_xe for backpropagate_xe)")
        y = self._targets(targets)
        if cross_entropy:
            v.check_distribution(y, "targets")
        if len(y) != len(self.o_output):
            raise ValueError(f"targets has {len(y)} samples but the last forward pass had "
                             f"{len(self.o_output)}")
        return y, learning_rate

    def predict(self, test_data):
        """Number (an int) of samples of ``test_data = (inputs, one-hot targets)`` whose argmax
        output equals the argmax of their target.  Runs ``self.feedforward``."""
        inputs, targets = v.check_pair(test_data, "test_data")
        labels = np.argmax(v.check_one_hot(self._targets(targets, "test_data targets"),
                                           "test_data targets"), axis=1)
        self.feedforward(inputs)
        out = outputs_of(self, len(labels), "feedforward")
        return int(np.count_nonzero(np.argmax(out, axis=1) == labels))

    # -- training ------------------------------------------------------------------------

    def train(self, data, validation_data, iterations=50, learning_rate=5.0, verbose=False,
              *, plot=True, batch_size=None, shuffle=True, callback=None):
        """Gradient descent on the MSE loss, as in the lab.

        Full batch (``batch_size=None``, the lab's behaviour): each iteration runs
        ``feedforward`` on all of ``data = (inputs, one-hot targets)`` and one
        ``backpropagate``, then measures training and validation accuracy.  With a
        ``batch_size``, an iteration is one epoch of mini-batch steps over ``data``, in an
        order drawn from the model's seed when ``shuffle``.  ``learning_rate`` is a number,
        or a schedule of one rate per iteration: a sequence, 1-D array or iterator
        (``[0.8] * 5 + [0.3] * 5``).  The weights with the best validation accuracy (the
        starting ones included) are kept at the end.  Prints ``Training time: <seconds>``;
        plots the learning curves when ``plot`` (never blocking).  ``callback(history)``,
        if given, is called after every iteration.  Called again, training continues from
        the current weights.

        Interrupting (Ctrl-C, or a notebook's "interrupt kernel") is seen within about a
        second: the best weights so far are put in place, ``self.history`` holds the history
        up to that point (``interrupted`` set), and ``KeyboardInterrupt`` is re-raised.

        Returns
        -------
        TrainingHistory
        """
        return self._train(data, validation_data, iterations, learning_rate, verbose, plot,
                           batch_size, shuffle, callback, cross_entropy=False)

    def train_xe(self, data, validation_data, iterations=50, learning_rate=5.0, verbose=False,
                 *, plot=True, batch_size=None, shuffle=True, callback=None):
        """``train`` with a softmax output and the cross-entropy loss
        (``feedforward_xe``/``backpropagate_xe``)."""
        return self._train(data, validation_data, iterations, learning_rate, verbose, plot,
                           batch_size, shuffle, callback, cross_entropy=True)

    def _train(self, data, validation_data, iterations, learning_rate, verbose, plot,
               batch_size, shuffle, callback, cross_entropy):
        iterations = v.check_iterations(iterations)
        inputs, targets = v.check_pair(data, "data")
        val_inputs, val_targets = v.check_pair(validation_data, "validation_data")
        if batch_size is not None:
            batch_size = min(v.check_positive_int(batch_size, "batch_size"), len(inputs))
        # Everything is checked before any weight moves; a schedule given as an iterator is
        # read last, so bad data leaves it unread.
        data_arrays = (self._inputs(inputs, "data inputs"),
                       v.check_one_hot(self._targets(targets, "data targets"), "data targets"))
        val_arrays = (self._inputs(val_inputs, "validation_data inputs"),
                      v.check_one_hot(self._targets(val_targets, "validation_data targets"),
                                      "validation_data targets"))
        self._weights()
        rates = v.check_learning_rates(learning_rate, iterations)  # a float, or a list

        history = TrainingHistory(LOSS_NAMES[cross_entropy], 0.0)
        self.history = history  # reachable even if training is interrupted
        self.loss_kind = LOSS_NAMES[cross_entropy]
        start = time.perf_counter()
        # The trainer steps at trainer.learning_rate, which the loop sets per iteration.
        first = rates if isinstance(rates, float) else rates[0] if rates else None
        trainer = self._trainer((inputs, targets), (val_inputs, val_targets), data_arrays,
                                val_arrays, first, cross_entropy, batch_size)
        self._train_loop(trainer, history, start, iterations, rates, batch_size, shuffle,
                         verbose, callback)
        print("Training time:", time.perf_counter() - start)
        if plot and history.iterations:
            title = f"Training and validation accuracies ({history.loss_name})"
            show_without_blocking(plot_learning_curves(history, title))
        return history

    def _trainer(self, data, validation_data, data_arrays, val_arrays, learning_rate,
                 cross_entropy, batch_size):
        """What runs the training steps: here, ``self``'s methods (the native class swaps in
        fused kernels when they are its own)."""
        return MethodTrainer(self, data, validation_data, data_arrays, val_arrays,
                             learning_rate, cross_entropy)

    def _train_loop(self, trainer, history, start, iterations, rates, batch_size, shuffle,
                    verbose, callback):
        """Run ``iterations`` iterations (epochs, with a batch size), keeping the best
        weights; ``rates``: the learning rate of every iteration, or a list of one each.

        Full batch: one training forward pass per iteration; the pass that measures the
        weights after iteration t also computes the gradient of iteration t + 1 (and one pass
        measures the starting weights).
        """
        best = [None]

        def record(train, val_acc):
            """Add one iteration, keeping its weights when they are the best so far."""
            if history.add(train[0], train[1], val_acc, time.perf_counter() - start):
                best[0] = trainer.snapshot()
            if verbose:
                print(f"[Iteration {history.iterations:3d}/{iterations}]  "
                      f"Training accuracy: {train[0]:6.2f} %  "
                      f"Validation accuracy: {val_acc:6.2f} %  "
                      f"{history.loss_name}: {train[1]:.5f}  time: {history.seconds[-1]:.2f} s")
            if callback is not None:
                callback(history)

        if batch_size is None:
            _, val_acc = trainer.measure_and_gradient()
        else:
            val_acc = trainer.measure_validation()
        history.initial_validation_accuracy = val_acc
        history.best_validation_accuracy = val_acc
        best[0] = trainer.snapshot()
        if batch_size is not None:
            # Each epoch's order in one preallocated array: reset, then shuffled in place
            # (the very order rng.permutation would give, without an array per epoch).
            ordered = np.arange(trainer.n_samples, dtype=np.int64)
            order = ordered.copy()
        try:
            for i in range(iterations):
                trainer.learning_rate = rates if isinstance(rates, float) else rates[i]
                if batch_size is None:
                    # The step, then one pass that measures the new weights (recorded, and
                    # kept if best, before they move) and computes the next step.
                    measured, val_acc = trainer.step_and_measure(gradient=i + 1 < iterations)
                else:
                    if shuffle:
                        np.copyto(order, ordered)
                        self.rng.shuffle(order)
                    trainer.epoch(order, batch_size)
                    measured, val_acc = trainer.measure_training(), trainer.measure_validation()
                record(measured, val_acc)
        except BaseException as exc:
            # Ctrl-C (or a notebook's interrupt), or an error (an overriding backpropagate
            # that raised, or left NaN in the weights): keep the best weights so far and the
            # history up to here (``self.history``), then let it go on.
            history.interrupted = isinstance(exc, KeyboardInterrupt)
            try:
                trainer.restore(best[0])
                kept = (f"the weights of iteration {history.best_iteration} (the best "
                        "validation accuracy so far) are back in place")
            except Exception:  # weights replaced by arrays of another shape: leave them
                kept = "the weights could not be put back"
            if not history.interrupted and hasattr(exc, "add_note"):  # Python >= 3.11
                exc.add_note(f"mnist_native: raised in training iteration "
                             f"{history.iterations + 1} of {iterations}; {kept}")
            raise
        trainer.restore(best[0])


class MethodTrainer:
    """Training steps through the model's own methods, with the data exactly as the caller
    gave it (the lab's lists), so a student's override is what runs."""

    def __init__(self, model, data, validation_data, data_arrays, val_arrays, learning_rate,
                 cross_entropy):
        self.model = model
        self.forward = model.feedforward_xe if cross_entropy else model.feedforward
        self.backward = model.backpropagate_xe if cross_entropy else model.backpropagate
        self.inputs, self.targets = data
        self.val_inputs = validation_data[0]
        self.target_array = data_arrays[1]
        self.labels = np.argmax(data_arrays[1], axis=1)
        self.val_labels = np.argmax(val_arrays[1], axis=1)
        self.n_samples = len(self.labels)
        self.learning_rate = learning_rate
        self.cross_entropy = cross_entropy

    def _measure(self):
        out = outputs_of(self.model, self.n_samples, self.forward.__name__)
        logits = getattr(self.model, "u_output", None) if self.cross_entropy else None
        return (percent_correct(out, self.labels),
                mean_loss(out, self.target_array, self.cross_entropy, logits))

    def measure_and_gradient(self):
        """Measure the current weights on both sets; the training forward pass goes last,
        so ``backpropagate`` then steps from it."""
        val_acc = self.measure_validation()
        return self.measure_training(), val_acc

    def step_and_measure(self, gradient=True):
        """``backpropagate`` from the last training forward pass, then measure (the training
        forward pass is needed to measure anyway, so ``gradient`` changes nothing here)."""
        self.backward(self.targets, self.learning_rate)
        return self.measure_and_gradient()

    def epoch(self, order, batch_size):
        for begin in range(0, len(order), batch_size):
            idx = order[begin:begin + batch_size]
            self.forward(take(self.inputs, idx))
            self.backward(take(self.targets, idx), self.learning_rate)

    def measure_training(self):
        self.forward(self.inputs)
        return self._measure()

    def measure_validation(self):
        self.forward(self.val_inputs)
        return percent_correct(outputs_of(self.model, len(self.val_labels),
                                          self.forward.__name__), self.val_labels)

    def snapshot(self):
        return self.model._copy_weights()

    def restore(self, weights):
        self.model._set_weights(weights)


def take(rows, idx):
    """``rows[idx]`` for an array, or the list of those items for a list (the lab's form)."""
    if isinstance(rows, np.ndarray):
        return rows[idx]
    return [rows[i] for i in idx]

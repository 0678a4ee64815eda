"""``NeuralNetwork``: the lab's class, with every step done by the native kernels."""
import numpy as np

from . import _kernels as k
from . import _validation as v
from ._base import LabNetwork
from ._fused import FusedTrainer, fits
from ._threads import resolve_num_threads
from .transfer_functions import dsigmoid, dtanh, sigmoid, tanh

# Transfer pairs the kernels compute themselves; any other pair runs through NumPy calls.
NATIVE_ACTIVATIONS = {(sigmoid, dsigmoid): k.ACT_SIGMOID, (tanh, dtanh): k.ACT_TANH}


class Workspace:
    """Every array one forward + backward pass over ``batch`` samples writes, allocated once.

    Attribute names are the lab's (``input``, ``u_hidden``, ``o_hidden``, ``u_output``,
    ``o_output``) plus the two deltas and the per-thread scratch the kernels sum in.
    """

    def __init__(self, batch, n_in, n_hidden, n_out, dtype, n_threads):
        per_sample = (n_in + 1) + 3 * n_hidden + 1 + 3 * n_out
        v.check_fits_in_memory(batch * per_sample * np.dtype(dtype).itemsize,
                               f"the activations of {batch} samples")
        self.input = np.empty((batch, n_in + 1), dtype=dtype)
        self.input[:, n_in] = 1  # the bias input; the kernels never write it
        self.u_hidden = np.empty((batch, n_hidden), dtype=dtype)
        self.o_hidden = np.empty((batch, n_hidden + 1), dtype=dtype)
        self.u_output = np.empty((batch, n_out), dtype=dtype)
        self.o_output = np.empty((batch, n_out), dtype=dtype)
        self.delta_output = np.empty((batch, n_out), dtype=dtype)
        self.delta_hidden = np.empty((batch, n_hidden), dtype=dtype)
        width = max(n_hidden, n_out, k.update_scratch_width(max(n_hidden, n_out)))
        self.scratch = np.empty((n_threads, width), dtype=np.float64)

    def scratch_for(self, n_threads):
        """The per-thread scratch, grown when the model's thread count has grown since this
        workspace was made (``num_threads`` set between a forward pass and its backprop)."""
        if len(self.scratch) < n_threads:
            self.scratch = np.empty((n_threads, self.scratch.shape[1]), dtype=np.float64)
        return self.scratch

    def load(self, x):
        """Copy the (batch, n_in) inputs in front of the bias column."""
        self.input[:, :-1] = x


class NeuralNetwork(LabNetwork):
    """The lab's one-hidden-layer network, computed by native (Cython + OpenMP) kernels.

    Parameters
    ----------
    input_layer_size, hidden_layer_size, output_layer_size : int
        Units per layer, bias not counted (the stored ``*_layer_size`` attributes count it,
        as in the lab).
    transfer_f, transfer_df : callable
        The hidden/output transfer function and its derivative (taking the activation u).
        ``sigmoid``/``dsigmoid`` (default) and ``tanh``/``dtanh`` run natively; any other
        pair works too, applied through NumPy between native matrix products.
    dtype : float64 (default) or float32, keyword-only
        Precision of weights and activations.  ``feedforward``/``backpropagate`` keep their
        sums in double; ``train``'s fused kernels keep a float32 model's sums in float32 (as
        BLAS's sgemm does) and combine its chunks' partial gradients in double.
    num_threads : int or None, keyword-only
        Threads for the kernels, 1 to 1,024.  None: ``OMP_NUM_THREADS`` if set, else the CPUs
        this process may use.  Results are bit-identical for any value.  The attribute of
        the same name may be set later (checked the same way).
    seed : int, np.random.Generator or None, keyword-only
        Seed of the random initialisation (None: fresh entropy).

    Attributes set by ``feedforward``: ``input`` (batch, n_in + 1; last column 1),
    ``u_hidden`` (batch, n_hidden), ``o_hidden`` (batch, n_hidden + 1; last column 1),
    ``u_output`` and ``o_output`` (batch, n_out).
    """

    def __init__(self, input_layer_size, hidden_layer_size, output_layer_size,
                 transfer_f=sigmoid, transfer_df=dsigmoid, *, dtype=np.float64,
                 num_threads=None, seed=None):
        self.num_threads = num_threads
        super().__init__(input_layer_size, hidden_layer_size, output_layer_size, transfer_f,
                         transfer_df, dtype=dtype, seed=seed)

    def __setstate__(self, state):
        """Unpickled (or deep-copied): a model made without ``num_threads`` takes this
        process's default thread count (a worker process may have fewer CPUs, or an
        ``OMP_NUM_THREADS`` of its own), not the one of the process that pickled it."""
        state = dict(state)
        state.pop("num_threads", None)  # pickled while it was a plain attribute
        super().__setstate__(state)
        self.num_threads = getattr(self, "_num_threads_given", None)

    @property
    def num_threads(self):
        """Threads the kernels run on (see the class docstring)."""
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value):
        self._num_threads = resolve_num_threads(value)  # ValueError/TypeError when bad
        self._num_threads_given = value  # None: the default of whichever process runs it

    @property
    def _activation(self):
        """The kernels' code for the transfer pair, or None to apply it through NumPy."""
        return NATIVE_ACTIVATIONS.get((self.transfer_f, self.transfer_df))

    def _workspace(self, batch):
        return Workspace(batch, self.input_layer_size - 1, self.hidden_layer_size - 1,
                         self.output_layer_size, self.dtype, self.num_threads)

    # -- the kernels, on a workspace -----------------------------------------------------

    def _forward(self, ws, softmax):
        """Both layers on ``ws.input``; publishes ``ws``'s arrays as the lab's attributes."""
        w1, w2 = self._weights()
        act = self._activation
        nt = self.num_threads
        scratch = ws.scratch_for(nt)
        k.affine_forward(ws.u_hidden, ws.o_hidden, ws.input, w1, scratch,
                         k.ACT_IDENTITY if act is None else act, nt)
        if act is None:
            ws.o_hidden[:, :-1] = self.transfer_f(ws.u_hidden)
        out_act = k.ACT_SOFTMAX if softmax else (k.ACT_IDENTITY if act is None else act)
        k.affine_forward(ws.u_output, ws.o_output, ws.o_hidden, w2, scratch, out_act, nt)
        if out_act == k.ACT_IDENTITY:
            ws.o_output[:] = self.transfer_f(ws.u_output)
        self.input, self.u_hidden, self.o_hidden = ws.input, ws.u_hidden, ws.o_hidden
        self.u_output, self.o_output = ws.u_output, ws.o_output

    def _backward(self, ws, y, learning_rate, cross_entropy):
        """One gradient step from the forward pass held in ``ws``."""
        w1, w2 = self._weights()
        act = self._activation
        nt = self.num_threads
        if act is not None:
            loss = k.LOSS_XE if cross_entropy else k.LOSS_MSE
            k.output_delta(ws.delta_output, ws.o_output, y, loss, act, nt)
            k.hidden_delta(ws.delta_hidden, ws.delta_output, w2, ws.o_hidden, act, nt)
        else:
            if cross_entropy:
                ws.delta_output[:] = ws.o_output - y
            else:
                ws.delta_output[:] = 2 * (ws.o_output - y) * self.transfer_df(ws.u_output)
            ws.delta_hidden[:] = (ws.delta_output @ w2[:-1].T) * self.transfer_df(ws.u_hidden)
        step = learning_rate / len(y)
        scratch = ws.scratch_for(nt)
        k.weight_update(w2, ws.o_hidden, ws.delta_output, step, scratch, nt)
        k.weight_update(w1, ws.input, ws.delta_hidden, step, scratch, nt)

    # -- the lab's methods ---------------------------------------------------------------

    def feedforward(self, inputs):
        """Forward pass with ``transfer_f`` at both layers.

        ``inputs``: (batch, n_in) array or list of ``n_in``-float lists.  Sets ``input``,
        ``u_hidden``, ``o_hidden``, ``u_output`` and ``o_output``.
        """
        self._feedforward(inputs, softmax=False)

    def feedforward_xe(self, inputs):
        """Forward pass with a softmax output layer (for the cross-entropy loss)."""
        self._feedforward(inputs, softmax=True)

    def _feedforward(self, inputs, softmax):
        x = self._inputs(inputs)
        ws = self._workspace(len(x))
        ws.load(x)
        self._forward(ws, softmax)
        self._last = ws

    def backpropagate(self, targets, learning_rate=5.0):
        """One gradient step on the mean MSE of the last ``feedforward``.

        ``targets``: (batch, n_out), the batch of that forward pass.
        """
        self._backpropagate(targets, learning_rate, cross_entropy=False)

    def backpropagate_xe(self, targets, learning_rate=5.0):
        """One gradient step on the mean cross-entropy of the last ``feedforward_xe``."""
        self._backpropagate(targets, learning_rate, cross_entropy=True)

    def _backpropagate(self, targets, learning_rate, cross_entropy):
        y, learning_rate = self._backprop_args(targets, learning_rate, cross_entropy)
        self._backward(self._state_workspace(), y, learning_rate, cross_entropy)

    def _state_workspace(self):
        """A workspace holding the lab's attributes as they are now.

        Usually the last forward pass's own workspace; when code has replaced those
        attributes (a student's subclass sets ``self.input`` itself), they are copied in,
        checked, so the kernels get C-contiguous arrays of the model's dtype.
        """
        ws = getattr(self, "_last", None)
        names = ("input", "u_hidden", "o_hidden", "u_output", "o_output")
        if ws is not None and all(getattr(self, n) is getattr(ws, n) for n in names):
            return ws
        batch = len(self.o_output)
        ws = self._workspace(batch)
        for name in names:
            target = getattr(ws, name)
            value = v.as_matrix(getattr(self, name), name, target.shape[1], self.dtype)
            if len(value) != batch:
                raise ValueError(f"{name} has {len(value)} rows, o_output has {batch}")
            target[:] = value
        return ws

    # -- training ------------------------------------------------------------------------

    def _overrides(self, *names):
        """Whether any of these methods is not this module's own: overridden by a subclass,
        patched onto the class, or set on the instance."""
        return any(n in vars(self) or getattr(type(self), n) is not OWN_METHODS[n]
                   for n in names)

    def _trainer(self, data, validation_data, data_arrays, val_arrays, learning_rate,
                 cross_entropy, batch_size):
        """The fused native trainer when the lab's methods are this class's own and the
        transfer pair is native; else the method-calling one, so overrides run."""
        names = ("feedforward_xe", "backpropagate_xe") if cross_entropy else ("feedforward",
                                                                              "backpropagate")
        if self._overrides(*names) or self._activation is None or not fits(data_arrays[0].shape[1]):
            return super()._trainer(data, validation_data, data_arrays, val_arrays,
                                    learning_rate, cross_entropy, batch_size)
        return FusedTrainer(self, data_arrays, val_arrays, learning_rate, cross_entropy,
                            batch_size, self._activation)


# The lab's methods as defined here, to tell when a student has replaced one.
OWN_METHODS = {name: NeuralNetwork.__dict__[name] for name in
               ("feedforward", "backpropagate", "feedforward_xe", "backpropagate_xe")}

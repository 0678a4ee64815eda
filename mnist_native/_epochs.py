"""A quiet training loop over a ``NeuralNetwork``'s trainer, for callers that are not the lab.

``LabNetwork.train`` is the lab's loop: it always holds out validation data, keeps the
best-validation weights, prints ``Training time`` and may plot.  The scikit-learn estimator
needs the same steps (the same trainer: the fused native kernels) with other rules: a
validation set only when asked for, the last weights kept otherwise, nothing printed unless
verbose, inputs that may be CSR (``SparseRows``), and a history that goes on across
``partial_fit`` calls.  This module is that loop.
"""
import math
import time

import numpy as np

from ._base import LOSS_NAMES
from ._fused import fits
from ._sparse_rows import SparseRows
from .history import TrainingHistory


def run_epochs(network, inputs, targets, validation=None, *, iterations, learning_rate,
               cross_entropy, batch_size=None, shuffle=True, history=None, verbose=False):
    """Train ``network`` for ``iterations`` iterations (epochs, with a ``batch_size``).

    ``inputs``: a C-contiguous array of the network's dtype, or ``SparseRows``; ``targets``:
    one-hot rows of that dtype.  ``validation``: ``(inputs, targets)`` of the same kinds, or
    None.  With a validation set the weights of its best accuracy are kept at the end (the
    starting ones included: the lab's rule); without one, the last weights.

    Returns the ``TrainingHistory``, ``history`` itself when given (it goes on from where it
    was: ``partial_fit``).  Its ``validation_accuracy`` is NaN where nothing was held out.
    On ``KeyboardInterrupt`` the kept weights are put in place, ``history.interrupted`` set,
    and the interrupt re-raised.
    """
    keep_best = validation is not None
    if validation is None:
        # The trainer measures some validation set every pass: give it one sample, unread.
        validation = (first_row(inputs), targets[:1])
    trainer = network._trainer((inputs, targets), validation, (inputs, targets), validation,
                               learning_rate, cross_entropy, batch_size)
    network.loss_kind = LOSS_NAMES[cross_entropy]
    if history is None:
        history = new_history(cross_entropy)
    offset = history.total_seconds
    start = time.perf_counter()
    full_batch = batch_size is None

    if full_batch:
        _, val_acc = trainer.measure_and_gradient()
    else:
        val_acc = trainer.measure_validation() if keep_best else math.nan
    best = None
    if keep_best:
        history.initial_validation_accuracy = history.best_validation_accuracy = val_acc
        best = trainer.snapshot()
    if not full_batch:
        # Each epoch's order in one preallocated array, shuffled in place (as the lab's loop).
        ordered = np.arange(trainer.n_samples, dtype=np.int64)
        order = ordered.copy()
    try:
        for i in range(iterations):
            if full_batch:
                (train_acc, loss), val_acc = trainer.step_and_measure(
                    gradient=i + 1 < iterations)
            else:
                if shuffle:
                    np.copyto(order, ordered)
                    network.rng.shuffle(order)
                trainer.epoch(order, batch_size)
                train_acc, loss = trainer.measure_training()
                val_acc = trainer.measure_validation() if keep_best else math.nan
            if not keep_best:
                val_acc = math.nan
            seconds = offset + time.perf_counter() - start
            if history.add(train_acc, loss, val_acc, seconds):
                best = trainer.snapshot()
            if verbose:
                held_out = f", validation accuracy = {val_acc:.2f} %" if keep_best else ""
                print(f"Iteration {history.iterations}, loss = {loss:.8f}, training accuracy "
                      f"= {train_acc:.2f} %{held_out} ({seconds:.2f} s)", flush=True)
    except KeyboardInterrupt:
        history.interrupted = True
        _keep(trainer, history, best)
        raise
    _keep(trainer, history, best)
    return history


def first_row(inputs):
    """The first sample, as ``SparseRows`` where the kernels can take it (no parallel
    conversion for one row), else as the 1-row array."""
    if isinstance(inputs, SparseRows):
        return inputs.head(1)
    row = inputs[:1]
    if not fits(row.shape[1]):
        return row
    columns = np.flatnonzero(row[0])
    return SparseRows([0, len(columns)], columns, row[0, columns], row.shape[1], row.dtype)


def new_history(cross_entropy):
    """An empty history: nothing measured yet (NaN), nothing held out so far."""
    return TrainingHistory(LOSS_NAMES[cross_entropy], math.nan, best_validation_accuracy=math.nan)


def _keep(trainer, history, best):
    """Put the kept weights in the network: ``best`` when there is a validation set, else
    the current ones (recorded as kept at the last iteration)."""
    if best is None:
        history.best_iteration = history.iterations
        best = trainer.snapshot()
    trainer.restore(best)

"""The lab's notebook namespace on mnist_native, and the lab's experiment grid.

``from mnist_native.lab import *`` gives a notebook everything the lab's three files
(``NeuralNetwork.py``, ``transfer_functions.py``, ``utils.py``) gave it: ``NeuralNetwork``,
``sigmoid``, ``dsigmoid``, ``tanh``, ``dtanh``, ``softmax``, ``load_data``, ``np``, ``plt``,
``COLUMN`` and ``ROW`` (digits per row and rows when showing digits), ``plot_train_val``, plus
``show_digits`` and ``plot_learning_curves``.

``write_lab_files(folder)`` (the CLI's ``mnist-native lab-init DIR``) writes those three
files into a folder as thin re-exports of this module, so the lab's notebook runs there with
its cells unchanged.

``run_grid`` runs the lab's experiments (hidden 15/30/75 x learning rate 0.1/1/10, on the
first 1,000 training images and on the lab's 10 samples, with each loss) and
``grid_tables`` writes their results as the lab's Markdown answer tables (the CLI's
``mnist-native sweep``).
"""
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .data import load_data
from .history import TrainingHistory
from .network import NeuralNetwork
from .plotting import plot_learning_curves, show_digits
from .transfer_functions import dsigmoid, dtanh, sigmoid, softmax, tanh

__all__ = [
    "NeuralNetwork",
    "sigmoid",
    "dsigmoid",
    "tanh",
    "dtanh",
    "softmax",
    "load_data",
    "np",
    "plt",
    "COLUMN",
    "ROW",
    "plot_train_val",
    "plot_learning_curves",
    "show_digits",
]

#: Digits per row when the notebook shows digits (``plt.subplot(ROW, COLUMN, i + 1)``).
COLUMN = 5
#: Rows of digits: ROW x COLUMN = the lab's 10 samples.
ROW = 2


def plot_train_val(x, train_values, validation_values, label):
    """The lab's ``utils.plot_train_val``: training and validation values against ``x``."""
    plt.figure()
    plt.plot(x, train_values, label="Training")
    plt.plot(x, validation_values, label="Validation")
    plt.xlabel("Iteration")
    plt.ylabel(label)
    plt.legend()
    plt.show()


# --------------------------------------------------------------------------------------
# lab-init: the lab's three files, as re-exports
# --------------------------------------------------------------------------------------

_HEADER = '''"""The lab's {name}, served by mnist_native (written by `mnist-native lab-init`).

The notebook's cells run unchanged; the work is done by mnist_native's native kernels.
"""
'''

#: File name -> contents of the files ``lab-init`` writes.
LAB_FILES = {
    "NeuralNetwork.py": _HEADER.format(name="NeuralNetwork.py") + (
        "from mnist_native.lab import NeuralNetwork\n"
        "\n"
        '__all__ = ["NeuralNetwork"]\n'),
    "transfer_functions.py": _HEADER.format(name="transfer_functions.py") + (
        "from mnist_native.lab import dsigmoid, dtanh, sigmoid, softmax, tanh\n"
        "\n"
        '__all__ = ["sigmoid", "dsigmoid", "tanh", "dtanh", "softmax"]\n'),
    "utils.py": _HEADER.format(name="utils.py") + (
        "from mnist_native.lab import (COLUMN, ROW, load_data, np, plot_learning_curves,\n"
        "                              plot_train_val, plt, show_digits)\n"
        "\n"
        '__all__ = ["load_data", "np", "plt", "COLUMN", "ROW", "plot_train_val",\n'
        '           "plot_learning_curves", "show_digits"]\n'),
}


def write_lab_files(folder, overwrite=False):
    """Write the lab's ``NeuralNetwork.py``, ``transfer_functions.py`` and ``utils.py`` into
    ``folder`` (created if needed), each a re-export of this module.

    Returns the paths written.  Raises ``FileExistsError`` naming the files already there
    (none is written then) unless ``overwrite``.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder")
    targets = [folder / name for name in LAB_FILES]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise FileExistsError(f"{names} already exist{'s' if len(existing) == 1 else ''}; "
                              "nothing was written (overwrite with --force)")
    folder.mkdir(parents=True, exist_ok=True)
    for path in targets:
        path.write_text(LAB_FILES[path.name], encoding="utf-8")
    return targets


# --------------------------------------------------------------------------------------
# The lab's experiment grid
# --------------------------------------------------------------------------------------

#: The lab's 10-sample training set: these training images (one of each digit).
VSMALL_INDICES = [1, 3, 5, 7, 2, 0, 13, 15, 17, 4]
HIDDEN_SIZES = (15, 30, 75)
LEARNING_RATES = (0.1, 1.0, 10.0)
LOSSES = ("mse", "xe")
LOSS_NAMES = {"mse": "MSE", "xe": "cross-entropy"}


@dataclass
class GridRun:
    """One training run of the grid: a fresh model, trained, then tested."""

    training_set: str
    n_train: int
    loss: str  # "mse" or "xe"
    hidden: int
    learning_rate: float
    iterations: int
    history: TrainingHistory
    test_accuracy: float  # % of the test set
    seconds: float  # training time


def _one_hot(labels):
    return np.eye(10, dtype=np.float32)[labels]


def lab_training_sets(splits, n_train=1000):
    """The lab's training sets from ``load_mnist`` splits: name -> (images, one-hot targets).

    ``"first 1,000"`` (the first ``n_train`` images) and ``"10 samples"`` (``VSMALL_INDICES``).
    """
    images, labels = splits.train
    return {
        f"first {n_train:,}": (images[:n_train], _one_hot(labels[:n_train])),
        "10 samples": (images[VSMALL_INDICES], _one_hot(labels[VSMALL_INDICES])),
    }


def grid_runs(hidden=HIDDEN_SIZES, learning_rates=LEARNING_RATES, losses=LOSSES,
              training_sets=("first 1,000", "10 samples")):
    """The (training set, loss, hidden, learning rate) of every run, in the order they run."""
    return [(s, loss, h, lr) for s in training_sets for loss in losses
            for h in hidden for lr in learning_rates]


def run_grid(splits, *, hidden=HIDDEN_SIZES, learning_rates=LEARNING_RATES, losses=LOSSES,
             iterations=300, n_train=1000, n_validation=200, dtype="float32",
             num_threads=None, seed=0, on_run=None, on_iteration=None):
    """Train a fresh model for every run of the grid and test it on the whole test set.

    Every run starts from the same seeded weights for its hidden size (so learning rates
    and losses are compared from one start) and validates on the first ``n_validation``
    validation images, as the lab did.  ``on_run(training_set, loss, hidden, lr)`` is called
    before each run, ``on_iteration(history)`` after each iteration.

    Returns
    -------
    list of GridRun
    """
    sets = lab_training_sets(splits, n_train)
    val_images, val_labels = splits.validation
    validation = (val_images[:n_validation], _one_hot(val_labels[:n_validation]))
    test = (splits.test.images, _one_hot(splits.test.labels))
    runs = []
    for name, loss, h, lr in grid_runs(hidden, learning_rates, losses, tuple(sets)):
        if on_run is not None:
            on_run(name, loss, h, lr)
        model = NeuralNetwork(784, h, 10, dtype=dtype, num_threads=num_threads, seed=seed)
        fit = model.train_xe if loss == "xe" else model.train
        start = time.perf_counter()
        history = _quietly(fit, sets[name], validation, iterations=iterations,
                           learning_rate=lr, plot=False, callback=on_iteration)
        seconds = time.perf_counter() - start
        accuracy = 100.0 * model.predict(test) / len(test[0])
        runs.append(GridRun(name, len(sets[name][0]), loss, h, lr, iterations, history,
                            accuracy, seconds))
    return runs


def _quietly(function, *args, **kwargs):
    """``function(*args, **kwargs)`` without what it prints (train's ``Training time:``)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def grid_tables(runs):
    """The runs as Markdown: the lab's answer table (one row per run), then per training set
    and loss a grid of test accuracies, hidden size against learning rate."""
    runs = list(runs)
    out = ["## All runs", "", _table(
        ["training set", "loss", "hidden", "learning rate", "iterations",
         "best validation (iteration)", "test accuracy", "training time"],
        [[r.training_set, LOSS_NAMES[r.loss], str(r.hidden), f"{r.learning_rate:g}",
          str(r.iterations),
          f"{r.history.best_validation_accuracy:.2f} % ({r.history.best_iteration})",
          f"{r.test_accuracy:.2f} %", f"{r.seconds:.2f} s"] for r in runs])]
    for training_set, loss in dict.fromkeys((r.training_set, r.loss) for r in runs):
        group = [r for r in runs if (r.training_set, r.loss) == (training_set, loss)]
        rates = sorted({r.learning_rate for r in group})
        hiddens = sorted({r.hidden for r in group})
        cell = {(r.hidden, r.learning_rate): f"{r.test_accuracy:.2f} %" for r in group}
        out += ["", f"## Test accuracy: {training_set}, {LOSS_NAMES[loss]}, "
                    f"{group[0].iterations} iterations", "", _table(
            ["hidden \\ learning rate"] + [f"{lr:g}" for lr in rates],
            [[str(h)] + [cell.get((h, lr), "") for lr in rates] for h in hiddens])]
    return "\n".join(out) + "\n"

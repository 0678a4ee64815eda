"""The lab's utils.py, served by mnist_native (written by `mnist-native lab-init`).

The notebook's cells run unchanged; the work is done by mnist_native's native kernels.
"""
from mnist_native.lab import (COLUMN, ROW, load_data, np, plot_learning_curves,
                              plot_train_val, plt, show_digits)

__all__ = ["load_data", "np", "plt", "COLUMN", "ROW", "plot_train_val",
           "plot_learning_curves", "show_digits"]

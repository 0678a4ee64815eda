"""The lab's figures: learning curves (accuracies per iteration, best marked, and the loss),
the grid of curves of an experiment sweep, and a row-by-row display of digits.

Every function draws on a new figure (or one given), returns it and shows nothing: in a
notebook the inline backend displays the figure at the end of the cell; a script calls
``fig.savefig(...)`` (it works without a display) or ``show_without_blocking(fig)``.
"""
import numpy as np

__all__ = ["plot_learning_curves", "plot_sweep", "show_digits", "show_without_blocking"]

LOSS_LABELS = {"mse": "MSE", "cross-entropy": "cross-entropy", "xe": "cross-entropy"}


def _iterations(history):
    return np.arange(1, history.iterations + 1)


def plot_learning_curves(history, title="Training and validation accuracies", fig=None):
    """Draw ``history`` (a TrainingHistory) on a new or given figure and return the figure.

    Left: training and validation accuracy (%) per iteration, the kept (best-validation)
    iteration marked with a dot and a dotted line.  Right: the mean training loss per sample.
    """
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(11, 4))
    acc_ax, loss_ax = fig.subplots(1, 2)
    its = _iterations(history)
    acc_ax.plot(its, history.train_accuracy, label="training", color="C0")
    acc_ax.plot(its, history.validation_accuracy, label="validation", color="C1")
    if history.best_iteration > 0:
        acc_ax.axvline(history.best_iteration, color="C3", linestyle=":", linewidth=1)
        acc_ax.plot(history.best_iteration, history.best_validation_accuracy, "o", color="C3",
                    label=f"kept: {history.best_validation_accuracy:.2f} % "
                          f"(iteration {history.best_iteration})")
    else:
        acc_ax.axhline(history.best_validation_accuracy, color="C3", linestyle=":",
                       linewidth=1, label=f"kept: the starting weights "
                                          f"({history.best_validation_accuracy:.2f} %)")
    acc_ax.set(title=title, xlabel="iteration", ylabel="accuracy (%)")
    acc_ax.legend(loc="lower right")
    acc_ax.grid(alpha=0.3)
    loss_name = LOSS_LABELS.get(history.loss_name, history.loss_name)
    loss_ax.plot(its, history.loss, color="C2")
    loss_ax.set(title=f"Training loss ({loss_name})", xlabel="iteration",
                ylabel="mean loss per sample")
    loss_ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_sweep(runs, title=None, fig=None):
    """A grid of learning curves: one row per (training set, loss), one column per hidden
    size, one colour per learning rate (validation solid, training dashed).

    ``runs``: objects with ``training_set``, ``loss``, ``hidden``, ``learning_rate`` and
    ``history`` attributes (``mnist_native.lab.GridRun``), in any order.
    """
    import matplotlib.pyplot as plt

    runs = list(runs)
    if not runs:
        raise ValueError("plot_sweep needs at least one run")
    groups = list(dict.fromkeys((r.training_set, r.loss) for r in runs))
    hiddens = sorted({r.hidden for r in runs})
    rates = sorted({r.learning_rate for r in runs})
    colours = {lr: f"C{i % 10}" for i, lr in enumerate(rates)}
    if fig is None:
        # At least 11 inches wide: the title and the legend's row need it with one column.
        fig = plt.figure(figsize=(max(4.2 * len(hiddens), 11.0), 3.2 * len(groups) + 0.6))
    axes = np.atleast_2d(fig.subplots(len(groups), len(hiddens), sharey=True, squeeze=False))
    for r in runs:
        ax = axes[groups.index((r.training_set, r.loss)), hiddens.index(r.hidden)]
        its = _iterations(r.history)
        colour = colours[r.learning_rate]
        ax.plot(its, r.history.validation_accuracy, color=colour,
                label=f"lr {r.learning_rate:g}: validation")
        ax.plot(its, r.history.train_accuracy, color=colour, linestyle="--", linewidth=0.9,
                alpha=0.8, label=f"lr {r.learning_rate:g}: training")
        if r.history.best_iteration > 0:
            ax.plot(r.history.best_iteration, r.history.best_validation_accuracy, "o",
                    color=colour, markersize=4)
    for (training_set, loss), row in zip(groups, axes):
        for hidden, ax in zip(hiddens, row):
            ax.set_title(f"{training_set}, {LOSS_LABELS.get(loss, loss)}, hidden {hidden}",
                         fontsize=10)
            ax.set_ylim(0, 101)
            ax.grid(alpha=0.3)
        row[0].set_ylabel("accuracy (%)")
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9,
               frameon=False)
    fig.suptitle(title or "Training (dashed) and validation (solid) accuracy; dots: kept "
                          "iteration")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def show_digits(images, labels=None, columns=5, fig=None):
    """Show 28 x 28 digits ``columns`` per row, titled with their label when given.

    ``images``: a sequence of 784-value rows (lists or an array), as ``load_data`` gives;
    ``labels``: ints or one-hot rows.
    """
    import matplotlib.pyplot as plt

    images = [np.asarray(im, dtype=np.float64).reshape(28, 28) for im in images]
    if not images:
        raise ValueError("show_digits needs at least one image")
    columns = max(1, min(int(columns), len(images)))
    rows = -(-len(images) // columns)
    if fig is None:
        fig = plt.figure(figsize=(1.6 * columns, 1.8 * rows))
    for i, image in enumerate(images):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(image, cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None:
            label = labels[i]
            label = int(np.argmax(label)) if np.ndim(label) else int(label)
            ax.set_title(str(label))
    fig.tight_layout()
    return fig


def show_without_blocking(fig):
    """Show ``fig`` where someone can see it, never blocking a script.

    Notebooks (inline backends) display it at the end of the cell; GUI backends get a
    non-blocking show; non-interactive backends (Agg, files) have no one to show it to, so the
    figure is closed rather than left to pile up.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend().lower()
    if "inline" in backend or "ipympl" in backend or "widget" in backend:
        return
    if backend in ("agg", "pdf", "ps", "svg", "cairo", "pgf", "template"):
        plt.close(fig)
        return
    plt.show(block=False)

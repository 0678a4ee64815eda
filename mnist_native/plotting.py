"""The lab's learning-curve figure: accuracies per iteration (best marked) and the loss."""
import numpy as np


def plot_learning_curves(history, title="Training and validation accuracies", fig=None):
    """Draw ``history`` (a TrainingHistory) on a new or given figure and return the figure.

    Left: training and validation accuracy per iteration, the kept (best-validation)
    iteration marked.  Right: the training loss.
    """
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(11, 4))
    acc_ax, loss_ax = fig.subplots(1, 2)
    its = np.arange(1, history.iterations + 1)
    acc_ax.plot(its, history.train_accuracy, label="training")
    acc_ax.plot(its, history.validation_accuracy, label="validation")
    if history.best_iteration > 0:
        acc_ax.plot(history.best_iteration, history.best_validation_accuracy, "o", color="C3",
                    label=f"kept: {history.best_validation_accuracy:.2f}% "
                          f"(iteration {history.best_iteration})")
    acc_ax.set(title=title, xlabel="iteration", ylabel="accuracy (%)")
    acc_ax.legend(loc="lower right")
    acc_ax.grid(alpha=0.3)
    loss_ax.plot(its, history.loss, color="C2")
    loss_ax.set(title=f"Training loss ({history.loss_name})", xlabel="iteration",
                ylabel="mean loss per sample")
    loss_ax.grid(alpha=0.3)
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

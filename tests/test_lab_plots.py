"""The lab's figures: learning curves (best iteration marked, and the loss), the sweep grid and
the digit display, drawn without a display and saved as valid PNGs."""
import matplotlib
import numpy as np
import pytest
from PIL import Image

import mnist_native
from mnist_native.history import TrainingHistory
from mnist_native.lab import GridRun, plot_train_val
from mnist_native.plotting import plot_learning_curves, plot_sweep, show_digits

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def history(n=30, best=20, loss_name="mse"):
    h = TrainingHistory(loss_name, 10.0)
    h.best_validation_accuracy = 10.0
    for t in range(1, n + 1):
        val = 50 + t if t <= best else 50 + best - (t - best) * 0.5
        h.add(min(99.0, 40 + 2 * t), 1.0 / t, val, 0.01 * t)
    return h


def assert_png(path, min_width, min_height):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= min_width and im.height >= min_height
        assert np.asarray(im.convert("L")).std() > 5


def test_learning_curves_mark_the_best_iteration_and_show_the_loss(tmp_path):
    h = history()
    fig = plot_learning_curves(h, "Hidden 30, learning rate 1")
    acc_ax, loss_ax = fig.axes
    assert acc_ax.get_title() == "Hidden 30, learning rate 1"
    assert acc_ax.get_xlabel() == "iteration" and acc_ax.get_ylabel() == "accuracy (%)"
    labels = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert labels[:2] == ["training", "validation"]
    assert "kept: 70.00 % (iteration 20)" in labels[2]
    best = [line for line in acc_ax.get_lines() if list(line.get_xdata()) == [20]]
    assert best and list(best[0].get_ydata()) == [70.0]
    assert loss_ax.get_title() == "Training loss (MSE)"
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), h.loss)
    fig.savefig(tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png", 800, 300)


def test_learning_curves_on_a_given_figure_and_when_nothing_beat_the_start():
    h = TrainingHistory("cross-entropy", 90.0)
    h.best_validation_accuracy = 90.0  # as train sets it: the starting weights' accuracy
    for t in range(3):
        h.add(50.0, 2.0, 80.0, 0.1)
    assert h.best_iteration == 0
    fig = plt.figure()
    assert plot_learning_curves(h, fig=fig) is fig
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("starting weights" in label for label in labels)
    assert fig.axes[1].get_title() == "Training loss (cross-entropy)"


def test_train_draws_the_curves_inline_style_without_blocking(capsys):
    model = mnist_native.NeuralNetwork(6, 3, 2, seed=0)
    x = np.random.default_rng(0).random((20, 6))
    y = np.eye(2)[np.arange(20) % 2]
    model.train((x, y), (x, y), iterations=3, learning_rate=1.0)  # plot=True, Agg: closed
    assert plt.get_fignums() == []
    assert "Training time:" in capsys.readouterr().out


def grid_runs():
    runs = []
    for training_set in ("first 1,000", "10 samples"):
        for loss in ("mse", "xe"):
            for hidden in (15, 30, 75):
                for lr in (0.1, 1.0, 10.0):
                    runs.append(GridRun(training_set, 1000, loss, hidden, lr, 30,
                                        history(best=int(hidden / 3)), 80.0, 0.5))
    return runs


def test_sweep_grid_one_row_per_set_and_loss_one_column_per_hidden_size(tmp_path):
    fig = plot_sweep(grid_runs())
    axes = fig.axes
    assert len(axes) == 12
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "first 1,000, MSE, hidden 15"
    assert titles[-1] == "10 samples, cross-entropy, hidden 75"
    assert all(len(ax.get_lines()) == 3 * 3 for ax in axes)  # 3 rates x (val, train, best)
    fig.savefig(tmp_path / "grid.png", dpi=60)
    assert_png(tmp_path / "grid.png", 600, 600)
    with pytest.raises(ValueError):
        plot_sweep([])


def test_sweep_grid_of_one_hidden_size_is_wide_enough_for_its_title_and_legend():
    """One column (sweep --hidden 30) had a figure 4.2 inches wide: both were cut off."""
    fig = plot_sweep([r for r in grid_runs() if r.hidden == 30])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    for artist in (fig._suptitle, fig.legends[0]):
        box = artist.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width


def test_show_digits_rows_of_columns(tmp_path):
    images = [np.random.default_rng(i).random(784).tolist() for i in range(7)]
    labels = [np.eye(10)[i].tolist() for i in range(7)]
    fig = show_digits(images, labels, columns=3)
    assert len(fig.axes) == 7
    assert [ax.get_title() for ax in fig.axes] == [str(i) for i in range(7)]
    assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == (3, 3)
    fig.savefig(tmp_path / "digits.png")
    assert_png(tmp_path / "digits.png", 200, 200)


def test_the_labs_plot_train_val():
    plot_train_val(range(5), [1, 2, 3, 4, 5], [1, 1, 2, 3, 3], "Accuracy")
    ax = plt.gca()
    assert ax.get_ylabel() == "Accuracy"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Training", "Validation"]

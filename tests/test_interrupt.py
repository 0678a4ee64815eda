"""Ctrl-C during training: seen promptly, best weights kept, history up to that point."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import mnist_native as mn
from mnist_native import reference


def data(seed=0, n=400, n_in=30, n_out=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)) * (rng.random((n, n_in)) < 0.4)
    y = np.eye(n_out)[np.argmax(x[:, :n_out], axis=1)]  # learnable
    return x, y


@pytest.mark.parametrize("cls", [mn.NeuralNetwork, reference.NeuralNetwork])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_interrupt_keeps_best_weights_and_history(cls, batch_size, capsys):
    x, y = data()
    model = cls(30, 12, 4, seed=1)

    def stop_at_five(history):
        if history.iterations == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.train((x, y), (x[:100], y[:100]), iterations=50, learning_rate=1.0, plot=False,
                    batch_size=batch_size, callback=stop_at_five)
    history = model.history
    assert history.interrupted and history.iterations == 5
    assert history.best_iteration >= 1
    # The weights in place are the best ones: they reproduce the best validation accuracy.
    correct = model.predict((x[:100], y[:100]))
    assert 100.0 * correct / 100 == pytest.approx(history.best_validation_accuracy)


SCRIPT = textwrap.dedent("""
    import sys, numpy as np, mnist_native as mn
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 784)) * (rng.random((20000, 784)) < 0.2)
    y = np.eye(10)[rng.integers(0, 10, 20000)]
    model = mn.NeuralNetwork(784, 200, 10, seed=0)
    def started(history):
        if history.iterations == 1:
            print("started", flush=True)
    try:
        # Many long epochs of small batches: the interrupt lands inside native code.
        model.train((x, y), (x[:500], y[:500]), iterations=1000, learning_rate=0.1,
                    batch_size=8, plot=False, callback=started)
    except KeyboardInterrupt:
        h = model.history
        print("interrupted", h.interrupted, h.iterations, flush=True)
        sys.exit(130)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_during_native_epoch_is_seen_within_a_second(tmp_path):
    # Run outside the source tree, so the installed (built) package is the one imported.
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.3)  # well inside the next epoch
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        elapsed = time.perf_counter() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert out.strip().startswith("interrupted True 1"), out
    # Generous for a loaded 2-core machine; the epoch itself takes several seconds.
    assert elapsed < 3.0, f"took {elapsed:.2f} s to stop"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cli_train_interrupted_saves_the_best_model_and_exits_130(tmp_path):
    data = os.environ.get("MNIST_NATIVE_DATA")
    if not data:
        pytest.skip("MNIST_NATIVE_DATA is not set: the CLI needs MNIST")
    model_path = tmp_path / "best.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_native", "train", "--n-train", "2000",
         "--n-validation", "500", "--iterations", "1000000", "--save", str(model_path),
         "--no-plot", "--data", data],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        # The progress bar's accuracies appear once training iterations are under way.
        seen = ""
        while "train=" not in seen:
            chunk = proc.stderr.read(32)
            assert chunk, "train ended before it was interrupted"
            seen = seen[-64:] + chunk
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted after" in err and "interrupted" in err
    model = mn.NeuralNetwork.load(model_path)
    assert model.W_input_to_hidden.shape == (785, 75)

"""What ``bench.py`` times: the data, the workloads, and one ``fit`` + one ``check`` per
implementation.

Implementations (``Variant.impl``):

native     ``mnist_native.NeuralNetwork`` (Cython + OpenMP), ``num_threads`` as given.
reference  ``mnist_native.reference.NeuralNetwork`` (NumPy; BLAS uses its own threads).
original   ``benches/original_lab.py``: the lab's list-based class, fed Python lists.
torch      the same full-batch loop written with torch tensors (optional); for mini-batch
           SGD, the model as a user writes it: nn.Sequential(Linear, Sigmoid, Linear),
           CrossEntropyLoss and optim.SGD.
sklearn    scikit-learn's MLPClassifier (optional, mini-batch SGD only): solver="sgd",
           momentum=0, alpha=0, activation="logistic".

Every implementation starts from the SAME initial weights: the ones the NumPy reference
draws from ``SEED`` (native and reference draw them themselves from the seed; original and
torch get a copy), so their test accuracies can be compared too.
"""
import contextlib
import gzip
import io
import os
import pickle
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

import mnist_native
from mnist_native import _fused, reference

import original_lab  # benches/ is on sys.path (bench.py puts it there)

try:
    import torch
except ImportError:  # optional
    torch = None
try:
    import sklearn
    from sklearn.neural_network import MLPClassifier
except ImportError:  # optional
    sklearn = None

SEED = 1
N_IN, N_OUT = 784, 10
TORCH_HINT = "torch not installed: skipped (pip install torch==2.13.0 to include it)"
SKLEARN_HINT = "scikit-learn not installed: skipped (pip install scikit-learn to include it)"

# Correctness checks: a small slice, a few iterations, weights compared with these tolerances.
CHECK_TRAIN, CHECK_VAL, CHECK_ITERATIONS = 500, 100, 3
RTOL = {np.float64: 1e-9, np.float32: 1e-4}


class CheckFailed(AssertionError):
    """A variant's weights differ from the reference's after the same training steps."""


@contextlib.contextmanager
def quiet():
    """Swallow stdout (``train`` prints "Training time: ...")."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# -- data --------------------------------------------------------------------------------

def one_hot(labels):
    out = np.zeros((len(labels), N_OUT), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


def load_splits(path=None):
    """{"train", "validation", "test"}: (images float32 (n, 784), one-hot float32 (n, 10)).

    Uses ``mnist_native.data.load_mnist`` (never downloading) when it is importable, else
    reads the lab's ``mnist.pkl.gz`` directly.  ``path``: that file or the folder holding it
    (default: ``MNIST_NATIVE_DATA``, ``Data/mnist.pkl.gz``, then the download cache).
    """
    path = path or os.environ.get("MNIST_NATIVE_DATA")
    try:
        from mnist_native.data import load_mnist
        splits = [(s.images, s.labels) for s in load_mnist(path, download=False)]
    except Exception as exc:  # the data package is optional here; the pickle is enough
        pkl = path or "Data"
        if os.path.isdir(pkl):
            pkl = os.path.join(pkl, "mnist.pkl.gz")
        if not os.path.exists(pkl):
            raise FileNotFoundError(f"MNIST not found at {pkl!r}: pass --data DIR holding "
                                    "mnist.pkl.gz, or set MNIST_NATIVE_DATA "
                                    f"(mnist_native.data said: {exc})") from exc
        with gzip.open(pkl) as f:
            splits = pickle.load(f, encoding="latin1")
    names = ("train", "validation", "test")
    return {name: (np.asarray(x, dtype=np.float32), one_hot(np.asarray(y)))
            for name, (x, y) in zip(names, splits)}


def head(pair, n):
    return pair[0][:n], pair[1][:n]


def as_lists(pair):
    """The lab's form: a list of 784-float lists and a list of one-hot int lists."""
    return pair[0].tolist(), pair[1].astype(int).tolist()


# -- workloads and variants --------------------------------------------------------------

@dataclass
class Workload:
    name: str                  # "subset", "full" or "sgd"
    train: tuple               # (images, one-hot)
    validation: tuple
    test: tuple
    hidden: int
    iterations: int            # full-batch iterations, or epochs with a batch size
    learning_rate: float       # the rate, or a step schedule's first one
    cross_entropy: bool = False
    batch_size: Optional[int] = None
    schedule: Optional[str] = None  # "step": see learning_rates
    init: str = "lab"          # or "zero-mean": see zero_mean_weights

    def learning_rates(self, iterations):
        """``train``'s learning_rate for ``iterations`` iterations: the rate, or with the
        "step" schedule, the rate for the first half, 0.4 of it to 80 %, then 0.1 of it."""
        if self.schedule is None:
            return self.learning_rate
        return [self.learning_rate * (1.0 if i < 0.5 * iterations else
                                      0.4 if i < 0.8 * iterations else 0.1)
                for i in range(iterations)]

    @property
    def loss(self):
        return "cross-entropy" if self.cross_entropy else "MSE"


@dataclass(frozen=True)
class Variant:
    impl: str                  # "native", "reference", "original" or "torch"
    dtype: type                # np.float32 or np.float64
    threads: Optional[int]     # None: the library's own default (the reference's BLAS)

    @property
    def label(self):
        threads = "BLAS" if self.threads is None else self.threads
        return f"{self.impl} {np.dtype(self.dtype).name} threads={threads}"


def initial_weights(hidden, dtype=np.float64):
    """The weights native and reference draw from ``SEED``, as ``dtype`` arrays."""
    model = reference.NeuralNetwork(N_IN, hidden, N_OUT, dtype=np.float64, seed=SEED)
    return (model.W_input_to_hidden.astype(dtype), model.W_hidden_to_output.astype(dtype))


def zero_mean_weights(hidden, dtype):
    """Initial weights drawn from ``SEED``, both zero-mean: W1 ~ normal(0, 2/sqrt(n_in + 1)),
    twice the lab's spread, and W2 ~ normal(0, 1/sqrt(hidden + 1)), where the lab's,
    uniform(0, 1)/sqrt(hidden + 1), are all positive."""
    rng = np.random.default_rng(SEED)
    w1 = rng.normal(0.0, 2.0 / np.sqrt(N_IN + 1), (N_IN + 1, hidden))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden + 1), (hidden + 1, N_OUT))
    return w1.astype(dtype), w2.astype(dtype)


# -- one training run per implementation ------------------------------------------------

def _lab_model(variant, hidden):
    if variant.impl == "native":
        return mnist_native.NeuralNetwork(N_IN, hidden, N_OUT, dtype=variant.dtype,
                                          num_threads=variant.threads, seed=SEED)
    if variant.impl == "reference":
        return reference.NeuralNetwork(N_IN, hidden, N_OUT, dtype=variant.dtype, seed=SEED)
    if variant.impl == "original":
        model = original_lab.NeuralNetwork(N_IN, hidden, N_OUT)
        model.weights_init(*initial_weights(hidden))
        return model
    raise ValueError(variant.impl)


def _train_lab_model(model, wl, train, validation, iterations):
    """Seconds of one ``train``/``train_xe`` call (its printout swallowed)."""
    fit = model.train_xe if wl.cross_entropy else model.train
    kwargs = {} if isinstance(model, original_lab.NeuralNetwork) else {
        "plot": False, "batch_size": wl.batch_size}
    with quiet():
        start = time.perf_counter()
        fit(train, validation, iterations, wl.learning_rates(iterations), **kwargs)
        return time.perf_counter() - start


def native_setup_seconds(variant, wl):
    """Seconds of a 0-epoch ``train_xe`` call: checks, the conversion of the inputs for the
    kernels, and the measure of the starting weights."""
    model = _lab_model(variant, wl.hidden)
    with quiet():
        start = time.perf_counter()
        model.train_xe(wl.train, wl.validation, 0, wl.learning_rate, plot=False,
                       batch_size=wl.batch_size)
        return time.perf_counter() - start


def native_convert_seconds(variant, wl):
    """Seconds of ``train()``'s conversion alone: the kernels' trainer built from arrays
    already checked (both sets converted for the kernels, 50,000 + 10,000 images, and its
    buffers allocated), without the checks and the first measure."""
    model = _lab_model(variant, wl.hidden)
    train, val = ((model._inputs(x, "inputs"), model._targets(y, "targets"))
                  for x, y in (wl.train, wl.validation))
    start = time.perf_counter()
    _fused.FusedTrainer(model, train, val, wl.learning_rate, True, wl.batch_size,
                        model._activation)
    return time.perf_counter() - start


def test_accuracy(w1, w2, test):
    """% of ``test`` right with these weights, by the reference's ``predict``."""
    model = reference.NeuralNetwork(N_IN, w1.shape[1], N_OUT, dtype=w1.dtype)
    model.weights_init(w1, w2)
    return 100.0 * model.predict(test) / len(test[0])


def fit(variant, wl, iterations, train=None, validation=None, test=True):
    """Train ``variant`` on ``wl`` for ``iterations``: (seconds, test accuracy %, weights).

    ``train``/``validation`` default to the workload's (the checks pass smaller slices);
    with ``test=False`` the test accuracy is not measured (None).
    """
    train = wl.train if train is None else train
    validation = wl.validation if validation is None else validation
    if variant.impl == "torch" and wl.batch_size:
        w1, w2 = initial_weights(wl.hidden, variant.dtype)
        seconds, (w1, w2) = torch_sgd_fit(w1, w2, train, validation, iterations,
                                          wl.learning_rate, wl.batch_size, variant.threads)
        return seconds, test_accuracy(w1, w2, wl.test) if test else None, (w1, w2)
    if variant.impl == "sklearn":
        seconds, model = sklearn_sgd_fit(train, iterations, wl, variant.dtype)
        accuracy = 100.0 * model.score(wl.test[0], wl.test[1].argmax(axis=1)) if test else None
        weights = (np.vstack([model.coefs_[0], model.intercepts_[0]]),
                   np.vstack([model.coefs_[1], model.intercepts_[1]]))
        return seconds, accuracy, weights
    if variant.impl == "torch":
        w1, w2 = initial_weights(wl.hidden, variant.dtype)
        seconds, (w1, w2) = torch_fit(w1, w2, train, validation, iterations,
                                      wl.learning_rate, variant.threads)
        return seconds, test_accuracy(w1, w2, wl.test) if test else None, (w1, w2)
    model = _lab_model(variant, wl.hidden)
    if wl.init == "zero-mean":
        model.weights_init(*zero_mean_weights(wl.hidden, variant.dtype))
    if variant.impl == "original":
        # The lab hands its class lists; converting them is load_data's job, not training's.
        train, validation = as_lists(train), as_lists(validation)
    seconds = _train_lab_model(model, wl, train, validation, iterations)
    weights = (np.asarray(model.W_input_to_hidden), np.asarray(model.W_hidden_to_output))
    if not test:
        accuracy = None
    elif variant.impl == "original":
        # Same maths as its own predict, without turning 10,000 test images into lists.
        accuracy = test_accuracy(*weights, wl.test)
    else:
        accuracy = 100.0 * model.predict(wl.test) / len(wl.test[0])
    return seconds, accuracy, weights


# -- torch: the lab's full-batch MSE loop, in tensors ------------------------------------

def torch_fit(w1, w2, train, validation, iterations, learning_rate, threads, keep_best=True):
    """The lab's ``train`` (sigmoid, MSE, full batch, best validation weights kept) in torch.

    Same steps as the reference: delta_out = 2 (o - y) o (1 - o) (sigmoid' from the output),
    delta_hidden = (delta_out W2[:-1]^T) h (1 - h), W -= lr * (input^T delta) / batch.
    Returns (seconds, (w1, w2) as NumPy arrays).
    """
    torch.set_num_threads(threads)
    dtype = torch.float32 if w1.dtype == np.float32 else torch.float64

    def with_bias(x):
        x = torch.from_numpy(x).to(dtype)
        return torch.cat([x, torch.ones(len(x), 1, dtype=dtype)], dim=1)

    def forward(x, W1, W2):
        h = torch.sigmoid(x @ W1)
        o_hidden = torch.cat([h, torch.ones(len(x), 1, dtype=dtype)], dim=1)
        return h, o_hidden, torch.sigmoid(o_hidden @ W2)

    def percent_correct(o, labels):
        return 100.0 * (o.argmax(dim=1) == labels).sum().item() / len(labels)

    with torch.no_grad():
        start = time.perf_counter()
        x, y = with_bias(train[0]), torch.from_numpy(train[1]).to(dtype)
        labels = y.argmax(dim=1)
        xv, val_labels = with_bias(validation[0]), torch.from_numpy(validation[1]).argmax(dim=1)
        W1, W2 = torch.tensor(w1), torch.tensor(w2)
        n = len(x)
        best_acc = percent_correct(forward(xv, W1, W2)[2], val_labels)
        best = (W1.clone(), W2.clone())
        for _ in range(iterations):
            h, o_hidden, o = forward(x, W1, W2)
            percent_correct(o, labels)  # the training accuracy every implementation records
            delta_out = 2 * (o - y) * o * (1 - o)
            delta_hidden = (delta_out @ W2[:-1].T) * h * (1 - h)
            W2 -= learning_rate * (o_hidden.T @ delta_out) / n
            W1 -= learning_rate * (x.T @ delta_hidden) / n
            acc = percent_correct(forward(xv, W1, W2)[2], val_labels)
            if acc > best_acc or not keep_best:
                best_acc, best = acc, (W1.clone(), W2.clone())
        seconds = time.perf_counter() - start
    return seconds, (best[0].numpy(), best[1].numpy())


# -- mini-batch SGD as users of torch and scikit-learn write it ---------------------------

def torch_sgd_fit(w1, w2, train, validation, epochs, learning_rate, batch_size, threads,
                  shuffle=True):
    """Mini-batch SGD with softmax + cross-entropy, the usual torch way: nn.Sequential,
    CrossEntropyLoss (the batch mean, as the lab's ``backpropagate_xe``), optim.SGD; batches
    taken from a shuffled index each epoch; after each epoch the training and validation
    accuracies, as the lab's ``train_xe`` records them.  Starts from the lab's weights (w1,
    w2: bias row last).  Returns (seconds, (w1, w2) as NumPy arrays in the lab's layout)."""
    nn = torch.nn
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    dtype = torch.float32 if w1.dtype == np.float32 else torch.float64
    model = nn.Sequential(nn.Linear(w1.shape[0] - 1, w1.shape[1]), nn.Sigmoid(),
                          nn.Linear(w2.shape[0] - 1, w2.shape[1])).to(dtype)
    with torch.no_grad():
        for layer, w in ((model[0], w1), (model[2], w2)):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w[:-1].T)))
            layer.bias.copy_(torch.from_numpy(w[-1].copy()))
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    x = torch.from_numpy(train[0]).to(dtype)
    y = torch.from_numpy(train[1].argmax(axis=1))
    xv = torch.from_numpy(validation[0]).to(dtype)
    yv = torch.from_numpy(validation[1].argmax(axis=1))
    n = len(x)
    for _ in range(epochs):
        order = torch.randperm(n) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            batch = order[i:i + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
        with torch.no_grad():
            for inputs, labels in ((x, y), (xv, yv)):
                (model(inputs).argmax(dim=1) == labels).float().mean().item()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        out = [np.vstack([layer.weight.numpy().T, layer.bias.numpy()])
               for layer in (model[0], model[2])]
    return seconds, tuple(out)


def sklearn_sgd_fit(train, epochs, wl, dtype):
    """MLPClassifier at the same settings (its own initial weights), ``epochs`` epochs:
    (seconds of ``fit`` as a user calls it, the fitted model)."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    model = MLPClassifier(hidden_layer_sizes=(wl.hidden,), activation="logistic",
                          solver="sgd", alpha=0.0, momentum=0.0, nesterovs_momentum=False,
                          learning_rate="constant", learning_rate_init=wl.learning_rate,
                          batch_size=wl.batch_size, max_iter=epochs, shuffle=True,
                          early_stopping=False, random_state=SEED)
    x, y = train[0].astype(dtype), train[1].argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # few epochs, on purpose
        start = time.perf_counter()
        model.fit(x, y)
        return time.perf_counter() - start, model


# -- correctness: every variant against the reference before it is timed ------------------

def compare(label, got, want, rtol):
    """Raise CheckFailed unless each weight matrix matches: |got - want| <= rtol (|want| + s),
    s = the matrix's RMS value (so entries near zero are judged on the matrix's scale)."""
    worst = 0.0
    for name, g, w in zip(("W_input_to_hidden", "W_hidden_to_output"), got, want):
        g, w = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        if g.shape != w.shape:
            raise CheckFailed(f"{label}: {name} shape {g.shape} != reference {w.shape}")
        scale = np.sqrt(np.mean(w * w))
        err = float(np.max(np.abs(g - w) / (np.abs(w) + scale)))
        if not err <= rtol:  # also catches NaN
            raise CheckFailed(f"{label}: {name} differs from the reference: relative error "
                              f"{err:.3g} > {rtol:g}")
        worst = max(worst, err)
    return worst


def steps(model, train, iterations, learning_rate):
    """``iterations`` bare full-batch MSE steps (feedforward + backpropagate): the maths of
    an iteration without ``train``'s bookkeeping (best-weights keeping, accuracies)."""
    for _ in range(iterations):
        model.feedforward(train[0])
        model.backpropagate(train[1], learning_rate)
    return model.W_input_to_hidden, model.W_hidden_to_output


def check(variant, wl):
    """Train ``variant`` and the reference (same dtype, same initial weights) on a small slice
    of ``wl``'s data and compare the weights; returns the worst relative error, raises
    CheckFailed.

    native: ``train``/``train_xe`` calls as timed (3 iterations, or one epoch of mini-batches),
    against the same call of the reference.  original and torch: 3 bare MSE steps (the
    original's methods on lists; the torch loop without keeping the best weights) against the
    reference's, so the check is about the maths, not about which iterate is kept.
    """
    train, validation = head(wl.train, CHECK_TRAIN), head(wl.validation, CHECK_VAL)
    ref = Variant("reference", variant.dtype, None)
    if variant.impl == "torch" and wl.batch_size:
        # one epoch of bare steps on batches in order (no shuffling, no best-weights keeping)
        model = _lab_model(ref, wl.hidden)
        for i in range(0, len(train[0]), wl.batch_size):
            model.feedforward_xe(train[0][i:i + wl.batch_size])
            model.backpropagate_xe(train[1][i:i + wl.batch_size], wl.learning_rate)
        w1, w2 = initial_weights(wl.hidden, variant.dtype)
        got = torch_sgd_fit(w1, w2, train, validation, 1, wl.learning_rate, wl.batch_size,
                            variant.threads, shuffle=False)[1]
        return compare(variant.label, got, (model.W_input_to_hidden, model.W_hidden_to_output),
                       RTOL[variant.dtype])
    if variant.impl in ("native", "reference"):
        iterations = 1 if wl.batch_size else CHECK_ITERATIONS  # an epoch: many mini-batch steps
        want = fit(ref, wl, iterations, train, validation, test=False)[2]
        got = fit(variant, wl, iterations, train, validation, test=False)[2]
    else:
        want = steps(_lab_model(ref, wl.hidden), train, CHECK_ITERATIONS, wl.learning_rate)
        if variant.impl == "original":
            got = steps(_lab_model(variant, wl.hidden), as_lists(train), CHECK_ITERATIONS,
                        wl.learning_rate)
        else:
            w1, w2 = initial_weights(wl.hidden, variant.dtype)
            got = torch_fit(w1, w2, train, validation, CHECK_ITERATIONS, wl.learning_rate,
                            variant.threads, keep_best=False)[1]
    return compare(variant.label, got, want, RTOL[variant.dtype])

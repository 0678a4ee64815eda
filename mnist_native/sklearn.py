"""``NeuralNetworkClassifier``: the lab's network as a scikit-learn estimator, on the same
native kernels.

    from mnist_native.sklearn import NeuralNetworkClassifier

It needs scikit-learn >= 1.6 (``pip install scikit-learn``); ``import mnist_native`` never
imports it.  The estimator sizes a ``mnist_native.NeuralNetwork`` from the data (one input
per feature, one output per class: two for a binary problem) and trains it with the fused
kernels of ``NeuralNetwork.train_xe``/``train``: dense arrays, and SciPy sparse matrices fed
to the kernels as CSR without densifying.
"""
import copy
import json
import math
import numbers
from types import SimpleNamespace

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # scikit-learn missing, or older than 1.6 (no validate_data)
    raise ImportError("mnist_native.sklearn needs scikit-learn >= 1.6: "
                      "pip install scikit-learn") from exc

from . import _model_file as model_file
from . import _validation as v
from ._epochs import new_history, run_epochs
from ._sparse_rows import SparseRows
from ._threads import check_num_threads
from .network import NeuralNetwork

__all__ = ["NeuralNetworkClassifier"]

LOSSES = {"xe": True, "mse": False}  # name -> cross-entropy?
# Rows per forward pass in predict: its buffers (a copy of the rows with the bias column,
# the activations) stay near this many bytes, whatever the size of X.
PREDICT_CHUNK_BYTES = 16 * 2**20

# Model file: the network's members plus these (see save/load).
ESTIMATOR_FILE_FORMAT = 1
ESTIMATOR_MEMBERS = (model_file.CLASSES_MEMBER,
                     model_file.Member("estimator", "U", 0, max_chars=2**16))
OPTIONAL_MEMBERS = (model_file.Member("feature_names_in", "U", 1, max_chars=1024),)


class NeuralNetworkClassifier(ClassifierMixin, BaseEstimator):
    """The lab's one-hidden-layer sigmoid network as a scikit-learn classifier.

    Trained by (mini-batch) gradient descent with the native kernels of
    ``mnist_native.NeuralNetwork``: plain SGD, no momentum, no regularisation, a sigmoid
    hidden layer and, by default, a softmax output with the cross-entropy loss.

    Parameters (all keyword-only, stored as given, checked by ``fit``)
    ----------
    hidden_layer_size : int, default 100
        Hidden units.
    loss : {"xe", "mse"}, default "xe"
        ``"xe"``: softmax outputs, cross-entropy loss.  ``"mse"``: sigmoid outputs, the
        lab's squared error; ``predict_proba`` then normalises the outputs to sum to 1 (a
        ranking of the classes, not calibrated probabilities).
    learning_rate : float, default 0.5
        Step size; each step moves the weights by ``learning_rate`` times the batch's mean
        gradient.
    batch_size : int or None, default 32
        Samples per gradient step (clipped to the number of samples); ``None``: full-batch
        gradient descent, the lab's (one step per iteration).
    max_iter : int, default 20
        Iterations: epochs (passes over the training data) with a ``batch_size``, steps in
        full batch.  All of them run: there is no stopping on a tolerance.
    shuffle : bool, default True
        Visit the samples in a new random order every epoch (mini-batches only).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified when every class
        allows it) and keep, at the end, the weights of the best validation accuracy over
        the iterations, the starting weights included: the lab's rule.  Without it the
        last weights are kept.
    validation_fraction : float in (0, 1), default 0.1
        Share of the samples held out when ``early_stopping``.
    dtype : "float64" or "float32", default "float64"
        Precision of the weights and of the computation (float32 runs about twice as fast).
    num_threads : int or None, default None
        Threads of the kernels, 1 to 1,024.  None: ``OMP_NUM_THREADS`` when set, else every
        CPU this process may use, decided at each ``fit``/``predict`` in the process that
        runs it.
        joblib (``GridSearchCV(n_jobs=k)``, ``cross_validate``...) sets
        ``OMP_NUM_THREADS`` to CPUs // k in its worker processes, so threads x jobs stays
        within the CPUs.  Results are bit-identical for any value.
    random_state : int, RandomState or None, default None
        Seeds the initial weights, the shuffling and the validation split.
    verbose : bool, default False
        Print the loss and accuracies after every iteration.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted; output unit i stands for ``classes_[i]``.
    n_features_in_, feature_names_in_ : int, ndarray
        As set by ``validate_data``.
    network_ : mnist_native.NeuralNetwork
        The trained network (``W_input_to_hidden``, ``W_hidden_to_output``...).
    history_ : mnist_native.TrainingHistory
        Per iteration: ``train_accuracy`` (%), ``loss`` (mean per sample, measured on the
        training data after the iteration), ``validation_accuracy`` (%; NaN without
        ``early_stopping``), ``seconds``; ``best_iteration``: the iteration whose weights
        were kept (0: the starting ones).  ``partial_fit`` appends to it.  None after
        ``load`` (the file keeps the model, not its history).
    n_iter_ : int
        Iterations run (``partial_fit`` adds one per call).
    """

    def __init__(self, *, hidden_layer_size=100, loss="xe", learning_rate=0.5, batch_size=32,
                 max_iter=20, shuffle=True, early_stopping=False, validation_fraction=0.1,
                 dtype="float64", num_threads=None, random_state=None, verbose=False):
        self.hidden_layer_size = hidden_layer_size
        self.loss = loss
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.dtype = dtype
        self.num_threads = num_threads
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- parameters ----------------------------------------------------------------------

    def _checked_params(self):
        """The parameters, checked: ``ValueError``/``TypeError`` naming the bad one."""
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be 'xe' or 'mse', got {self.loss!r}")
        if self.batch_size is not None:
            v.check_positive_int(self.batch_size, "batch_size")
        for name in ("shuffle", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        fraction = self.validation_fraction
        if (isinstance(fraction, bool) or not isinstance(fraction, numbers.Real)
                or not 0 < fraction < 1):
            raise ValueError(f"validation_fraction must be a number in (0, 1), got {fraction!r}")
        if self.num_threads is not None:
            check_num_threads(self.num_threads)
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)):
            raise TypeError(f"verbose must be True or False, got {self.verbose!r}")
        return SimpleNamespace(
            hidden=v.check_positive_int(self.hidden_layer_size, "hidden_layer_size"),
            cross_entropy=LOSSES[self.loss],
            learning_rate=v.check_learning_rate(self.learning_rate),
            batch_size=self.batch_size,
            max_iter=v.check_positive_int(self.max_iter, "max_iter"),
            dtype=v.check_dtype(self.dtype))

    # -- training ------------------------------------------------------------------------

    def fit(self, X, y):
        """Train a new network on ``X`` (n_samples, n_features; dense or SciPy sparse) and
        the labels ``y`` (any type: ints, strings...; at least two classes).

        Returns
        -------
        self
        """
        p = self._checked_params()
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=p.dtype, order="C")
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        check_two_classes(classes)
        rng = check_random_state(self.random_state)
        seed = draw_seed(rng)  # first, so that partial_fit's first call draws the same
        validation = None
        if self.early_stopping:
            train, held_out = validation_split(labels, self.validation_fraction, rng)
            validation = (kernel_inputs(X[held_out], p.dtype),
                          one_hot(labels[held_out], len(classes), p.dtype))
            X, labels = X[train], labels[train]
        network = NeuralNetwork(X.shape[1], p.hidden, len(classes), dtype=p.dtype,
                                num_threads=self.num_threads, seed=seed)
        # Fitted state first, so that a Ctrl-C leaves a usable model (see run_epochs).
        self.classes_, self.network_, self.n_iter_ = classes, network, 0
        self.history_ = new_history(p.cross_entropy)
        try:
            run_epochs(network, kernel_inputs(X, p.dtype), one_hot(labels, len(classes), p.dtype),
                       validation, iterations=p.max_iter, learning_rate=p.learning_rate,
                       cross_entropy=p.cross_entropy, batch_size=p.batch_size,
                       shuffle=self.shuffle, history=self.history_, verbose=self.verbose)
        finally:
            self.n_iter_ = self.history_.iterations
        return self

    def partial_fit(self, X, y, classes=None):
        """One iteration (an epoch, or one full-batch step) on ``X``, ``y``, from the
        current weights; the first call (on an unfitted estimator) makes the network and
        needs ``classes``, every label ``y`` may ever hold.  ``early_stopping`` does not
        apply: nothing is held out, the weights after the epoch are kept.

        Returns
        -------
        self
        """
        p = self._checked_params()
        first = not hasattr(self, "classes_")
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit: "
                                 "every label y may hold")
            check_classification_targets(classes)
            all_classes = np.unique(classes)
            check_two_classes(all_classes)
            dtype = p.dtype
        else:
            all_classes = self.classes_
            if classes is not None and not np.array_equal(np.unique(classes), all_classes):
                raise ValueError(f"classes={classes!r} differs from the classes of the first "
                                 f"call to partial_fit ({all_classes!r})")
            dtype = self.network_.dtype
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=dtype, order="C",
                             reset=first)
        check_classification_targets(y)
        unknown = ~np.isin(y, all_classes)
        if unknown.any():
            raise ValueError(f"y holds labels that are not in classes: "
                             f"{np.unique(y[unknown])[:10]!r}")
        labels = np.searchsorted(all_classes, y)
        if first:
            seed = draw_seed(check_random_state(self.random_state))
            self.network_ = NeuralNetwork(X.shape[1], p.hidden, len(all_classes), dtype=dtype,
                                          num_threads=self.num_threads, seed=seed)
            self.classes_, self.history_, self.n_iter_ = all_classes, None, 0
        network = self.network_
        network.num_threads = self.num_threads
        if self.history_ is None:  # first call, or a model read by load()
            self.history_ = new_history(p.cross_entropy)
        before = self.history_.iterations
        try:
            run_epochs(network, kernel_inputs(X, dtype), one_hot(labels, len(all_classes), dtype),
                       iterations=1, learning_rate=p.learning_rate,
                       cross_entropy=p.cross_entropy, batch_size=p.batch_size,
                       shuffle=self.shuffle, history=self.history_, verbose=self.verbose)
        finally:
            self.n_iter_ += self.history_.iterations - before
        return self

    # -- prediction ----------------------------------------------------------------------

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns in the order of
        ``classes_``: the softmax outputs (``loss="xe"``), or the sigmoid outputs
        normalised to sum to 1 (``loss="mse"``)."""
        outputs = self._outputs(X)
        if self.network_.loss_kind == "cross-entropy":
            return outputs
        sums = outputs.sum(axis=1, keepdims=True)
        uniform = np.full_like(outputs, 1.0 / outputs.shape[1])
        return np.divide(outputs, sums, out=uniform, where=sums > 0)

    def predict(self, X):
        """The class of each sample: the label of its largest output."""
        outputs = self._outputs(X)  # first: it checks that the estimator is fitted
        return self.classes_[np.argmax(outputs, axis=1)]

    def _outputs(self, X):
        """The network's outputs for ``X``, by native forward passes over chunks of rows.

        The passes run on a shallow copy of ``network_``: ``feedforward`` stores its
        activations on the model it runs on, and the fitted estimator must neither keep
        them (memory, pickle size) nor share them between threads predicting at once.
        """
        check_is_fitted(self)
        network = self.network_
        X = validate_data(self, X, accept_sparse="csr", dtype=network.dtype, order="C",
                          reset=False)
        runner = copy.copy(network)
        runner.num_threads = self.num_threads
        forward = (runner.feedforward_xe if network.loss_kind == "cross-entropy"
                   else runner.feedforward)
        n, d = X.shape
        h, k = network.hidden_layer_size - 1, network.output_layer_size
        per_row = (2 * d + 1 + 3 * h + 1 + 3 * k) * network.dtype.itemsize
        rows = max(1, PREDICT_CHUNK_BYTES // per_row)
        outputs = np.empty((n, k), dtype=network.dtype)
        for start in range(0, n, rows):
            part = X[start:start + rows]
            forward(part.toarray() if hasattr(part, "toarray") else part)
            outputs[start:start + rows] = runner.o_output
        return outputs

    # -- files ---------------------------------------------------------------------------

    def save(self, path):
        """Write the fitted estimator to ``path`` (``.npz``, no pickle): the network (as
        ``NeuralNetwork.save`` writes it, so ``NeuralNetwork.load`` reads it too), the
        classes, the feature names and the parameters.  Labels must be numbers, booleans or
        strings.  ``history_`` is not saved."""
        check_is_fitted(self)
        fields = model_file.network_fields(self.network_)
        classes = self.classes_
        object_classes = classes.dtype == object
        if object_classes:  # labels held as Python objects: written as the array they make
            plain = np.array(classes.tolist())
            if plain.dtype.kind not in "biufU" or plain.tolist() != classes.tolist():
                raise TypeError("save() keeps labels that are numbers, booleans or strings; "
                                f"these classes_ are not: {classes[:5]!r}")
            classes = plain
        meta = {"format": ESTIMATOR_FILE_FORMAT, "params": json_params(self),
                "classes_dtype": "object" if object_classes else None, "n_iter": self.n_iter_}
        fields.update(classes=classes, estimator=json.dumps(meta))
        if hasattr(self, "feature_names_in_"):
            fields["feature_names_in"] = np.asarray(self.feature_names_in_, dtype=str)
        model_file.write(path, fields)

    @classmethod
    def load(cls, path, **params):
        """A fitted estimator read from a file written by ``save``, with the saved
        parameters, then ``params`` (e.g. ``num_threads=1``).  Read as safely as
        ``NeuralNetwork.load``: ``ValueError`` for anything ``save`` could not have
        written."""
        fields = model_file.read_members(path, model_file.NETWORK_MEMBERS + ESTIMATOR_MEMBERS,
                                         OPTIONAL_MEMBERS)
        name = str(getattr(path, "name", path))
        contents = model_file.network_from_fields(fields, name)
        meta = estimator_meta(model_file.text(fields, "estimator"), name, cls)
        estimator = cls(**meta["params"]).set_params(**params)
        try:
            p = estimator._checked_params()
        except (TypeError, ValueError) as exc:
            raise model_file.refuse(name, f"bad parameters: {exc}") from exc
        n_in, hidden, n_out = contents["sizes"]
        classes = fields["classes"]
        if meta["classes_dtype"] == "object":
            classes = classes.astype(object)
        # The network's own settings, against the parameters: a mismatch is the caller's
        # override at fault where load() was given that parameter, else the file.
        mismatches = {
            "hidden_layer_size": (hidden != p.hidden, f"{hidden} hidden units"),
            "loss": (contents["loss"] != ("cross-entropy" if p.cross_entropy else "mse"),
                     f"a network trained with {contents['loss']!r}")}
        problems = []
        for key, (differs, what) in mismatches.items():
            if differs and key in params:
                raise ValueError(f"{key}={params[key]!r} given to load() does not fit the "
                                 f"network of {name}: {what}")
            if differs:
                problems.append(f"{key} {getattr(estimator, key)!r} but {what}")
        if len(classes) != n_out or n_out < 2 or not np.array_equal(np.unique(classes), classes):
            problems.append(f"{n_out} outputs for the classes {classes[:10]!r}")
        names = fields.get("feature_names_in")
        if names is not None and len(names) != n_in:
            problems.append(f"{len(names)} feature names for {n_in} inputs")
        if problems:
            raise model_file.refuse(name, "; ".join(problems))
        contents["dtype"] = p.dtype
        estimator.network_ = NeuralNetwork._from_network_file(
            contents, num_threads=estimator.num_threads)
        estimator.classes_ = classes
        estimator.n_features_in_ = n_in
        if names is not None:
            estimator.feature_names_in_ = names.astype(object)
        estimator.n_iter_ = meta["n_iter"]
        estimator.history_ = None
        return estimator


# -- helpers --------------------------------------------------------------------------------

def draw_seed(rng):
    """The network's seed, drawn from a RandomState."""
    return int(rng.randint(np.iinfo(np.int32).max))


def check_two_classes(classes):
    if len(classes) < 2:
        raise ValueError(f"NeuralNetworkClassifier needs samples of at least 2 classes; got "
                         f"1 class ({classes[0]!r})")


def kernel_inputs(X, dtype):
    """``X`` as the kernels take it: the array itself, or ``SparseRows`` of a CSR matrix."""
    if not hasattr(X, "tocsr"):
        return X
    if not X.has_canonical_format:  # sorted indices, no duplicates; never the caller's own
        X = X.copy()
        X.sum_duplicates()
    return SparseRows(X.indptr, X.indices, X.data, X.shape[1], dtype)


def one_hot(labels, n_classes, dtype):
    targets = np.zeros((len(labels), n_classes), dtype=dtype)
    targets[np.arange(len(labels)), labels] = 1
    return targets


def validation_split(labels, fraction, rng):
    """(training rows, validation rows): stratified by label when every class has a sample
    on each side to give, else at random."""
    n = len(labels)
    if n < 2:
        raise ValueError(f"early_stopping needs at least 2 samples to hold some out; got "
                         f"n_samples={n}")
    n_val = max(1, min(n - 1, math.ceil(fraction * n)))
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    stratify = labels if (counts.min() >= 2 and len(counts) <= min(n_val, n - n_val)) else None
    return train_test_split(np.arange(n), test_size=n_val, random_state=rng, stratify=stratify)


def json_params(estimator):
    """``get_params()`` as JSON values: the dtype by name, a ``random_state`` that is not an
    int as None (a RandomState cannot be written without pickle)."""
    out = {}
    for key, value in estimator.get_params(deep=False).items():
        if key == "dtype":
            value = str(np.dtype(value))
        elif key == "random_state" and not isinstance(value, numbers.Integral):
            value = None
        elif isinstance(value, (np.bool_, np.integer, np.floating)):
            value = value.item()
        out[key] = value
    return out


def estimator_meta(text, name, cls):
    """The ``estimator`` member of a model file, checked: {"format", "params", ...}."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise model_file.refuse(name, f"the estimator member is not JSON ({exc})") from exc
    known = set(cls().get_params(deep=False))
    if (not isinstance(meta, dict) or meta.get("format") != ESTIMATOR_FILE_FORMAT
            or not isinstance(meta.get("params"), dict)
            or meta.get("classes_dtype") not in (None, "object")
            or isinstance(meta.get("n_iter"), bool) or not isinstance(meta.get("n_iter"), int)
            or meta["n_iter"] < 0):
        raise model_file.refuse(name, "the estimator member is not one save() writes "
                                      f"(format {ESTIMATOR_FILE_FORMAT})")
    unknown = set(meta["params"]) - known
    if unknown:
        raise model_file.refuse(name, f"unknown parameters {sorted(unknown)}")
    scalar = (type(None), bool, int, float, str)
    bad = [k for k, value in meta["params"].items() if not isinstance(value, scalar)]
    if bad:
        raise model_file.refuse(name, f"parameters {bad} are not plain values")
    return meta

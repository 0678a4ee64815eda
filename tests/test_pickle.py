"""Pickling and copying: ``NeuralNetwork`` and the scikit-learn estimator survive pickle (also
into a spawned process), ``copy.deepcopy`` and ``clone``, and predict identically after."""
import copy
import multiprocessing
import operator
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import mnist_native
from mnist_native import dtanh, reference, tanh

RNG = np.random.default_rng(0)
X = RNG.random((60, 8))
LABELS = RNG.integers(0, 3, 60)
Y = np.eye(3)[LABELS]


def trained(cls=mnist_native.NeuralNetwork, **kwargs):
    model = cls(8, 6, 3, seed=1, **kwargs)
    model.train_xe((X, Y), (X[:20], Y[:20]), iterations=5, learning_rate=1.0, plot=False)
    return model


def outputs(model):
    model.feedforward_xe(X)
    return model.o_output.copy()


@pytest.fixture
def quiet(capsys):
    yield
    capsys.readouterr()  # train prints "Training time"


@pytest.mark.parametrize("cls", [mnist_native.NeuralNetwork, reference.NeuralNetwork],
                         ids=["native", "reference"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_network_copies_and_predicts_identically(cls, how, quiet):
    model = trained(cls)
    twin = pickle.loads(pickle.dumps(model)) if how == "pickle" else copy.deepcopy(model)
    assert type(twin) is cls
    np.testing.assert_array_equal(twin.W_input_to_hidden, model.W_input_to_hidden)
    np.testing.assert_array_equal(outputs(twin), outputs(model))
    assert twin.predict((X, Y)) == model.predict((X, Y))
    assert twin.loss_kind == model.loss_kind and twin.dtype == model.dtype
    assert twin.history.validation_accuracy == model.history.validation_accuracy
    assert twin.W_input_to_hidden is not model.W_input_to_hidden  # a copy, not shared


def test_a_copy_trains_on_exactly_as_the_original(quiet):
    """The random generator travels too: the same shuffles, the same weights."""
    model = trained()
    twin = pickle.loads(pickle.dumps(model))
    for m in (model, twin):
        m.train_xe((X, Y), (X, Y), iterations=2, learning_rate=0.5, plot=False, batch_size=7)
    np.testing.assert_array_equal(twin.W_input_to_hidden, model.W_input_to_hidden)


def test_the_lab_state_after_a_forward_pass_survives(quiet):
    """A pickle taken between feedforward and backpropagate steps on as the original does."""
    model = trained()
    model.feedforward(X)
    twin = pickle.loads(pickle.dumps(model))
    assert "_last" not in vars(twin)  # the scratch of the pass is not pickled
    for m in (model, twin):
        m.backpropagate(Y, 1.0)
    np.testing.assert_array_equal(twin.W_input_to_hidden, model.W_input_to_hidden)


def test_transfer_functions_travel_by_name(quiet):
    model = mnist_native.NeuralNetwork(8, 6, 3, tanh, dtanh, seed=1)
    twin = pickle.loads(pickle.dumps(model))
    assert twin.transfer_f is tanh and twin.transfer_df is dtanh


def test_the_default_thread_count_is_the_unpickling_process_s(monkeypatch):
    default = mnist_native.NeuralNetwork(8, 6, 3, seed=1)
    fixed = mnist_native.NeuralNetwork(8, 6, 3, seed=1, num_threads=2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert pickle.loads(pickle.dumps(default)).num_threads == 1
    assert pickle.loads(pickle.dumps(fixed)).num_threads == fixed.num_threads


def test_a_pickle_from_another_version_warns():
    model = mnist_native.NeuralNetwork(8, 6, 3, seed=1)
    state = model.__getstate__()
    state["_mnist_native_version"] = "0.0.1"
    twin = mnist_native.NeuralNetwork.__new__(mnist_native.NeuralNetwork)
    with pytest.warns(UserWarning, match="pickled by mnist_native 0.0.1"):
        twin.__setstate__(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(pickle.dumps(model))  # same version: silent


# -- the estimator ------------------------------------------------------------------------------

try:
    from sklearn.base import clone

    from mnist_native.sklearn import NeuralNetworkClassifier
except ImportError:  # the network's tests above still run
    NeuralNetworkClassifier = None
needs_sklearn = pytest.mark.skipif(NeuralNetworkClassifier is None,
                                   reason="scikit-learn is in the test extra")

STRING_LABELS = np.array(["zero", "one", "two"], dtype=object)[LABELS]


def fitted(**params):
    params = {"random_state": 0, "num_threads": 1, "max_iter": 5, **params}
    return NeuralNetworkClassifier(**params).fit(X, STRING_LABELS)


@needs_sklearn
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_the_estimator_copies_and_predicts_identically(how):
    est = fitted(early_stopping=True)
    twin = pickle.loads(pickle.dumps(est)) if how == "pickle" else copy.deepcopy(est)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(twin.predict(X), est.predict(X))
    assert twin.history_.validation_accuracy == est.history_.validation_accuracy
    assert twin.get_params() == est.get_params()


@needs_sklearn
def test_clone_gives_the_same_unfitted_estimator_that_refits_identically():
    est = fitted()
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "network_")
    twin.fit(X, STRING_LABELS)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))


@needs_sklearn
def test_a_spawned_process_unpickles_and_predicts_identically():
    """The models go to a fresh interpreter (spawn) by pickle and answer there."""
    est = fitted(dtype="float32")
    network = est.network_
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        proba = pool.submit(operator.methodcaller("predict_proba", X), est).result()
        labels = pool.submit(operator.methodcaller("predict", X), est).result()
        counted = pool.submit(operator.methodcaller("predict", (X, Y)), network).result()
        weights = pool.submit(operator.attrgetter("W_input_to_hidden"), network).result()
    np.testing.assert_array_equal(proba, est.predict_proba(X))
    np.testing.assert_array_equal(labels, est.predict(X))
    assert counted == network.predict((X, Y))
    np.testing.assert_array_equal(weights, network.W_input_to_hidden)

"""``mnist_native.sklearn.NeuralNetworkClassifier``: scikit-learn's own estimator checks, the
estimator in a Pipeline and a GridSearchCV (threads x jobs within the CPUs), sparse input fed
to the kernels as CSR, partial_fit, early stopping, save/load."""
import contextlib
import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is in the test extra")
sparse = pytest.importorskip("scipy.sparse", reason="scipy is in the test extra")
from joblib import cpu_count  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import mnist_native  # noqa: E402
from mnist_native.sklearn import NeuralNetworkClassifier  # noqa: E402

X, LABELS = make_blobs(n_samples=120, centers=3, n_features=6, random_state=0)
X = StandardScaler().fit_transform(X)
NAMES = np.array(["cat", "dog", "emu"], dtype=object)[LABELS]


def classifier(**params):
    return NeuralNetworkClassifier(**{"random_state": 0, "num_threads": 1, "max_iter": 5,
                                      **params})


def weights(est):
    return est.network_.W_input_to_hidden, est.network_.W_hidden_to_output


def assert_same_weights(a, b):
    for wa, wb in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(wa, wb)


# -- scikit-learn's own checks --------------------------------------------------------------

# Every check passes: no expected failures.  One thread: the checks fit hundreds of tiny
# models, where waking a second OpenMP thread costs more than the work whenever the other
# core is busy (the results are bit-identical for any thread count, tested elsewhere).  The
# second instance covers the full-batch, MSE, float32 and early-stopping paths.
@parametrize_with_checks([
    NeuralNetworkClassifier(num_threads=1),
    NeuralNetworkClassifier(num_threads=1, loss="mse", batch_size=None, dtype="float32",
                            early_stopping=True, shuffle=False),
])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# -- importing --------------------------------------------------------------------------------

def test_importing_mnist_native_does_not_import_scikit_learn(tmp_path):
    # Outside the source tree (whose unbuilt mnist_native/ would shadow the installed one),
    # with this process's sys.path (an in-place build included).
    code = "import sys, mnist_native; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"


def test_without_scikit_learn_the_import_error_says_what_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # what a missing package looks like
    monkeypatch.delitem(sys.modules, "mnist_native.sklearn")
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        import mnist_native.sklearn  # noqa: F401


# -- fitting and predicting ------------------------------------------------------------------

@pytest.mark.parametrize("labels", [NAMES, LABELS + 10, NAMES.astype(str)],
                         ids=["object strings", "ints", "str"])
def test_any_label_type_multiclass(labels):
    est = classifier().fit(X, labels)
    np.testing.assert_array_equal(est.classes_, np.unique(labels))
    pred = est.predict(X)
    assert pred.dtype == est.classes_.dtype and set(pred) <= set(est.classes_)
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(est.classes_[proba.argmax(axis=1)], pred)
    assert est.score(X, labels) > 0.9


@pytest.mark.parametrize("loss", ["xe", "mse"])
def test_binary_problems_get_two_outputs(loss):
    labels = np.where(LABELS == 0, "yes", "no")
    est = classifier(loss=loss).fit(X, labels)
    assert est.network_.output_layer_size == 2
    assert est.predict_proba(X).shape == (len(X), 2)
    assert est.score(X, labels) > 0.9


def test_one_class_is_refused_by_name():
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        classifier().fit(X, np.zeros(len(X)))


@pytest.mark.parametrize("params, error", [
    ({"loss": "hinge"}, ValueError), ({"batch_size": 0}, ValueError),
    ({"max_iter": 0}, ValueError), ({"hidden_layer_size": 2.5}, TypeError),
    ({"learning_rate": -1}, ValueError), ({"validation_fraction": 1.0}, ValueError),
    ({"dtype": "float16"}, TypeError), ({"num_threads": 0}, ValueError),
    ({"shuffle": "yes"}, TypeError), ({"early_stopping": None}, TypeError),
])
def test_bad_parameters_are_named_at_fit(params, error):
    est = classifier(**params)  # stored as given
    name = next(iter(params))
    with pytest.raises(error, match=name if name != "dtype" else "dtype"):
        est.fit(X, LABELS)


def test_history_has_one_entry_per_iteration():
    est = classifier(max_iter=7).fit(X, LABELS)
    h = est.history_
    assert est.n_iter_ == h.iterations == 7
    assert len(h.loss) == len(h.train_accuracy) == len(h.seconds) == 7
    assert np.isnan(h.validation_accuracy).all()  # nothing held out
    assert h.best_iteration == 7  # the last weights are kept
    assert h.loss[-1] < h.loss[0] and h.loss_name == "cross-entropy"


def test_mini_batch_sgd_learns_load_digits():
    digits_x, digits_y = load_digits(return_X_y=True)
    model = make_pipeline(StandardScaler(), classifier(max_iter=10, batch_size=16))
    model.fit(digits_x[:1200], digits_y[:1200])
    assert model.score(digits_x[1200:], digits_y[1200:]) > 0.9


def test_fit_is_partial_fit_repeated():
    """``fit`` for k iterations and k ``partial_fit`` calls draw the same seed and the same
    shuffles: the same weights, bit for bit."""
    fit = classifier(max_iter=3).fit(X, NAMES)
    part = classifier()
    for _ in range(3):
        part.partial_fit(X, NAMES, classes=NAMES)
    assert part.n_iter_ == part.history_.iterations == 3
    assert_same_weights(fit, part)


def test_partial_fit_rules():
    est = classifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        est.partial_fit(X, NAMES)
    est.partial_fit(X[:50], NAMES[:50], classes=["cat", "dog", "emu"])
    est.partial_fit(X[50:], NAMES[50:])  # later calls may leave classes out
    with pytest.raises(ValueError, match="not in classes"):
        est.partial_fit(X, np.where(LABELS == 0, "gnu", NAMES))
    with pytest.raises(ValueError, match="differs from the classes"):
        est.partial_fit(X, NAMES, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :3], NAMES)
    assert est.n_iter_ == 2
    before = weights(est)[0].copy()
    est.fit(X, NAMES)  # fit starts over
    assert est.n_iter_ == 5 and not np.array_equal(before, weights(est)[0])


@pytest.mark.parametrize("batch_size", [None, 16])
def test_early_stopping_keeps_the_best_validation_weights(batch_size):
    """Training for max_iter and keeping the best equals training only up to the best
    iteration: the same split, seed and shuffles, so the same weights."""
    params = dict(early_stopping=True, validation_fraction=0.3, batch_size=batch_size,
                  learning_rate=2.0, max_iter=12)
    full = classifier(**params).fit(X, NAMES)
    h = full.history_
    assert h.best_validation_accuracy == max([h.initial_validation_accuracy]
                                             + h.validation_accuracy)
    upto = classifier(**{**params, "max_iter": max(h.best_iteration, 1)}).fit(X, NAMES)
    assert upto.history_.best_iteration == h.best_iteration
    assert_same_weights(full, upto)


def test_verbose_prints_each_iteration():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        classifier(verbose=True, max_iter=3, early_stopping=True).fit(X, NAMES)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Iteration 1, loss = ")
    assert "validation accuracy" in lines[0]
    with contextlib.redirect_stdout(out := io.StringIO()):
        classifier().fit(X, NAMES)
    assert out.getvalue() == ""  # quiet by default: no "Training time"


def test_concurrent_predictions_share_nothing():
    est = classifier().fit(X, NAMES)
    before = dict(vars(est.network_))
    expected = est.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda rows: est.predict_proba(X[rows]),
                                [slice(0, 120), slice(0, 7), slice(30, 120), slice(5, 6)] * 5))
    for rows, got in zip([slice(0, 120), slice(0, 7), slice(30, 120), slice(5, 6)] * 5, results):
        np.testing.assert_array_equal(got, expected[rows])
    assert vars(est.network_).keys() == before.keys()  # no activations left on the network


# -- sparse input --------------------------------------------------------------------------

def sparse_data(density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((150, 40)) * (rng.random((150, 40)) < density)
    x[:, 5] = rng.random(150) + 0.1  # one busy column: the kernels take it dense
    return x, rng.integers(0, 4, 150)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_csr_trains_exactly_as_the_dense_array(dtype, batch_size):
    x, y = sparse_data()
    params = dict(dtype=dtype, batch_size=batch_size, early_stopping=True)
    dense = classifier(**params).fit(x, y)
    csr = classifier(**params).fit(sparse.csr_matrix(x), y)
    assert_same_weights(dense, csr)
    assert dense.history_.loss == csr.history_.loss
    np.testing.assert_array_equal(csr.predict_proba(sparse.csr_array(x)),
                                  dense.predict_proba(x))


def test_other_sparse_layouts_and_explicit_zeros_are_the_same_data():
    x, y = sparse_data(seed=1)
    expected = weights(classifier().fit(x, y))
    coo = sparse.coo_matrix(x)
    # duplicates that sum to the entries, an explicit zero, unsorted indices
    rows = np.concatenate([coo.row, coo.row, [3]])
    cols = np.concatenate([coo.col, coo.col, [0]])
    vals = np.concatenate([coo.data / 2, coo.data / 2, [0.0]])
    messy = sparse.csr_matrix((vals, (rows, cols)), shape=x.shape)
    messy.indices = messy.indices.copy()
    for form in (sparse.csc_matrix(x), coo, sparse.csr_array(x), messy):
        snapshot = form.copy()
        got = weights(classifier().fit(form, y))
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-15)
        assert (form != snapshot).nnz == 0  # the caller's matrix is left alone


def test_sparse_input_beyond_the_kernels_column_indices_is_refused():
    x = sparse.random(10, 70_000, density=1e-3, format="csr", random_state=0)
    with pytest.raises(ValueError, match="sparse input with 70000 features"):
        classifier().fit(x, np.arange(10) % 2)


# -- threads and jobs --------------------------------------------------------------------------

def threads_used(est, X, y):
    """A 'score' that reports the kernels' thread count in the process that fitted."""
    return est[-1].network_.num_threads


@pytest.fixture
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:600], y[:600]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_keeps_threads_times_jobs_within_the_cpus(digits, n_jobs, monkeypatch):
    """joblib's worker processes get OMP_NUM_THREADS = CPUs // n_jobs, and a classifier left
    at num_threads=None follows it; in the parent it takes every CPU."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    model = make_pipeline(StandardScaler(), NeuralNetworkClassifier(random_state=0,
                                                                    max_iter=10))
    search = GridSearchCV(model, {"neuralnetworkclassifier__learning_rate": [0.1, 0.5]},
                          cv=3, n_jobs=n_jobs,
                          scoring={"accuracy": "accuracy", "threads": threads_used},
                          refit="accuracy")
    search.fit(*digits)
    used = search.cv_results_["mean_test_threads"]
    expected = mnist_native.available_cpus() if n_jobs == 1 else max(cpu_count() // n_jobs, 1)
    assert (used == expected).all()
    assert expected * n_jobs <= max(cpu_count(), n_jobs)
    assert search.best_score_ > 0.85
    # Bit-identical kernels for any thread count: the scores do not depend on n_jobs.
    if n_jobs == 2:
        serial = GridSearchCV(model.set_params(neuralnetworkclassifier__num_threads=1),
                              search.param_grid, cv=3, n_jobs=1).fit(*digits)
        np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                      search.cv_results_["mean_test_accuracy"])


# -- save and load -------------------------------------------------------------------------

@pytest.mark.parametrize("labels", [NAMES, LABELS, NAMES.astype(str), LABELS > 0,
                                    LABELS - 1.0],
                         ids=["object strings", "ints", "str", "bools", "floats"])
def test_save_and_load_keep_predictions_and_parameters(tmp_path, labels):
    est = classifier(dtype="float32", learning_rate=0.25).fit(X, labels)
    est.save(tmp_path / "model.npz")
    back = NeuralNetworkClassifier.load(tmp_path / "model.npz")
    assert back.get_params() == est.get_params()
    assert back.classes_.dtype == est.classes_.dtype
    assert back.classes_.tolist() == est.classes_.tolist()
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.n_iter_ == est.n_iter_ and back.history_ is None
    back.partial_fit(X, labels)  # and it trains on
    assert back.n_iter_ == est.n_iter_ + 1


def test_load_takes_parameter_overrides_and_the_network_reads_the_file(tmp_path):
    est = classifier().fit(X, NAMES)
    est.save(tmp_path / "model.npz")
    back = NeuralNetworkClassifier.load(tmp_path / "model.npz", num_threads=2)
    assert back.num_threads == 2 and back.network_.num_threads == 2
    network = mnist_native.NeuralNetwork.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(network.W_input_to_hidden, est.network_.W_input_to_hidden)


def test_save_refuses_labels_it_cannot_write_without_pickle(tmp_path):
    est = classifier().fit(X, NAMES)
    est.classes_ = np.empty(3, dtype=object)
    est.classes_[:] = [("a", 1), ("b", 2), ("c", 3)]  # labels scikit-learn could never give
    with pytest.raises(TypeError, match="numbers, booleans or strings"):
        est.save(tmp_path / "model.npz")


def test_feature_names_are_kept(tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas gives feature names")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = classifier().fit(frame, NAMES)
    est.save(tmp_path / "model.npz")
    back = NeuralNetworkClassifier.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(back.feature_names_in_, est.feature_names_in_)


@pytest.mark.parametrize("change, message", [
    ({"estimator": "{not json"}, "not JSON"),
    ({"estimator": '{"format": 2, "params": {}, "n_iter": 1}'}, "not one save"),
    ({"estimator": '{"format": 1, "params": {"evil": 1}, "classes_dtype": null, '
                   '"n_iter": 1}'}, "unknown parameters"),
    ({"estimator": '{"format": 1, "params": {"loss": {"a": 1}}, "classes_dtype": null, '
                   '"n_iter": 1}'}, "not plain values"),
    ({"estimator": '{"format": 1, "params": {"hidden_layer_size": 7}, '
                   '"classes_dtype": null, "n_iter": 1}'}, "hidden_layer_size 7"),
    ({"estimator": '{"format": 1, "params": {"loss": "mse"}, "classes_dtype": null, '
                   '"n_iter": 1}'}, "loss 'mse'"),
    ({"classes": np.array(["b", "a", "c"])}, "outputs for the classes"),
    ({"classes": np.array(["a", "b"])}, "outputs for the classes"),
    ({"classes": np.array([None, None, None], dtype=object)}, "dtype object"),
    ({"feature_names_in": np.array(["x"])}, "1 feature names for 6 inputs"),
    ({"classes": None}, "missing classes"),
    ({"estimator": "[" * 30000 + "]" * 30000}, "not JSON"),  # nested too deep to parse
    ({"estimator": '{"format": 1, "params": {"num_threads": 100000}, "classes_dtype": null, '
                   '"n_iter": 1}'}, "num_threads must be at most"),
])
def test_load_refuses_estimator_files_save_could_not_have_written(tmp_path, change, message):
    est = classifier(hidden_layer_size=5).fit(X, NAMES)
    est.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as f:
        fields = {name: f[name] for name in f.files}
    fields.update(change)
    np.savez(tmp_path / "bad.npz", **{k: v for k, v in fields.items() if v is not None})
    with pytest.raises(ValueError, match=message):
        NeuralNetworkClassifier.load(tmp_path / "bad.npz")


def test_a_batch_size_beyond_the_data_is_one_step_of_it_all():
    """Clipped to the data (a product of it once overflowed in the kernels)."""
    huge = classifier(batch_size=2**62, max_iter=2).fit(X, NAMES)
    whole = classifier(batch_size=len(X), max_iter=2).fit(X, NAMES)
    assert_same_weights(huge, whole)


@pytest.mark.parametrize("override, message", [({"hidden_layer_size": 7}, "5 hidden units"),
                                               ({"loss": "mse"}, "trained with")])
def test_load_blames_an_override_that_does_not_fit_not_the_file(tmp_path, override, message):
    est = classifier(hidden_layer_size=5).fit(X, NAMES)
    est.save(tmp_path / "good.npz")
    with pytest.raises(ValueError, match=f"given to load\\(\\) does not fit.*{message}") as info:
        NeuralNetworkClassifier.load(tmp_path / "good.npz", **override)
    assert "not a model file" not in str(info.value)

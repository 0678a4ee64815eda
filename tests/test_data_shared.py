"""Against the full shared MNIST (MNIST_NATIVE_DATA): the lab's lists, IDX = pickle, a real download.

Skipped, with the reason, when MNIST_NATIVE_DATA is not set.  The full pickle takes seconds
to load, so it is loaded once per module.
"""
import contextlib
import io
import os

import numpy as np
import pytest

from _data_helpers import SHARED_DIR, copy_shared_files, isolated_env, serve, shared_dir  # noqa: F401
from mnist_native.data import download_mnist, find_mnist, load_data, load_mnist, read_lab_pickle

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def pickle_arrays():
    return read_lab_pickle(shared_dir() / "mnist.pkl.gz")


@pytest.fixture(scope="module")
def lab_data(tmp_path_factory):
    """load_data() with no argument, run from a folder holding Data/mnist.pkl.gz (the lab's way)."""
    folder = shared_dir()
    lab = tmp_path_factory.mktemp("lab")
    (lab / "Data").mkdir()
    # A link, not a copy: the shared files never get duplicated.
    (lab / "Data" / "mnist.pkl.gz").symlink_to(folder / "mnist.pkl.gz")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MNIST_NATIVE_DATA", raising=False)
        mp.setenv("MNIST_NATIVE_MIRRORS", "http://127.0.0.1:9/")  # never used: Data/ comes first
        mp.chdir(lab)
        assert find_mnist().origin == "./Data/mnist.pkl.gz"
        with contextlib.redirect_stdout(out):
            data = load_data()
    return out.getvalue(), data


def test_lab_format(lab_data, pickle_arrays):
    printed, data = lab_data
    assert printed == "Loading MNIST data .....\n"
    assert isinstance(data, tuple) and len(data) == 3
    assert [len(split[0]) for split in data] == [50_000, 10_000, 10_000]
    for (inputs, targets), (x, y) in zip(data, pickle_arrays):
        assert isinstance(inputs, list) and isinstance(targets, list) and len(targets) == len(inputs)
        assert all(type(row) is list and len(row) == 784 for row in inputs)
        assert all(type(t) is list and len(t) == 10 and sum(t) == 1 and t[label] == 1
                   for t, label in zip(targets, y.tolist()))
        assert all(type(v) is int for v in targets[0]) and all(type(v) is float for v in inputs[0])
        # The values are the pickle's, in [0, 1): checked on the arrays, and rows compared.
        assert x.min() == 0.0 and x.max() < 1.0
        for i in list(range(0, len(inputs), 97)) + [len(inputs) - 1]:
            assert inputs[i] == x[i].tolist()


def test_notebook_usage(lab_data):
    # The notebook's own lines (LAB_SPEC, "Data").
    _, (training_data, validation_data, test_data) = lab_data
    small_training_data = (training_data[0][:1000], training_data[1][:1000])
    small_validation_data = (validation_data[0][:200], validation_data[1][:200])
    indices = [1, 3, 5, 7, 2, 0, 13, 15, 17, 4]
    vsmall_training_data = ([training_data[0][i] for i in indices], [training_data[1][i] for i in indices])
    assert len(small_training_data[0]) == 1000 and len(small_validation_data[1]) == 200
    assert len(vsmall_training_data[0]) == 10
    image = np.array(training_data[0][indices[0]]).reshape(28, 28)
    assert image.shape == (28, 28) and image.dtype == np.float64
    inputs = [x + [1.] for x in vsmall_training_data[0]]  # students' list concatenation
    assert np.array(inputs).shape == (10, 785)
    # The well-known first training labels: 5 0 4 1 9 2 1 3 1 4.
    assert [t.index(1) for t in training_data[1][:10]] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert len(test_data[0]) == 10_000  # the notebook's denominator for test accuracy


def test_class_counts(pickle_arrays):
    (_, ty), (_, vy), (_, sy) = pickle_arrays
    assert np.bincount(np.concatenate([ty, vy]), minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(sy, minlength=10).tolist() == TEST_COUNTS


def test_idx_via_env_matches_pickle(pickle_arrays, monkeypatch):
    monkeypatch.setenv("MNIST_NATIVE_DATA", str(SHARED_DIR))
    assert find_mnist().kind == "idx"  # the folder also holds the pickle; IDX files come first
    from_idx = load_mnist()
    for split, (x, y) in zip(from_idx, pickle_arrays):
        assert split.images.dtype == x.dtype == np.float32
        np.testing.assert_array_equal(split.images, x)  # pixel / 256, exactly
        np.testing.assert_array_equal(split.labels, y)
    pixels = load_mnist(SHARED_DIR, dtype=np.uint8)
    np.testing.assert_array_equal(pixels.test.images.astype(np.float32) / 256, pickle_arrays[2][0])


def test_real_files_download_verify_and_cache(tmp_path, pickle_arrays):
    # The shared .gz files were re-compressed, so they pass through the payload checksums
    # of the official table: the real tables, end to end, against a loopback mirror.
    www = copy_shared_files(tmp_path / "www")
    cache = tmp_path / "cache"
    with serve(www) as (url, server):
        download_mnist(cache, mirrors=[url], progress=False)
    assert len(server.requests) == 4
    assert sorted(os.listdir(cache)) == sorted([".mnist_native.lock"] + [p.name for p in www.iterdir()])
    loaded = load_mnist(cache_dir=cache)
    np.testing.assert_array_equal(loaded.train.images, pickle_arrays[0][0])
    np.testing.assert_array_equal(loaded.test.labels, pickle_arrays[2][1])

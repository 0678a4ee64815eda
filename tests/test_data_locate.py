"""Where MNIST is looked for, in order, and what load_data / load_mnist hand out (synthetic data)."""
import os
from pathlib import Path

import numpy as np
import pytest

from _data_helpers import (  # noqa: F401
    file_specs,
    isolated_env,
    lab_arrays,
    serve,
    synthetic_arrays,
    write_idx_folder,
    write_lab_pickle,
)
from mnist_native.data import (
    MNISTFormatError,
    download,
    MNISTNotFoundError,
    cache_dir,
    default_cache_dir,
    find_mnist,
    load_data,
    load_mnist,
)


def test_path_argument_pickle_file_and_folders(tmp_path):
    pkl = write_lab_pickle(tmp_path / "p" / "mnist.pkl.gz")
    write_idx_folder(tmp_path / "idx")
    assert find_mnist(pkl).kind == "pickle"
    assert find_mnist(str(tmp_path / "p")).path == pkl  # a folder holding mnist.pkl.gz
    src = find_mnist(tmp_path / "idx")
    assert (src.kind, src.path, src.origin) == ("idx", tmp_path / "idx", "path argument")


def test_path_argument_wins_over_everything(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "idx")
    write_lab_pickle(Path("Data") / "mnist.pkl.gz")
    monkeypatch.setenv("MNIST_NATIVE_DATA", str(write_lab_pickle(tmp_path / "env.pkl.gz")))
    assert find_mnist(tmp_path / "idx").path == tmp_path / "idx"


def test_env_var_before_lab_folder_and_cache(tmp_path, monkeypatch):
    write_lab_pickle(Path("Data") / "mnist.pkl.gz")
    write_idx_folder(tmp_path / "env-cache")
    write_idx_folder(tmp_path / "envdata")
    monkeypatch.setenv("MNIST_NATIVE_DATA", str(tmp_path / "envdata"))
    src = find_mnist()
    assert (src.kind, src.path, src.origin) == ("idx", tmp_path / "envdata", "MNIST_NATIVE_DATA")


def test_lab_folder_before_cache(tmp_path):
    pkl = write_lab_pickle(Path("Data") / "mnist.pkl.gz")
    write_idx_folder(tmp_path / "env-cache")
    src = find_mnist()
    assert (src.kind, src.path, src.origin) == ("pickle", pkl.absolute(), "./Data/mnist.pkl.gz")


def test_cache_from_env_and_argument(tmp_path):
    write_idx_folder(tmp_path / "env-cache")
    write_idx_folder(tmp_path / "arg-cache")
    assert find_mnist().path == tmp_path / "env-cache"
    assert find_mnist(cache_dir=tmp_path / "arg-cache").path == tmp_path / "arg-cache"
    assert find_mnist().origin == "cache"


def test_cache_dir_resolution(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "env-cache"
    assert cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("MNIST_NATIVE_CACHE")
    assert cache_dir() == default_cache_dir()
    assert default_cache_dir().name == "mnist" and "mnist_native" in default_cache_dir().parts


def _one_idx_file(p):
    write_idx_folder(p)
    return p / "t10k-labels-idx1-ubyte.gz"


def _partial_folder(p):
    write_idx_folder(p)
    (p / "train-images-idx3-ubyte.gz").unlink()
    return p


@pytest.mark.parametrize("setup,problem", [
    (lambda p: p, "does not exist"),
    (lambda p: (p.mkdir(), p)[1], "is a folder holding neither the four MNIST IDX files nor mnist.pkl.gz"),
    (_partial_folder, r"is a folder missing IDX file\(s\) train-images-idx3-ubyte\[\.gz\]"),
    (_one_idx_file, "is a single IDX file; give the folder"),
], ids=["missing", "empty-folder", "partial-folder", "one-idx-file"])
@pytest.mark.parametrize("how", ["argument", "env"])
def test_named_location_is_never_silently_replaced(tmp_path, monkeypatch, setup, problem, how):
    # Even with usable MNIST in ./Data and in the cache, a bad named location is an error.
    write_lab_pickle(Path("Data") / "mnist.pkl.gz")
    write_idx_folder(tmp_path / "env-cache")
    target = setup(tmp_path / "target")
    if how == "env":
        monkeypatch.setenv("MNIST_NATIVE_DATA", str(target))
    with pytest.raises(MNISTNotFoundError, match=problem) as info:
        find_mnist(target if how == "argument" else None)
    assert str(target) in str(info.value)
    assert ("MNIST_NATIVE_DATA" if how == "env" else "path argument") in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_nothing_anywhere_download_disabled(tmp_path):
    with pytest.raises(MNISTNotFoundError) as info:
        find_mnist(download=False)
    message = str(info.value)
    for expected in ("path argument: not given", "MNIST_NATIVE_DATA: not set",
                     "./Data/mnist.pkl.gz: not found in " + os.getcwd(),
                     f"cache folder {tmp_path / 'env-cache'}: does not exist",
                     "download: not attempted (download=False)", "To fix it", "HTTPS_PROXY"):
        assert expected in message


def test_no_network_lists_what_was_tried(tmp_path):
    # The autouse fixture points MNIST_NATIVE_MIRRORS at a closed loopback port.
    mirror = os.environ["MNIST_NATIVE_MIRRORS"]
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(progress=False)
    message = str(info.value)
    assert "1. path argument: not given" in message
    assert "5. download: could not download train-images-idx3-ubyte.gz" in message
    assert mirror + "train-images-idx3-ubyte.gz: " in message
    assert "Connection refused" in message or "refused" in message.lower()
    assert list((tmp_path / "env-cache").iterdir()) == [tmp_path / "env-cache" / ".mnist_native.lock"]


def test_bad_mirror_variable_is_reported(monkeypatch):
    monkeypatch.setenv("MNIST_NATIVE_MIRRORS", "ftp://example.invalid/mnist/")
    with pytest.raises(MNISTNotFoundError, match="MNIST_NATIVE_MIRRORS: 'ftp://example.invalid/mnist/' is not an http"):
        find_mnist()


def test_load_mnist_downloads_into_the_cache_once(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    folder = write_idx_folder(tmp_path / "www", arrays)
    specs = file_specs(folder)
    monkeypatch.setattr(download, "FILES", specs)
    with serve(folder) as (url, server):
        monkeypatch.setenv("MNIST_NATIVE_MIRRORS", url)
        first = load_mnist(dtype=np.uint8, progress=False)
        second = load_mnist(dtype=np.uint8, progress=False)
    assert len(server.requests) == 4
    for name in specs:
        assert (tmp_path / "env-cache" / name).read_bytes() == (folder / name).read_bytes()
    np.testing.assert_array_equal(first.test.images, arrays[1][0].reshape(-1, 784))
    np.testing.assert_array_equal(second.train.labels, arrays[0][1][:50])


# --- what the loaders return ----------------------------------------------------------

def test_load_data_from_lab_folder(capsys):
    data = lab_arrays()
    write_lab_pickle(Path("Data") / "mnist.pkl.gz", data=data)
    result = load_data()
    assert capsys.readouterr().out == "Loading MNIST data .....\n"
    assert isinstance(result, tuple) and len(result) == 3
    for (inputs, targets), (x, y) in zip(result, data):
        assert isinstance(inputs, list) and isinstance(targets, list)
        assert inputs == x.tolist()  # the same Python floats the lab's tolist() gave
        assert all(type(v) is float for v in inputs[0])
        assert targets == np.eye(10, dtype=int)[y].tolist()
        assert all(type(v) is int for t in targets for v in t)


def test_load_data_lists_are_independent():
    write_lab_pickle(Path("Data") / "mnist.pkl.gz")
    (inputs, targets), _, _ = load_data()
    inputs[0][0] = 123.0
    targets[0][0] = 7
    assert inputs[1][0] != 123.0 and targets[1][0] != 7
    assert inputs[0] is not inputs[1] and targets[0] is not targets[1]


def test_load_data_falls_back_to_tolist_for_other_values(tmp_path):
    (tx, ty), va, te = lab_arrays()
    tx = (tx * 256 / 255).astype(np.float32)  # pixel / 255: not multiples of 1/256
    write_lab_pickle(tmp_path / "m.pkl.gz", data=((tx, ty), va, te))
    (inputs, _), _, _ = load_data(tmp_path / "m.pkl.gz")
    assert inputs == tx.tolist()


def test_idx_and_pickle_agree_and_split_in_order(tmp_path):
    arrays = synthetic_arrays(n_train=60, n_test=12)
    write_idx_folder(tmp_path / "idx", arrays)
    write_lab_pickle(tmp_path / "m.pkl.gz", data=lab_arrays(arrays))
    from_idx = load_mnist(tmp_path / "idx")
    from_pickle = load_mnist(tmp_path / "m.pkl.gz")
    assert [len(s.images) for s in from_idx] == [50, 10, 12]
    for a, b in zip(from_idx, from_pickle):
        assert a.images.dtype == b.images.dtype == np.float32
        assert a.labels.dtype == b.labels.dtype == np.int64
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(from_idx.validation.images[0] * 256, arrays[0][0][50].reshape(784))
    assert load_data(tmp_path / "idx") == load_data(tmp_path / "m.pkl.gz")


@pytest.mark.parametrize("dtype", [np.uint8, "float64", np.float32])
def test_load_mnist_dtypes(tmp_path, dtype):
    arrays = synthetic_arrays()
    write_idx_folder(tmp_path / "idx", arrays)
    write_lab_pickle(tmp_path / "m.pkl.gz", data=lab_arrays(arrays))
    for source in (tmp_path / "idx", tmp_path / "m.pkl.gz"):
        train = load_mnist(source, dtype=dtype).train
        assert train.images.dtype == np.dtype(dtype) and train.images.shape == (50, 784)
        if np.dtype(dtype) == np.uint8:
            np.testing.assert_array_equal(train.images, arrays[0][0][:50].reshape(50, 784))
        else:
            assert 0 <= train.images.min() and train.images.max() < 1
    (x_train, _), (x_val, _), (x_test, _) = load_mnist(tmp_path / "idx")  # plain unpacking works


def test_load_mnist_rejects_other_dtypes_and_inexact_uint8(tmp_path):
    with pytest.raises(ValueError, match="dtype must be uint8, float32 or float64"):
        load_mnist(dtype=np.int32)
    (tx, ty), va, te = lab_arrays()
    write_lab_pickle(tmp_path / "m.pkl.gz", data=(((tx * 256 / 255).astype(np.float32), ty), va, te))
    with pytest.raises(MNISTFormatError, match=r"m\.pkl\.gz: pixel values are not multiples of 1/256"):
        load_mnist(tmp_path / "m.pkl.gz", dtype=np.uint8)

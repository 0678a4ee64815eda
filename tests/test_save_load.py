"""``NeuralNetwork.save(path)`` / ``NeuralNetwork.load(path)``: a plain ``.npz`` (no pickle)
that keeps the weights, the sizes, the dtype, the loss kind and the transfer functions."""
import zipfile

import numpy as np
import pytest

import mnist_native
from mnist_native import dsigmoid, dtanh, reference, tanh

RNG = np.random.default_rng(0)
X = RNG.random((40, 12))
Y = np.eye(3)[RNG.integers(0, 3, 40)]
VX = RNG.random((10, 12))
VY = np.eye(3)[RNG.integers(0, 3, 10)]

CLASSES = {"native": mnist_native.NeuralNetwork, "reference": reference.NeuralNetwork}


@pytest.fixture(params=list(CLASSES))
def cls(request):
    return CLASSES[request.param]


def trained(cls, dtype, loss, transfer=None, **kwargs):
    pair = () if transfer is None else transfer
    model = cls(12, 7, 3, *pair, dtype=dtype, seed=3, **kwargs)
    if loss == "mse":
        model.train((X, Y), (VX, VY), iterations=4, learning_rate=1.0, plot=False)
    elif loss == "cross-entropy":
        model.train_xe((X, Y), (VX, VY), iterations=4, learning_rate=1.0, plot=False)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", [None, "mse", "cross-entropy"])
def test_round_trip_keeps_weights_sizes_dtype_and_loss(cls, dtype, loss, tmp_path, capsys):
    model = trained(cls, dtype, loss)
    path = tmp_path / "model.npz"
    model.save(path)
    back = cls.load(path)
    capsys.readouterr()
    assert type(back) is cls
    assert (back.input_layer_size, back.hidden_layer_size, back.output_layer_size) == (13, 8, 3)
    assert back.dtype == np.dtype(dtype)
    assert back.W_input_to_hidden.dtype == np.dtype(dtype)
    assert back.loss_kind == loss
    np.testing.assert_array_equal(back.W_input_to_hidden, model.W_input_to_hidden)
    np.testing.assert_array_equal(back.W_hidden_to_output, model.W_hidden_to_output)
    forward = "feedforward_xe" if loss == "cross-entropy" else "feedforward"
    getattr(model, forward)(VX)
    getattr(back, forward)(VX)
    np.testing.assert_array_equal(back.o_output, model.o_output)
    assert back.predict((VX, VY)) == model.predict((VX, VY))


def test_transfer_functions_are_kept(cls, tmp_path):
    model = cls(12, 7, 3, tanh, dtanh, seed=1)
    model.save(tmp_path / "tanh.npz")
    back = cls.load(tmp_path / "tanh.npz")
    assert back.transfer_f is tanh and back.transfer_df is dtanh


def relu(x):
    return np.maximum(x, 0)


def drelu(x):
    return (np.asarray(x) > 0).astype(float)


def sigmoid(x):  # a student's own, under the package's name: not taken for it
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("pair", [(relu, drelu), (sigmoid, dsigmoid), (tanh, dsigmoid),
                                  (lambda x: x, lambda x: 1)])
def test_save_refuses_transfer_functions_a_file_cannot_name(cls, tmp_path, pair):
    """A file names its transfer pair; only the package's own pairs load back, so save()
    refuses others before writing anything (load would have refused the file)."""
    model = cls(4, 5, 3, *pair, seed=1)
    with pytest.raises(ValueError, match="own transfer functions only"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_load_finds_the_file_save_wrote_under_a_name_without_npz(cls, tmp_path):
    model = cls(12, 7, 3, seed=1)
    model.save(tmp_path / "model")  # written as model.npz, as np.savez names it
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    for name in (tmp_path / "model", str(tmp_path / "model")):
        back = cls.load(name)
        np.testing.assert_array_equal(back.W_input_to_hidden, model.W_input_to_hidden)
    with pytest.raises(FileNotFoundError):
        cls.load(tmp_path / "other")


def test_a_loaded_model_trains_on_from_its_weights(tmp_path, capsys):
    model = trained(mnist_native.NeuralNetwork, "float64", "mse")
    model.save(tmp_path / "m.npz")
    back = mnist_native.NeuralNetwork.load(tmp_path / "m.npz", num_threads=1)
    assert back.num_threads == 1
    a = model.train((X, Y), (VX, VY), iterations=3, learning_rate=1.0, plot=False)
    b = back.train((X, Y), (VX, VY), iterations=3, learning_rate=1.0, plot=False)
    capsys.readouterr()
    assert a.validation_accuracy == b.validation_accuracy
    np.testing.assert_array_equal(back.W_input_to_hidden, model.W_input_to_hidden)


def test_load_can_override_the_dtype(tmp_path):
    trained(mnist_native.NeuralNetwork, "float64", None).save(tmp_path / "m.npz")
    back = mnist_native.NeuralNetwork.load(tmp_path / "m.npz", dtype="float32")
    assert back.W_input_to_hidden.dtype == np.float32


def test_the_file_is_a_plain_npz_without_pickles(tmp_path):
    trained(mnist_native.NeuralNetwork, "float32", "cross-entropy").save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        names = sorted(z.namelist())
    assert all(name.endswith(".npy") for name in names)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:  # raises if anything is pickled
        fields = {name: f[name] for name in f.files}
    assert all(a.dtype != object for a in fields.values())
    assert str(fields["dtype"]) == "float32" and str(fields["loss"]) == "cross-entropy"


def test_save_adds_the_npz_suffix_as_numpy_does(tmp_path):
    model = trained(mnist_native.NeuralNetwork, "float64", None)
    model.save(tmp_path / "model")
    assert (tmp_path / "model.npz").is_file()
    mnist_native.NeuralNetwork.load(tmp_path / "model.npz")


def _write_model_file(path, **changes):
    model = trained(mnist_native.NeuralNetwork, "float64", None)
    fields = dict(format_version=1, W_input_to_hidden=model.W_input_to_hidden,
                  W_hidden_to_output=model.W_hidden_to_output, dtype="float64", loss="",
                  transfer="sigmoid")
    fields.update(changes)
    np.savez(path, **{k: v for k, v in fields.items() if v is not None})


@pytest.mark.parametrize("changes, message", [
    ({"format_version": 99}, "format 99"),
    ({"W_hidden_to_output": None}, "missing W_hidden_to_output"),
    ({"transfer": "relu"}, "relu"),
    ({"W_hidden_to_output": np.ones((3, 3))}, "do not fit"),
])
def test_load_refuses_files_it_cannot_trust(tmp_path, changes, message):
    _write_model_file(tmp_path / "bad.npz", **changes)
    with pytest.raises(ValueError, match=message):
        mnist_native.NeuralNetwork.load(tmp_path / "bad.npz")


def test_load_refuses_pickled_contents_without_running_them(tmp_path):
    np.savez(tmp_path / "evil.npz", format_version=1, W_input_to_hidden=np.array([object()]),
             W_hidden_to_output=np.ones((2, 2)), dtype="float64", loss="", transfer="sigmoid")
    with pytest.raises(ValueError, match="not a model file"):
        mnist_native.NeuralNetwork.load(tmp_path / "evil.npz")


@pytest.mark.parametrize("content", [b"not a zip file", b""])
def test_load_of_a_foreign_file_is_a_value_error(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a model file"):
        mnist_native.NeuralNetwork.load(path)


def test_load_of_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        mnist_native.NeuralNetwork.load(tmp_path / "model.npz")

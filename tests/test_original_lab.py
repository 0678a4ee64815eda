"""The benchmark baseline benches/original_lab.py is faithful to the lab (LAB_SPEC.md).

If the "original" the benchmarks compare against were wrong, the speed-ups would mean nothing:
check it against the Part-1 hand example, the batch gradients and the lab's costs.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parent.parent / "benches" / "original_lab.py"


def _load():
    spec = importlib.util.spec_from_file_location("_bench_original_lab", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ol = _load()

WI = [[0.3, -0.5], [0.8, 0.2], [0.2, -0.4]]
WO = [[-0.6], [0.4], [0.5]]
WI_AFTER = [[0.3432265432215471, -0.5273473101875394],
            [0.8108066358053868, 0.19316317245311515],
            [0.2540331790269339, -0.4341841377344243]]
WO_AFTER = [[-0.8541467506279605], [0.2745727217772572], [0.10637455535192786]]


def _part1_model():
    model = ol.NeuralNetwork(2, 2, 1)
    model.weights_init(np.array(WI), np.array(WO))
    return model


def test_part1_hand_example():
    model = _part1_model()
    model.feedforward([[0.8, 0.2]])
    assert model.o_output.shape == (1, 1)
    assert abs(model.o_output[0, 0] - 0.5597295991095776) < 1e-12
    model.backpropagate([[0.4]])  # default learning rate 5.0
    np.testing.assert_allclose(model.W_input_to_hidden, WI_AFTER, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.W_hidden_to_output, WO_AFTER, rtol=0, atol=1e-12)
    model.feedforward([[0.8, 0.2]])
    assert abs(model.o_output[0, 0] - 0.40648823589210104) < 1e-12


def test_part1_intermediate_arrays():
    model = _part1_model()
    model.feedforward([[0.8, 0.2]])
    np.testing.assert_allclose(model.input, [[0.8, 0.2, 1.0]])
    np.testing.assert_allclose(model.u_hidden, [[0.6, -0.76]], atol=1e-15)
    np.testing.assert_allclose(model.o_hidden, [[ol.sigmoid(0.6), ol.sigmoid(-0.76), 1.0]])
    np.testing.assert_allclose(model.o_output, ol.sigmoid(model.u_output))


def test_sizes_shapes_and_seeded_init():
    a = ol.NeuralNetwork(784, 30, 10, seed=3)
    b = ol.NeuralNetwork(784, 30, 10, seed=3)
    assert (a.input_layer_size, a.hidden_layer_size, a.output_layer_size) == (785, 31, 10)
    assert a.W_input_to_hidden.shape == (785, 30)
    assert a.W_hidden_to_output.shape == (31, 10)
    np.testing.assert_array_equal(a.W_input_to_hidden, b.W_input_to_hidden)
    np.testing.assert_array_equal(a.W_hidden_to_output, b.W_hidden_to_output)
    # normal(0, 1/sqrt(785)) and uniform(0, 1)/sqrt(31)
    assert abs(a.W_input_to_hidden.std() * np.sqrt(785) - 1) < 0.05
    assert abs(a.W_input_to_hidden.mean()) < 0.01
    scaled = a.W_hidden_to_output * np.sqrt(31)
    assert scaled.min() >= 0 and scaled.max() < 1
    # same draws as np.random.RandomState(seed): normal first, then uniform
    rs = np.random.RandomState(3)
    np.testing.assert_array_equal(a.W_input_to_hidden,
                                  rs.normal(0, 1 / np.sqrt(785), size=(785, 30)))
    np.testing.assert_array_equal(a.W_hidden_to_output, rs.uniform(size=(31, 10)) / np.sqrt(31))


def test_unseeded_init_uses_global_np_random():
    np.random.seed(11)
    a = ol.NeuralNetwork(5, 4, 3)
    np.random.seed(11)
    b = ol.NeuralNetwork(5, 4, 3)
    np.testing.assert_array_equal(a.W_input_to_hidden, b.W_input_to_hidden)
    np.testing.assert_array_equal(a.W_hidden_to_output, b.W_hidden_to_output)


def test_transfer_functions():
    x = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(ol.sigmoid(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(ol.dsigmoid(x), ol.sigmoid(x) * (1 - ol.sigmoid(x)))
    u = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    s = ol.softmax(u)
    np.testing.assert_allclose(s.sum(axis=1), 1.0)
    np.testing.assert_allclose(s[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


def _loss(model, X, T, xe):
    if xe:
        model.feedforward_xe(X)
        return float(np.mean(-np.sum(np.array(T) * np.log(model.o_output), axis=1)))
    model.feedforward(X)
    return float(np.mean(np.sum((model.o_output - np.array(T)) ** 2, axis=1)))


@pytest.mark.parametrize("xe", [False, True])
def test_backpropagate_is_batch_mean_gradient_step(xe):
    rng = np.random.RandomState(0)
    X = rng.rand(5, 3).tolist()
    T = np.eye(4, dtype=int)[[0, 2, 1, 3, 2]].tolist()
    model = ol.NeuralNetwork(3, 4, 4, seed=1)
    wi, wo = model.W_input_to_hidden.copy(), model.W_hidden_to_output.copy()

    def numeric_grad(which):
        w = wi if which == "wi" else wo
        grad = np.zeros_like(w)
        h = 1e-6
        for idx in np.ndindex(w.shape):
            for sign in (1, -1):
                w2 = w.copy()
                w2[idx] += sign * h
                model.weights_init(w2 if which == "wi" else wi, w2 if which == "wo" else wo)
                grad[idx] += sign * _loss(model, X, T, xe) / (2 * h)
        return grad

    g_wi, g_wo = numeric_grad("wi"), numeric_grad("wo")
    model.weights_init(wi.copy(), wo.copy())
    lr = 0.5
    if xe:
        model.feedforward_xe(X)
        model.backpropagate_xe(T, learning_rate=lr)
    else:
        model.feedforward(X)
        model.backpropagate(T, learning_rate=lr)
    np.testing.assert_allclose((wi - model.W_input_to_hidden) / lr, g_wi, atol=1e-8)
    np.testing.assert_allclose((wo - model.W_hidden_to_output) / lr, g_wo, atol=1e-8)


def _tiny_data(n, seed):
    rng = np.random.RandomState(seed)
    return rng.rand(n, 6).tolist(), np.eye(3, dtype=int)[rng.randint(0, 3, n)].tolist()


def test_predict_returns_int_count():
    model = ol.NeuralNetwork(2, 2, 2)
    model.weights_init(np.zeros((3, 2)), np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]))
    count = model.predict(([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [[1, 0], [0, 1], [1, 0]]))
    assert type(count) is int and count == 2


def test_feedforward_takes_lists_not_arrays():
    model = ol.NeuralNetwork(2, 2, 1)
    with pytest.raises(TypeError):
        model.feedforward(np.zeros((1, 2)))


@pytest.mark.parametrize("method", ["train", "train_xe"])
def test_train_costs_and_records(method, capsys):
    """Three forward passes per iteration (+1 before the loop), histories, printed time."""
    calls = []

    class Counting(ol.NeuralNetwork):  # the students' subclassing pattern
        def feedforward(self, inputs):
            calls.append("ff")
            super().feedforward(inputs)

        def feedforward_xe(self, inputs):
            calls.append("ff_xe")
            super().feedforward_xe(inputs)

    data, val = _tiny_data(20, 1), _tiny_data(8, 2)
    model = Counting(6, 5, 3, seed=0)
    getattr(model, method)(data, val, iterations=4, learning_rate=1.0)
    first = "ff_xe" if method == "train_xe" else "ff"
    assert calls == ["ff"] + [first, "ff", "ff"] * 4
    assert len(model.training_accuracies) == len(model.validation_accuracies) == 4
    assert len(model.errors) == 4 and all(e >= 0 for e in model.errors)
    assert len(model.cross_entropies) == (4 if method == "train_xe" else 0)
    assert capsys.readouterr().out.startswith("Training time: ")
    assert not hasattr(ol, "plt") and not hasattr(ol, "matplotlib")  # plotting off


def test_train_keeps_best_validation_weights():
    data, val = _tiny_data(30, 3), _tiny_data(30, 4)
    model = ol.NeuralNetwork(6, 5, 3, seed=2)
    model.train(data, val, iterations=15, learning_rate=3.0)
    best = max(model.validation_accuracies)
    final = 100 * model.predict(val) / len(val[0])
    assert final >= best  # == best, or the start weights if no iteration beat them

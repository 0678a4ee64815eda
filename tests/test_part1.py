"""The lab's Part 1, by hand (LAB_SPEC "Reference numbers"): every number to 1e-12.

A 2-2-1 sigmoid network, x = (0.8, 0.2), y = 0.4, one backpropagate at the default learning
rate 5.0.  Checked for the native class at 1 and 2 threads and for the NumPy reference.
"""
import numpy as np
import pytest

import mnist_native
from mnist_native import reference

X = [[0.8, 0.2]]
Y = [[0.4]]
WI = [[0.3, -0.5], [0.8, 0.2], [0.2, -0.4]]
WO = [[-0.6], [0.4], [0.5]]
OUTPUT_BEFORE = 0.5597295991095776
WI_AFTER = [[0.3432265432215471, -0.5273473101875394],
            [0.8108066358053868, 0.19316317245311515],
            [0.2540331790269339, -0.4341841377344243]]
WO_AFTER = [[-0.8541467506279605], [0.2745727217772572], [0.10637455535192786]]
OUTPUT_AFTER = 0.40648823589210104
TOL = 1e-12

MODELS = {
    "native-1-thread": lambda **kw: mnist_native.NeuralNetwork(2, 2, 1, num_threads=1, **kw),
    "native-2-threads": lambda **kw: mnist_native.NeuralNetwork(2, 2, 1, num_threads=2, **kw),
    "reference": lambda **kw: reference.NeuralNetwork(2, 2, 1, **kw),
}


@pytest.fixture(params=list(MODELS))
def make(request):
    return MODELS[request.param]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _part1(make, wi=WI, wo=WO, **kw):
    model = make(**kw)
    model.weights_init(wi, wo)
    return model


def test_sizes_count_the_bias_units(make):
    model = _part1(make)
    assert (model.input_layer_size, model.hidden_layer_size, model.output_layer_size) == (3, 3, 1)
    assert model.W_input_to_hidden.shape == (3, 2)
    assert model.W_hidden_to_output.shape == (3, 1)


def test_output_before_the_update(make):
    model = _part1(make)
    model.feedforward(X)
    assert model.o_output.shape == (1, 1)
    assert abs(model.o_output[0, 0] - OUTPUT_BEFORE) <= TOL


def test_intermediate_attributes(make):
    model = _part1(make)
    model.feedforward(X)
    u_hidden = [0.8 * 0.3 + 0.2 * 0.8 + 0.2, 0.8 * -0.5 + 0.2 * 0.2 - 0.4]  # (0.6, -0.76)
    o_hidden = [_sigmoid(u_hidden[0]), _sigmoid(u_hidden[1]), 1.0]
    u_output = -0.6 * o_hidden[0] + 0.4 * o_hidden[1] + 0.5
    np.testing.assert_allclose(model.input, [[0.8, 0.2, 1.0]], rtol=0, atol=TOL)
    np.testing.assert_allclose(model.u_hidden, [u_hidden], rtol=0, atol=TOL)
    np.testing.assert_allclose(model.o_hidden, [o_hidden], rtol=0, atol=TOL)
    np.testing.assert_allclose(model.u_output, [[u_output]], rtol=0, atol=TOL)
    np.testing.assert_allclose(model.o_output, [[_sigmoid(u_output)]], rtol=0, atol=TOL)


def test_weights_after_one_backpropagate_at_the_default_learning_rate(make):
    model = _part1(make)
    model.feedforward(X)
    model.backpropagate(Y)  # the default learning rate, 5.0
    np.testing.assert_allclose(model.W_input_to_hidden, WI_AFTER, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.W_hidden_to_output, WO_AFTER, rtol=0, atol=TOL)


def test_output_after_the_update(make):
    model = _part1(make)
    model.feedforward(X)
    model.backpropagate(Y, 5.0)
    model.feedforward(X)
    assert abs(model.o_output[0, 0] - OUTPUT_AFTER) <= TOL


def test_array_inputs_and_weights_give_the_same_numbers(make):
    wi, wo = np.array(WI), np.array(WO)
    model = _part1(make, wi, wo)
    model.feedforward(np.array(X))
    assert abs(model.o_output[0, 0] - OUTPUT_BEFORE) <= TOL
    model.backpropagate(np.array(Y), learning_rate=5.0)
    np.testing.assert_allclose(model.W_input_to_hidden, WI_AFTER, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.W_hidden_to_output, WO_AFTER, rtol=0, atol=TOL)
    # weights_init copies: the caller's matrices are not moved by the step
    np.testing.assert_array_equal(wi, WI)
    np.testing.assert_array_equal(wo, WO)


def test_float32_model_is_close(make):
    model = _part1(make, dtype=np.float32)
    model.feedforward(X)
    assert model.o_output.dtype == np.float32
    assert abs(model.o_output[0, 0] - OUTPUT_BEFORE) <= 1e-6
    model.backpropagate(Y)
    assert model.W_input_to_hidden.dtype == np.float32
    np.testing.assert_allclose(model.W_input_to_hidden, WI_AFTER, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.W_hidden_to_output, WO_AFTER, rtol=0, atol=1e-6)
    model.feedforward(X)
    assert abs(model.o_output[0, 0] - OUTPUT_AFTER) <= 1e-6

"""Finite-difference gradient check on a tiny network (3-4-2, batch 5, float64).

The weight change made by ``backpropagate(targets, lr)`` (``_xe``: on the cross-entropy of a
softmax output) must equal ``-lr * d(mean loss)/dW``, the derivative taken by central
differences of the loss computed through ``feedforward`` (``feedforward_xe``).
"""
import numpy as np
import pytest

import mnist_native
from mnist_native import reference

N_IN, N_HIDDEN, N_OUT, BATCH = 3, 4, 2, 5
LEARNING_RATE = 0.7
EPS = 1e-6

PAIRS = {
    "sigmoid": (mnist_native.sigmoid, mnist_native.dsigmoid),
    "tanh": (mnist_native.tanh, mnist_native.dtanh),
}
CLASSES = {
    "native-1": lambda *a, **kw: mnist_native.NeuralNetwork(*a, num_threads=1, **kw),
    "native-2": lambda *a, **kw: mnist_native.NeuralNetwork(*a, num_threads=2, **kw),
    "reference": reference.NeuralNetwork,
}


def _problem(pair, loss):
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(BATCH, N_IN))
    x[1, 0] = 0.0  # an exact zero, which the kernels skip
    if loss == "xe":
        t = rng.random((BATCH, N_OUT)) + 0.1
        t /= t.sum(axis=1, keepdims=True)  # softmax targets: rows summing to 1
    elif pair == "tanh":
        t = rng.uniform(-0.9, 0.9, size=(BATCH, N_OUT))
    else:
        t = rng.uniform(0.05, 0.95, size=(BATCH, N_OUT))
    wi = rng.normal(0.0, 0.8, size=(N_IN + 1, N_HIDDEN))
    wo = rng.normal(0.0, 0.8, size=(N_HIDDEN + 1, N_OUT))
    return x, t, wi, wo


def _mean_loss(model, x, t, wi, wo, loss):
    """The batch-mean loss with weights (wi, wo), through the model's own forward pass."""
    model.weights_init(wi, wo)
    if loss == "xe":
        model.feedforward_xe(x)
        return float(np.mean(-np.sum(t * np.log(model.o_output), axis=1)))
    model.feedforward(x)
    return float(np.mean(np.sum((model.o_output - t) ** 2, axis=1)))


def _numerical_gradient(model, x, t, wi, wo, loss):
    grads = []
    for which in (0, 1):
        w = (wi, wo)[which]
        g = np.zeros_like(w)
        for idx in np.ndindex(*w.shape):
            plus, minus = w.copy(), w.copy()
            plus[idx] += EPS
            minus[idx] -= EPS
            args_p = (plus, wo) if which == 0 else (wi, plus)
            args_m = (minus, wo) if which == 0 else (wi, minus)
            g[idx] = (_mean_loss(model, x, t, *args_p, loss)
                      - _mean_loss(model, x, t, *args_m, loss)) / (2 * EPS)
        grads.append(g)
    return grads


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("loss", ["mse", "xe"])
@pytest.mark.parametrize("pair", list(PAIRS))
def test_backpropagate_step_is_minus_lr_times_the_gradient(cls, loss, pair):
    f, df = PAIRS[pair]
    model = CLASSES[cls](N_IN, N_HIDDEN, N_OUT, f, df, seed=0)
    x, t, wi, wo = _problem(pair, loss)
    grad_wi, grad_wo = _numerical_gradient(model, x, t, wi, wo, loss)
    assert np.abs(grad_wi).max() > 1e-3 and np.abs(grad_wo).max() > 1e-3  # a real test

    model.weights_init(wi, wo)
    if loss == "xe":
        model.feedforward_xe(x)
        model.backpropagate_xe(t, LEARNING_RATE)
    else:
        model.feedforward(x)
        model.backpropagate(t, LEARNING_RATE)
    step_wi = model.W_input_to_hidden - wi
    step_wo = model.W_hidden_to_output - wo
    np.testing.assert_allclose(step_wi, -LEARNING_RATE * grad_wi, rtol=1e-6, atol=1e-9,
                               err_msg="W_input_to_hidden")
    np.testing.assert_allclose(step_wo, -LEARNING_RATE * grad_wo, rtol=1e-6, atol=1e-9,
                               err_msg="W_hidden_to_output")


@pytest.mark.parametrize("cls", list(CLASSES))
def test_a_small_step_lowers_the_loss(cls):
    """Sanity of the sign: gradient descent with a small rate decreases both losses."""
    for loss in ("mse", "xe"):
        x, t, wi, wo = _problem("sigmoid", loss)
        model = CLASSES[cls](N_IN, N_HIDDEN, N_OUT, seed=0)
        before = _mean_loss(model, x, t, wi, wo, loss)
        (model.backpropagate_xe if loss == "xe" else model.backpropagate)(t, 0.05)
        after = _mean_loss(model, x, t, model.W_input_to_hidden.copy(),
                           model.W_hidden_to_output.copy(), loss)
        assert after < before, loss

"""The lab's transfer functions: values, derivatives (taking the activation u), a row-wise
softmax, and no overflow warning nor NaN for |x| up to 1e4."""
import math
import warnings

import numpy as np
import pytest

import mnist_native
from mnist_native import dsigmoid, dtanh, sigmoid, softmax, tanh

POINTS = [-30.0, -5.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0, 30.0]


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def test_the_lab_names_are_exported():
    for name in ("sigmoid", "dsigmoid", "tanh", "dtanh", "softmax"):
        assert callable(getattr(mnist_native, name))
        assert getattr(mnist_native.transfer_functions, name) is getattr(mnist_native, name)


def test_sigmoid_values():
    x = np.array(POINTS)
    np.testing.assert_allclose(sigmoid(x), [_sig(v) for v in POINTS], rtol=1e-15, atol=0)
    assert sigmoid(0.0) == 0.5
    np.testing.assert_allclose(sigmoid(x) + sigmoid(-x), 1.0, rtol=1e-15)


def test_dsigmoid_takes_the_activation():
    x = np.array(POINTS)
    np.testing.assert_allclose(dsigmoid(x), [_sig(v) * (1 - _sig(v)) for v in POINTS],
                               rtol=1e-14, atol=1e-300)
    assert dsigmoid(0.0) == 0.25  # not sigmoid'(sigmoid(0)) = sigmoid(0.5)(1 - sigmoid(0.5))


def test_tanh_and_dtanh():
    x = np.array(POINTS)
    np.testing.assert_allclose(tanh(x), [math.tanh(v) for v in POINTS], rtol=1e-15)
    np.testing.assert_allclose(dtanh(x), [1 - math.tanh(v) ** 2 for v in POINTS],
                               rtol=1e-12, atol=1e-300)
    assert dtanh(0.0) == 1.0


@pytest.mark.parametrize("f, df", [(sigmoid, dsigmoid), (tanh, dtanh)])
def test_derivatives_match_central_differences(f, df):
    x = np.linspace(-6, 6, 49)
    h = 1e-6
    np.testing.assert_allclose(df(x), (f(x + h) - f(x - h)) / (2 * h), rtol=1e-7, atol=1e-10)


def test_softmax_values_and_row_sums():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 5.0, -1.0]])
    e = np.exp(x)
    np.testing.assert_allclose(softmax(x), e / e.sum(axis=1, keepdims=True), rtol=1e-15)
    rng = np.random.default_rng(0)
    y = rng.normal(0, 20, size=(50, 10))
    s = softmax(y)
    assert s.shape == y.shape
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-14)
    assert (s >= 0).all()
    # row-wise, not over the whole array; shifting a row changes nothing
    np.testing.assert_allclose(softmax(y + rng.normal(size=(50, 1)) * 100), s, rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_allclose(softmax(np.array([1.0, 2.0, 3.0])), softmax(x[:1])[0], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float32_in_float32_out(dtype):
    x = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    for f in (sigmoid, dsigmoid, tanh, dtanh, softmax):
        assert f(x).dtype == dtype, f.__name__


EXTREMES = [1e4, -1e4, 1e3, -1e3, 710.0, -710.0, 745.0, -745.0, 0.0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_warning_and_no_nan_for_large_inputs(dtype):
    x = np.array(EXTREMES, dtype=dtype)
    rows = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [5e3, 1e4, 9.9e3]],
                    dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        values = {f.__name__: f(x) for f in (sigmoid, dsigmoid, tanh, dtanh)}
        values["softmax"] = softmax(rows)
    for name, v in values.items():
        assert np.isfinite(v).all(), name
    s, ds = values["sigmoid"], values["dsigmoid"]
    assert s[0] == 1.0 and s[1] == 0.0 and ds[0] == 0.0 and ds[1] == 0.0
    assert values["tanh"][0] == 1.0 and values["tanh"][1] == -1.0
    assert ((s >= 0) & (s <= 1)).all() and (ds >= 0).all() and (values["dtanh"] >= 0).all()
    np.testing.assert_allclose(values["softmax"].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(values["softmax"][0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(values["softmax"][1], [1 / 3] * 3, rtol=1e-6)

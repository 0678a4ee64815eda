"""The lab's transfer functions, numerically stable for any finite input.

``sigmoid`` never evaluates ``exp`` of a positive number, so |x| up to 1e4 (and beyond) gives
no overflow warning; ``softmax`` subtracts each row's maximum for the same reason.
"""
import numpy as np

__all__ = ["sigmoid", "dsigmoid", "tanh", "dtanh", "softmax"]


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), elementwise."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))  # in (0, 1]: cannot overflow
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def dsigmoid(x):
    """Derivative of the sigmoid, sigmoid(x) (1 - sigmoid(x)); takes the activation x, not the output."""
    s = sigmoid(x)
    return s * (1.0 - s)


def tanh(x):
    """Hyperbolic tangent, elementwise."""
    return np.tanh(x)


def dtanh(x):
    """Derivative of tanh, 1 - tanh(x)^2; takes the activation x."""
    t = np.tanh(x)
    return 1.0 - t * t


def softmax(x):
    """Row-wise softmax: each row of a 2-D ``x`` (or a 1-D ``x``) sums to 1."""
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)

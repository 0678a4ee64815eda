"""Comparing a student's numbers with the expected ones: conversion, tolerance, and where
(and by how much) they first differ."""
import warnings
from dataclasses import dataclass

import numpy as np

#: Agreement wanted, float64 against float64: far looser than rounding (~1e-15), far
#: tighter than any mistake of the catalogue on the checker's inputs.
RTOL = 1e-6
ATOL = 1e-9


def as_array(value):
    """``(float64 array, None)``, or ``(None, why not)`` for anything that is not a
    rectangular array of real numbers (lists of lists are fine)."""
    if value is None:
        return None, "is None"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", getattr(np, "exceptions", np).ComplexWarning)
            array = np.array(value, dtype=np.float64)
    except Exception as exc:  # ragged lists, strings, objects whose __array__ raises...
        kind = type(value).__name__
        return None, f"is a {kind} that is not an array of numbers ({_first_line(exc)})"
    return array, None


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def close(got, expected):
    """Same shape and equal to tolerance (NaN equal to NaN: a mistake may make NaN too)."""
    return (got.shape == expected.shape
            and bool(np.allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True)))


@dataclass
class Difference:
    """Where ``got`` first differs from ``expected``."""

    index: tuple = None      # None: the shapes differ
    expected: float = None
    got: float = None
    count: int = 0           # how many entries differ
    size: int = 0
    expected_shape: tuple = ()
    got_shape: tuple = ()

    @property
    def off_by(self):
        if self.index is None or not (np.isfinite(self.expected) and np.isfinite(self.got)):
            return None
        return abs(self.got - self.expected)

    def describe(self, name):
        """e.g. "o_output[1, 2]: expected 0.61374, got 0.58021 (off by 0.0335); 3 of 20
        entries differ"."""
        if self.index is None:
            return (f"{name} has shape {fmt_shape(self.got_shape)}, expected "
                    f"{fmt_shape(self.expected_shape)}")
        where = f"{name}[{', '.join(str(i) for i in self.index)}]"
        text = f"{where}: expected {fmt(self.expected)}, got {fmt(self.got)}"
        if self.off_by is not None:
            text += f" (off by {fmt(self.off_by)})"
        if self.size > 1:
            text += f"; {self.count} of {self.size} entries differ"
        return text


def difference(got, expected):
    """The first ``Difference`` of two arrays, or None when they are ``close``."""
    if got.shape != expected.shape:
        return Difference(expected_shape=expected.shape, got_shape=got.shape)
    with np.errstate(all="ignore"):
        same = np.isclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True)
    if same.all():
        return None
    wrong = np.argwhere(~same)
    index = tuple(int(i) for i in wrong[0])
    return Difference(index=index, expected=float(expected[index]), got=float(got[index]),
                      count=len(wrong), size=int(expected.size),
                      expected_shape=expected.shape, got_shape=got.shape)


def fmt(x):
    """A number, short: 6 significant digits."""
    return f"{x:.6g}"


def fmt_shape(shape):
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def json_ready(array):
    """A float array as nested lists of floats, NaN and infinities as the strings "nan",
    "inf" and "-inf" (JSON has no such numbers)."""
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 0:
        return _json_float(float(array))
    return [json_ready(row) for row in array]


def _json_float(x):
    return x if np.isfinite(x) else str(x)

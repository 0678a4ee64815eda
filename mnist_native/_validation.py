"""Input checks shared by every entry point: each bad input gets an exception naming it.

Everything the native kernels assume (2-D, C-contiguous, the model's dtype, finite, non-empty,
the right width) is established here, before any kernel computes with the data (finiteness
by one itself, ``_kernels.all_finite``, on the model's threads).
"""
import collections.abc
import itertools
import math
import numbers
import os
import warnings

import numpy as np

from . import _kernels

ComplexWarning = getattr(np, "exceptions", np).ComplexWarning  # moved in NumPy 1.25
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype):
    """The model's dtype as an ``np.dtype``: float32 or float64, else ``TypeError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_positive_int(value, name):
    """``value`` as an int >= 1 (bools refused), else ``TypeError``/``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def check_iterations(value):
    """Iteration count: an int >= 0 (0 trains nothing and only evaluates)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"iterations must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"iterations must be >= 0, got {value}")
    return int(value)


def check_learning_rate(value):
    """A finite learning rate > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"learning_rate must be a number, got {value!r}")
    try:
        rate = float(value)  # first: a long double or a Fraction may only overflow here
    except OverflowError:
        rate = math.inf
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"learning_rate must be a finite number > 0, got {str(value):.40}")
    return rate


def check_learning_rates(value, iterations):
    """The learning rate of every iteration: a number (returned as a float, the rate of
    all), or a schedule (returned as a list of ``iterations`` floats): a 1-D array, a
    list, tuple or other sequence, or an iterator, of finite numbers > 0."""
    if isinstance(value, np.ndarray) and value.ndim != 1:
        if value.ndim == 0:
            return check_learning_rate(value.item())
        raise ValueError(f"learning_rate: a schedule array must be 1-D, got shape "
                         f"{value.shape}")
    schedule = isinstance(value, (np.ndarray, collections.abc.Iterator)) or (
        isinstance(value, collections.abc.Sequence)
        and not isinstance(value, (str, bytes, bytearray, memoryview)))
    if not schedule:
        return check_learning_rate(value)  # a number, or TypeError naming what it got
    # At most one rate more than needed is read: an endless iterator is refused, not run.
    rates = list(itertools.islice(value, iterations + 1))
    if len(rates) != iterations:
        got = len(rates) if len(rates) <= iterations else "more"
        raise ValueError(f"learning_rate: a schedule needs one rate per iteration "
                         f"({iterations}), got {got}")
    for i, rate in enumerate(rates):
        try:
            rates[i] = check_learning_rate(rate)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"learning_rate[{i}]: {exc}") from None
    return rates


def as_matrix(values, name, n_columns, dtype, n_threads=1):
    """``values`` (a list of equal-length lists, or any array-like) as a C-contiguous 2-D array.

    Returns the input itself when it already is one of the right dtype, so arrays pass without
    a copy; read-only arrays stay read-only (the kernels never write their inputs).  Its
    finiteness is checked on ``n_threads``.
    """
    try:
        with warnings.catch_warnings():
            # NumPy only warns when it drops imaginary parts: make that an error here.
            warnings.simplefilter("error", ComplexWarning)
            arr = np.asarray(values, dtype=dtype)
    except ComplexWarning as exc:
        raise TypeError(f"{name} must be real numbers, got complex values") from exc
    except (ValueError, TypeError) as exc:
        raise TypeError(
            f"{name} must be a 2-D array or a list of equal-length lists of numbers; "
            f"converting it failed: {exc}"
        ) from exc
    if arr.ndim == 1 and arr.size == 0:
        raise ValueError(f"{name} is empty: it needs at least one sample")
    if arr.ndim != 2:
        hint = ""
        if arr.ndim == 1 and "targets" in name:  # class labels where one-hot rows belong
            hint = (f" (targets are one-hot rows, one per sample: for class labels, "
                    f"np.eye({n_columns})[labels])")
        elif arr.ndim == 1:
            hint = " (for one sample, wrap it in a list: [x])"
        raise ValueError(f"{name} must be 2-D (samples x features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one sample")
    if arr.shape[1] != n_columns:
        raise ValueError(f"{name} must have {n_columns} columns per sample, got {arr.shape[1]}")
    arr = np.ascontiguousarray(arr)
    if not _kernels.all_finite(arr, n_threads):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_one_hot(targets, name):
    """Rows that are one-hot (a single 1, zeros elsewhere): what accuracy by argmax needs."""
    ones = np.count_nonzero(targets == 1, axis=1)
    zeros = np.count_nonzero(targets == 0, axis=1)
    bad = np.flatnonzero((ones != 1) | (ones + zeros != targets.shape[1]))
    if bad.size:
        raise ValueError(f"{name} must be one-hot rows (a single 1, zeros elsewhere); row "
                         f"{bad[0]} is {targets[bad[0]].tolist()}")
    return targets


def check_distribution(targets, name):
    """Rows of non-negative numbers summing to 1: what the cross-entropy loss is defined on."""
    sums = targets.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero((targets < 0).any(axis=1) | (np.abs(sums - 1) > 1e-6))
    if bad.size:
        raise ValueError(f"{name} for the cross-entropy loss must be rows of non-negative "
                         f"numbers summing to 1; row {bad[0]} is {targets[bad[0]].tolist()}")
    return targets


def as_weight(values, name, shape, dtype):
    """A weight matrix as a fresh, writable, C-contiguous array of ``shape`` and ``dtype``."""
    try:
        arr = np.array(values, dtype=dtype, order="C", copy=True)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be a {shape[0]} x {shape[1]} array of numbers: {exc}") from exc
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_pair(data, name):
    """A lab data pair ``(inputs, targets)`` with as many targets as inputs."""
    if isinstance(data, (str, bytes)) or not hasattr(data, "__len__") or len(data) != 2:
        raise TypeError(f"{name} must be a pair (inputs, targets), got {type(data).__name__}")
    inputs, targets = data[0], data[1]
    if len(inputs) != len(targets):
        raise ValueError(
            f"{name}: {len(inputs)} inputs but {len(targets)} targets; they must match"
        )
    if len(inputs) == 0:
        raise ValueError(f"{name} is empty: it needs at least one sample")
    return inputs, targets


def physical_memory():
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(n_bytes, what):
    """Refuse, before allocating, what could never fit in this machine's memory."""
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise ValueError(f"{what} would need {n_bytes / 2**30:.1f} GiB, more than this "
                         f"machine's {total / 2**30:.1f} GiB of memory")

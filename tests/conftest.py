"""Shared test set-up for mnist_native.

* matplotlib is forced onto the non-interactive Agg backend before anything imports pyplot,
  so ``train(..., plot=True)`` can never open a window or block a test run.
* ``mnist_dir``: the folder of the real MNIST files, from ``MNIST_NATIVE_DATA``; tests that
  need it are skipped (not failed) where it is not set.  Session-scoped, so module fixtures
  (a model trained once) can use it.

The tests import the INSTALLED ``mnist_native`` (CI: ``pip install .``); for an in-place build
run them with ``PYTHONPATH=<repo root>``.
"""
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST data folder named by ``MNIST_NATIVE_DATA`` (a ``Path``), else skip the test."""
    path = os.environ.get("MNIST_NATIVE_DATA", "").strip()
    if not path:
        pytest.skip("MNIST_NATIVE_DATA is not set: point it at a folder holding the MNIST "
                    "data to run this test")
    return Path(path)

"""``mnist_native.build_info()``: how the kernels were built and what a model will use.

CI sets ``MNIST_NATIVE_EXPECT_OPENMP=1``: there, a build that silently fell back to serial
kernels fails this test.
"""
import os

import pytest

import mnist_native
from mnist_native._threads import MAX_THREADS


def test_keys_and_types():
    info = mnist_native.build_info()
    assert {"version", "openmp", "max_threads", "compiler"} <= set(info)
    assert info["version"] == mnist_native.__version__
    assert isinstance(info["version"], str) and info["version"]
    assert type(info["openmp"]) is bool
    assert type(info["max_threads"]) is int and info["max_threads"] >= 1
    assert isinstance(info["compiler"], str) and info["compiler"].strip()


def test_openmp_when_expected():
    if os.environ.get("MNIST_NATIVE_EXPECT_OPENMP", "") != "1":
        pytest.skip("MNIST_NATIVE_EXPECT_OPENMP is not 1: a serial build is allowed here")
    assert mnist_native.build_info()["openmp"] is True


def test_max_threads_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    info = mnist_native.build_info()
    assert info["max_threads"] == (3 if info["openmp"] else 1)
    model = mnist_native.NeuralNetwork(2, 2, 1, seed=0)
    assert model.num_threads == info["max_threads"]


def test_max_threads_without_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    info = mnist_native.build_info()
    if info["openmp"]:
        assert info["max_threads"] == mnist_native.available_cpus()
    else:
        assert info["max_threads"] == 1


def test_explicit_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    openmp = mnist_native.build_info()["openmp"]
    model = mnist_native.NeuralNetwork(2, 2, 1, num_threads=2, seed=0)
    assert model.num_threads == (2 if openmp else 1)
    for bad, exc in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError),
                     (MAX_THREADS + 1, ValueError), (10**6, ValueError)):
        with pytest.raises(exc, match="num_threads"):
            mnist_native.NeuralNetwork(2, 2, 1, num_threads=bad)
        with pytest.raises(exc, match="num_threads"):
            model.num_threads = bad  # the attribute is checked as well
    assert model.num_threads == (2 if openmp else 1)  # and kept when refused
    model.num_threads = MAX_THREADS
    assert model.num_threads == (MAX_THREADS if openmp else 1)
    model.num_threads = None  # back to the default
    assert model.num_threads == 1


def test_omp_num_threads_beyond_the_limit_is_capped(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", str(10**6))
    model = mnist_native.NeuralNetwork(2, 2, 1, seed=0)
    assert model.num_threads == (MAX_THREADS if mnist_native.build_info()["openmp"] else 1)

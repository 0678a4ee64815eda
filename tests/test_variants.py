"""Every kernel variant of this build (_train.SIMD_LEVELS: the SSE2 baseline, AVX2+FMA and
AVX-512 on x86-64; NEON on aarch64) against the reference, on the shapes where the kernels
change course: hidden sizes that fill a register block or leave a remainder, sample counts
around the group (64) and the chunk (512), inputs around a tile of weight rows, dense columns
and CSR ones, both dtypes.  A variant this CPU lacks is skipped, saying so (the summary
prints one line per variant)."""
import contextlib
import io
import os
import platform

import numpy as np
import pytest

from mnist_native import _fused, _train, reference
import mnist_native as mn
from test_fused import assert_same_training, make_data, train


@pytest.fixture(params=_train.SIMD_LEVELS)
def variant(request):
    """Switch this process to one variant (the import-time choice is restored after)."""
    name = request.param
    levels = _train.SIMD_LEVELS
    if levels.index(name) > levels.index(_train.cpu_simd()):
        pytest.skip(f"this CPU lacks the {name} variant")
    assert _train.simd_init(name) == name
    yield name
    _train.simd_init(_fused.SIMD)


def compare(variant, n_in, hidden, n, dtype, density="mixed", batch_size=None, xe=False):
    rng = np.random.default_rng(n_in * 7919 + hidden * 31 + n)
    data, val = make_data(rng, n, n_in, 5, density), make_data(rng, 30, n_in, 5, density)
    kwargs = dict(iterations=2, learning_rate=2.0, batch_size=batch_size)
    native = train(mn.NeuralNetwork, (n_in, hidden, 5), data, val, dtype, xe, **kwargs)
    ref = train(reference.NeuralNetwork, (n_in, hidden, 5), data, val, dtype, xe, **kwargs)
    if dtype == np.float64:
        assert_same_training(native, ref, dtype)
        return
    # float32: the float32 reference rounds too (seen on aarch64: 1.3e-5 from the float64
    # answer on one weight, 1.6e-5 from native).  So each weight may be as far from the
    # float64 reference as the float32 reference's own weight is, plus the usual tolerance;
    # the histories still match the float32 reference's exactly.
    exact = train(reference.NeuralNetwork, (n_in, hidden, 5), data, val, np.float64, xe,
                  **kwargs)
    assert exact[1].best_iteration == ref[1].best_iteration
    for name in ("W_input_to_hidden", "W_hidden_to_output"):
        got, ref32, want = (getattr(m, name).astype(np.float64)
                            for m in (native[0], ref[0], exact[0]))
        bound = 1e-5 + 1e-5 * np.abs(want) + np.abs(ref32 - want)
        worst = np.argmax(np.abs(got - want) - bound)
        assert np.all(np.abs(got - want) <= bound), (
            f"{name}: native {got.flat[worst]} vs float64 reference {want.flat[worst]}, "
            f"float32 reference {ref32.flat[worst]}")
    (_, hn), (_, hr) = native, ref
    assert hn.train_accuracy == hr.train_accuracy
    assert hn.validation_accuracy == hr.validation_accuracy
    assert hn.best_iteration == hr.best_iteration
    np.testing.assert_allclose(hn.loss, hr.loss, rtol=1e-4)


# Hidden units: a lone unit, one vector and a unit more (16 floats, 8 doubles make 64 bytes),
# whole register blocks of each layer and a unit either side (blocks of 20, 40, 80 and 160
# values), a size past two blocks.
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden", [1, 8, 9, 16, 17, 39, 40, 41, 79, 80, 81, 160, 161, 331])
def test_register_blocks(variant, hidden, dtype):
    compare(variant, 40, hidden, 65, dtype)
    compare(variant, 40, hidden, 65, dtype, batch_size=16, xe=True)


# Samples: a group of 64 and one either side; chunks of 512 and one either side; a step
# that spans three chunks.
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [63, 64, 65, 511, 512, 513, 1025])
def test_groups_and_chunks(variant, n, dtype):
    compare(variant, 30, 24, n, dtype)
    compare(variant, 30, 24, n, dtype, batch_size=n - 1, xe=True)


# Inputs: 320-byte weight rows (80 floats, 40 doubles) come 512 to a tile of the hidden
# sums and 89 to a tile of the scatter; with one input fewer, exactly, and one more.
@pytest.mark.parametrize("dtype,hidden", [(np.float32, 80), (np.float64, 40)])
@pytest.mark.parametrize("n_in", [511, 512, 513])
@pytest.mark.parametrize("density", [0.05, "mixed"])
def test_tiles(variant, n_in, density, dtype, hidden):
    compare(variant, n_in, hidden, 70, dtype, density)
    compare(variant, n_in, hidden, 70, dtype, density, batch_size=20, xe=True)


# The tanh hidden layer (activated unit by unit, not by the vector sigmoid), with hidden
# sizes that fill whole vectors of every variant (16) and one that leaves a unit over.
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden", [16, 17])
def test_tanh_hidden_layer(variant, hidden, dtype):
    rng = np.random.default_rng(hidden)
    data, val = make_data(rng, 130, 30, 5), make_data(rng, 30, 30, 5)
    runs = []
    for cls in (mn.NeuralNetwork, reference.NeuralNetwork):
        model = cls(30, hidden, 5, transfer_f=mn.tanh, transfer_df=mn.dtanh, dtype=dtype,
                    seed=2)
        with contextlib.redirect_stdout(io.StringIO()):
            history = model.train(data, val, iterations=2, learning_rate=0.5, plot=False)
        runs.append((model, history))
    assert_same_training(*runs, dtype)


@pytest.mark.parametrize("density", [1.0, 0.0])
def test_all_dense_and_all_empty_inputs(variant, density):
    for dtype in (np.float64, np.float32):
        compare(variant, 33, 50, 100, dtype, density)


def cpu_flags():
    """The CPU's flags as Linux reports them (not through the code under test)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("flags", "Features"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_the_widest_variant_the_cpu_allows_is_picked():
    flags = cpu_flags()
    machine = platform.machine().lower()
    if flags is None:
        pytest.skip("no /proc/cpuinfo (not Linux): the CPU's flags cannot be read independently")
    if _train.SIMD_LEVELS == ("portable",):
        widest = "portable"  # the portable layer only: built with MN_SIMD_SCALAR=1
    elif machine in ("x86_64", "amd64", "i686", "i386"):
        if {"avx512f", "avx512dq", "avx512vl", "avx512bw", "avx2", "fma"} <= flags:
            widest = "avx512"
        elif {"avx2", "fma"} <= flags:
            widest = "avx2+fma"
        else:
            widest = "baseline"
    elif machine in ("aarch64", "arm64"):
        widest = "neon"
    else:
        widest = "portable"
    assert _train.cpu_simd() == widest
    cap = os.environ.get("MNIST_NATIVE_SIMD", "").strip().lower()
    if not cap:
        assert mn.build_info()["simd"] == widest

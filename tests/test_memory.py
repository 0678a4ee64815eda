"""Training allocates nothing per iteration: full batch and mini-batch, Python and native.

Two counts, each over 200 iterations after a warm-up of 10:
* Python's allocations (tracemalloc, NumPy's arrays included): the peak may grow by the
  history's new entries only;
* every C heap allocation of the process (native kernels, OpenMP, NumPy, Python), counted
  by a malloc wrapper (tests/support/count_malloc.c) loaded with LD_PRELOAD into a
  subprocess: no more than the growth of the history's lists can explain.

A buffer allocated per iteration (a weights copy, a gradient, an epoch's permutation) shows
in either as at least one allocation per iteration: 200 or more.
"""
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tracemalloc

import numpy as np
import pytest

import mnist_native as mn

WARM_UP, COUNTED = 10, 200
HISTORY_LISTS = 4  # TrainingHistory: train_accuracy, loss, validation_accuracy, seconds
BATCHES = [None, 100]
N_SAMPLES, N_IN, HIDDEN = 3000, 300, 50
# One iteration's short-lived Python objects (tuples, floats) at the peak: about 9 kB
# measured.
ITERATION_TEMPORARIES = 12 * 1024


def learnable(seed, n=N_SAMPLES, n_in=N_IN, n_out=10):
    rng = np.random.default_rng(seed)
    x = rng.random((n, n_in)) * (rng.random((n, n_in)) < 0.2)
    y = np.eye(n_out)[np.argmax(x @ rng.normal(size=(n_in, n_out)), axis=1)]
    return x, y


def history_growth_bytes(entries):
    """What ``entries`` more entries in each history list may take at their peak: a float
    (24 bytes) and its slot (8 bytes, the list over-allocating by up to 1/8) per list, a
    resize briefly holding the old and the new array, and ITERATION_TEMPORARIES."""
    slots = 8 * (WARM_UP + entries) * 9 // 8
    return HISTORY_LISTS * (entries * (24 + 9) + slots) + ITERATION_TEMPORARIES


def history_resizes(start, end):
    """Most times the history's lists are resized growing from ``start`` to ``end`` entries
    (CPython grows a list's array by at least 1/8 each time); each may reach the C heap."""
    return HISTORY_LISTS * (math.ceil(math.log(end / start, 9 / 8)) + 1)


@pytest.mark.parametrize("batch_size", BATCHES)
def test_python_allocations_do_not_grow_per_iteration(batch_size):
    data = learnable(3)
    model = mn.NeuralNetwork(N_IN, HIDDEN, 10, seed=0, dtype=np.float32)
    marks = {}

    def watch(history):
        if history.iterations == WARM_UP:
            tracemalloc.reset_peak()
            marks["base"] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model.train(data, (data[0][:200], data[1][:200]), iterations=WARM_UP + COUNTED,
                        learning_rate=1.0, batch_size=batch_size, plot=False, callback=watch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    growth, bound = peak - marks["base"], history_growth_bytes(COUNTED)
    # A copy of the weights (60 kB) per iteration could not pass; any smaller array the C
    # heap gives (over 512 bytes) is counted by the next test.
    assert bound < (N_IN + 1) * HIDDEN * 4
    assert growth <= bound, f"peak grew by {growth} bytes; the history explains {bound}"


SCRIPT = textwrap.dedent("""
    import contextlib, ctypes, io, json, sys
    import numpy as np
    import mnist_native as mn
    from test_memory import COUNTED, HIDDEN, N_IN, WARM_UP, learnable

    counter = ctypes.CDLL(None)
    if not hasattr(counter, "mn_count_start"):  # the loader refused it (another architecture?)
        print(json.dumps({"unavailable": "the malloc counter was not preloaded"}))
        sys.exit(0)
    counter.mn_count_stop.restype = ctypes.c_size_t
    batch_size = json.loads(sys.argv[1])
    data = learnable(3)
    model = mn.NeuralNetwork(N_IN, HIDDEN, 10, seed=0, dtype=np.float32, num_threads=2)
    counts = {}

    def watch(history):
        if history.iterations == WARM_UP:
            counter.mn_count_start()
        elif history.iterations == WARM_UP + COUNTED:
            counts["calls"] = counter.mn_count_stop()

    with contextlib.redirect_stdout(io.StringIO()):
        model.train(data, (data[0][:200], data[1][:200]), iterations=WARM_UP + COUNTED,
                    learning_rate=1.0, batch_size=batch_size, plot=False, callback=watch)
    print(json.dumps(counts))
""")


@pytest.fixture(scope="module")
def malloc_counter(tmp_path_factory):
    """The malloc-counting library, built for this Python's platform, or a skip saying why."""
    if not sys.platform.startswith("linux"):
        pytest.skip("counts allocations with LD_PRELOAD and glibc's __libc_malloc: Linux only")
    if not mn.build_info()["compiler"].startswith("gcc"):
        # Seen with clang + LLVM's libomp (.ci/apple_clang.sh): its runtime itself
        # allocates about 8 small blocks per iteration inside its parallel regions, which
        # this process-wide count cannot tell from ours.  GCC's libgomp allocates none.
        pytest.skip("the heap count is made on GCC builds (libgomp): LLVM's OpenMP runtime "
                    "allocates inside its own parallel regions")
    if os.environ.get("LD_PRELOAD"):
        pytest.skip("LD_PRELOAD is already set (a sanitizer build?): the counter would "
                    "displace it")
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    if shutil.which(cc[0]) is None:
        pytest.skip(f"no C compiler ({cc[0]}) to build the malloc counter")
    lib = tmp_path_factory.mktemp("counter") / "count_malloc.so"
    source = os.path.join(os.path.dirname(__file__), "support", "count_malloc.c")
    built = subprocess.run([*cc, "-shared", "-fPIC", "-O2", "-o", str(lib), source],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"the malloc counter does not build here: {built.stderr.strip()[:200]}")
    return lib


@pytest.mark.parametrize("batch_size", BATCHES)
def test_no_heap_allocation_per_iteration(batch_size, malloc_counter, tmp_path):
    env = dict(os.environ, LD_PRELOAD=str(malloc_counter),
               PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(__file__),
                                                        os.environ.get("PYTHONPATH")])))
    # cwd outside the source tree: the installed (built) package is the one imported,
    # unless PYTHONPATH names an in-place build.
    run = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(batch_size)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if "unavailable" in result:
        pytest.skip(result["unavailable"])
    calls = result["calls"]
    bound = history_resizes(WARM_UP, WARM_UP + COUNTED)
    assert bound < COUNTED  # one allocation per iteration could not hide under it
    assert calls <= bound, (f"{calls} heap allocations over {COUNTED} iterations; the "
                            f"history's growth explains {bound}")

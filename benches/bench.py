"""Time mnist_native against the NumPy reference, the lab's original code, PyTorch and
scikit-learn.

Every variant is first checked against the NumPy reference (same initial weights, a few
iterations on a small slice; weights compared at rtol 1e-9 in float64, 1e-4 in float32): a
mismatch stops the run with exit status 1.  Then each is warmed up with a short run and timed
as the best of ``--repeats`` ``train()`` calls.  The speed-up ratios at the end are computed
from timings of this same run (the machine may be shared: compare ratios, not seconds
across runs).

Run from the repository root:  PYTHONPATH=. python benches/bench.py --quick
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # bench_variants and original_lab live beside this file
try:
    import mnist_native
except ImportError:  # not installed: use the source tree this file is in
    sys.path.insert(1, os.path.dirname(HERE))
    import mnist_native

import numpy as np

import bench_variants as bv
from bench_variants import Variant, Workload

DTYPES = (np.float32, np.float64)

# (hidden, iterations, --quick iterations, learning rate, cross-entropy, batch size, and
# for sgd10 a learning-rate schedule and initial weights: bench_variants.Workload)
WORKLOADS = {
    # the lab's run: first 1,000 training / 200 validation images
    "subset": dict(hidden=30, iterations=300, quick=30, learning_rate=1.0),
    # all 50,000 training / 10,000 validation images
    "full": dict(hidden=75, iterations=300, quick=20, learning_rate=1.0),
    # mini-batch SGD: one epoch at each of SGD_BATCHES (and SGD_INFO_BATCHES; None: full
    # batch); native, torch and scikit-learn
    "sgd": dict(hidden=128, iterations=1, quick=1, learning_rate=0.5, cross_entropy=True),
    # mini-batch SGD to 98 %: native, 10 epochs on the 60,000 official training images (the
    # lab's training and validation sets), other initial weights, lr 1 stepped down to
    # 0.4 and 0.1 (the best of those tried: see the README)
    "sgd10": dict(hidden=128, iterations=10, quick=2, learning_rate=1.0, cross_entropy=True,
                  batch_size=16, schedule="step", init="zero-mean"),
}
SUBSET_TRAIN, SUBSET_VALIDATION = 1000, 200
SGD_BATCHES, SGD_INFO_BATCHES = (16, 32, 64, 128, 256), (512, None)

# Targets (speed-up factors; the SGD run's test accuracy %)
NATIVE_VS_REFERENCE = 4.0
NATIVE_VS_ORIGINAL = 200.0
TWO_THREADS_VS_ONE = 1.7
SGD_VS_TORCH = 3.0
SGD_TWO_THREADS_VS_ONE, SGD_SCALING_FROM_BATCH = 1.6, 64
SGD_ACCURACY = 98.0
CONVERT_MS = 100  # train()'s conversion of 50,000 images at most (here 60,000 with validation)

# Seconds of rest before each timed run.  Thread pools keep their threads busy-waiting for a
# while after a call (OpenBLAS's, under scikit-learn and NumPy's reference): a run started
# straight after another variant's shared the cores with them.  Measured (AMD EPYC, 2 cores,
# native SGD at batch 256, 2 threads): the epoch 1.5x slower right after a scikit-learn
# run, as quick as alone after 1 s.
SETTLE_SECONDS = 1.0


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def make_workloads(splits, names, quick):
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    out = []
    for name in names:
        spec = dict(WORKLOADS[name])
        quick_iterations = spec.pop("quick")
        if quick:
            spec["iterations"] = quick_iterations
        if name == "subset":
            data = bv.head(train, SUBSET_TRAIN), bv.head(validation, SUBSET_VALIDATION)
        elif name == "sgd10":
            # Validation images are among the training ones here: the weights kept (those
            # of the best validation accuracy) are in effect the last epoch's.  The test
            # set stays unseen.
            data = tuple(np.concatenate(parts) for parts in zip(train, validation)), validation
        else:
            data = train, validation
        if name == "sgd":
            out += [Workload(name, *data, test, **spec, batch_size=b or len(train[0]))
                    for b in SGD_BATCHES + SGD_INFO_BATCHES]
        else:
            out.append(Workload(name, *data, test, **spec))
    return out


def thread_counts(max_threads):
    """1, 2 (for the 2-vs-1 target) and the maximum."""
    return sorted({1, min(2, max_threads), max_threads})


def variants_for(wl, max_threads):
    if wl.name == "sgd10":
        return [Variant("native", np.float32, max_threads)]
    if wl.name == "sgd":
        out = [Variant("native", np.float32, n) for n in thread_counts(max_threads)]
        if bv.torch is not None:
            out.append(Variant("torch", np.float32, max_threads))
        if bv.sklearn is not None:
            out.append(Variant("sklearn", np.float32, None))
        return out
    out = [Variant("native", dt, n) for dt in DTYPES for n in thread_counts(max_threads)]
    out += [Variant("reference", dt, None) for dt in DTYPES]
    if wl.name == "subset":  # on the full run the original would take ~40 minutes
        out.append(Variant("original", np.float64, None))
    if bv.torch is not None:
        out += [Variant("torch", dt, max_threads) for dt in DTYPES]
    return out


def blas_threads():
    """Threads NumPy's BLAS uses by default (the reference and the original)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return mnist_native.available_cpus()


def load_average():
    """The 1-, 5- and 15-minute load averages (None where the OS has none)."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


# Settings that cap the instruction set torch runs (ATen's kernels, MKL's GEMM, oneDNN's):
# set all three to AVX2 to time torch as on a CPU without AVX-512.
TORCH_ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def torch_isa():
    """ATen's CPU capability in use, and any of TORCH_ISA_VARIABLES that are set."""
    if bv.torch is None:
        return None
    capped = [f"{name}={os.environ[name]}" for name in TORCH_ISA_VARIABLES if name in os.environ]
    return ", ".join([f"ATen {bv.torch.backends.cpu.get_cpu_capability()}"] + capped)


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:
        blas = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "available_cpus": mnist_native.available_cpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "blas_threads": blas_threads(),
        "torch": bv.torch.__version__ if bv.torch is not None else None,
        "torch_isa": torch_isa(),
        "sklearn": bv.sklearn.__version__ if bv.sklearn is not None else None,
        "build_info": mnist_native.build_info(),
        "load_average_start": load_average(),
    }


# -- running ------------------------------------------------------------------------------

def run_checks(plan):
    for wl, variants in plan:
        for variant in variants:
            if variant.impl == "reference":
                continue
            if variant.impl == "sklearn":
                if wl.batch_size != SGD_BATCHES[0]:
                    continue  # its settings, once: they do not depend on the batch size
                import bench_sklearn
                x, y = wl.train[0], wl.train[1].argmax(axis=1)
                err = bench_sklearn.check_same_step(x, y, wl.hidden, wl.learning_rate,
                                                    np.dtype(variant.dtype).name)
            else:
                err = bv.check(variant, wl)
            log(f"  check ok  {label(wl):9s} {variant.label:34s} max rel. error {err:.1e}")


def label(wl):
    """A workload's name, with its batch size for the SGD timings."""
    if wl.name != "sgd":
        return wl.name
    return "sgd full" if wl.batch_size == len(wl.train[0]) else f"sgd {wl.batch_size}"


def label_of(record):
    if record["workload"] != "sgd":
        return record["workload"]
    full = record["batch_size"] == record["n_train"]
    return "sgd full" if full else f"sgd {record['batch_size']}"


def time_all(plan, repeats):
    """Warm every variant up, then time ``repeats`` rounds, each running every variant once
    (the original only in the first round): a burst of load from other processes then
    slows one run of many variants rather than every run of one.  Each timed run starts
    after SETTLE_SECONDS of rest, out of reach of the last one's threads.  Returns JSON
    records."""
    jobs = [(wl, variant) for wl, variants in plan for variant in variants]
    for wl, variant in jobs:
        warm_up = 1 if variant.impl == "original" else min(2, wl.iterations)
        bv.fit(variant, wl, warm_up, test=False)
    runs = [[] for _ in jobs]
    setup = [[] for _ in jobs]  # native SGD: train()'s setup alone (a 0-epoch call)
    convert = [[] for _ in jobs]  # native SGD: train()'s conversion alone
    accuracy = [None] * len(jobs)
    for round_ in range(repeats):
        for i, (wl, variant) in enumerate(jobs):
            if variant.impl == "original" and round_ > 0:
                continue
            time.sleep(SETTLE_SECONDS)
            seconds, acc, _ = bv.fit(variant, wl, wl.iterations, test=(round_ == 0))
            runs[i].append(seconds)
            if round_ == 0:
                accuracy[i] = acc
            if wl.name == "sgd" and variant.impl == "native":
                time.sleep(SETTLE_SECONDS)
                setup[i].append(bv.native_setup_seconds(variant, wl))
                time.sleep(SETTLE_SECONDS)
                convert[i].append(bv.native_convert_seconds(variant, wl))
            log(f"  run {round_ + 1}/{repeats}  {label(wl):9s} {variant.label:34s} "
                f"{seconds:8.3f} s")
    return [make_record(wl, variant, runs[i], accuracy[i], setup[i], convert[i])
            for i, (wl, variant) in enumerate(jobs)]


def make_record(wl, variant, runs, accuracy, setup=(), convert=()):
    best = min(runs)
    threads = variant.threads if variant.threads is not None else blas_threads()
    return {
        "workload": wl.name,
        "impl": variant.impl,
        "dtype": np.dtype(variant.dtype).name,
        "threads": threads,
        "threads_set_by": {"native": "num_threads", "torch": "torch.set_num_threads"}.get(
            variant.impl, "NumPy BLAS default"),
        "setup_seconds": min(setup) if setup else None,
        "convert_seconds": min(convert) if convert else None,  # the part of setup converting
        # the epoch and its measuring passes: the call less its setup, round by round
        "epoch_seconds": min(r - s for r, s in zip(runs, setup)) if setup else None,
        "hidden": wl.hidden,
        "n_train": len(wl.train[0]),
        "n_validation": len(wl.validation[0]),
        "loss": wl.loss,
        "learning_rate": wl.learning_rates(wl.iterations),
        "init": wl.init,
        "batch_size": wl.batch_size,
        "iterations": wl.iterations,
        "seconds": best,
        "ms_per_iteration": 1000.0 * best / wl.iterations,
        "runs": runs,
        "test_accuracy": accuracy,
    }


# -- reporting ----------------------------------------------------------------------------

def find(records, workload, impl, dtype, threads=None, batch_size=None):
    for r in records:
        if (r["workload"], r["impl"], r["dtype"]) == (workload, impl, dtype) and (
                threads is None or r["threads"] == threads) and (
                batch_size is None or r["batch_size"] == batch_size):
            return r
    return None


def ratio_rows(records, max_threads, quick):
    """(what, measured, target, status) rows; the records behind each are in this run."""
    rows = []

    def speedup(what, slow, fast, target):
        if slow and fast:
            value = slow["seconds"] / fast["seconds"]
            status = "info" if target is None else ("PASS" if value >= target else "MISS")
            rows.append((what, f"{value:.1f}x", "-" if target is None else f">= {target:g}x",
                         status))

    for dt in ("float32", "float64"):
        native = find(records, "full", "native", dt, max_threads)
        speedup(f"native vs reference, {dt}, full", find(records, "full", "reference", dt),
                native, NATIVE_VS_REFERENCE)
    for dt in ("float32", "float64"):
        speedup(f"native vs reference, {dt}, subset (info)",
                find(records, "subset", "reference", dt),
                find(records, "subset", "native", dt, max_threads), None)
    for dt in ("float32", "float64"):
        speedup(f"native vs original (float64), native {dt}, subset",
                find(records, "subset", "original", "float64"),
                find(records, "subset", "native", dt, max_threads), NATIVE_VS_ORIGINAL)
    for dt in ("float32", "float64"):
        if max_threads >= 2:
            speedup(f"native 2 threads vs 1 thread, {dt}, full",
                    find(records, "full", "native", dt, 1), find(records, "full", "native", dt, 2),
                    TWO_THREADS_VS_ONE)
        elif find(records, "full", "native", dt, 1):
            rows.append((f"native 2 threads vs 1 thread, {dt}, full", "-", ">= 1.7x",
                         "n/a (--threads 1)"))
    for dt in ("float32", "float64"):
        speedup(f"native vs torch, {dt}, full (info)", find(records, "full", "torch", dt),
                find(records, "full", "native", dt, max_threads), None)
    for dt in ("float32", "float64"):
        r = find(records, "full", "native", dt, max_threads)
        if r:
            what = f"native full run, {dt}, {max_threads} threads"
            if quick:
                what += f" ({r['iterations']} of {WORKLOADS['full']['iterations']} iterations)"
            rows.append((what, f"{r['seconds']:.1f} s ({r['ms_per_iteration']:.0f} ms/it)",
                         "-", "info"))
    rows += sgd_ratio_rows(records, max_threads)
    r = find(records, "sgd10", "native", "float32")
    if r:
        rates = r["learning_rate"]
        rates = "/".join(f"{x:g}" for x in dict.fromkeys(rates)) if isinstance(rates, list) \
            else f"{rates:g}"
        what = (f"mini-batch SGD: xe, hidden {r['hidden']}, {r['n_train']:,} images, batch "
                f"{r['batch_size']}, lr {rates}, {r['init']} init, {r['iterations']} epochs, "
                f"test accuracy")
        rows.append((what, f"{r['test_accuracy']:.2f} % in {r['seconds']:.1f} s",
                     f">= {SGD_ACCURACY} %", "n/a (--quick)" if quick else
                     ("PASS" if r["test_accuracy"] >= SGD_ACCURACY else "MISS")))
    return rows


def sgd_ratio_rows(records, max_threads):
    """One epoch of SGD at each batch size: native against torch and scikit-learn, native
    on 2 threads against 1, and train()'s setup."""
    rows = []
    n = next((r["n_train"] for r in records if r["workload"] == "sgd"), None)
    for batch in SGD_BATCHES + SGD_INFO_BATCHES:
        batch = batch or n
        name = "full batch" if batch == n else f"batch {batch}"
        info = batch not in SGD_BATCHES
        native = find(records, "sgd", "native", "float32", max_threads, batch)
        for impl, target in (("torch", SGD_VS_TORCH), ("sklearn", None)):
            other = find(records, "sgd", impl, "float32", batch_size=batch)
            if native and other:
                value = other["seconds"] / native["epoch_seconds"]
                rows.append((f"SGD epoch, {name}: native vs {impl}", f"{value:.1f}x",
                             "-" if target is None or info else f">= {target:g}x",
                             "info" if target is None or info else
                             ("PASS" if value >= target else "MISS")))
                value = other["seconds"] / native["seconds"]
                rows.append((f"  the same, native's setup included", f"{value:.1f}x", "-",
                             "info"))
        one = find(records, "sgd", "native", "float32", 1, batch)
        two = find(records, "sgd", "native", "float32", 2, batch)
        if max_threads >= 2 and one and two:
            value = one["seconds"] / two["seconds"]
            scored = SGD_SCALING_FROM_BATCH <= batch and not info
            rows.append((f"SGD epoch, {name}: native 2 threads vs 1", f"{value:.2f}x",
                         f">= {SGD_TWO_THREADS_VS_ONE:g}x" if scored else "-",
                         ("PASS" if value >= SGD_TWO_THREADS_VS_ONE else "MISS") if scored
                         else "info"))
    r = find(records, "sgd", "native", "float32", max_threads, SGD_BATCHES[0])
    if r and r["setup_seconds"] is not None:
        rows.append((f"train() setup, {r['n_train']:,} images, {max_threads} threads",
                     f"{1000 * r['setup_seconds']:.0f} ms", "-", "info"))
        ms = 1000 * r["convert_seconds"]
        rows.append((f"  its conversion, {r['n_train']:,} + {r['n_validation']:,} images",
                     f"{ms:.0f} ms", f"<= {CONVERT_MS} ms",
                     "PASS" if ms <= CONVERT_MS else "MISS"))
    return rows


def print_table(header, rows, markdown=False):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    if markdown:
        line = "| " + " | ".join("{:<%d}" % w for w in widths) + " |"
    else:
        line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header).rstrip())
    print(line.format(*("-" * w for w in widths)).rstrip())
    for row in rows:
        print(line.format(*row).rstrip())


def report(machine, records, ratios, args):
    b = machine["build_info"]
    print(f"\nmnist_native {b['version']} benchmark, {machine['date']}")
    load = "; 1-min load average at start {:.2f}, at end {:.2f}".format(
        machine["load_average_start"][0], machine["load_average_end"][0]) if machine[
        "load_average_start"] else ""
    print(f"CPU: {machine['cpu']} ({machine['available_cpus']} available){load}")
    print(f"build: openmp={b['openmp']} simd={b['simd']} compiler={b['compiler']}; "
          f"numpy {machine['numpy']} ({machine['blas']}); torch {machine['torch'] or '-'}"
          + (f" ({machine['torch_isa']})" if machine["torch_isa"] else ""))
    print(f"best of {args.repeats} runs (in rounds, after a warm-up, each after "
          f"{SETTLE_SECONDS:g} s of rest; original: 1 run)"
          f"{'; --quick' if args.quick else ''}; reference/original threads: NumPy's BLAS "
          "default\n")
    rows = [(label_of(r), r["impl"], r["dtype"], r["threads"], r["hidden"], r["n_train"],
             r["iterations"], len(r["runs"]), f"{r['seconds']:.3f}",
             f"{r['ms_per_iteration']:.2f}", "-" if r["setup_seconds"] is None
             else f"{r['setup_seconds']:.3f}", f"{r['test_accuracy']:.2f}") for r in records]
    print_table(("workload", "impl", "dtype", "threads", "hidden", "n_train", "iters", "runs",
                 "best s", "ms/iter", "setup s", "test acc %"), rows, args.markdown)
    notes = []
    if any(r["workload"] == "sgd" for r in records):
        notes.append("sgd: native's best s is the whole train_xe call; setup s is a 0-epoch "
                     "call's (checks, conversion, the first measure); its ratios use the call "
                     "less its setup (the epoch and the lab's measuring after it), and show "
                     "the whole call as well.  torch's time includes the same measuring.")
    if any(r["workload"] == "full" for r in records):
        notes.append("original: timed on the subset only (the full run would take ~40 min).")
    if bv.torch is None:
        notes.append(bv.TORCH_HINT)
    for note in notes:
        print("note:", note)
    if ratios:
        print("\nRatios from the timings above (speed-up = slower seconds / faster seconds):")
        print_table(("measure", "measured", "target", "status"), ratios, args.markdown)


EPILOG = f"""\
workloads:
  subset  the lab's run: first 1,000 training / 200 validation images, hidden 30, lr 1,
          MSE, 300 full-batch iterations
  full    all 50,000 training / 10,000 validation images, hidden 75, lr 1, MSE,
          300 full-batch iterations (the original is not run: ~40 minutes)
  sgd     one epoch of mini-batch SGD over the 50,000 training images at batch 16, 32,
          64, 128, 256 (and 512 and the full batch, for information): float32,
          cross-entropy, hidden 128, lr 0.5; native at 1, 2 and --threads threads,
          PyTorch CPU as users write it (nn.Sequential(Linear, Sigmoid, Linear),
          CrossEntropyLoss, optim.SGD) and scikit-learn's MLPClassifier (solver="sgd",
          momentum=0, alpha=0, activation="logistic"), each when installed.  Native's time
          is the whole train_xe call (checks, conversion, the epoch, the measuring passes);
          setup_seconds is a 0-epoch call's (checks, conversion, the first measure), and
          epoch_seconds the difference (best round): the ratios against torch (which also
          measures training and validation accuracy after the epoch) use epoch_seconds.
          convert_seconds is the setup's conversion alone (both sets, for the kernels).
  sgd10   native float32: the same model, 10 epochs at batch 16 over the 60,000 official
          training images (the lab's training and validation sets), from zero-mean weights
          (W1 ~ normal(0, 2/sqrt(785)), W2 ~ normal(0, 1/sqrt(129))), lr 1 for 5 epochs,
          0.4 for 3, 0.1 for 2: test accuracy
  (test accuracies by each model's own predict on the 10,000 test images)

variants (subset, full): native float32/float64 at 1, 2 and --threads threads; the NumPy
reference; the lab's original list-based code (subset only); PyTorch CPU running the same
full-batch loop, when torch is installed.

Each timed run starts after {SETTLE_SECONDS:g} s of rest: other libraries' thread pools
(OpenBLAS's, under scikit-learn) keep busy-waiting for a while after a call, and slowed
the next run.

MNIST_NATIVE_SIMD=avx2 times native's AVX2 kernels on an AVX-512 CPU; torch still runs
AVX-512 there unless ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
ONEDNN_MAX_CPU_ISA=AVX2 are set as well (the header and machine.torch_isa say what it ran).

--json writes a LIST of records, one per variant and workload.  Each has impl (native /
reference / original / torch / sklearn), dtype, threads, hidden, n_train, iterations,
seconds (the best run), test_accuracy, and workload, runs (every timing),
ms_per_iteration, loss, learning_rate (sgd10: a list, one rate per epoch), init (the
initial weights: "lab" or "zero-mean"), batch_size, setup_seconds, convert_seconds and
epoch_seconds (native SGD), machine (CPU, build, load, date) and settings (this run's
options); the ratios above follow from the seconds.

exit status: 0 (also when a target is missed: this is a measurement), 1 when a
correctness check fails, 2 on bad arguments or missing data.
"""


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench.py", description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=("subset", "full", "sgd", "sgd10", "all"),
                   default="all",
                   help="what to time (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="fewer iterations for every implementation alike (subset %d, full %d, "
                   "sgd10 %d epochs); times are those of the iterations run, not "
                   "extrapolated" % tuple(WORKLOADS[w]["quick"] for w in ("subset", "full",
                                                                          "sgd10")))
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs per variant, the best kept (default: 3; the original: "
                   "always 1)")
    p.add_argument("--threads", type=int, default=mnist_native.available_cpus(),
                   help="most threads for native and torch (default: the CPUs this process "
                   "may use, %(default)s here); native is also timed at 1 and 2 threads")
    p.add_argument("--data", default=None,
                   help="mnist.pkl.gz, a folder holding it, or a folder of the IDX files "
                        "(default: $MNIST_NATIVE_DATA, Data/mnist.pkl.gz, then the cache "
                        "`mnist-native download` fills; never downloads)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    p.add_argument("--markdown", action="store_true",
                   help="print the two tables as Markdown (for the README)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if not mnist_native.build_info()["openmp"] and args.threads > 1:
        log("warning: mnist_native was built without OpenMP: native runs use 1 thread")
        args.threads = 1
    names = tuple(WORKLOADS) if args.workload == "all" else (args.workload,)
    started = time.perf_counter()
    machine = machine_info()
    for module, hint in ((bv.torch, bv.TORCH_HINT), (bv.sklearn, bv.SKLEARN_HINT)):
        if module is None:
            log(hint)
    try:
        splits = bv.load_splits(args.data)
    except (OSError, ValueError) as exc:
        log(f"error: {exc}")
        return 2
    workloads = make_workloads(splits, names, args.quick)
    plan = [(wl, variants_for(wl, args.threads)) for wl in workloads]

    log("correctness checks against the NumPy reference:")
    try:
        run_checks(plan)
    except bv.CheckFailed as exc:
        log(f"CORRECTNESS CHECK FAILED: {exc}")
        return 1

    log("timing (warm-up, then rounds of one run per variant):")
    records = time_all(plan, args.repeats)
    machine["load_average_end"] = load_average()
    machine["bench_seconds"] = time.perf_counter() - started
    ratios = ratio_rows(records, args.threads, args.quick)
    report(machine, records, ratios, args)
    if args.json:
        settings = {"workloads": list(names), "quick": args.quick, "repeats": args.repeats,
                    "threads": args.threads, "seed": bv.SEED, "settle_seconds": SETTLE_SECONDS}
        out = [dict(record, machine=machine, settings=settings) for record in records]
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

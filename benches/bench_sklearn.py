"""Time mnist_native's scikit-learn estimator against scikit-learn's own ``MLPClassifier`` at
the same settings, one epoch each, in one run.

Both are one hidden layer of logistic (sigmoid) units with a softmax output and the
cross-entropy loss, trained by plain SGD: ``MLPClassifier(solver="sgd", momentum=0,
alpha=0, activation="logistic", learning_rate="constant")`` against
``NeuralNetworkClassifier(loss="xe")``, the same hidden size, learning rate, batch size
(full batch, 128 and 16) and dtype, on the same MNIST training images.  Each fit is one
epoch (``max_iter=1``), timed whole (``fit`` as a user calls it: input checks, label
encoding, the epoch, and for mnist_native its per-epoch measuring pass), best of
``--repeats``, in rounds that alternate the two.  Before timing, one full-batch step of
each from the SAME weights is compared: equal weights after it show that the settings
really are the same (rtol 1e-4 in float32, 1e-9 in float64).

The machine may be shared and noisy: compare the ratios of this run, not seconds across
runs.

Run from the repository root:  PYTHONPATH=. python benches/bench_sklearn.py
"""
import argparse
import json
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # bench.py and bench_variants live beside this file
try:
    import mnist_native
except ImportError:  # not installed: use the source tree this file is in
    sys.path.insert(1, os.path.dirname(HERE))
    import mnist_native

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_info

import bench
import bench_variants as bv
from mnist_native.sklearn import NeuralNetworkClassifier

SEED = 0
# (name, batch size, learning rate): full batch is the lab's setting (lr 1); the
# mini-batches use the lr of bench.py's SGD workload.
WORKLOADS = [("full batch", None, 1.0), ("batch 128", 128, 0.5), ("batch 16", 16, 0.5)]
CHECK_SAMPLES, RTOL = 500, {"float32": 1e-4, "float64": 1e-9}
BASELINE = "sklearn MLPClassifier"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def native(hidden, batch_size, learning_rate, dtype):
    return NeuralNetworkClassifier(hidden_layer_size=hidden, loss="xe", batch_size=batch_size,
                                   learning_rate=learning_rate, max_iter=1, shuffle=True,
                                   dtype=dtype, random_state=SEED)


def mlp(hidden, batch_size, learning_rate, n_train):
    return MLPClassifier(hidden_layer_sizes=(hidden,), activation="logistic", solver="sgd",
                         alpha=0.0, momentum=0.0, nesterovs_momentum=False,
                         learning_rate="constant", learning_rate_init=learning_rate,
                         batch_size=n_train if batch_size is None else batch_size,
                         max_iter=1, shuffle=True, early_stopping=False,
                         random_state=SEED)


def fit_seconds(model, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1, on purpose
        start = time.perf_counter()
        model.fit(x, y)
        return time.perf_counter() - start


def check_same_step(x, y, hidden, learning_rate, dtype):
    """One full-batch step of each from the native estimator's starting weights: the same
    settings give the same weights.  Returns the largest relative difference."""
    x, y = x[:CHECK_SAMPLES], y[:CHECK_SAMPLES]
    ours = native(hidden, None, learning_rate, dtype)
    ours.partial_fit(x, y, classes=np.unique(y))  # makes the network (and takes one step)
    w1, w2 = (w.copy() for w in (ours.network_.W_input_to_hidden,
                                 ours.network_.W_hidden_to_output))
    ours.partial_fit(x, y)  # the step compared: from w1, w2
    theirs = mlp(hidden, None, learning_rate, len(x)).set_params(warm_start=True)
    fit_seconds(theirs, x, y)  # builds MLPClassifier's state; then its weights are replaced
    theirs.coefs_ = [w1[:-1].copy(), w2[:-1].copy()]
    theirs.intercepts_ = [w1[-1].copy(), w2[-1].copy()]
    fit_seconds(theirs, x, y)
    worst = 0.0
    for a, b in ((ours.network_.W_input_to_hidden[:-1], theirs.coefs_[0]),
                 (ours.network_.W_input_to_hidden[-1], theirs.intercepts_[0]),
                 (ours.network_.W_hidden_to_output[:-1], theirs.coefs_[1]),
                 (ours.network_.W_hidden_to_output[-1], theirs.intercepts_[1])):
        worst = max(worst, float(np.max(np.abs(a - b) / (np.abs(b) + 1e-3))))
    moved = float(np.max(np.abs(ours.network_.W_hidden_to_output - w2)))
    if worst > RTOL[dtype] or moved == 0:
        raise bv.CheckFailed(f"{dtype}: after one full-batch step from the same weights the "
                             f"two differ by {worst:.1e} (relative; the step moved the "
                             f"weights by up to {moved:.1e})")
    return worst


def blas_threads():
    return max((p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"),
               default=None)


def time_all(data, test, plan, repeats, hidden):
    """Warm up on a slice, then ``repeats`` rounds alternating the two implementations."""
    x, y = data
    for dtype, _, batch_size, lr in plan:
        for model in (native(hidden, batch_size, lr, dtype), mlp(hidden, batch_size, lr, 1000)):
            fit_seconds(model, x[:1000].astype(dtype), y[:1000])
    records = []
    for dtype, name, batch_size, lr in plan:
        xd = x.astype(dtype)
        runs = {"native": [], "mlp": []}
        accuracy = {}
        for round_ in range(repeats):
            for impl in ("native", "mlp"):
                model = (native(hidden, batch_size, lr, dtype) if impl == "native"
                         else mlp(hidden, batch_size, lr, len(x)))
                seconds = fit_seconds(model, xd, y)
                runs[impl].append(seconds)
                if round_ == 0:
                    accuracy[impl] = 100.0 * model.score(test[0].astype(dtype), test[1])
                log(f"  run {round_ + 1}/{repeats}  {name:10s} {dtype} {impl:6s} "
                    f"{seconds:8.3f} s")
        base = min(runs["mlp"])
        for impl, label in (("native", "mnist_native NeuralNetworkClassifier"),
                            ("mlp", BASELINE)):
            best = min(runs[impl])
            records.append({
                "workload": name, "impl": label, "dtype": dtype,
                "threads": (mnist_native.resolve_num_threads(None) if impl == "native"
                            else blas_threads()),
                "threads_set_by": ("num_threads default" if impl == "native"
                                   else "BLAS default"),
                "hidden": hidden, "n_train": len(x), "loss": "cross-entropy",
                "learning_rate": lr, "batch_size": batch_size, "iterations": 1,
                "seconds": best, "ms_per_iteration": 1000.0 * best, "runs": runs[impl],
                "test_accuracy": accuracy[impl], "baseline": BASELINE,
                "speedup_vs_baseline": base / best})
    return records


def report(machine, records, args):
    print(f"\nmnist_native {machine['build_info']['version']} vs scikit-learn "
          f"{sklearn.__version__} MLPClassifier, {machine['date']}")
    load = machine["load_average_start"]
    if load:
        print(f"CPU: {machine['cpu']} ({machine['available_cpus']} available); 1-min load "
              f"average at start {load[0]:.2f}, at end {machine['load_average_end'][0]:.2f}")
    print(f"one epoch each, hidden {args.hidden}, {records[0]['n_train']:,} training images, "
          f"best of {args.repeats}; test accuracy on the 10,000 test images\n")
    rows = [(r["workload"], r["dtype"], r["impl"], r["threads"], f"{r['seconds']:.3f}",
             f"{r['speedup_vs_baseline']:.2f}x", f"{r['test_accuracy']:.2f}")
            for r in records]
    bench.print_table(("workload", "dtype", "impl", "threads", "best s", "vs MLP",
                       "test acc %"), rows, args.markdown)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench_sklearn.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=50_000,
                   help="training images (default: all 50,000)")
    p.add_argument("--hidden", type=int, default=128, help="hidden units (default: 128)")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="float32",
                   help="float32 (default: MNIST's own), float64, or both")
    p.add_argument("--batch", choices=[w[0].split()[-1] for w in WORKLOADS] + ["all"],
                   default="all", help="one workload (batch, 128, 16) or all (default)")
    p.add_argument("--repeats", type=int, default=3, help="timed fits per variant, the best "
                   "kept (default: 3)")
    p.add_argument("--data", default=None,
                   help="mnist.pkl.gz or its folder (default: $MNIST_NATIVE_DATA, then Data/)")
    p.add_argument("--json", metavar="PATH", help="also write the records as JSON here")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.n_train < 1 or args.hidden < 1:
        p.error("--repeats, --n-train and --hidden must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    machine = bench.machine_info()
    machine["sklearn"] = sklearn.__version__
    machine["blas_threads"] = blas_threads()
    try:
        splits = bv.load_splits(args.data)
    except (OSError, ValueError) as exc:
        log(f"error: {exc}")
        return 2
    x, y = splits["train"][0][:args.n_train], splits["train"][1][:args.n_train].argmax(axis=1)
    test = splits["test"][0], splits["test"][1].argmax(axis=1)
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    workloads = [w for w in WORKLOADS if args.batch in ("all", w[0].split()[-1])]
    log("same settings? one full-batch step of each from the same weights:")
    try:
        for dtype in dtypes:
            err = check_same_step(x.astype(dtype), y, args.hidden, 1.0, dtype)
            log(f"  check ok  {dtype}: weights equal to {err:.1e} (relative)")
    except bv.CheckFailed as exc:
        log(f"CHECK FAILED: {exc}")
        return 1
    log("timing (warm-up on 1,000 images, then rounds alternating the two):")
    plan = [(dtype, name, bs, lr) for dtype in dtypes for name, bs, lr in workloads]
    records = time_all((x, y), test, plan, args.repeats, args.hidden)
    machine["load_average_end"] = bench.load_average()
    machine["bench_seconds"] = time.perf_counter() - started
    report(machine, records, args)
    if args.json:
        settings = {"n_train": len(x), "hidden": args.hidden, "dtypes": list(dtypes),
                    "repeats": args.repeats, "seed": SEED}
        with open(args.json, "w") as f:
            json.dump([dict(r, machine=machine, settings=settings) for r in records], f,
                      indent=2)
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

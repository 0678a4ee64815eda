"""Time several BUILDS of mnist_native against each other, in one run, interleaved.

For a change of the kernels' code path rather than of their settings: the code before a
change against after it, or the code path MSVC gets (MNIST_NATIVE_PORTABLE=1) against the fast
path.  Each build is a source tree built in place; each is timed in a fresh interpreter
(PYTHONPATH=its tree), one round at a time across the builds so that the machine's noise
falls on all of them alike, best of the rounds kept.  Before timing, every build's weights
after 3 iterations are checked against the NumPy reference.

    git worktree add /tmp/mn-before <commit>
    (cd /tmp/mn-before && python setup.py build_ext --inplace)
    git worktree add /tmp/mn-portable HEAD
    (cd /tmp/mn-portable && MNIST_NATIVE_PORTABLE=1 python setup.py build_ext --inplace)
    python setup.py build_ext --inplace
    python benches/bench_builds.py --build before=/tmp/mn-before --build fast=. \\
        --build portable=/tmp/mn-portable --simd avx2 --simd baseline

Workloads: the lab's run (1,000 training / 200 validation images, hidden 30, lr 1, MSE,
300 full-batch iterations) and the full run (50,000 / 10,000, hidden 75; --full-iterations
of them, 20 by default), float32 and float64; with --sgd-batch B, one epoch of mini-batch
SGD at batch B as well (50,000 / 10,000, hidden 128, float32, cross-entropy, --sgd-lr; its
ms per iteration is per epoch, measuring included), and --no-full-batch leaves out the
first two.  Ratios are against the first build.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

WORKER = r"""
import contextlib, io, json, sys, time
import numpy as np
import mnist_native as mn
from mnist_native import reference

spec = json.loads(sys.argv[1])
train, val, _ = mn.load_mnist(spec["data"], download=False, progress=False)

def split(d, n):
    x, y = d
    return np.asarray(x[:n]), np.eye(10)[np.asarray(y[:n])]

def run(cls, dtype, hidden, n_train, n_val, iterations, batch_size=None, lr=1.0, xe=False):
    model = cls(784, hidden, 10, dtype=dtype, seed=1)
    data, validation = split(train, n_train), split(val, n_val)
    if batch_size is not None:  # as benches/bench.py's sgd: arrays of the model's dtype
        data, validation = [(x.astype(dtype), y.astype(dtype)) for x, y in (data, validation)]
    fit = model.train_xe if xe else model.train
    kwargs = {} if batch_size is None else {"batch_size": batch_size}
    with contextlib.redirect_stdout(io.StringIO()):
        t = time.perf_counter()
        fit(data, validation, iterations=iterations, learning_rate=lr, plot=False, **kwargs)
        return model, time.perf_counter() - t

out = {"simd": mn.build_info()["simd"], "file": mn.__file__, "times": {}}
if spec["check"]:
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 1e-4)):
        a, _ = run(mn.NeuralNetwork, dtype, 30, 500, 100, 3)
        b, _ = run(reference.NeuralNetwork, dtype, 30, 500, 100, 3)
        np.testing.assert_allclose(a.W_input_to_hidden, b.W_input_to_hidden, rtol=tol, atol=tol)
for name, dtype, hidden, n_train, n_val, iterations, *sgd in spec["workloads"]:
    _, seconds = run(mn.NeuralNetwork, np.dtype(dtype).type, hidden, n_train, n_val,
                     iterations, *sgd)
    out["times"][name] = seconds / iterations
print(json.dumps(out))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="append", required=True, metavar="NAME=DIR",
                        help="a source tree built in place (repeat; the first is the baseline)")
    parser.add_argument("--simd", action="append", default=None,
                        help="MNIST_NATIVE_SIMD for every build (repeat: each in turn; "
                             "default: the widest the CPU runs)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the best kept (3)")
    parser.add_argument("--full-iterations", type=int, default=20)
    parser.add_argument("--sgd-batch", type=int, action="append", default=[], metavar="B",
                        help="also one epoch of mini-batch SGD at batch B (repeat)")
    parser.add_argument("--sgd-lr", type=float, default=0.5,
                        help="the SGD epochs' learning rate (0.5)")
    parser.add_argument("--no-full-batch", action="store_true",
                        help="leave out the lab's run and the full run")
    parser.add_argument("--data", default=os.environ.get("MNIST_NATIVE_DATA"))
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    if not args.data:
        parser.error("give --data or set MNIST_NATIVE_DATA")
    builds = [tuple(b.split("=", 1)) for b in args.build]
    if any(b < 1 for b in args.sgd_batch):
        parser.error("--sgd-batch must be at least 1")
    if not args.sgd_lr > 0:
        parser.error("--sgd-lr must be > 0")
    workloads = [] if args.no_full_batch else [
        (f"lab's run {d}", d, 30, 1000, 200, 300) for d in ("float32", "float64")] + [
        (f"full run {d}", d, 75, 50000, 10000, args.full_iterations)
        for d in ("float32", "float64")]
    workloads += [(f"sgd {b}, lr {args.sgd_lr:g}", "float32", 128, 50000, 10000, 1, b,
                   args.sgd_lr, True) for b in dict.fromkeys(args.sgd_batch)]
    if not workloads:
        parser.error("nothing to time: --no-full-batch needs --sgd-batch")
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    best, simd_names = {}, {}
    for simd in args.simd or [""]:
        for r in range(args.rounds):
            for name, tree in builds:
                spec = dict(data=args.data, check=r == 0, workloads=workloads)
                env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), MNIST_NATIVE_SIMD=simd)
                done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)],
                                      env=env, capture_output=True, text=True, cwd="/")
                if done.returncode:
                    sys.exit(f"{name} ({tree}) failed:\n{done.stderr}")
                result = json.loads(done.stdout)
                simd_names[simd, name] = result["simd"]
                for w, t in result["times"].items():
                    key = (simd, name, w)
                    best[key] = min(best.get(key, t), t)
    print(f"{'kernels':10} {'build':10} {'workload':22} {'ms/iteration':>13} {'vs ' + builds[0][0]:>10}")
    records = []
    for simd in args.simd or [""]:
        for w, *_ in workloads:
            base = best[simd, builds[0][0], w]
            for name, _ in builds:
                t = best[simd, name, w]
                print(f"{simd_names[simd, name]:10} {name:10} {w:22} {1000 * t:13.3f} "
                      f"{t / base:9.2f}x")
                records.append(dict(simd=simd_names[simd, name], build=name, workload=w,
                                    ms_per_iteration=1000 * t, ratio=t / base,
                                    started=started, rounds=args.rounds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()

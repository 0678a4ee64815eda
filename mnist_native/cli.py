"""The ``mnist-native`` command line: the lab's experiments in one command each.

    mnist-native train      train the lab's network, report test accuracy and time, plot
    mnist-native sweep      the lab's experiment grid as Markdown tables and a figure
    mnist-native bench      the benchmarks (needs a source checkout: benches/bench.py)
    mnist-native download   fetch MNIST into the cache, verified
    mnist-native lab-init   write the lab's three .py files, served by mnist_native
    mnist-native check      check a student's own NeuralNetwork and diagnose its mistakes
    mnist-native predict    classify a digit image with a saved model

Every command reports bad input in one line on stderr and exits non-zero (2 for a bad
command line, and for ``check`` a student file it cannot load; 1 for anything else),
without a traceback.
"""
import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np

PROG = "mnist-native"

DESCRIPTION = """\
mnist_native: the MNIST neural-network lab at native speed.

MNIST is looked for in this order: --data, $MNIST_NATIVE_DATA, ./Data/mnist.pkl.gz,
the user cache, then a verified download into the cache."""

EPILOG = """\
examples:
  mnist-native train                         the lab's final model (hidden 75, lr 1, 300 iterations)
  mnist-native train --loss xe --batch-size 32 --epochs 10 --hidden 128 --lr 0.5
  mnist-native sweep --iterations 100        the lab's grid, shorter runs
  mnist-native lab-init my_lab               then run the lab's notebook in my_lab/
  mnist-native check my_lab/NeuralNetwork.py what is wrong in your own network, and why
  mnist-native predict digit.png --model model.npz

'mnist-native COMMAND --help' describes each command."""


class CommandError(Exception):
    """Bad input a command found itself: reported in one line, exit status 1."""


# --------------------------------------------------------------------------------------
# argument types and checks
# --------------------------------------------------------------------------------------

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def seed_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def use_agg():
    """Draw into files only: never open a window, work without a display."""
    import matplotlib

    matplotlib.use("Agg")


def check_output(path, what, formats=None):
    """Fail before any work when ``path`` cannot be written (missing folder, unknown format)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CommandError(f"cannot write the {what} to {path}: it is a folder")
    if not path.parent.is_dir():
        raise CommandError(f"cannot write the {what} to {path}: the folder {path.parent} "
                           "does not exist")
    if formats is not None and path.suffix.lower().lstrip(".") not in formats:
        raise CommandError(f"cannot write the {what} to {path}: the file name must end with "
                           f"one of {', '.join('.' + f for f in sorted(formats))}")
    return path


def figure_formats():
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def save_figure(fig, path, what):
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    print(f"{what} saved to {path}")


def one_hot(labels, n=10):
    return np.eye(n, dtype=np.float32)[labels]


def add_data_options(p):
    p.add_argument("--data", metavar="PATH", default=None,
                   help="a mnist.pkl.gz or a folder of IDX files (default: the search order "
                        "above)")


def add_model_options(p, default_dtype="float32"):
    p.add_argument("--dtype", choices=["float32", "float64"], default=default_dtype,
                   help=f"precision of the weights and activations (default {default_dtype})")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads (default: $OMP_NUM_THREADS, else every CPU this process may "
                        "use)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed of the initial weights (default 0)")


def load_splits(args):
    from .data import load_mnist

    return load_mnist(args.data, progress=not args.quiet)


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------

TRAIN_DESCRIPTION = """\
Train the lab's one-hidden-layer network on MNIST, then print the test accuracy of the
best-validation weights and the training time, and write the learning curves to a PNG.

The defaults are the lab's final model: hidden 75, learning rate 1, 300 full-batch
iterations, MSE loss, on all 50,000 training images, validated on the 10,000 validation
images, tested on the 10,000 test images. A progress bar shows the training and validation
accuracy as it goes."""


def add_train_parser(commands):
    p = commands.add_parser(
        "train", help="train the lab's network; report test accuracy and time; plot",
        description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loss", choices=["mse", "xe"], default="mse",
                   help="mse: sigmoid output, squared error (the lab's train); xe: softmax "
                        "output, cross-entropy (train_xe). Default: mse")
    p.add_argument("--hidden", type=positive_int, default=75, help="hidden units (default 75)")
    p.add_argument("--lr", type=positive_float, default=1.0, help="learning rate (default 1.0)")
    p.add_argument("--iterations", type=positive_int, default=300,
                   help="full-batch iterations, or epochs with --batch-size (default 300)")
    p.add_argument("--epochs", type=positive_int, dest="iterations",
                   help="the same as --iterations, for mini-batch training")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="mini-batch SGD with this batch size (default: full batch, as the lab)")
    add_model_options(p)
    p.add_argument("--n-train", type=positive_int, default=None,
                   help="train on the first N training images only (the lab uses 1000)")
    p.add_argument("--n-validation", type=positive_int, default=None,
                   help="validate on the first N validation images only (the lab uses 200)")
    add_data_options(p)
    p.add_argument("--save", metavar="MODEL.npz", default=None,
                   help="write the trained model (best-validation weights) here; "
                        "'mnist-native predict' reads it")
    p.add_argument("--plot", metavar="CURVES.png", default="learning_curves.png",
                   help="write the learning curves (accuracies and loss) here "
                        "(default learning_curves.png)")
    p.add_argument("--no-plot", dest="plot", action="store_const", const=None,
                   help="do not write the learning curves")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_train)


def run_train(args):
    from tqdm import tqdm

    from . import NeuralNetwork, build_info
    from .plotting import plot_learning_curves

    save = None
    if args.save is not None:
        save = Path(args.save).expanduser()
        if not args.save.strip() or save.name in ("", ".", "..") or save.is_dir():
            raise CommandError(f"cannot write the model to {args.save!r}: give a file name, "
                               "e.g. --save model.npz")
        if save.suffix != ".npz":
            save = save.with_name(save.name + ".npz")  # what np.savez would write
        check_output(save, "model")
    if args.plot:
        use_agg()
        plot = check_output(args.plot, "learning curves", figure_formats())

    splits = load_splits(args)
    train, val, test = splits.train, splits.validation, splits.test
    n_train = min(args.n_train or len(train.labels), len(train.labels))
    n_val = min(args.n_validation or len(val.labels), len(val.labels))
    data = (train.images[:n_train], one_hot(train.labels[:n_train]))
    validation = (val.images[:n_val], one_hot(val.labels[:n_val]))
    model = NeuralNetwork(784, args.hidden, 10, dtype=args.dtype, num_threads=args.threads,
                          seed=args.seed)
    info = build_info()
    mode = f"mini-batch {args.batch_size}" if args.batch_size else "full batch"
    unit = "epochs" if args.batch_size else "iterations"
    print(f"Training 784-{args.hidden}-10 ({args.loss}, {mode}, lr {args.lr:g}, "
          f"{args.iterations} {unit}, {args.dtype}, {model.num_threads} thread{'s' if model.num_threads > 1 else ''}, "
          f"{info['simd']}) on {n_train:,} images, validating on {n_val:,}", flush=True)
    bar = tqdm(total=args.iterations, unit="it", disable=args.quiet, file=sys.stderr,
               desc="training")

    def progress(history):
        bar.update(1)
        bar.set_postfix(train=f"{history.train_accuracy[-1]:.2f}%",
                        val=f"{history.validation_accuracy[-1]:.2f}%", refresh=False)

    fit = model.train_xe if args.loss == "xe" else model.train
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # train's own "Training time:" line
            history = fit(data, validation, iterations=args.iterations,
                          learning_rate=args.lr, plot=False, batch_size=args.batch_size,
                          callback=progress)
    except KeyboardInterrupt:
        bar.close()
        # train() has put the best weights so far in place: keep them (main exits 130).
        done = getattr(model, "history", None)
        if done is not None:
            print(f"Interrupted after {done.iterations} of {args.iterations} iterations; "
                  f"best validation accuracy {done.best_validation_accuracy:.2f} % "
                  f"(iteration {done.best_iteration})", file=sys.stderr)
        if save:
            model.save(save)
            print(f"Best model so far saved to {save}", file=sys.stderr)
        raise
    seconds = time.perf_counter() - start
    bar.close()
    correct = model.predict((test.images, one_hot(test.labels)))
    print(f"Best validation accuracy: {history.best_validation_accuracy:.2f} % "
          f"(iteration {history.best_iteration} of {history.iterations})")
    print(f"Test accuracy: {100.0 * correct / len(test.labels):.2f} % "
          f"({correct:,}/{len(test.labels):,})")
    print(f"Training time: {seconds:.2f} s ({1000 * seconds / args.iterations:.2f} ms per "
          f"{unit[:-1]})")
    if save:
        model.save(save)
        print(f"Model saved to {save}")
    if args.plot:
        loss = "MSE" if args.loss == "mse" else "cross-entropy"
        title = f"784-{args.hidden}-10, {loss}, lr {args.lr:g}, {n_train:,} training images"
        save_figure(plot_learning_curves(history, title), plot, "Learning curves")
    return 0


# --------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------

SWEEP_DESCRIPTION = """\
The lab's experiment grid: hidden 15/30/75 x learning rate 0.1/1/10, each loss, on the
first 1,000 training images and on the lab's 10 samples (one of each digit), validated on
the first 200 validation images and tested on the whole test set. Every run starts from
fresh weights (the same seeded ones for a hidden size). Prints the results as Markdown
tables like the lab's answers and writes a grid figure of all the learning curves."""


def add_sweep_parser(commands):
    from .lab import HIDDEN_SIZES, LEARNING_RATES, LOSSES

    p = commands.add_parser(
        "sweep", help="the lab's grid of experiments: Markdown tables and a figure",
        description=SWEEP_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=positive_int, default=300,
                   help="full-batch iterations per run (default 300, the lab's)")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=list(HIDDEN_SIZES),
                   metavar="N", help="hidden sizes (default 15 30 75)")
    p.add_argument("--lr", type=positive_float, nargs="+", default=list(LEARNING_RATES),
                   metavar="LR", help="learning rates (default 0.1 1 10)")
    p.add_argument("--loss", choices=["mse", "xe"], nargs="+", default=list(LOSSES),
                   help="losses (default: mse xe)")
    p.add_argument("--n-train", type=positive_int, default=1000,
                   help="size of the larger training set: the first N images (default 1000)")
    p.add_argument("--n-validation", type=positive_int, default=200,
                   help="validate on the first N validation images (default 200)")
    add_model_options(p)
    add_data_options(p)
    p.add_argument("--plot", metavar="GRID.png", default="sweep.png",
                   help="write the grid of learning curves here (default sweep.png)")
    p.add_argument("--no-plot", dest="plot", action="store_const", const=None,
                   help="do not write the figure")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_sweep)


def run_sweep(args):
    from tqdm import tqdm

    from .lab import LOSS_NAMES, grid_runs, grid_tables, run_grid
    from .plotting import plot_sweep

    if args.plot:
        use_agg()
        plot = check_output(args.plot, "figure", figure_formats())
    hidden = list(dict.fromkeys(args.hidden))
    rates = list(dict.fromkeys(args.lr))
    losses = list(dict.fromkeys(args.loss))
    splits = load_splits(args)
    n_train = min(args.n_train, len(splits.train.labels))
    n_runs = len(grid_runs(hidden, rates, losses))
    print(f"Sweep: {n_runs} runs of {args.iterations} iterations (hidden "
          f"{'/'.join(map(str, hidden))} x learning rate {'/'.join(f'{r:g}' for r in rates)} x "
          f"{' and '.join(LOSS_NAMES[l] for l in losses)}, on the first {n_train:,} images "
          f"and on 10 samples)", flush=True)
    bar = tqdm(total=n_runs * args.iterations, unit="it", disable=args.quiet, file=sys.stderr,
               desc="sweep")

    def on_run(training_set, loss, h, lr):
        bar.set_description(f"{training_set}, {loss}, hidden {h}, lr {lr:g}")

    start = time.perf_counter()
    runs = run_grid(splits, hidden=hidden, learning_rates=rates, losses=losses,
                    iterations=args.iterations, n_train=n_train,
                    n_validation=args.n_validation, dtype=args.dtype,
                    num_threads=args.threads, seed=args.seed, on_run=on_run,
                    on_iteration=lambda history: bar.update(1))
    bar.close()
    print()
    print(grid_tables(runs))
    print(f"Sweep time: {time.perf_counter() - start:.1f} s")
    if args.plot:
        save_figure(plot_sweep(runs), plot, "Learning curves of every run")
    return 0


# --------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------

def find_bench_script():
    """``benches/bench.py`` of the source tree this package runs from, or of the mnist_native
    checkout in the current folder; None when neither is there (an installed package)."""
    candidates = [Path(__file__).resolve().parent.parent]
    cwd = Path.cwd()
    pyproject = cwd / "pyproject.toml"
    try:
        if pyproject.is_file() and 'name = "mnist_native"' in pyproject.read_text("utf-8"):
            candidates.append(cwd)
    except OSError:
        pass
    for root in candidates:
        script = root / "benches" / "bench.py"
        if script.is_file():
            return script
    return None


def run_bench(args):
    import importlib.util

    script = find_bench_script()
    if script is None:
        raise CommandError(
            "bench needs a source checkout: benches/bench.py is not installed with the "
            "package; run 'mnist-native bench' inside a clone of mnist_native (or 'python "
            "benches/bench.py' there)")
    sys.path.insert(0, str(script.parent))  # bench.py imports its neighbours
    try:
        spec = importlib.util.spec_from_file_location("mnist_native_bench", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not callable(getattr(module, "main", None)):
            raise CommandError(f"{script} has no main(argv) function")
        result = module.main(list(args.bench_args))
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(script.parent))
    return result if isinstance(result, int) else 0


def add_bench_parser(commands):
    p = commands.add_parser(
        "bench", add_help=False,
        help="run the benchmarks (needs a source checkout; 'bench --help' for their options)",
        description="Run benches/bench.py of the source checkout; every argument after "
                    "'bench' is passed to it.")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=run_bench)


# --------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------

def add_download_parser(commands):
    p = commands.add_parser(
        "download", help="fetch MNIST into the cache (verified by SHA-256)",
        description="Download the four official MNIST IDX files, each verified by SHA-256, "
                    "into the cache ($MNIST_NATIVE_CACHE, else the user cache) or --dest. "
                    "Files already there that verify are kept.")
    p.add_argument("--dest", metavar="DIR", default=None,
                   help="download into this folder instead of the cache")
    p.add_argument("--mirror", metavar="URL", action="append", default=None,
                   help="base URL to fetch from (repeat for several; default: "
                        "$MNIST_NATIVE_MIRRORS, else the official mirrors)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_download)


def run_download(args):
    from .data import MNISTDownloadError, download_mnist

    try:
        folder = download_mnist(dest=args.dest, mirrors=args.mirror, progress=not args.quiet)
    except (MNISTDownloadError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"MNIST is in {folder} (verified)")
    return 0


# --------------------------------------------------------------------------------------
# lab-init
# --------------------------------------------------------------------------------------

def add_lab_init_parser(commands):
    p = commands.add_parser(
        "lab-init", help="write the lab's NeuralNetwork.py, transfer_functions.py, utils.py",
        description="Write NeuralNetwork.py, transfer_functions.py and utils.py into DIR, "
                    "each a thin re-export from mnist_native, so the lab's notebook runs "
                    "there with its cells unchanged, at native speed. (In a notebook, "
                    "'from mnist_native.lab import *' is the one-line alternative.)")
    p.add_argument("dir", metavar="DIR", help="the lab's folder (created if needed)")
    p.add_argument("--force", action="store_true", help="overwrite the files if there")
    p.set_defaults(run=run_lab_init)


def run_lab_init(args):
    from .lab import write_lab_files

    try:
        written = write_lab_files(args.dir, overwrite=args.force)
    except (FileExistsError, NotADirectoryError) as exc:
        raise CommandError(str(exc)) from None
    for path in written:
        print(f"wrote {path}")
    print(f"The lab's notebook now runs in {written[0].parent} on mnist_native. It finds "
          "MNIST at Data/mnist.pkl.gz there, else $MNIST_NATIVE_DATA, the cache, or a "
          "download.")
    return 0


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------

CHECK_DESCRIPTION = """\
Check your own NeuralNetwork against the lab. Every method (the constructor, feedforward,
backpropagate, feedforward_xe, backpropagate_xe, train, train_xe, predict) runs on the lab's
Part 1 network and on small random networks; every quantity is compared with the lab's,
and what differs is diagnosed by matching it against a catalogue of the mistakes students
make. Methods not written yet are reported as not implemented.

PATH is a .py file that defines the class, or a folder made by 'mnist-native lab-init' (its
NeuralNetwork.py). Your code runs in a child process: a call that runs longer than
--timeout is stopped and reported; a step (importing PATH, checking one method) that
takes longer than 5 s + 3 times --timeout stops the check.

Exit status: 0 everything passes, 1 something is wrong, 2 PATH cannot be loaded."""


def add_check_parser(commands):
    p = commands.add_parser(
        "check", help="check your own NeuralNetwork and diagnose its mistakes",
        description=CHECK_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH",
                   help="a .py file defining the class, or a folder made by lab-init")
    p.add_argument("--class", dest="class_name", metavar="NAME", default="NeuralNetwork",
                   help="the class to check (default NeuralNetwork)")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON instead of text")
    p.add_argument("--timeout", type=positive_float, default=5.0, metavar="SECONDS",
                   help="stop any one call of your code that runs longer (default 5)")
    p.set_defaults(run=run_check)


def check_child_env():
    """The environment of the check's child process: no plot window can open, and the
    child imports this same mnist_native (its folder added to PYTHONPATH unless it is a
    site-packages folder, which the child has anyway)."""
    import os
    import site

    env = dict(os.environ, MPLBACKEND="Agg")
    root = Path(__file__).resolve().parent.parent
    site_dirs = {Path(d).resolve() for d in site.getsitepackages() + [site.getusersitepackages()]}
    if root not in site_dirs:
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in
                                             [env.get("PYTHONPATH")] if p])
    return env


#: Seconds the check's child may spend starting (importing mnist_native), and on any one
#: step (loading PATH, then each method) beyond 3 times --timeout; past it, it is killed.
CHECK_START_LIMIT = 60.0
CHECK_STEP_LIMIT = 5.0


def run_check_child(command, timeout, progress, log, cwd):
    """Run the child in the folder ``cwd``, killing it when a step outlasts its limit.
    Returns ``(returncode, step, why it was stopped or None)``; the child's output goes to
    the file ``log``."""
    import subprocess

    step_limit = CHECK_STEP_LIMIT + 3 * timeout
    with open(log, "w", encoding="utf-8") as output:
        child = subprocess.Popen(command, env=check_child_env(), stdin=subprocess.DEVNULL,
                                 stdout=output, stderr=subprocess.STDOUT, cwd=cwd)
        step, since = "starting", time.monotonic()
        try:
            while child.poll() is None:
                time.sleep(0.05)
                now = time.monotonic()
                current = progress.read_text(encoding="utf-8") if progress.is_file() else step
                if current != step:
                    step, since = current, now
                limit = CHECK_START_LIMIT if step == "starting" else step_limit
                if now - since > limit:
                    child.kill()
                    child.wait()
                    return child.returncode, step, f"it was stopped after {limit:g} s"
        finally:
            if child.poll() is None:  # interrupted (Ctrl-C): never leave it running
                child.kill()
                child.wait()
    return child.returncode, step, None


def run_check(args):
    import json
    import tempfile

    from .checker.loader import LoadError, source_file
    from .checker.report import Report

    try:
        source_file(args.path)  # a missing file or a folder without one: no child needed
    except LoadError as exc:
        return check_failed(args, 2, f"cannot load {args.path}: {exc}")
    with tempfile.TemporaryDirectory(prefix="mnist-native-check-") as tmp:
        out, progress, log = Path(tmp) / "result.json", Path(tmp) / "progress", Path(tmp) / "log"
        # The child runs in the student's folder (as their notebook would), which also
        # keeps whatever folder this command was started from off its sys.path: a
        # repository checkout there would shadow the installed mnist_native.
        file = source_file(args.path).resolve()
        command = [sys.executable, "-m", "mnist_native.checker.child", str(file),
                   "--class", args.class_name, "--timeout", str(args.timeout),
                   "--out", str(out), "--progress", str(progress)]
        returncode, step, problem = run_check_child(command, args.timeout, progress, log,
                                                    cwd=file.parent)
        result = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
        output = log.read_text(encoding="utf-8", errors="replace")
    if result is None:  # the child was killed, crashed or exited before writing
        if problem is None:
            last = [line.strip() for line in output.splitlines() if line.strip()][-1:]
            problem = (f"Python exited with status {returncode}"
                       + (f" ({last[0]})" if last else ""))
            cause = "ends the process (os._exit(), a crash)"
        else:
            cause = ("is blocked in a call that cannot be interrupted, such as time.sleep "
                     "or input()")
        if step in ("starting", "loading"):
            return check_failed(args, 2, f"cannot load {args.path}: {problem} while "
                                         f"importing it: the file {cause}")
        return check_failed(args, 1, f"{problem} while checking {step}: your {step} (or a "
                                     f"method it calls) {cause}")
    if "load_error" in result:
        return check_failed(args, 2, f"cannot load {args.path}: {result['load_error']}")
    if "internal_error" in result:
        return check_failed(args, 1, f"the checker itself failed while checking {step} "
                                     f"({result['internal_error']}); please report it")
    report = Report.from_dict(result["report"])
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
    return 0 if report.passed else 1


def check_failed(args, status, message):
    """Report a check that produced no report: one line on stderr (and a JSON object with
    ``passed`` false and the ``error`` on stdout with --json); returns ``status``."""
    if args.json:
        import json

        print(json.dumps({"passed": False, "error": message}, indent=2))
    print(f"{PROG} check: error: {message}", file=sys.stderr)
    return status


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------

def add_predict_parser(commands):
    p = commands.add_parser(
        "predict", help="classify digit images with a saved model",
        description="Classify images of handwritten digits (PNG, JPEG, ...; any size, colour "
                    "or grayscale) with a model saved by 'mnist-native train --save'. Each "
                    "image is prepared as MNIST was made: grayscale, inverted when it is "
                    "dark ink on a light background, cropped to the ink, fitted into 20 x 20 "
                    "and centred by mass in 28 x 28. Prints the digit and the probability "
                    "of each digit (softmax outputs of a cross-entropy model; the sigmoid "
                    "outputs of an MSE model, scaled to sum to 1).")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image file(s)")
    p.add_argument("--model", metavar="MODEL.npz", required=True,
                   help="a model written by 'mnist-native train --save'")
    ink = p.add_mutually_exclusive_group()
    ink.add_argument("--invert", dest="invert", action="store_const", const=True,
                     default=None, help="the digit is dark on light (default: decided from "
                                        "the image's border)")
    ink.add_argument("--no-invert", dest="invert", action="store_const", const=False,
                     help="the digit is already light on dark")
    p.add_argument("--preview", metavar="PREVIEW.png", default=None,
                   help="also write the 28 x 28 inputs the model saw to this image")
    p.set_defaults(run=run_predict)


def predict_probabilities(model, inputs):
    """(n, 10) probabilities of each digit for (n, 784) inputs."""
    if model.loss_kind == "cross-entropy":
        model.feedforward_xe(inputs)
        return np.array(model.o_output, dtype=np.float64)
    model.feedforward(inputs)
    out = np.array(model.o_output, dtype=np.float64)
    return out / out.sum(axis=1, keepdims=True)


def run_predict(args):
    from . import NeuralNetwork
    from . import _model_file as model_file
    from .imaging import DigitImageError, image_to_input

    if args.preview:
        use_agg()
        preview = check_output(args.preview, "preview", figure_formats())
    import zipfile

    if Path(args.model).is_file() and not zipfile.is_zipfile(args.model):
        raise CommandError(f"{args.model}: not a model file (.npz) written by "
                           "'mnist-native train --save'")
    try:
        model = NeuralNetwork.load(args.model)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if (model.input_layer_size - 1, model.output_layer_size) != (784, 10):
        raise CommandError(f"{args.model}: a {model.input_layer_size - 1}-input, "
                           f"{model.output_layer_size}-output model is not an MNIST digit "
                           "classifier (784 inputs, 10 outputs)")
    classes = model_file.read_members(args.model, model_file.NETWORK_MEMBERS,
                                      (model_file.CLASSES_MEMBER,)).get("classes")
    if classes is not None and not np.array_equal(classes, np.arange(10)):
        # A scikit-learn estimator's file: its outputs are its classes, not digits 0 to 9.
        raise CommandError(f"{args.model}: a scikit-learn classifier whose outputs are the "
                           f"classes {', '.join(map(str, classes))}, not the digits 0 to 9 "
                           "in order: predict with NeuralNetworkClassifier.load(...)")
    try:
        inputs = np.stack([image_to_input(path, invert=args.invert) for path in args.images])
    except DigitImageError as exc:
        raise CommandError(str(exc)) from None
    probabilities = predict_probabilities(model, inputs)
    for path, p in zip(args.images, probabilities):
        digit = int(np.argmax(p))
        print(f"{path}: {digit} ({100 * p[digit]:.1f} %)")
        for d in range(10):
            marker = "  <" if d == digit else ""
            print(f"  {d}  {100 * p[d]:5.1f} %  {'#' * int(round(40 * p[d]))}{marker}".rstrip())
    if args.preview:
        from .plotting import show_digits

        save_figure(show_digits(inputs, np.argmax(probabilities, axis=1), columns=5),
                    preview, "Model inputs")
    return 0


# --------------------------------------------------------------------------------------

def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(commands)
    add_sweep_parser(commands)
    add_bench_parser(commands)
    add_download_parser(commands)
    add_lab_init_parser(commands)
    add_check_parser(commands)
    add_predict_parser(commands)
    return parser


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["bench"]:
        # Everything after "bench" is bench.py's, in order, --help included.
        args = argparse.Namespace(command="bench", run=run_bench, bench_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    from .data import MNISTError

    try:
        return args.run(args)
    except (CommandError, MNISTError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130

"""The ``mnist-native`` command line: the lab's experiments in one command each."""
import argparse
import sys

import numpy as np

DESCRIPTION = """\
mnist_native: the MNIST neural-network lab at native speed.

MNIST is looked for in this order: --data, $MNIST_NATIVE_DATA, ./Data/mnist.pkl.gz,
the user cache, then a verified download into the cache."""


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text):
    value = float(text)
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def add_train_parser(commands):
    p = commands.add_parser(
        "train", help="train the lab's network on MNIST and report its test accuracy",
        description="Train the lab's one-hidden-layer network on MNIST (defaults: the lab's "
                    "final model: hidden 75, learning rate 1, 300 full-batch iterations, MSE), "
                    "print the test accuracy of the best-validation weights, and optionally "
                    "save the model and the learning curves.")
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
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="precision of the weights and activations (default float32)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads (default: $OMP_NUM_THREADS, else every CPU this process may use)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    p.add_argument("--n-train", type=positive_int, default=None,
                   help="train on the first N training images only (the lab uses 1000)")
    p.add_argument("--n-validation", type=positive_int, default=None,
                   help="validate on the first N validation images only (the lab uses 200)")
    p.add_argument("--data", default=None, help="a mnist.pkl.gz or a folder of IDX files")
    p.add_argument("--save", metavar="MODEL.npz", default=None,
                   help="write the trained model (best-validation weights) here")
    p.add_argument("--plot", metavar="CURVES.png", default=None,
                   help="write the learning curves (accuracies and loss) to this PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)


def one_hot(labels, n=10):
    return np.eye(n, dtype=np.float32)[labels]


def run_train(args):
    from tqdm import tqdm

    from . import NeuralNetwork, build_info
    from .data import load_mnist
    from .plotting import plot_learning_curves

    splits = load_mnist(args.data, progress=not args.quiet)
    train, val, test = splits.train, splits.validation, splits.test
    n_train = args.n_train or len(train.labels)
    n_val = args.n_validation or len(val.labels)
    data = (train.images[:n_train], one_hot(train.labels[:n_train]))
    validation = (val.images[:n_val], one_hot(val.labels[:n_val]))
    model = NeuralNetwork(784, args.hidden, 10, dtype=args.dtype, num_threads=args.threads,
                          seed=args.seed)
    info = build_info()
    mode = f"mini-batch {args.batch_size}" if args.batch_size else "full batch"
    print(f"Training {784}-{args.hidden}-10 ({args.loss}, {mode}, lr {args.lr}, {args.dtype}, "
          f"{model.num_threads} threads, {info['simd']}) on {len(data[0])} images, "
          f"validating on {len(validation[0])}")
    bar = tqdm(total=args.iterations, unit="it", disable=args.quiet, file=sys.stderr)

    def progress(history):
        bar.update(1)
        bar.set_postfix(train=f"{history.train_accuracy[-1]:.2f}%",
                        val=f"{history.validation_accuracy[-1]:.2f}%")

    fit = model.train_xe if args.loss == "xe" else model.train
    history = fit(data, validation, iterations=args.iterations, learning_rate=args.lr,
                  plot=False, batch_size=args.batch_size, callback=progress)
    bar.close()
    correct = model.predict((test.images, one_hot(test.labels)))
    print(f"Best validation accuracy: {history.best_validation_accuracy:.2f} % "
          f"(iteration {history.best_iteration})")
    print(f"Test accuracy: {100.0 * correct / len(test.labels):.2f} % "
          f"({correct}/{len(test.labels)})")
    if args.save:
        model.save(args.save)
        print(f"Model saved to {args.save}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        fig = plot_learning_curves(history, f"MNIST {784}-{args.hidden}-10, {args.loss}")
        fig.savefig(args.plot, dpi=100)
        print(f"Learning curves saved to {args.plot}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="mnist-native", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .data import MNISTError

    try:
        return args.run(args)
    except MNISTError as exc:
        print(f"mnist-native: {exc}", file=sys.stderr)
        return 2

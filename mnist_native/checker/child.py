"""The child process of ``mnist-native check``: load the student's file, check the class,
write the result as JSON.  The parent kills it after a time limit, so nothing the student's
code does (an endless loop in C, ``os._exit``, a crash) can hang or kill the command.

    python -m mnist_native.checker.child PATH --class NAME --timeout S --out FILE --progress FILE

``--out`` receives ``{"report": Report.to_dict()}``, ``{"load_error": "why"}`` or, should the
checker itself fail, ``{"internal_error": "the exception"}``;
``--progress`` holds the step under way ("loading", then each method), for the parent to
say where the child was stopped.
"""
import argparse
import json
import sys
import traceback
from pathlib import Path

from .loader import LoadError, load_class
from .runner import run_checks


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mnist_native.checker.child")
    p.add_argument("path")
    p.add_argument("--class", dest="class_name", default="NeuralNetwork")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--progress", default=None)
    args = p.parse_args(argv)

    def progress(step):
        if args.progress:
            Path(args.progress).write_text(step, encoding="utf-8")

    progress("loading")
    try:
        cls, file = load_class(args.path, args.class_name, timeout=args.timeout)
    except LoadError as exc:
        result = {"load_error": str(exc)}
    else:
        try:
            report = run_checks(cls, f"{cls.__qualname__} from {file}", timeout=args.timeout,
                                progress=progress)
            result = {"report": report.to_dict()}
            progress("done")
        except Exception as exc:  # the checker's own failure: not the student's to fix
            traceback.print_exc()
            result = {"internal_error": f"{type(exc).__name__}: {exc}"}
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

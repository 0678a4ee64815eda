"""The compiled extensions, or an error that says they are missing and what to do.

Run from a source checkout, ``import mnist_native`` finds the SOURCE folder ``mnist_native/``
first (the current folder heads ``sys.path``), and without a build that folder has no
``_kernels``/``_train``.  Python's own error for that ("cannot import name '_kernels' from
partially initialized module") explains nothing; ``require_extensions`` says what happened.
Only a ``ModuleNotFoundError`` for an extension itself means "not built here": one that exists
but cannot load (a missing libomp, another architecture, ...) raises its own error, unchanged.
"""
import importlib
import os
import sys
from importlib.machinery import PathFinder

EXTENSIONS = ("_kernels", "_train")


def require_extensions(package, package_dir):
    """Import ``package``'s extensions; ImportError with the remedy if any is not there."""
    missing = []
    for name in EXTENSIONS:
        full = f"{package}.{name}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise
            missing.append(full)
    if missing:
        raise ImportError(missing_message(package, package_dir, missing), name=package)


def missing_message(package, package_dir, missing):
    """The message for ``missing`` extensions of the copy of ``package`` in ``package_dir``."""
    here = os.path.abspath(package_dir)
    root = os.path.dirname(here)
    several = len(missing) > 1
    lines = [f"{package}'s compiled extension{'s' if several else ''} "
             f"({' and '.join(missing)}) {'are' if several else 'is'} missing from {here}."]
    if os.path.isfile(os.path.join(root, "setup.py")):
        lines.append(f"That is {package}'s SOURCE folder, which holds no build: Python imported "
                     "it because it is in the current folder (or on PYTHONPATH).")
        installed = installed_elsewhere(package, root)
        if installed:
            lines.append(f"It hides the installed copy in {installed}.")
    else:
        lines.append(f"This copy of {package} was installed without its compiled part.")
    lines += [
        "Either:",
        "  * install it (`pip install .` in the repository) and run Python from a folder "
        "outside the source tree, its root included; or",
        "  * build it in place, `pip install -e .` (or `python setup.py build_ext --inplace`), "
        "to use the source tree as it is.",
    ]
    return "\n".join(lines)


def installed_elsewhere(package, source_root):
    """The folder of a ``package`` found on ``sys.path`` other than ``source_root``, or None."""
    source_root = os.path.realpath(source_root)
    others = [entry for entry in sys.path if isinstance(entry, str)
              and os.path.realpath(entry or os.getcwd()) != source_root]
    try:
        spec = PathFinder.find_spec(package, others)
    except Exception:  # an odd path entry must not hide the message itself
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]

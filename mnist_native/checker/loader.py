"""Loading a student's class from a ``.py`` file, or from a lab folder (``lab-init``'s, whose
``NeuralNetwork.py`` holds it), the way the notebook would import it."""
import importlib.util
import sys
from pathlib import Path

from . import guard

LAB_FILE = "NeuralNetwork.py"


class LoadError(Exception):
    """The file cannot be loaded; the message says why, for the student."""


def source_file(path):
    """The ``.py`` file that ``path`` names: itself, or a folder's ``NeuralNetwork.py``."""
    path = Path(path).expanduser()
    if path.is_dir():
        file = path / LAB_FILE
        if not file.is_file():
            raise LoadError(f"{path} has no {LAB_FILE}: give the .py file that defines your "
                            "class, or a folder made by 'mnist-native lab-init'")
        return file
    if not path.exists():
        raise LoadError(f"{path} does not exist")
    if path.suffix != ".py":
        raise LoadError(f"{path} is not a .py file (nor a folder holding {LAB_FILE})")
    return path


def load_class(path, class_name="NeuralNetwork", timeout=None):
    """``(the class, the file it came from)``.  The file's folder goes first on
    ``sys.path``, so its own imports (``from transfer_functions import *``) work as in the
    notebook.  Raises ``LoadError`` for anything that stops it, never another exception."""
    file = source_file(path)
    folder = str(file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # Under its own name, as the notebook imports it, unless that name is taken.
    name = file.stem if file.stem.isidentifier() and file.stem not in sys.modules else (
        "_checked_" + "".join(c if c.isalnum() else "_" for c in file.stem))
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
    except Exception as exc:  # an unreadable file
        raise LoadError(f"{file} cannot be read: {exc}") from None
    sys.modules[name] = module
    loaded = guard.call(spec.loader.exec_module, module, timeout=timeout)
    if loaded.timed_out:
        raise LoadError(f"importing {file} did not finish within {timeout:g} s: does it train "
                        "a network or do other long work when imported? Put that under "
                        "'if __name__ == \"__main__\":'")
    if not loaded.ok:
        error = loaded.error
        if isinstance(error, SyntaxError):
            raise LoadError(f"{file}, line {error.lineno}: SyntaxError: {error.msg}")
        raise LoadError(f"importing {file} {loaded.describe_error(timeout)}")
    cls = getattr(module, class_name, None)
    if cls is None:
        classes = sorted(n for n, v in vars(module).items() if isinstance(v, type)
                         and getattr(v, "__module__", None) == name)
        hint = (f" (it defines {', '.join(classes)}: choose one with --class)" if classes
                else "")
        raise LoadError(f"{file} has no {class_name}{hint}")
    if not isinstance(cls, type):
        raise LoadError(f"{class_name} in {file} is a {type(cls).__name__}, not a class")
    return cls, file

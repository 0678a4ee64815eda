"""Exceptions raised by :mod:`mnist_native.data`.

Every exception derives from :class:`MNISTError` and also from the built-in exception a
caller would naturally catch (``ValueError`` for bad contents, ``FileNotFoundError`` when
nothing is found), so existing ``except`` clauses keep working.
"""
import pickle

__all__ = [
    "MNISTError",
    "MNISTFormatError",
    "UnsafePickleError",
    "MNISTDownloadError",
    "MNISTNotFoundError",
]


class MNISTError(Exception):
    """Base class of every error raised by :mod:`mnist_native.data`."""


class MNISTFormatError(MNISTError, ValueError):
    """A file is not valid MNIST: wrong magic, truncated, corrupt, inconsistent.

    Parameters
    ----------
    path : str or os.PathLike
        The offending file; it is named at the start of the message.
    problem : str
        What is wrong with it.

    Attributes
    ----------
    path : str
        The offending file.
    problem : str
        What is wrong with it.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Default exception pickling would call __init__ with the formatted message only.
        return (type(self), (self.path, self.problem))


class UnsafePickleError(MNISTFormatError, pickle.UnpicklingError):
    """A pickle asked for something other than the NumPy arrays MNIST is made of.

    Raised before the refused object is ever called, so its payload does not run.
    """


class MNISTDownloadError(MNISTError):
    """No mirror delivered a file that passed its checksum.

    The message lists every URL that was tried and why it failed.
    """


class MNISTNotFoundError(MNISTError, FileNotFoundError):
    """MNIST was found nowhere; the message lists what was tried and how to fix it."""

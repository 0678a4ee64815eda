"""Where downloaded MNIST files are kept."""
import os
from pathlib import Path

import platformdirs

__all__ = ["CACHE_ENV", "default_cache_dir", "cache_dir"]

CACHE_ENV = "MNIST_NATIVE_CACHE"


def default_cache_dir():
    """The platform's user cache folder for MNIST, e.g. ``~/.cache/mnist_native/mnist`` on Linux.

    Returns
    -------
    pathlib.Path
        The folder; it is not created here.
    """
    return Path(platformdirs.user_cache_dir("mnist_native", appauthor=False)) / "mnist"


def cache_dir(cache_dir=None):
    """The folder that holds (or will hold) the cached MNIST files.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        Used as is when given.  Otherwise the environment variable ``MNIST_NATIVE_CACHE``
        when set and not empty, else :func:`default_cache_dir`.

    Returns
    -------
    pathlib.Path
        The folder (absolute, ``~`` expanded); it is not created here.
    """
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or default_cache_dir()
    return Path(cache_dir).expanduser().absolute()

"""MNIST from wherever its users hold it: a path, ``Data/mnist.pkl.gz``, IDX files, a cache,
or a verified download.

This subpackage is pure Python (NumPy, tqdm, platformdirs) and imports nothing else from
:mod:`mnist_native`, so it works without the compiled extension.

Main entry points
-----------------
load_data
    The lab's ``utils.load_data()``: Python lists, as the notebook expects.
load_mnist
    The same splits as NumPy arrays.
download_mnist
    Fetch the four official IDX files into a folder (the cache by default), verified.

Environment variables
---------------------
MNIST_NATIVE_DATA
    A ``mnist.pkl.gz`` or a folder of IDX files, used when no ``path`` is given.
MNIST_NATIVE_CACHE
    The cache folder (default: the platform's user cache, ``.../mnist_native/mnist``).
MNIST_NATIVE_MIRRORS
    Comma-separated mirror base URLs, replacing the official list.
"""
from .cache import cache_dir, default_cache_dir
from .download import FILES, MIRRORS, FileSpec, download_mnist, resolve_mirrors, verify_file
from .errors import (
    MNISTDownloadError,
    MNISTError,
    MNISTFormatError,
    MNISTNotFoundError,
    UnsafePickleError,
)
from .idx import read_idx, read_idx_folder, read_idx_images, read_idx_labels
from .lab_pickle import RestrictedUnpickler, read_lab_pickle
from .loaders import MNISTSplits, Split, load_data, load_mnist
from .locate import Source, find_mnist

__all__ = [
    "load_data",
    "load_mnist",
    "download_mnist",
    "find_mnist",
    "cache_dir",
    "default_cache_dir",
    "resolve_mirrors",
    "verify_file",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "read_idx_folder",
    "read_lab_pickle",
    "RestrictedUnpickler",
    "MNISTSplits",
    "Split",
    "Source",
    "FileSpec",
    "FILES",
    "MIRRORS",
    "MNISTError",
    "MNISTFormatError",
    "UnsafePickleError",
    "MNISTDownloadError",
    "MNISTNotFoundError",
]

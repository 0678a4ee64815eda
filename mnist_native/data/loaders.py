"""The public loaders: :func:`load_data` (the lab's lists) and :func:`load_mnist` (arrays)."""
import operator
from typing import NamedTuple

import numpy as np

from .errors import MNISTFormatError
from .idx import read_idx_folder
from .lab_pickle import N_PIXELS, read_lab_pickle
from .locate import find_mnist

__all__ = ["Split", "MNISTSplits", "load_mnist", "load_data"]

# The lab's validation set is the last 10,000 of the official 60,000 training images.
_VALIDATION_FRACTION = 6

# Each possible pixel value k/256 as one shared Python float (see _image_lists).
_PIXEL_FLOATS = tuple(k / 256 for k in range(256))
_ROWS_PER_CHUNK = 4096


class Split(NamedTuple):
    """One MNIST split: ``images`` (n, 784) and integer ``labels`` (n,)."""

    images: np.ndarray
    labels: np.ndarray


class MNISTSplits(NamedTuple):
    """The lab's three splits, in the order of its ``mnist.pkl.gz``."""

    train: Split
    validation: Split
    test: Split


def _read_splits(source):
    """(images, labels) x 3 as stored: float images from a pickle, uint8 from IDX files."""
    if source.kind == "pickle":
        return [tuple(split) for split in read_lab_pickle(source.path)]
    (train_x, train_y), (test_x, test_y) = read_idx_folder(source.path)
    train_x = train_x.reshape(len(train_x), N_PIXELS)
    test_x = test_x.reshape(len(test_x), N_PIXELS)
    # Cut in order, as the lab's pickle was made: 50,000 / 10,000 of the official 60,000.
    cut = len(train_x) - len(train_x) // _VALIDATION_FRACTION
    return [(train_x[:cut], train_y[:cut]), (train_x[cut:], train_y[cut:]), (test_x, test_y)]


def _exact_pixels(images):
    """uint8 k such that images == k / 256 exactly, or None when that does not hold."""
    if images.dtype == np.uint8:
        return images
    scaled = images * images.dtype.type(256)  # exact: a power of two
    with np.errstate(invalid="ignore"):  # NaN or out of range casts are caught by the comparison
        pixels = scaled.astype(np.uint8)
    return pixels if np.array_equal(pixels, scaled) else None


def _images_as(images, dtype, path):
    if dtype == np.uint8:
        pixels = _exact_pixels(images)
        if pixels is None:
            raise MNISTFormatError(
                path, "pixel values are not multiples of 1/256, so they cannot be given as uint8; use a float dtype"
            )
        return pixels
    if images.dtype == np.uint8:
        # pixel / 256, as the lab's pickle stores them: exact in float32 and float64.
        return images.astype(dtype) / dtype.type(256)
    return images.astype(dtype, copy=False)


def load_mnist(path=None, *, dtype=np.float32, cache_dir=None, download=True, progress=True):
    """Load MNIST as NumPy arrays, in the lab's three splits.

    MNIST is looked for in this order: ``path``; the environment variable
    ``MNIST_NATIVE_DATA``; ``./Data/mnist.pkl.gz``; the cache folder; a verified download
    into the cache (see :func:`mnist_native.data.locate.find_mnist`).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The lab's ``mnist.pkl.gz``, or a folder holding the four official IDX files
        (gzip'd or not).  When given, nothing else is tried.
    dtype : {numpy.float32, numpy.float64, numpy.uint8}, default numpy.float32
        Image type: floats are pixel / 256, in [0, 1) (exactly the lab pickle's values);
        uint8 are the raw pixels 0..255.
    cache_dir : str or os.PathLike, optional
        The cache folder; default ``MNIST_NATIVE_CACHE``, else the platform's user cache.
    download : bool, default True
        Download into the cache when MNIST is found nowhere else.
    progress : bool, default True
        Show download progress bars.

    Returns
    -------
    MNISTSplits
        ``(train, validation, test)``, each a ``Split(images, labels)`` with images of
        shape (n, 784) and int64 labels of shape (n,).  From the official files: 50,000 /
        10,000 / 10,000, validation being the last 10,000 training images (in general the
        last sixth).

    Raises
    ------
    MNISTNotFoundError
        MNIST was found nowhere; the message lists what was tried and how to fix it.
    MNISTFormatError
        A file found is truncated, corrupt or not MNIST (the message names it).
    UnsafePickleError
        The pickle holds something other than NumPy arrays; nothing in it was run.

    Examples
    --------
    >>> (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32, np.float64):
        raise ValueError(f"dtype must be uint8, float32 or float64, not {dtype}")
    source = find_mnist(path, cache_dir=cache_dir, download=download, progress=progress)
    splits = _read_splits(source)
    return MNISTSplits(*(
        Split(_images_as(images, dtype, source.path), labels.astype(np.int64, copy=False))
        for images, labels in splits
    ))


def _image_lists(images):
    """``images.tolist()``, in a quarter of the memory when pixels are k/256.

    MNIST pixels take only 256 values, so every row can point at the same 256 Python float
    objects instead of allocating 54.9 million of them: 8 bytes per pixel instead of 32
    (0.44 GB instead of 1.76 GB for the whole set), and about a quarter less time,
    measured.  Floats are immutable, so the lists behave exactly like those of
    ``tolist()``.  Other values fall back to ``tolist()``.
    """
    pixels = _exact_pixels(images)
    if pixels is None:
        out = []
        for start in range(0, len(images), _ROWS_PER_CHUNK):  # bounded temporaries
            out.extend(images[start:start + _ROWS_PER_CHUNK].tolist())
        return out
    # itemgetter over a row's bytes was the fastest gather measured (ahead of map() and of
    # a NumPy object-array take + tolist).
    flat, width = pixels.tobytes(), pixels.shape[1]
    return [list(operator.itemgetter(*flat[i:i + width])(_PIXEL_FLOATS))
            for i in range(0, len(flat), width)]


def _one_hot_lists(labels):
    # A fresh list per sample (tolist copies), so mutating one target changes no other.
    return np.eye(10, dtype=np.int64)[labels].tolist()


def load_data(path=None, *, cache_dir=None, download=True, progress=True):
    """The lab's ``utils.load_data()``: MNIST as Python lists.

    Prints ``Loading MNIST data .....``, then finds MNIST as :func:`load_mnist` does
    (``path``, ``MNIST_NATIVE_DATA``, ``./Data/mnist.pkl.gz``, the cache, a download).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The lab's ``mnist.pkl.gz``, or a folder holding the four IDX files.
    cache_dir : str or os.PathLike, optional
        The cache folder; default ``MNIST_NATIVE_CACHE``, else the platform's user cache.
    download : bool, default True
        Download into the cache when MNIST is found nowhere else.
    progress : bool, default True
        Show download progress bars.

    Returns
    -------
    training_data, validation_data, test_data : list
        Each ``[inputs, targets]``: ``inputs`` a list of 784-float lists (pixel / 256, in
        [0, 1)), ``targets`` a list of one-hot 10-int lists; 50,000 / 10,000 / 10,000.

    Raises
    ------
    MNISTNotFoundError, MNISTFormatError, UnsafePickleError
        As :func:`load_mnist`.
    """
    print("Loading MNIST data .....", flush=True)
    source = find_mnist(path, cache_dir=cache_dir, download=download, progress=progress)
    return tuple([_image_lists(images), _one_hot_lists(labels)] for images, labels in _read_splits(source))

"""Read IDX files (the format of the official MNIST distribution), gzip'd or raw.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32
dimensions, then the array in C order, big-endian.  Every check that fails raises
:class:`~mnist_native.data.errors.MNISTFormatError` naming the file and the problem.
"""
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ._files import open_maybe_gzip, read_at_most
from .errors import MNISTFormatError

__all__ = [
    "IDX_NAMES",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "find_idx_files",
    "read_idx_folder",
]

# The official base names, by role.  A folder may hold each as ``name.gz`` or ``name``.
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type code -> big-endian dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# A header is trusted only up to this payload size, so that a corrupt one cannot make us
# try to allocate terabytes; the largest MNIST file is 47 MB.
MAX_PAYLOAD_BYTES = 1 << 30


def read_idx(path):
    """Read one IDX file into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        An IDX file, raw or gzip'd (detected from its first bytes, not its name).

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order, with the shape the header declares.

    Raises
    ------
    MNISTFormatError
        Wrong magic number, unknown type code, truncated header or payload, trailing
        bytes after the payload, or corrupt / truncated gzip data.
    OSError
        The file cannot be opened.
    """
    path = os.fspath(path)
    stream, raw, is_gzip = open_maybe_gzip(path)
    what = "gzip'd IDX" if is_gzip else "IDX"
    try:
        with raw, stream:
            magic = read_at_most(stream, 4)
            if len(magic) < 4:
                raise MNISTFormatError(
                    path, f"truncated {what} file: {len(magic)} bytes, shorter than the 4-byte magic number"
                )
            if magic[0] != 0 or magic[1] != 0:
                raise MNISTFormatError(
                    path,
                    f"not an IDX file: magic number {bytes(magic).hex()} does not start with 0000",
                )
            type_code, ndim = magic[2], magic[3]
            if type_code not in _IDX_DTYPES:
                raise MNISTFormatError(path, f"unknown IDX type code 0x{type_code:02x} in magic number {bytes(magic).hex()}")
            if ndim == 0:
                raise MNISTFormatError(path, "IDX header declares 0 dimensions")
            header = read_at_most(stream, 4 * ndim)
            if len(header) < 4 * ndim:
                raise MNISTFormatError(
                    path, f"truncated {what} header: {ndim} dimensions declared, file ends inside them"
                )
            shape = tuple(int(d) for d in np.frombuffer(bytes(header), dtype=">u4"))
            dtype = _IDX_DTYPES[type_code]
            size = dtype.itemsize
            for d in shape:
                size *= d
            if size > MAX_PAYLOAD_BYTES:
                raise MNISTFormatError(
                    path, f"IDX header declares dimensions {shape} ({size} bytes), not a plausible MNIST file"
                )
            payload = read_at_most(stream, size, bytearray)  # the array is writable
            if len(payload) < size:
                raise MNISTFormatError(
                    path,
                    f"truncated {what} file: dimensions {shape} need {size} bytes of data, found {len(payload)}",
                )
            if stream.read(1):
                raise MNISTFormatError(
                    path, f"{what} file has bytes after the {size} bytes of data that dimensions {shape} declare"
                )
    except EOFError as exc:
        # gzip raises EOFError when the compressed stream stops before its end marker.
        raise MNISTFormatError(path, f"truncated gzip data ({exc})") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise MNISTFormatError(path, f"corrupt gzip data ({exc})") from None
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx_images(path):
    """Read an MNIST image file: IDX uint8 of shape (n, 28, 28).

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file, raw or gzip'd.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (n, 28, 28).

    Raises
    ------
    MNISTFormatError
        Anything :func:`read_idx` refuses, or a type or shape that is not MNIST images.
    """
    images = read_idx(path)
    if images.dtype != np.uint8:
        raise MNISTFormatError(path, f"MNIST images must be unsigned bytes (IDX type 0x08), found {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MNISTFormatError(path, f"MNIST images must have dimensions (n, 28, 28), found {images.shape}")
    return images


def read_idx_labels(path):
    """Read an MNIST label file: IDX uint8 of shape (n,), values 0 to 9.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file, raw or gzip'd.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (n,).

    Raises
    ------
    MNISTFormatError
        Anything :func:`read_idx` refuses, a type or shape that is not labels, or a
        label outside 0..9.
    """
    labels = read_idx(path)
    if labels.dtype != np.uint8:
        raise MNISTFormatError(path, f"MNIST labels must be unsigned bytes (IDX type 0x08), found {labels.dtype}")
    if labels.ndim != 1:
        raise MNISTFormatError(path, f"MNIST labels must have one dimension, found {labels.shape}")
    if labels.size and labels.max() > 9:
        bad = int(np.flatnonzero(labels > 9)[0])
        raise MNISTFormatError(path, f"label {int(labels[bad])} at index {bad} is outside 0..9")
    return labels


def find_idx_files(folder):
    """Find the four MNIST IDX files in a folder.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to look in.  Each file may be ``<name>.gz`` or ``<name>``; the
        gzip'd one is preferred when both exist.

    Returns
    -------
    found : dict
        Role (a key of :data:`IDX_NAMES`) -> :class:`pathlib.Path`, for the files present.
    missing : list of str
        Base names of the files not present.
    """
    folder = Path(folder)
    found, missing = {}, []
    for role, name in IDX_NAMES.items():
        for candidate in (folder / (name + ".gz"), folder / name):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _pair(images_path, labels_path):
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise MNISTFormatError(
            images_path, f"holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels


def read_idx_folder(folder):
    """Read the training and test sets from a folder of MNIST IDX files.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder holding the four official files (see :data:`IDX_NAMES`).

    Returns
    -------
    train : tuple of numpy.ndarray
        (images uint8 (n, 28, 28), labels uint8 (n,)), the whole official training set.
    test : tuple of numpy.ndarray
        The same for the test set.

    Raises
    ------
    MNISTFormatError
        A file is missing or invalid, or images and labels disagree in number.
    """
    found, missing = find_idx_files(folder)
    if missing:
        raise MNISTFormatError(folder, "missing IDX file(s) " + ", ".join(f"{m}[.gz]" for m in missing))
    train = _pair(found["train_images"], found["train_labels"])
    test = _pair(found["test_images"], found["test_labels"])
    return train, test

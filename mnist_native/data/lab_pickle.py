"""Read the lab's ``mnist.pkl.gz`` through an unpickler that can only rebuild NumPy arrays.

``pickle.load`` calls whatever callable a file names, so a hostile ``mnist.pkl.gz`` could run
any code.  :class:`RestrictedUnpickler` admits only the globals that rebuild plain numeric
NumPy arrays, for NumPy 1.x (``numpy.core``) and 2.x (``numpy._core``) module paths, plus
``_codecs.encode`` (latin-1 only), which Python 3 protocol-2 pickles use to rebuild byte
strings.  Anything else is refused before it is called.

:func:`read_lab_pickle` also checks, before unpickling, every size the pickle states: the C
unpickler allocates at a stated size before it reads, so a few corrupt bytes could otherwise
ask for gigabytes.
"""
import gzip
import io
import os
import pickle
import pickletools
import struct
import warnings
import zlib

import numpy as np

from ._files import open_maybe_gzip, read_at_most
from .errors import MNISTFormatError, UnsafePickleError

__all__ = ["RestrictedUnpickler", "read_lab_pickle", "N_PIXELS"]

N_PIXELS = 28 * 28

# The lab's file is 222 MB once decompressed (float32 images); float64 ones would be 444 MB.
# Past this, it is not an MNIST pickle, whatever it claims.
MAX_PICKLE_BYTES = 1 << 30

_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct
_FROMBUFFER = np.empty(0).__reduce_ex__(5)[0]  # numpy.(_)core.numeric._frombuffer (protocol 5)


class _Refused(Exception):
    """Internal: an admitted global was called in a way no array pickle does."""


class _Guard:
    """A callable standing in for one admitted global.

    It has no ``__dict__`` and refuses attribute assignment, so a pickle's BUILD opcode
    cannot alter it; a fresh set is made for every unpickler in any case.
    """

    __slots__ = ("_fn", "_name")

    def __init__(self, fn, name):
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_name", name)

    def __setattr__(self, key, value):
        raise _Refused(f"the pickle tried to set attribute {key!r} on {self._name}")

    def __call__(self, *args):
        return self._fn(*args)

    def __repr__(self):
        return f"<admitted {self._name}>"


def _numeric_dtype(spec, where):
    dtype = np.dtype(spec)
    if dtype.hasobject:
        # Object arrays hold arbitrary Python objects; MNIST never needs them.
        raise _Refused(f"{where} asked for the object dtype {dtype}")
    return dtype


def _make_admitted():
    """Build a fresh table (module, name) -> stand-in for the globals array pickles use."""

    # ``numpy.ndarray`` appears only as the class argument of _reconstruct; calling it
    # directly could build an uninitialised or object array, so its stand-in refuses calls.
    def ndarray_called(*args):
        raise _Refused("the pickle called numpy.ndarray directly")

    ndarray = _Guard(ndarray_called, "numpy.ndarray")

    def reconstruct(subtype, shape, dtype_spec):
        if subtype is not ndarray:
            raise _Refused(f"_reconstruct asked for class {subtype!r}, not numpy.ndarray")
        return _RECONSTRUCT(np.ndarray, shape, _numeric_dtype(dtype_spec, "_reconstruct"))

    def frombuffer(buf, dtype, shape, order):
        if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
            raise _Refused(f"_frombuffer was given a {type(buf).__name__}, not a buffer")
        return _FROMBUFFER(buf, _numeric_dtype(dtype, "_frombuffer"), shape, order)

    def dtype(spec, align=False, copy=False):
        _numeric_dtype(spec, "numpy.dtype")
        return np.dtype(spec, align, copy)

    def encode(obj, encoding="utf-8", errors="strict"):
        # Python 3 writes a bytes object b as _codecs.encode(b.decode('latin1'), 'latin1').
        if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
            raise _Refused(f"_codecs.encode called with encoding {encoding!r}; only latin1 rebuilds bytes")
        return obj.encode("latin-1", errors)

    reconstruct_guard = _Guard(reconstruct, "numpy.core.multiarray._reconstruct")
    frombuffer_guard = _Guard(frombuffer, "numpy.core.numeric._frombuffer")
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct_guard,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct_guard,
        ("numpy.core.numeric", "_frombuffer"): frombuffer_guard,
        ("numpy._core.numeric", "_frombuffer"): frombuffer_guard,
        ("numpy", "ndarray"): ndarray,
        ("numpy", "dtype"): _Guard(dtype, "numpy.dtype"),
        ("_codecs", "encode"): _Guard(encode, "_codecs.encode"),
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numeric NumPy arrays and nothing else.

    Parameters
    ----------
    file : file object
        Binary stream holding the pickle.
    **kwargs
        Passed to :class:`pickle.Unpickler`; use ``encoding="latin1"`` for Python 2 pickles.

    Notes
    -----
    :meth:`find_class` returns stand-ins for the admitted globals that check their
    arguments (no object dtypes, no other classes), and raises
    :class:`~mnist_native.data.errors.UnsafePickleError` for every other global, before
    anything is called.  ``persistent_load`` keeps :class:`pickle.Unpickler`'s refusal.
    It does not check the sizes a pickle states; :func:`read_lab_pickle` does, first.
    """

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self._admitted = _make_admitted()

    def find_class(self, module, name):
        """Return the stand-in for an admitted global; refuse any other.

        Parameters
        ----------
        module, name : str
            The global the pickle asks for.

        Returns
        -------
        callable
            The stand-in.

        Raises
        ------
        _Refused
            Converted by :func:`read_lab_pickle` into ``UnsafePickleError``.
        """
        try:
            return self._admitted[(module, name)]
        except KeyError:
            raise _Refused(
                f"refused global {module}.{name}: only NumPy array globals are allowed in an MNIST pickle"
            ) from None


def _end_of_pickle(pickled):
    """Where the pickle read from ``pickled`` ends, once every size it states is known to be sound.

    The C unpickler allocates at the sizes a pickle states before it reads anything: a
    bytes object of a BINBYTES8's length, a memo table as long as a PUT's index.  A corrupt
    or hostile file could ask for gigabytes in a few bytes.  ``pickletools.genops`` checks
    every opcode and every length against the bytes present (``ValueError`` otherwise);
    memo indices are checked here against the opcodes read so far, which a pickler never
    exceeds: it numbers what it memoizes 0, 1, 2...
    """
    n_opcodes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # a STRING's bad escapes: corrupt anyway
        for opcode, arg, position in pickletools.genops(pickled):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > n_opcodes:
                raise ValueError(f"memo index {arg} at byte {position}, after only {n_opcodes} opcodes")
            n_opcodes += 1
    return position + 1  # genops stops at STOP, a one-byte opcode


def _check_split(path, index, split):
    names = ("training", "validation", "test")
    where = f"{names[index]} set (item {index})"
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise MNISTFormatError(path, f"{where} is not an (images, labels) pair")
    images, labels = split
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        raise MNISTFormatError(path, f"{where}: images and labels must be NumPy arrays")
    if images.ndim != 2 or images.shape[1] != N_PIXELS:
        raise MNISTFormatError(path, f"{where}: images must have shape (n, {N_PIXELS}), found {images.shape}")
    if images.dtype.kind != "f":
        raise MNISTFormatError(path, f"{where}: images must be floats, found {images.dtype}")
    if images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
        # min/max also catch NaN: comparisons with NaN are False.
        raise MNISTFormatError(path, f"{where}: pixel values must lie in [0, 1]")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise MNISTFormatError(
            path, f"{where}: labels must be a 1-D integer array, found {labels.dtype} {labels.shape}"
        )
    if len(labels) != len(images):
        raise MNISTFormatError(path, f"{where}: {len(images)} images but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise MNISTFormatError(path, f"{where}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")


def read_lab_pickle(path):
    """Read the lab's ``mnist.pkl.gz`` safely.

    Parameters
    ----------
    path : str or os.PathLike
        The pickle, gzip'd (as the lab ships it) or raw; written by Python 2 or 3.

    Returns
    -------
    tuple
        ``((train_images, train_labels), (validation_images, validation_labels),
        (test_images, test_labels))``: float images of shape (n, 784) in [0, 1] and
        integer labels of shape (n,) in 0..9, as stored in the file.

    Raises
    ------
    UnsafePickleError
        The pickle names a global other than the NumPy array ones; nothing it names is run.
    MNISTFormatError
        Truncated, corrupt, not a pickle, or not the lab's layout.
    OSError
        The file cannot be opened.
    """
    path = os.fspath(path)
    stream, raw, _ = open_maybe_gzip(path)
    with raw, stream:
        try:
            blob = read_at_most(stream, MAX_PICKLE_BYTES + 1)
        except EOFError as exc:
            raise MNISTFormatError(path, f"truncated file ({exc or 'ran out of input'})") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise MNISTFormatError(path, f"corrupt gzip data ({exc})") from None
    if len(blob) > MAX_PICKLE_BYTES:
        raise MNISTFormatError(path, f"too large for an MNIST pickle: more than "
                                     f"{MAX_PICKLE_BYTES:,} bytes once decompressed")
    pickled, size = io.BytesIO(blob), len(blob)  # shares blob's bytes until written
    try:
        trailing = _end_of_pickle(pickled) < size
        if not trailing:  # nothing is unpickled from a file that is not what it claims
            pickled.seek(0)
            data = RestrictedUnpickler(pickled, encoding="latin1").load()
    except _Refused as exc:
        raise UnsafePickleError(path, f"unsafe pickle, not loaded: {exc}") from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error, OverflowError, EOFError) as exc:
        # What malformed pickle bytes or mismatched array state raise.
        raise MNISTFormatError(path, f"corrupt pickle ({type(exc).__name__}: {exc})") from None
    if trailing:
        raise MNISTFormatError(path, "unexpected bytes after the end of the pickle")
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise MNISTFormatError(
            path, f"expected a (training, validation, test) triple, found {type(data).__name__}"
        )
    for index, split in enumerate(data):
        _check_split(path, index, split)
    return tuple((images, labels) for images, labels in data)

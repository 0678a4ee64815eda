"""Model files: a plain ``.npz`` (a zip of ``.npy`` members, stored uncompressed, no pickles),
written with ``np.savez`` and read back without trusting anything in it.

``read_members`` opens the zip itself and, for every member it was asked for, reads the
``.npy`` header (NumPy's own parser: a Python literal, never code) BEFORE any data, and
refuses with ``ValueError`` anything a file written by ``save`` cannot hold:

* a file that is not a zip, or is truncated (``zipfile.BadZipFile`` and kin become
  ``ValueError``); a missing member;
* a compressed or encrypted member, or one whose declared size is not backed by bytes of
  the file: so no read can allocate more than the file's real size;
* an ``.npy`` format version other than 1.0 and 2.0;
* a dtype outside the member's expected kinds (object arrays, structured and sub-array
  dtypes included), a shape of the wrong dimension, or a shape whose byte count is not
  exactly the data the member holds;
* a bad CRC (the zip's checksum of every member's bytes).

``read_network`` then checks what the values mean: the format version, the dtype, loss and
transfer names, and weight shapes that make one network.  Only ``OSError``s of opening the
file (``FileNotFoundError``...) pass through as they are.
"""
import os
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from math import prod

import numpy as np
from numpy.lib import format as npy_format

from . import transfer_functions as tf

FORMAT_VERSION = 1
DTYPE_NAMES = ("float32", "float64")
LOSS_NAMES = ("", "mse", "cross-entropy")  # "": never trained
# The transfer pairs a file can name: the package's own functions, told apart by identity
# (a function of the same name written elsewhere may compute something else).
TRANSFER_PAIRS = {"sigmoid": (tf.sigmoid, tf.dsigmoid), "tanh": (tf.tanh, tf.dtanh)}
TRANSFER_NAMES = tuple(TRANSFER_PAIRS)
NAME_CHARS = 64  # longest name held by a text member of a network file


class ModelFileError(ValueError):
    """A file that is not a model file ``save`` could have written."""


def refuse(name, problem):
    return ModelFileError(f"{name}: not a model file written by save(): {problem}")


@dataclass(frozen=True)
class Member:
    """One ``.npy`` member: its name (without ``.npy``), the dtype kinds it may have
    (``"f"``: float32 or float64 only), its number of dimensions and, for text (``"U"``),
    the longest string."""

    name: str
    kinds: str
    ndim: int
    max_chars: int = NAME_CHARS

    def check_dtype(self, dtype):
        """Why ``dtype`` cannot be this member's, or None."""
        if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
            return f"has dtype {dtype}: not a plain array of numbers or text"
        if dtype.kind not in self.kinds:
            return f"has dtype {dtype}; expected {describe_kinds(self.kinds)}"
        if dtype.kind == "f" and dtype.itemsize not in (4, 8):
            return f"has dtype {dtype}; expected float32 or float64"
        if dtype.kind == "U" and dtype.itemsize > 4 * self.max_chars:
            return f"holds text of up to {dtype.itemsize // 4} characters (at most " \
                   f"{self.max_chars} expected)"
        return None


KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "float32 or float64",
              "U": "text"}


# What a scikit-learn estimator's file adds: its classes, one label per output.
CLASSES_MEMBER = Member("classes", "biufU", 1, max_chars=1024)


def describe_kinds(kinds):
    return " or ".join(dict.fromkeys(KIND_NAMES[k] for k in kinds))


NETWORK_MEMBERS = (
    Member("format_version", "iu", 0),
    Member("W_input_to_hidden", "f", 2),
    Member("W_hidden_to_output", "f", 2),
    Member("dtype", "U", 0),
    Member("loss", "U", 0),
    Member("transfer", "U", 0),
)


# Errors the zip and .npy readers raise on damaged bytes; each becomes a ModelFileError.
# ValueError: NumPy's header checks.  TokenError, SyntaxError: NumPy tokenizes 1.0 and 2.0
# headers (to drop Python 2 long suffixes) before its own checks.  RecursionError: a header
# of deeply nested brackets.
DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, struct.error, zlib.error,
           NotImplementedError, RuntimeError, UnicodeDecodeError, OverflowError, ValueError,
           tokenize.TokenError, SyntaxError, RecursionError)


def read_members(path, members, optional=()):
    """{name: array} of the ``members`` (all required) and of those ``optional`` ones the
    file has, each checked against its ``Member`` before its data is read.

    ``path``: a path, or a binary file object that can seek.  Raises ``ModelFileError``
    (a ``ValueError``) for anything but a well-formed file; ``OSError`` when it cannot
    be opened.
    """
    if hasattr(path, "read"):
        return _read_open_file(path, _name_of(path), members, optional)
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.isfile(path + ".npz"):
        path += ".npz"  # where save() (np.savez) wrote a name without the suffix
    with open(path, "rb") as f:
        return _read_open_file(f, path, members, optional)


def _name_of(f):
    return str(getattr(f, "name", "<file object>"))


def _read_open_file(f, name, members, optional):
    try:
        f.seek(0, os.SEEK_END)
        file_size = f.tell()
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            present = {info.filename: info for info in zf.infolist()}
            missing = [m.name for m in members if m.name + ".npy" not in present]
            if missing:
                raise refuse(name, f"missing {', '.join(missing)}")
            wanted = list(members) + [m for m in optional if m.name + ".npy" in present]
            return {m.name: _read_member(zf, present[m.name + ".npy"], m, file_size, name)
                    for m in wanted}
    except ModelFileError:
        raise
    except DAMAGED as exc:
        raise refuse(name, f"expected an .npz archive ({type(exc).__name__}: {exc})") from exc


def _read_member(zf, info, member, file_size, name):
    where = info.filename
    if info.flag_bits & 0x1:
        raise refuse(name, f"{where} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        raise refuse(name, f"{where} is compressed; save() stores members uncompressed")
    # Stored: the member's bytes are bytes of the file, so its size is bounded by the file's.
    if info.file_size != info.compress_size or info.header_offset + info.compress_size > file_size:
        raise refuse(name, f"{where} claims {info.file_size:,} bytes, more than the file's "
                           f"{file_size:,} bytes can hold")
    with zf.open(info) as fp:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(fp)
        else:
            raise refuse(name, f"{where}: .npy format version {version[0]}.{version[1]} is "
                               "not one this reader knows (1.0, 2.0)")
        problem = member.check_dtype(dtype)
        if problem is None and len(shape) != member.ndim:
            problem = f"has shape {shape}; expected {member.ndim} dimension(s)"
        if problem is None and any(n < 0 for n in shape):
            problem = f"has shape {shape}"
        if problem:
            raise refuse(name, f"{where} {problem}")
        n_bytes = prod(shape) * dtype.itemsize
        held = info.file_size - fp.tell()
        if n_bytes != held:
            raise refuse(name, f"{where} declares shape {shape} of {dtype} ({n_bytes:,} "
                               f"bytes) but holds {held:,} bytes of data")
        data = fp.read(n_bytes)
        if len(data) != n_bytes or fp.read(1):  # reading to the end also checks the CRC
            raise refuse(name, f"{where} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def text(fields, key):
    return str(fields[key][()])


def read_network(path):
    """The checked contents of a network file: a dict with ``weights`` (W_input_to_hidden,
    W_hidden_to_output: arrays as stored, shapes fitting one network), ``sizes`` (n_in,
    n_hidden, n_out), ``dtype``, ``loss`` (None when never trained) and ``transfer``
    (a name from TRANSFER_NAMES).  ``ModelFileError`` otherwise."""
    fields = read_members(path, NETWORK_MEMBERS)
    return network_from_fields(fields, _name_of(path) if hasattr(path, "read") else path)


def network_from_fields(fields, name):
    """``read_network``'s checks, on the arrays ``read_members`` returned."""
    version = int(fields["format_version"][()])
    if version != FORMAT_VERSION:
        raise refuse(name, f"model format {version} is not supported (this version reads "
                           f"{FORMAT_VERSION})")
    for key, allowed in (("dtype", DTYPE_NAMES), ("loss", LOSS_NAMES),
                         ("transfer", TRANSFER_NAMES)):
        if text(fields, key) not in allowed:
            raise refuse(name, f"{key} {text(fields, key)!r} is not one of "
                               f"{[a for a in allowed if a]}")
    w1, w2 = fields["W_input_to_hidden"], fields["W_hidden_to_output"]
    if w1.shape[0] < 2 or w1.shape[1] < 1 or w2.shape[1] < 1 or w2.shape[0] != w1.shape[1] + 1:
        raise refuse(name, f"weight shapes {w1.shape} and {w2.shape} do not fit one network "
                           "(expected (n_in + 1, n_hidden) and (n_hidden + 1, n_out), each "
                           "size at least 1)")
    return {"weights": (w1, w2), "sizes": (w1.shape[0] - 1, w1.shape[1], w2.shape[1]),
            "dtype": text(fields, "dtype"), "loss": text(fields, "loss") or None,
            "transfer": text(fields, "transfer")}


def network_fields(model):
    """What ``save`` writes for ``model`` (a LabNetwork): {member name: value}."""
    pair = (model.transfer_f, model.transfer_df)
    transfer = next((name for name, known in TRANSFER_PAIRS.items() if known == pair), None)
    if transfer is None:
        names = "/".join(getattr(f, "__name__", repr(f)) for f in pair)
        raise ValueError(f"save() keeps mnist_native's own transfer functions only (sigmoid/"
                         f"dsigmoid, tanh/dtanh), and this model has {names}: its file could "
                         "not be loaded. Pickle it to copy it within one installation.")
    w1, w2 = model._weights()
    return dict(format_version=FORMAT_VERSION, W_input_to_hidden=w1, W_hidden_to_output=w2,
                dtype=str(model.dtype), loss=model.loss_kind or "", transfer=transfer)


def write(path, fields):
    """Write ``fields`` ({name: array-like}) as an uncompressed ``.npz`` without pickles
    (``np.savez`` adds ``.npz`` to a path that lacks it)."""
    arrays = {key: np.asarray(value) for key, value in fields.items()}
    for key, value in arrays.items():
        if value.dtype.hasobject:
            raise TypeError(f"{key} would need a pickle to be saved (dtype object)")
    np.savez(path, **arrays)

"""The lab pickle reader: every pickle flavour of the lab's layout loads; hostile ones never run."""
import builtins
import gzip
import io
import pickle
import struct

import numpy as np
import pytest

from _data_helpers import isolated_env, lab_arrays, write_bytes, write_lab_pickle  # noqa: F401
from mnist_native.data import MNISTFormatError, RestrictedUnpickler, UnsafePickleError, read_lab_pickle


def assert_same_triple(got, expected):
    assert len(got) == 3
    for (gx, gy), (ex, ey) in zip(got, expected):
        assert gx.dtype == ex.dtype and gy.dtype == ey.dtype
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_python3_pickles_load(tmp_path, protocol, gz):
    # Protocol 2 is how the shared mnist.pkl.gz was written (bytes via _codecs.encode);
    # protocol 5 rebuilds arrays through numpy's _frombuffer.
    path = write_lab_pickle(tmp_path / "mnist.pkl.gz", protocol=protocol, gz=gz)
    assert_same_triple(read_lab_pickle(path), lab_arrays())


# --- a Python 2 pickle, written opcode by opcode as cPickle + NumPy 1.x wrote it -----------

def _py2_str(data):
    # SHORT_BINSTRING / BINSTRING: a Python 2 str, read back with encoding="latin1".
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<I", len(data)) + data


def _py2_int(n):
    return b"J" + struct.pack("<i", n)


def _py2_array(array):
    kind, order = array.dtype.str[1:], array.dtype.str[0]
    shape = b"".join(_py2_int(d) for d in array.shape) + {1: b"\x85", 2: b"\x86"}[array.ndim]
    dtype = (b"cnumpy\ndtype\n" + _py2_str(kind.encode()) + _py2_int(0) + _py2_int(1) + b"\x87R"
             + b"(" + _py2_int(3) + _py2_str(order.encode()) + b"NNN" + _py2_int(-1) + _py2_int(-1)
             + _py2_int(0) + b"tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _py2_int(0) + b"\x85"
            + _py2_str(b"b") + b"\x87R"
            + b"(" + _py2_int(1) + shape + dtype + b"\x89" + _py2_str(array.tobytes()) + b"tb")


def test_python2_pickle_with_numpy_core_paths(tmp_path):
    data = lab_arrays()
    body = b"".join(_py2_array(x) + _py2_array(y) + b"\x86" for x, y in data)
    blob = b"\x80\x02" + body + b"\x87."
    with pytest.raises(UnicodeDecodeError):
        # The reason for encoding="latin1": Python 3's default cannot read the data strings.
        pickle.loads(blob)
    path = write_bytes(tmp_path / "py2.pkl.gz", blob, gz=True)
    assert_same_triple(read_lab_pickle(path), data)


# --- hostile pickles ------------------------------------------------------------------

class _Payload:
    """Pickles to a call of ``func(*args)``: what a hostile pickle does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_control_plain_pickle_runs_the_payload(tmp_path):
    # Shows the payload below is live: plain pickle.load would create the marker.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Payload(builtins.open, str(marker), "w"), protocol=2)).close()
    assert marker.exists()


@pytest.mark.parametrize("wrap", ["alone", "inside-the-lab-triple"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_hostile_pickle_is_refused_and_does_not_run(tmp_path, wrap, protocol):
    marker = tmp_path / "pwned"
    payload = _Payload(builtins.open, str(marker), "w")
    if wrap != "alone":
        (tx, ty), va, te = lab_arrays()
        payload = ((tx, ty), va, (te[0], payload))
    path = write_bytes(tmp_path / "mnist.pkl.gz", pickle.dumps(payload, protocol=protocol), gz=True)
    with pytest.raises(UnsafePickleError, match=r"mnist\.pkl\.gz: unsafe pickle, not loaded: refused global (builtins|io)\.open"):
        read_lab_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [
    ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("builtins", "eval"),
    ("builtins", "getattr"), ("numpy", "load"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy", "frombuffer"), ("copyreg", "_reconstructor"),
    ("_codecs", "decode"), ("numpy.testing._private.utils", "runstring"),
])
def test_other_globals_are_refused(tmp_path, module, name):
    blob = f"c{module}\n{name}\n(S'echo pwned'\ntR.".encode()
    path = write_bytes(tmp_path / "evil.pkl", blob, gz=False)
    with pytest.raises(UnsafePickleError, match=rf"evil\.pkl: unsafe pickle, not loaded: refused global {module}\.{name}"):
        read_lab_pickle(path)


@pytest.mark.parametrize("blob,reason", [
    (b"c_codecs\nencode\n(S'abc'\nS'rot13'\ntR.", "only latin1"),
    (b"cnumpy\ndtype\n(S'O'\ntR.", "object dtype"),
    (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\ntS'O'\ntR.", "object dtype"),
    (b"cnumpy._core.multiarray\n_reconstruct\n(cbuiltins\nobject\n(I0\ntS'b'\ntR.", "refused global builtins.object"),
    (b"cnumpy\nndarray\n(I3\ntR.", "called numpy.ndarray directly"),
    (b"c_codecs\nencode\n(N(dS'_fn'\nS'x'\nstb.", "tried to set attribute '_fn'"),
], ids=["codec", "object-dtype", "object-array", "other-class", "ndarray-call", "patch-guard"])
def test_admitted_globals_cannot_be_misused(tmp_path, blob, reason):
    path = write_bytes(tmp_path / "evil.pkl", blob, gz=False)
    with pytest.raises(UnsafePickleError, match=reason):
        read_lab_pickle(path)


def test_numpy_object_array_is_refused(tmp_path):
    evil = np.array([1, "x", None], dtype=object)
    for protocol in (2, 5):
        path = write_bytes(tmp_path / f"obj{protocol}.pkl", pickle.dumps(evil, protocol=protocol), gz=False)
        with pytest.raises(UnsafePickleError):
            read_lab_pickle(path)


def test_restricted_unpickler_is_usable_directly():
    blob = pickle.dumps(np.arange(5, dtype=np.int64), protocol=2)
    np.testing.assert_array_equal(RestrictedUnpickler(io.BytesIO(blob), encoding="latin1").load(), np.arange(5))
    # Callers catching the standard exceptions keep working.
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)
    assert issubclass(UnsafePickleError, ValueError)


# --- truncated, corrupt, wrong layout -------------------------------------------------

def test_truncated_gzip(tmp_path):
    path = write_lab_pickle(tmp_path / "mnist.pkl.gz")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MNISTFormatError, match=r"mnist\.pkl\.gz: truncated file"):
        read_lab_pickle(path)


def test_truncated_pickle_inside_valid_gzip(tmp_path):
    blob = pickle.dumps(lab_arrays(), protocol=2)
    path = write_bytes(tmp_path / "mnist.pkl.gz", blob[:-100], gz=True)
    with pytest.raises(MNISTFormatError, match=r"mnist\.pkl\.gz: (truncated file|corrupt pickle)"):
        read_lab_pickle(path)


def test_corrupt_gzip(tmp_path):
    path = write_lab_pickle(tmp_path / "mnist.pkl.gz")
    blob = bytearray(path.read_bytes())
    blob[-6] ^= 0xFF  # CRC32 in the gzip trailer
    path.write_bytes(bytes(blob))
    with pytest.raises(MNISTFormatError, match=r"mnist\.pkl\.gz: corrupt gzip data"):
        read_lab_pickle(path)


@pytest.mark.parametrize("blob", [b"", b"hello world", b"<!DOCTYPE html><html></html>"],
                         ids=["empty", "text", "html"])
def test_not_a_pickle(tmp_path, blob):
    path = write_bytes(tmp_path / "mnist.pkl.gz", blob, gz=True)
    with pytest.raises(MNISTFormatError, match=r"mnist\.pkl\.gz: (truncated file|corrupt pickle|unsafe pickle)"):
        read_lab_pickle(path)


def _damaged_pickles(rng, n):
    """Random bytes, and a real pickle with random bytes overwritten or cut short."""
    valid = pickle.dumps(lab_arrays(), protocol=5)
    for _ in range(n):
        yield rng.bytes(64)
        damaged = np.frombuffer(valid, dtype=np.uint8).copy()
        positions = rng.integers(0, len(damaged), size=rng.integers(1, 4))
        damaged[positions] = rng.integers(0, 256, size=len(positions), dtype=np.uint8)
        yield damaged[: rng.integers(1, len(damaged) + 1)].tobytes()


def test_damaged_pickles_are_refused_cleanly(tmp_path):
    # Before the sizes were checked, about 1 random blob in 100 stated a multi-exabyte
    # BINBYTES8 and escaped as MemoryError; seeded so that every run draws the same ones.
    path = tmp_path / "mnist.pkl.gz"
    for i, blob in enumerate(_damaged_pickles(np.random.default_rng(2026), 1500)):
        write_bytes(path, blob, gz=True)
        try:
            read_lab_pickle(path)  # may load: a damaged pixel can still lie in [0, 1]
        except (MNISTFormatError, UnsafePickleError):
            pass
        except Exception as exc:
            pytest.fail(f"blob {i} ({blob[:16].hex()}...): {type(exc).__name__}: {exc}")


HUGE = 1 << 62


@pytest.mark.parametrize("blob", [
    b"\x80\x04\x8e" + struct.pack("<Q", HUGE) + b"x.",            # BINBYTES8
    b"\x80\x05\x96" + struct.pack("<Q", HUGE) + b"x.",            # BYTEARRAY8
    b"\x80\x04\x8d" + struct.pack("<Q", HUGE) + b"x.",            # BINUNICODE8
    b"\x80\x04\x95" + struct.pack("<Q", HUGE) + b"N.",            # FRAME
    b"\x80\x02\x8b" + struct.pack("<i", 1 << 30) + b"\x01.",      # LONG4
    b"\x80\x02N" + b"r" + struct.pack("<I", 0xFFFFFFFF) + b".",     # LONG_BINPUT: memo of 2^33 slots
    b"\x80\x02N" + b"p4000000000\n.",                             # PUT, as text
], ids=["binbytes8", "bytearray8", "binunicode8", "frame", "long4", "long_binput", "put"])
def test_stated_sizes_are_checked_before_anything_is_allocated(tmp_path, blob):
    # The C unpickler allocates at a stated size before reading the bytes; none of these
    # files holds what it states, so each is refused without a MemoryError.  (A FRAME's
    # size allocates nothing: it is read from memory, as far as the bytes go.)
    path = write_bytes(tmp_path / "mnist.pkl.gz", blob, gz=True)
    with pytest.raises(MNISTFormatError, match=r"corrupt pickle \((ValueError|UnpicklingError): "):
        read_lab_pickle(path)


def test_decompressed_size_is_bounded(tmp_path, monkeypatch):
    # A gzip bomb: small on disk, past the limit once decompressed; read no further.
    from mnist_native.data import lab_pickle
    monkeypatch.setattr(lab_pickle, "MAX_PICKLE_BYTES", 10_000)
    path = write_bytes(tmp_path / "mnist.pkl.gz", pickle.dumps(bytes(20_000)), gz=True)
    with pytest.raises(MNISTFormatError, match=r"too large for an MNIST pickle: more than 10,000 bytes"):
        read_lab_pickle(path)


def test_trailing_bytes(tmp_path):
    blob = pickle.dumps(lab_arrays(), protocol=2) + b"junk"
    path = write_bytes(tmp_path / "mnist.pkl.gz", blob, gz=True)
    with pytest.raises(MNISTFormatError, match="unexpected bytes after the end of the pickle"):
        read_lab_pickle(path)


def _bad(transform):
    (tx, ty), (vx, vy), (sx, sy) = lab_arrays()
    return transform(tx, ty, vx, vy, sx, sy)


@pytest.mark.parametrize("data,message", [
    ({"train": 1}, "expected a \\(training, validation, test\\) triple, found dict"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx, ty), (vx, vy))), "triple, found tuple"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx, ty, ty), (vx, vy), (sx, sy))), "training set .* not an \\(images, labels\\) pair"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx, ty), (vx[:, :100], vy), (sx, sy))), "validation set .* shape \\(n, 784\\), found \\(10, 100\\)"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx, ty), (vx, vy), ((sx * 256).astype(np.uint8), sy))), "test set .* must be floats"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx * 2, ty), (vx, vy), (sx, sy))), "pixel values must lie in \\[0, 1\\]"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx, ty), (vx, vy + 10), (sx, sy))), "labels must lie in 0..9"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx, ty[:-1]), (vx, vy), (sx, sy))), "50 images but 49 labels"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx, ty.astype(float)), (vx, vy), (sx, sy))), "1-D integer array"),
    (_bad(lambda tx, ty, vx, vy, sx, sy: ((tx.tolist(), ty), (vx, vy), (sx, sy))), "must be NumPy arrays"),
], ids=["dict", "pair", "triple-split", "shape", "uint8", "range", "label", "count", "float-labels", "lists"])
def test_wrong_layout(tmp_path, data, message):
    path = write_lab_pickle(tmp_path / "mnist.pkl.gz", data=data)
    with pytest.raises(MNISTFormatError, match=r"mnist\.pkl\.gz: .*" + message):
        read_lab_pickle(path)


def test_gzip_module_output_loads(tmp_path):
    # A gzip header with a file name and mtime, as gzip.open writes it.
    path = tmp_path / "named.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(lab_arrays(), f, protocol=2)
    assert_same_triple(read_lab_pickle(path), lab_arrays())

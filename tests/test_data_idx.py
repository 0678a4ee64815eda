"""The IDX reader: round trips, and a clear error naming the file for every kind of bad input."""
import gzip

import numpy as np
import pytest

from _data_helpers import idx_bytes, isolated_env, synthetic_arrays, write_bytes, write_idx_folder  # noqa: F401
from mnist_native.data import (
    MNISTFormatError,
    read_idx,
    read_idx_folder,
    read_idx_images,
    read_idx_labels,
)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("type_code,dtype", [
    (0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
    (0x0D, np.float32), (0x0E, np.float64),
])
def test_round_trip_every_type(tmp_path, gz, type_code, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_bytes(tmp_path / "a.idx", idx_bytes(array, type_code), gz)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_bytes(tmp_path / "x.gz", idx_bytes(array), gz=False)), array)
    np.testing.assert_array_equal(read_idx(write_bytes(tmp_path / "x", idx_bytes(array), gz=True)), array)


def test_images_and_labels_readers(tmp_path):
    (x, y), _ = synthetic_arrays(n_train=7)
    np.testing.assert_array_equal(read_idx_images(write_bytes(tmp_path / "i.gz", idx_bytes(x), True)), x)
    np.testing.assert_array_equal(read_idx_labels(write_bytes(tmp_path / "l.gz", idx_bytes(y), True)), y)


def test_read_idx_folder_gz_and_raw(tmp_path):
    arrays = synthetic_arrays()
    for gz in (True, False):
        folder = tmp_path / str(gz)
        write_idx_folder(folder, arrays, gz=gz)
        (tx, ty), (vx, vy) = read_idx_folder(folder)
        np.testing.assert_array_equal(tx, arrays[0][0])
        np.testing.assert_array_equal(ty, arrays[0][1])
        np.testing.assert_array_equal(vx, arrays[1][0])
        np.testing.assert_array_equal(vy, arrays[1][1])


GOOD = idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28))


@pytest.mark.parametrize("data,message", [
    (b"", "shorter than the 4-byte magic"),
    (b"\x00\x00", "shorter than the 4-byte magic"),
    (b"\x01\x02\x08\x03" + GOOD[4:], "not an IDX file: magic number 01020803"),
    (b"PK\x03\x04" + GOOD[4:], "not an IDX file"),
    (b"\x00\x00\x07\x03" + GOOD[4:], "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (GOOD[:10], "file ends inside them"),
    (GOOD[:-1], "need 1568 bytes of data, found 1567"),
    (GOOD[:16], "found 0"),
    (GOOD + b"\x00", "bytes after the 1568 bytes"),
    (b"\x00\x00\x08\x03" + np.array([60000, 60000, 60000], ">u4").tobytes(), "not a plausible MNIST file"),
], ids=["empty", "short-magic", "wrong-magic", "zip", "bad-type", "0-dims", "cut-header",
        "cut-1-byte", "no-payload", "trailing", "huge-dims"])
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_bad_files_name_file_and_problem(tmp_path, data, message, gz):
    path = write_bytes(tmp_path / "train-images-idx3-ubyte", data, gz)
    with pytest.raises(MNISTFormatError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert info.value.path == str(path)
    assert isinstance(info.value, ValueError)


def test_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(GOOD, mtime=0)
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MNISTFormatError, match=r"cut\.gz: truncated gzip data"):
        read_idx(path)


def test_corrupt_gzip_crc(tmp_path):
    blob = bytearray(gzip.compress(GOOD, mtime=0))
    blob[-6] ^= 0xFF  # inside the CRC32 of the trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(MNISTFormatError, match=r"crc\.gz: corrupt gzip data"):
        read_idx(path)


def test_corrupt_gzip_body(tmp_path):
    blob = bytearray(gzip.compress(bytes(range(256)) * 64, mtime=0))
    for i in range(20, 40):
        blob[i] ^= 0x5A
    path = tmp_path / "body.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(MNISTFormatError, match=r"body\.gz: (corrupt|truncated) gzip data"):
        read_idx(path)


def test_images_must_be_uint8_28x28(tmp_path):
    path = write_bytes(tmp_path / "imgs", idx_bytes(np.zeros((2, 27, 28), np.uint8)), False)
    with pytest.raises(MNISTFormatError, match=r"imgs: MNIST images must have dimensions \(n, 28, 28\)"):
        read_idx_images(path)
    path = write_bytes(tmp_path / "imgs32", idx_bytes(np.zeros((2, 28, 28)), 0x0D), False)
    with pytest.raises(MNISTFormatError, match="imgs32: MNIST images must be unsigned bytes"):
        read_idx_images(path)


def test_labels_must_be_0_to_9(tmp_path):
    path = write_bytes(tmp_path / "labels", idx_bytes(np.array([1, 2, 10, 3], np.uint8)), True)
    with pytest.raises(MNISTFormatError, match="labels: label 10 at index 2 is outside 0..9"):
        read_idx_labels(path)
    path = write_bytes(tmp_path / "labels2d", idx_bytes(np.zeros((2, 2), np.uint8)), True)
    with pytest.raises(MNISTFormatError, match="labels2d: MNIST labels must have one dimension"):
        read_idx_labels(path)


def test_folder_counts_must_agree(tmp_path):
    (x, y), test = synthetic_arrays(n_train=10)
    write_idx_folder(tmp_path, ((x, y[:9]), test))
    with pytest.raises(MNISTFormatError, match="holds 10 images but .*train-labels-idx1-ubyte.gz holds 9 labels"):
        read_idx_folder(tmp_path)


def test_folder_missing_files_are_listed(tmp_path):
    write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MNISTFormatError, match=r"missing IDX file\(s\) t10k-labels-idx1-ubyte\[\.gz\]"):
        read_idx_folder(tmp_path)

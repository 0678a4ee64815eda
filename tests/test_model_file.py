"""Model files are safe to open: ``NeuralNetwork.load`` (and the estimator's ``load``) read
every ``.npy`` header before its data and refuse, with ``ValueError``, anything ``save``
could not have written; no code from the file runs and nothing larger than the file is
allocated.  A hypothesis fuzz test mutates a valid file byte by byte and field by field."""
import io
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import mnist_native  # noqa: E402
from mnist_native import reference  # noqa: E402

NeuralNetwork = mnist_native.NeuralNetwork
# Fixed examples in CI (a failure there is reproducible); fresh ones on developers' machines.
FUZZ = settings(max_examples=300, deadline=None, derandomize=os.environ.get("CI") == "true",
                suppress_health_check=[HealthCheck.too_slow])

N_IN, N_HIDDEN, N_OUT = 5, 4, 3
MODEL = NeuralNetwork(N_IN, N_HIDDEN, N_OUT, seed=0)
MODEL.loss_kind = "cross-entropy"


def valid_fields(**changes):
    fields = dict(format_version=1, W_input_to_hidden=MODEL.W_input_to_hidden,
                  W_hidden_to_output=MODEL.W_hidden_to_output, dtype="float64",
                  loss="cross-entropy", transfer="sigmoid")
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def npz_bytes(fields):
    buf = io.BytesIO()
    np.savez(buf, **fields)
    return buf.getvalue()


def npy_bytes(header, version=(1, 0), data=b""):
    """A .npy member with the header dict text ``header`` (padded as NumPy pads it)."""
    magic = b"\x93NUMPY" + bytes(version)
    body = header.encode("utf8")  # latin1 is what NumPy reads; any bytes do for fuzzing
    length_format = "<H" if version[0] == 1 else "<I"
    prefix = len(magic) + struct.calcsize(length_format)
    body += b" " * (-(prefix + len(body) + 1) % 64) + b"\n"
    return magic + struct.pack(length_format, len(body)) + body + data


def zip_bytes(members, compression=zipfile.ZIP_STORED):
    """A zip of {name: bytes}, as np.savez lays it out (members named NAME.npy)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, content in members.items():
            z.writestr(name + ".npy", content)
    return buf.getvalue()


def members_of(fields):
    out = {}
    for name, value in fields.items():
        buf = io.BytesIO()
        np.save(buf, np.asarray(value))
        out[name] = buf.getvalue()
    return out


def central_entry(content, member):
    """Offset of ``member``'s entry in the zip's central directory."""
    end = content.rindex(b"PK\x05\x06")
    at = struct.unpack_from("<I", content, end + 16)[0]
    while content[at:at + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", content, at + 28)
        if content[at + 46:at + 46 + name_len] == member:
            return at
        at += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"{member} is not in the central directory")


VALID = npz_bytes(valid_fields())


def load(content):
    return NeuralNetwork.load(io.BytesIO(content))


def refused(content, match=None):
    with pytest.raises(ValueError, match=match):
        load(content)


def assert_valid_model(model):
    """What any successful load must give: a usable network, every weight finite."""
    n_in, n_hidden = model.input_layer_size - 1, model.hidden_layer_size - 1
    assert model.W_input_to_hidden.shape == (n_in + 1, n_hidden)
    assert model.W_hidden_to_output.shape == (n_hidden + 1, model.output_layer_size)
    assert model.dtype in (np.float32, np.float64)
    assert np.isfinite(model.W_input_to_hidden).all()
    assert np.isfinite(model.W_hidden_to_output).all()
    assert model.loss_kind in (None, "mse", "cross-entropy")
    model.feedforward(np.zeros((1, n_in)))


# -- the valid file, and what it may vary in -------------------------------------------------

def test_the_valid_file_loads_back_exactly():
    model = load(VALID)
    np.testing.assert_array_equal(model.W_input_to_hidden, MODEL.W_input_to_hidden)
    np.testing.assert_array_equal(model.W_hidden_to_output, MODEL.W_hidden_to_output)
    assert model.loss_kind == "cross-entropy"


@pytest.mark.parametrize("layout", ["big-endian", "fortran", "float32 weights", "npy 2.0"])
def test_harmless_variations_load(layout):
    w1, w2 = MODEL.W_input_to_hidden, MODEL.W_hidden_to_output
    if layout == "big-endian":
        content = npz_bytes(valid_fields(W_input_to_hidden=w1.astype(">f8")))
    elif layout == "fortran":
        content = npz_bytes(valid_fields(W_input_to_hidden=np.asfortranarray(w1)))
    elif layout == "float32 weights":
        content = npz_bytes(valid_fields(W_hidden_to_output=w2.astype(np.float32)))
    else:
        members = members_of(valid_fields())
        header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {w1.shape}, }}"
        members["W_input_to_hidden"] = npy_bytes(header, (2, 0), w1.tobytes())
        content = zip_bytes(members)
    model = load(content)
    np.testing.assert_allclose(model.W_input_to_hidden, w1, rtol=1e-7)
    np.testing.assert_allclose(model.W_hidden_to_output, w2, rtol=1e-7)


def test_a_file_object_and_extra_members_are_fine():
    content = npz_bytes(valid_fields(comment="made by hand"))
    assert_valid_model(load(content))


def test_the_reference_network_reads_the_same_files():
    model = reference.NeuralNetwork.load(io.BytesIO(VALID))
    np.testing.assert_array_equal(model.W_input_to_hidden, MODEL.W_input_to_hidden)


# -- hostile and broken files ---------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 4, 30, 100, len(VALID) // 2, len(VALID) - 22,
                                    len(VALID) - 1])
def test_a_truncated_file_is_a_value_error_not_bad_zip_file(length):
    refused(VALID[:length], "not a model file")


@pytest.mark.parametrize("changes, message", [
    ({"format_version": 2}, "model format 2"),
    ({"format_version": "1"}, "format_version.npy has dtype"),
    ({"loss": "hinge"}, "loss 'hinge'"),
    ({"transfer": "relu"}, "transfer 'relu'"),
    ({"dtype": "float16"}, "dtype 'float16'"),
    ({"dtype": "x" * 1000}, "text of up to 1000 characters"),
    ({"W_input_to_hidden": MODEL.W_input_to_hidden.astype(np.float16)}, "float32 or float64"),
    ({"W_input_to_hidden": MODEL.W_input_to_hidden.astype(np.int64)}, "float32 or float64"),
    ({"W_input_to_hidden": MODEL.W_input_to_hidden.astype(np.complex128)}, "float32 or float64"),
    ({"W_input_to_hidden": MODEL.W_input_to_hidden.astype(np.longdouble)}, "float32 or float64"),
    ({"W_input_to_hidden": np.zeros(3, dtype=[("a", "<f8")])}, "not a plain array"),
    ({"W_input_to_hidden": np.zeros((6, 4), dtype="(2,)f8")}, "expected 2 dimension"),
    ({"W_input_to_hidden": np.zeros(24)}, "expected 2 dimension"),
    ({"W_input_to_hidden": np.zeros((1, 6, 4))}, "expected 2 dimension"),
    ({"W_input_to_hidden": np.zeros((6, 5))}, "do not fit one network"),
    ({"W_input_to_hidden": np.zeros((1, 4))}, "do not fit one network"),
    ({"W_hidden_to_output": np.zeros((5, 0))}, "do not fit one network"),
    ({"W_input_to_hidden": np.full((6, 4), np.nan)}, "NaN"),
    ({"W_hidden_to_output": np.full((5, 3), np.inf)}, "NaN or infinite"),
    ({"loss": None}, "missing loss"),
])
def test_fields_save_could_not_have_written_are_refused(changes, message):
    refused(npz_bytes(valid_fields(**changes)), message)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    for name in ("W_input_to_hidden", "loss", "format_version"):
        content = npz_bytes(valid_fields(**{name: np.array([Payload()], dtype=object)}))
        refused(content, f"{name}.npy has dtype object")
    assert not marker.exists()


def test_a_header_holding_code_is_not_run(tmp_path):
    marker = tmp_path / "pwned"
    members = members_of(valid_fields())
    members["W_input_to_hidden"] = npy_bytes(
        f"{{'descr': __import__('os').mkdir({str(marker)!r}), 'fortran_order': False, "
        f"'shape': (6, 4), }}", data=bytes(6 * 4 * 8))
    refused(zip_bytes(members), "not a model file")
    assert not marker.exists()


@pytest.mark.parametrize("version", [(3, 0), (0, 9), (9, 9)])
def test_unknown_npy_format_versions_are_refused(version):
    members = members_of(valid_fields())
    members["W_input_to_hidden"] = npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (6, 4), }", version,
        MODEL.W_input_to_hidden.tobytes())
    refused(zip_bytes(members), "not a model file")


def test_compressed_members_are_refused():
    buf = io.BytesIO()
    np.savez_compressed(buf, **valid_fields())
    refused(buf.getvalue(), "is compressed")


def test_encrypted_members_are_refused():
    content = bytearray(VALID)
    cd = central_entry(content, b"W_input_to_hidden.npy")
    content[cd + 8] |= 1  # general purpose flag: encrypted
    refused(bytes(content), "encrypted")


@pytest.mark.parametrize("shape", [(50_000, 50_000), (2**40, 2**20), (6, 2**61)])
def test_a_huge_declared_shape_allocates_nothing(shape):
    """A header that claims 20 GB (or far more) in a member of a few bytes."""
    members = members_of(valid_fields())
    members["W_input_to_hidden"] = npy_bytes(
        f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}", data=bytes(64))
    content = zip_bytes(members)
    tracemalloc.start()
    try:
        refused(content, "declares shape")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_a_member_size_beyond_the_file_is_refused_before_reading():
    """Sizes in the zip directory claiming 20 GB, with a header to match: refused from the
    directory alone."""
    shape = (50_000, 50_000)
    members = members_of(valid_fields())
    members["W_input_to_hidden"] = npy_bytes(
        f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}", data=bytes(64))
    content = bytearray(zip_bytes(members))
    cd = central_entry(content, b"W_input_to_hidden.npy")
    claimed = 128 + shape[0] * shape[1] * 8
    struct.pack_into("<II", content, cd + 20, claimed & 0xFFFFFFFF, claimed & 0xFFFFFFFF)
    tracemalloc.start()
    try:
        refused(bytes(content), "not a model file")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_a_bad_checksum_is_refused():
    content = bytearray(VALID)
    start = content.index(MODEL.W_input_to_hidden.tobytes()[:8])
    content[start] ^= 1  # one weight, one bit: the zip's CRC-32 no longer matches
    refused(bytes(content), "CRC")


def test_opening_errors_stay_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        NeuralNetwork.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError if os.name != "nt" else PermissionError):
        NeuralNetwork.load(tmp_path)


# -- fuzzing ------------------------------------------------------------------------------------

def outcome(content):
    """'ok' (and the model, checked) or 'refused': anything else fails the test."""
    try:
        model = load(content)
    except (ValueError, OSError):
        return "refused", None
    assert_valid_model(model)
    return "ok", model


@FUZZ
@given(st.data())
def test_fuzz_bytes(data):
    content = bytearray(VALID)
    edits = data.draw(st.integers(1, 4))
    for _ in range(edits):
        kind = data.draw(st.sampled_from(["set", "flip", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, max(len(content) - 1, 0)))
        if kind == "set" and content:
            content[at] = data.draw(st.integers(0, 255))
        elif kind == "flip" and content:
            content[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "insert":
            content[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del content[at:at + data.draw(st.integers(1, 8))]
        else:
            del content[at:]
    result, model = outcome(bytes(content))
    if result == "ok" and edits == 1:
        # Member bytes are covered by the zip's CRC: one edit can only touch what the
        # model does not depend on.
        np.testing.assert_array_equal(model.W_input_to_hidden, MODEL.W_input_to_hidden)
        np.testing.assert_array_equal(model.W_hidden_to_output, MODEL.W_hidden_to_output)


ODD_ARRAYS = st.one_of(
    st.sampled_from([np.float16, np.float32, np.float64, ">f8", np.int8, np.int64,
                     np.uint64, np.bool_, np.complex64, "U3", "S3", "M8[s]", "m8[s]",
                     [("a", "<f8")], "(2,)f4"]).flatmap(
        lambda dt: st.lists(st.integers(0, 7), max_size=3).map(
            lambda shape: np.ones(shape, dtype=dt) if np.dtype(dt).kind not in "USMm"
            else np.zeros(shape, dtype=dt))),
    st.sampled_from([np.array([None], dtype=object), np.array(1.5), np.array(np.nan),
                     np.zeros((6, 4)), np.zeros((5, 3)), np.ones((6, 4), dtype=np.float32)]),
    st.integers(-2**63, 2**63 - 1).map(np.array),
    st.text(max_size=80).map(np.array),
    st.sampled_from(["", "mse", "cross-entropy", "xe", "sigmoid", "tanh", "float32",
                     "float64", "relu"]).map(np.array),
)

HEADER_PARTS = dict(
    descr=st.sampled_from(["'<f8'", "'<f4'", "'>f8'", "'|O'", "'<U5'", "'<f2'", "'V8'",
                           "[('a', '<f8')]", "'<i8'", "None", "7", "'nonsense'",
                           "__import__('os').getcwd()"]),
    fortran_order=st.sampled_from(["False", "True", "0", "'no'", "None"]),
    shape=st.one_of(st.sampled_from(["(6, 4)", "(4, 6)", "(24,)", "()", "(6, -4)",
                                     "(-6, -4)", "(6, 4.0)", "[6, 4]", "(2**70, 4)",
                                     "(99999999999, 99999999999)", "(" * 300 + ")" * 300]),
                    st.tuples(st.integers(-3, 70000), st.integers(-3, 70000)).map(str)),
)


@st.composite
def odd_npy(draw):
    """A .npy member with a header built from parts that are right, wrong or hostile."""
    parts = {key: draw(strategy) for key, strategy in HEADER_PARTS.items()
             if draw(st.booleans()) or key != "descr"}
    header = "{" + "".join(f"'{k}': {v}, " for k, v in parts.items()) + "}"
    if draw(st.booleans()):
        header = draw(st.text(max_size=60))
    version = draw(st.sampled_from([(1, 0), (1, 0), (2, 0), (3, 0), (0, 0)]))
    data = draw(st.sampled_from([MODEL.W_input_to_hidden.tobytes(), b"", bytes(7)]))
    return npy_bytes(header, version, data)


@FUZZ
@given(st.data())
def test_fuzz_fields(data):
    members = members_of(valid_fields())
    names = list(members) + ["extra"]
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(names))
        action = data.draw(st.sampled_from(["array", "array", "npy", "drop"]))
        if action == "drop":
            members.pop(name, None)
        elif action == "npy":
            members[name] = data.draw(odd_npy())
        else:
            value = data.draw(ODD_ARRAYS)
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=True)
            members[name] = buf.getvalue()
    outcome(zip_bytes(members))

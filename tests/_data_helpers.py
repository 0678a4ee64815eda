"""Helpers for the tests of mnist_native.data: synthetic MNIST files and a loopback HTTP server.

The shared full MNIST is found through MNIST_NATIVE_DATA, read here once at import time
because the tests clear that variable to control the search order.
"""
import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from mnist_native.data.idx import IDX_NAMES

SHARED_ENV = "MNIST_NATIVE_DATA"
_shared = os.environ.get(SHARED_ENV, "")
SHARED_DIR = Path(_shared) if _shared else None

ENV_VARS = ("MNIST_NATIVE_DATA", "MNIST_NATIVE_CACHE", "MNIST_NATIVE_MIRRORS")
PROXY_VARS = tuple(v for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
                   for v in (name, name.upper()))
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def shared_dir():
    """The shared MNIST folder, or skip the test with the reason."""
    if SHARED_DIR is None:
        pytest.skip(f"{SHARED_ENV} is not set: point it at the shared MNIST folder (../shared/data/mnist)")
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_ENV}={SHARED_DIR} is not a folder")
    return SHARED_DIR


def closed_port_url():
    """An http:// URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the caller's MNIST variables, cache or folder, or reaches the network.

    The cache is an empty folder and the only mirror a closed loopback port, so a search
    that falls through to a download fails fast and locally.  Proxy variables are cleared
    (a proxy may be remote) and name resolution refuses anything but loopback names, so a
    test cannot reach another machine even by mistake.
    """
    for name in ENV_VARS + PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise socket.gaierror(f"test guard: refusing to resolve non-loopback host {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MNIST_NATIVE_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MNIST_NATIVE_MIRRORS", closed_port_url())


# --- synthetic data -------------------------------------------------------------------

def idx_bytes(array, type_code=0x08):
    """The IDX encoding of ``array`` (big-endian, C order)."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    array = np.ascontiguousarray(array, dtype=dtypes[type_code])
    header = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def write_bytes(path, data, gz):
    path = Path(path)
    if gz:
        # mtime=0: identical input gives identical bytes, so checksums are stable.
        data = gzip.compress(data, compresslevel=1, mtime=0)
    path.write_bytes(data)
    return path


def synthetic_arrays(n_train=60, n_test=12, seed=0):
    """Random MNIST-shaped data: (train images, labels), (test images, labels), uint8."""
    rng = np.random.default_rng(seed)
    train = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, n_train).astype(np.uint8))
    test = (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n_test).astype(np.uint8))
    return train, test


def write_idx_folder(folder, arrays=None, gz=True):
    """Write the four IDX files of ``arrays`` (default :func:`synthetic_arrays`) into ``folder``.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = arrays or synthetic_arrays()
    for role, array in (("train_images", train_x), ("train_labels", train_y),
                        ("test_images", test_x), ("test_labels", test_y)):
        write_bytes(folder / (IDX_NAMES[role] + (".gz" if gz else "")), idx_bytes(array), gz)
    return folder


def file_specs(folder):
    """FileSpecs (sha256 of each .gz and of its payload) for the .gz IDX files in ``folder``.

    For ``download_mnist(files=...)``: the download tests serve synthetic files.
    """
    from mnist_native.data.download import FileSpec

    specs = {}
    for name in IDX_NAMES.values():
        blob = (Path(folder) / (name + ".gz")).read_bytes()
        raw = gzip.decompress(blob)
        specs[name + ".gz"] = FileSpec(name + ".gz", hashlib.sha256(blob).hexdigest(),
                                       hashlib.sha256(raw).hexdigest(), len(raw))
    return specs


def lab_arrays(arrays=None):
    """The lab pickle's triple built from uint8 IDX-style arrays (as the real one was)."""
    (train_x, train_y), (test_x, test_y) = arrays or synthetic_arrays()
    flat = train_x.reshape(len(train_x), 784).astype(np.float32) / np.float32(256)
    cut = len(flat) - len(flat) // 6
    test_flat = test_x.reshape(len(test_x), 784).astype(np.float32) / np.float32(256)
    labels = train_y.astype(np.int64)
    return ((flat[:cut], labels[:cut]), (flat[cut:], labels[cut:]),
            (test_flat, test_y.astype(np.int64)))


def write_lab_pickle(path, data=None, protocol=2, gz=True):
    """Write a lab-layout pickle (default: :func:`lab_arrays`) the way the lab's was made."""
    data = lab_arrays() if data is None else data
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes(path, pickle.dumps(data, protocol=protocol), gz)


# --- loopback HTTP server -------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; counts requests; keeps test output clean."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


class HTMLHandler(QuietHandler):
    """The historical failure: an HTML page with status 200 for every file."""

    def do_GET(self):
        self.server.requests.append(self.path)
        body = b"<!DOCTYPE html><html><body>Moved. Please log in.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TruncatingHandler(QuietHandler):
    """Announces the full length, sends half of the file, then closes the connection."""

    def do_GET(self):
        self.server.requests.append(self.path)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


class StallingHandler(QuietHandler):
    """Sends the headers, then nothing until the client gives up (bounded at 5 s)."""

    def do_GET(self):
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        self.server.stop.wait(5)
        self.close_connection = True


@contextlib.contextmanager
def serve(directory, handler=QuietHandler):
    """Serve ``directory`` on 127.0.0.1, on a port the OS picks, until the block ends.

    Yields
    ------
    (str, ThreadingHTTPServer)
        The base URL and the server; ``server.requests`` lists the paths asked for.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.stop = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", httpd
    finally:
        httpd.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def copy_shared_files(dest):
    """Copy the four shared IDX .gz files into ``dest`` (test time only, in tmp_path)."""
    src = shared_dir()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in IDX_NAMES.values():
        shutil.copyfile(src / (name + ".gz"), dest / (name + ".gz"))
    return dest

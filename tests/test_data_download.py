"""The downloader, against HTTP servers on 127.0.0.1 serving small synthetic IDX files."""
import dataclasses
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from _data_helpers import (  # noqa: F401
    HTMLHandler,
    QuietHandler,
    StallingHandler,
    TruncatingHandler,
    closed_port_url,
    file_specs,
    isolated_env,
    serve,
    write_idx_folder,
)
from mnist_native.data import (
    MIRRORS,
    FileSpec,
    MNISTDownloadError,
    download,
    download_mnist,
    resolve_mirrors,
    verify_file,
)

NAMES = sorted(["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])


@pytest.fixture
def served(tmp_path):
    """A folder of synthetic .gz IDX files and their FileSpecs."""
    folder = write_idx_folder(tmp_path / "www" / "mnist")
    return folder, file_specs(folder)


def data_files(folder):
    """Every entry of ``folder`` except the lock file (which stays by design)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name != ".mnist_native.lock")


def assert_same_files(dest, source):
    assert data_files(dest) == NAMES
    for name in NAMES:
        assert (Path(dest) / name).read_bytes() == (Path(source) / name).read_bytes()


def test_download_success(tmp_path, served):
    folder, specs = served
    dest = tmp_path / "cache" / "deep"
    with serve(folder) as (url, server):
        assert download_mnist(dest, mirrors=[url], progress=False, files=specs) == dest
    assert_same_files(dest, folder)
    assert sorted(server.requests) == sorted("/" + n for n in NAMES)
    assert all(verify_file(dest / n, specs[n]) for n in NAMES)


def test_progress_bar_goes_to_stderr(tmp_path, served, capsys):
    folder, specs = served
    with serve(folder) as (url, _):
        download_mnist(tmp_path / "c", mirrors=[url], progress=True, files=specs)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "train-images-idx3-ubyte.gz" in captured.err


@pytest.mark.parametrize("which", ["gz-only", "payload-only"])
def test_either_checksum_is_enough(tmp_path, served, which):
    # The official .gz checksum, or (mirrors that re-compress) the payload's.
    folder, specs = served
    if which == "gz-only":
        specs = {n: FileSpec(s.name, s.gz_sha256, "0" * 64, s.raw_size) for n, s in specs.items()}
    else:
        specs = {n: FileSpec(s.name, "0" * 64, s.raw_sha256, s.raw_size) for n, s in specs.items()}
    with serve(folder) as (url, _):
        download_mnist(tmp_path / "c", mirrors=[url], progress=False, files=specs)
    assert_same_files(tmp_path / "c", folder)


def _corrupt_copy(folder, dest):
    shutil.copytree(folder, dest)
    for name in NAMES:
        blob = bytearray((dest / name).read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        (dest / name).write_bytes(bytes(blob))
    return dest


@pytest.mark.parametrize("bad", ["404", "html-200", "corrupt", "truncated", "stalled", "refused"])
def test_bad_first_mirror_then_good(tmp_path, served, bad):
    folder, specs = served
    handler = {"html-200": HTMLHandler, "truncated": TruncatingHandler, "stalled": StallingHandler}
    bad_dir = {"404": tmp_path / "empty", "corrupt": _corrupt_copy(folder, tmp_path / "corrupt")}
    dest = tmp_path / "cache"
    with serve(bad_dir.get(bad, folder), handler.get(bad, QuietHandler)) as (bad_url, bad_server), \
            serve(folder) as (good_url, _):
        if bad == "refused":
            bad_url = closed_port_url()
        started = time.monotonic()
        download_mnist(dest, mirrors=[bad_url, good_url], progress=False, files=specs, timeout=0.5)
        assert time.monotonic() - started < 10
    assert_same_files(dest, folder)
    if bad != "refused":
        assert bad_server.requests, "the bad mirror was not tried first"


@pytest.mark.parametrize("bad,reason", [
    ("404", "HTTP 404"),
    ("html-200", "not gzip data (text/html, starting b'<!DOCTYPE html>"),
    ("corrupt", "corrupt gzip data"),
    ("truncated", "connection closed after"),
    ("stalled", "timed out"),
    ("mismatch", "checksum mismatch"),
    ("refused", "Connection refused"),
])
def test_failure_everywhere_is_clear_and_leaves_nothing(tmp_path, served, bad, reason):
    folder, specs = served
    if bad == "mismatch":
        specs = {n: FileSpec(s.name, "1" * 64, "2" * 64, s.raw_size) for n, s in specs.items()}
    handler = {"html-200": HTMLHandler, "truncated": TruncatingHandler, "stalled": StallingHandler}
    bad_dir = {"404": tmp_path / "empty", "corrupt": _corrupt_copy(folder, tmp_path / "corrupt")}
    dest = tmp_path / "cache"
    with serve(bad_dir.get(bad, folder), handler.get(bad, QuietHandler)) as (url1, _), \
            serve(bad_dir.get(bad, folder), handler.get(bad, QuietHandler)) as (url2, _):
        if bad == "refused":
            url1, url2 = closed_port_url(), closed_port_url()
        with pytest.raises(MNISTDownloadError) as info:
            download_mnist(dest, mirrors=[url1, url2], progress=False, files=specs, timeout=0.5)
    message = str(info.value)
    assert f"could not download train-images-idx3-ubyte.gz into {dest}" in message
    assert message.count(reason) == 2, message
    assert url1 + "train-images-idx3-ubyte.gz: " in message and url2 + "train-images-idx3-ubyte.gz: " in message
    assert data_files(dest) == []


def test_oversized_payload_is_cut_short(tmp_path, served):
    # A mirror that sends more than the file can be (e.g. a gzip bomb) is abandoned early.
    folder, specs = served
    small = {n: FileSpec(s.name, "0" * 64, s.raw_sha256, s.raw_size // 4) for n, s in specs.items()}
    with serve(folder) as (url, _):
        with pytest.raises(MNISTDownloadError, match="decompresses to more than the expected|more than this file can be"):
            download_mnist(tmp_path / "c", mirrors=[url], progress=False, files=small)
    assert data_files(tmp_path / "c") == []


def test_interrupt_leaves_no_partial_file(tmp_path, served, monkeypatch):
    folder, specs = served

    def interrupt(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(download._Verifier, "update", interrupt)
    with serve(folder) as (url, _):
        with pytest.raises(KeyboardInterrupt):
            download_mnist(tmp_path / "c", mirrors=[url], progress=False, files=specs)
    assert data_files(tmp_path / "c") == []


def test_verified_files_are_kept_and_bad_ones_replaced(tmp_path, served):
    folder, specs = served
    dest = tmp_path / "c"
    with serve(folder) as (url, server):
        download_mnist(dest, mirrors=[url], progress=False, files=specs)
        assert len(server.requests) == 4
        download_mnist(dest, mirrors=[url], progress=False, files=specs)
        assert len(server.requests) == 4  # nothing fetched again
        (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
        download_mnist(dest, mirrors=[url], progress=False, files=specs)
        assert server.requests[4:] == ["/t10k-labels-idx1-ubyte.gz"]
    assert_same_files(dest, folder)


def test_stale_partial_files_are_cleaned(tmp_path, served):
    folder, specs = served
    dest = tmp_path / "c"
    dest.mkdir()
    stale = dest / ".train-images-idx3-ubyte.gz.dead1234.part"
    fresh = dest / ".train-images-idx3-ubyte.gz.live5678.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    with serve(folder) as (url, _):
        download_mnist(dest, mirrors=[url], progress=False, files=specs)
    assert not stale.exists()
    assert fresh.exists()  # may belong to a live download in another process


def test_concurrent_downloads_do_not_collide(tmp_path, served):
    folder, specs = served
    dest = tmp_path / "c"
    errors = []

    def worker():
        try:
            download_mnist(dest, mirrors=[url], progress=False, files=specs)
        except Exception as exc:  # reported below
            errors.append(exc)

    with serve(folder) as (url, server):
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not errors
    assert_same_files(dest, folder)
    assert len(server.requests) == 4  # the lock made the others reuse the first's files


_CHILD = """
import json, sys
from mnist_native.data.download import FileSpec, download_mnist
specs = {n: FileSpec(**s) for n, s in json.loads(sys.argv[3]).items()}
download_mnist(sys.argv[1], mirrors=[sys.argv[2]], progress=False, files=specs)
"""


def test_concurrent_processes_share_the_cache(tmp_path, served):
    # Separate processes, as two notebooks starting at once: the lock is per open file.
    folder, specs = served
    dest = tmp_path / "c"
    payload = json.dumps({n: dataclasses.asdict(s) for n, s in specs.items()})
    with serve(folder) as (url, server):
        children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(dest), url, payload],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    for _ in range(3)]
        results = [child.communicate(timeout=60) + (child.returncode,) for child in children]
    for out, err, code in results:
        assert code == 0, err.decode()
    assert_same_files(dest, folder)
    assert len(server.requests) == 4


def test_mirrors_resolution(monkeypatch):
    monkeypatch.delenv("MNIST_NATIVE_MIRRORS")
    assert resolve_mirrors() == list(MIRRORS)
    assert MIRRORS[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert MIRRORS[-1] == "http://yann.lecun.com/exdb/mnist/"
    monkeypatch.setenv("MNIST_NATIVE_MIRRORS", " http://127.0.0.1:1/a , https://127.0.0.1:2/b/ ,,")
    assert resolve_mirrors() == ["http://127.0.0.1:1/a/", "https://127.0.0.1:2/b/"]
    assert resolve_mirrors(["http://127.0.0.1:3"]) == ["http://127.0.0.1:3/"]
    for bad in (["file:///etc/"], ["127.0.0.1/mnist"], [" , "]):
        with pytest.raises(ValueError, match="mirrors argument"):
            resolve_mirrors(bad)


def test_official_tables_match_the_data_readme():
    assert set(download.FILES) == set(NAMES)
    assert download.FILES["train-images-idx3-ubyte.gz"].gz_sha256.startswith("440fcabf")
    assert download.FILES["t10k-labels-idx1-ubyte.gz"].raw_size == 10_008


class _ProxyHandler(QuietHandler):
    """A forward proxy for plain http: answers from its folder, by the path of the absolute URI."""

    def do_GET(self):
        self.server.requests.append(self.path)
        self.path = urllib.parse.urlsplit(self.path).path.replace("/mnist", "", 1)
        http.server.SimpleHTTPRequestHandler.do_GET(self)


def test_proxy_variables_are_honoured(tmp_path, served, monkeypatch):
    # The mirror's name cannot be resolved here (see isolated_env): only the proxy works.
    folder, specs = served
    with serve(folder, _ProxyHandler) as (proxy_url, proxy):
        monkeypatch.setenv("http_proxy", proxy_url)
        download_mnist(tmp_path / "c", mirrors=["http://mnist-mirror.invalid/mnist/"],
                       progress=False, files=specs)
    assert_same_files(tmp_path / "c", folder)
    assert proxy.requests[0] == "http://mnist-mirror.invalid/mnist/" + NAMES[2]


@pytest.fixture
def self_signed_https(tmp_path, served):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    folder, specs = served
    with serve(folder) as (url, server):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        yield url.replace("http://", "https://"), specs


def test_tls_certificates_are_verified(tmp_path, self_signed_https):
    url, specs = self_signed_https
    with pytest.raises(MNISTDownloadError, match="CERTIFICATE_VERIFY_FAILED"):
        download_mnist(tmp_path / "c", mirrors=[url], progress=False, files=specs, timeout=5)
    assert data_files(tmp_path / "c") == []

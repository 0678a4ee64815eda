"""Download the four MNIST IDX files from the official mirrors, verified by sha256.

Each file streams into a temporary file next to its final place, is checked against the
official sha256 of the ``.gz`` or, for mirrors that re-compress, the sha256 of the
decompressed payload, and only then is renamed into place.  Any failure (HTTP error, an
HTML page served with status 200, checksum mismatch, timeout) moves on to the next mirror;
the temporary file is always removed.  HTTP goes through :mod:`urllib.request`, so the
standard proxy variables (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``) apply and TLS
certificates are verified.
"""
import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass

from tqdm import tqdm

from . import cache
from ._lock import file_lock
from .errors import MNISTDownloadError
from .idx import IDX_NAMES

__all__ = [
    "MIRRORS",
    "MIRRORS_ENV",
    "FileSpec",
    "FILES",
    "resolve_mirrors",
    "verify_file",
    "download_mnist",
]

MIRRORS_ENV = "MNIST_NATIVE_MIRRORS"

# Most reliable first.  yann.lecun.com has answered 403, 404 and HTML pages with status 200,
# which is why a failed checksum only means "try the next mirror".
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class FileSpec:
    """What a downloaded file must be.

    Parameters
    ----------
    name : str
        File name on the mirrors and in the cache, e.g. ``"train-images-idx3-ubyte.gz"``.
    gz_sha256 : str
        sha256 of the official ``.gz`` file.
    raw_sha256 : str
        sha256 of the decompressed payload, for mirrors whose ``.gz`` bytes differ.
    raw_size : int
        Size in bytes of the decompressed payload; bounds what a mirror may send.
    """

    name: str
    gz_sha256: str
    raw_sha256: str
    raw_size: int


# The official files (sha256 of the .gz as published by tensorflow-datasets; sha256 and size
# of the decompressed payload computed from the official files).
FILES = {
    spec.name: spec
    for spec in (
        FileSpec(
            IDX_NAMES["train_images"] + ".gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            47_040_016,
        ),
        FileSpec(
            IDX_NAMES["train_labels"] + ".gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            60_008,
        ),
        FileSpec(
            IDX_NAMES["test_images"] + ".gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            7_840_016,
        ),
        FileSpec(
            IDX_NAMES["test_labels"] + ".gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            10_008,
        ),
    )
}

_USER_AGENT = "mnist_native (Python urllib)"
_CHUNK = 1 << 16
_LOCK_NAME = ".mnist_native.lock"
_PART_SUFFIX = ".part"
# A .part file this old belongs to a process that died mid-download.
_STALE_PART_SECONDS = 3600


class _Rejected(Exception):
    """Internal: what a mirror sent is not the file."""


def resolve_mirrors(mirrors=None):
    """The ordered list of mirror base URLs to try.

    Parameters
    ----------
    mirrors : sequence of str, optional
        Used when given.  Otherwise ``MNIST_NATIVE_MIRRORS`` (comma-separated base URLs)
        when set and not empty, else :data:`MIRRORS`.

    Returns
    -------
    list of str
        Base URLs, each ending with ``/``.

    Raises
    ------
    ValueError
        A URL is not ``http://`` or ``https://``, or the list is empty.
    """
    source = "mirrors argument"
    if mirrors is None:
        env = os.environ.get(MIRRORS_ENV, "").strip()
        if env:
            mirrors, source = env.split(","), MIRRORS_ENV
        else:
            mirrors = MIRRORS
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    result = []
    for url in mirrors:
        url = url.strip()
        if not url:
            continue
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{source}: {url!r} is not an http:// or https:// base URL")
        result.append(url if url.endswith("/") else url + "/")
    if not result:
        raise ValueError(f"{source}: no mirror URL given")
    return result


class _Verifier:
    """sha256 of the bytes as sent and of their gzip-decompressed payload, in one pass."""

    def __init__(self, spec):
        self.spec = spec
        self.gz_hash = hashlib.sha256()
        self.raw_hash = hashlib.sha256()
        self.raw_size = 0
        self.gzip_error = None
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def update(self, data):
        self.gz_hash.update(data)
        if self.gzip_error is None:
            try:
                self._decompress(data)
            except zlib.error as exc:
                self.gzip_error = f"corrupt gzip data ({exc})"

    def _decompress(self, data):
        while data:
            # max_length bounds memory whatever the compression ratio (gzip bombs).
            out = self._inflate.decompress(data, _CHUNK)
            self.raw_hash.update(out)
            self.raw_size += len(out)
            if self.raw_size > self.spec.raw_size:
                raise _Rejected(f"decompresses to more than the expected {self.spec.raw_size} bytes")
            data = self._inflate.unconsumed_tail
            if self._inflate.eof and self._inflate.unused_data:
                # A gzip file may hold several members back to back.
                data = self._inflate.unused_data
                self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def check(self):
        """Raise :class:`_Rejected` unless one of the two checksums matches."""
        if self.gz_hash.hexdigest() == self.spec.gz_sha256:
            return
        if self.gzip_error is not None:
            raise _Rejected(f"sha256 of the .gz does not match, and {self.gzip_error}")
        if not self._inflate.eof:
            raise _Rejected("sha256 of the .gz does not match, and the gzip data is truncated")
        if self.raw_size != self.spec.raw_size or self.raw_hash.hexdigest() != self.spec.raw_sha256:
            raise _Rejected(
                f"checksum mismatch: neither the sha256 of the .gz ({self.gz_hash.hexdigest()}) "
                f"nor that of its {self.raw_size}-byte payload ({self.raw_hash.hexdigest()}) is the expected one"
            )


def _max_download_bytes(spec):
    # A gzip stream is at most a little larger than its payload (stored blocks), so
    # anything bigger is not this file: stop reading rather than fill the disk.
    return spec.raw_size + spec.raw_size // 100 + (1 << 16)


def verify_file(path, spec):
    """Check a file on disk against its :class:`FileSpec`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    spec : FileSpec
        What it must be.

    Returns
    -------
    bool
        True when its ``.gz`` or payload sha256 matches, False otherwise.
    """
    verifier = _Verifier(spec)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                verifier.update(chunk)
        verifier.check()
    except (_Rejected, OSError):
        return False
    return True


def _describe(exc, timeout):
    """A short reason for a failed attempt."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason  # e.g. ConnectionRefusedError, a timeout, an SSL error
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out (no data for {timeout} s)"
    if isinstance(exc, (_Rejected, urllib.error.URLError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _fetch(opener, url, spec, dest, timeout, progress):
    """Download ``url`` into ``dest / spec.name``, verified, or leave nothing behind."""
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=_PART_SUFFIX, dir=dest)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with os.fdopen(fd, "wb") as out, opener.open(request, timeout=timeout) as response:
            limit = _max_download_bytes(spec)
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if length is not None and length > limit:
                raise _Rejected(f"Content-Length {length} is more than this file can be ({limit} bytes)")
            verifier = _Verifier(spec)
            received, head = 0, b""
            with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=spec.name, disable=not progress, leave=False) as bar:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    if len(head) < 2:
                        head = (head + chunk)[:32]
                        if len(head) >= 2 and not head.startswith(b"\x1f\x8b"):
                            # The usual failure: an HTML error page, possibly with status 200.
                            kind = response.headers.get("Content-Type", "unknown type")
                            raise _Rejected(f"not gzip data ({kind}, starting {head!r})")
                    received += len(chunk)
                    if received > limit:
                        raise _Rejected(f"sent more than this file can be ({limit} bytes)")
                    out.write(chunk)
                    verifier.update(chunk)
                    bar.update(len(chunk))
            if length is not None and received != length:
                raise _Rejected(f"connection closed after {received} of {length} bytes")
            verifier.check()
            out.flush()
            # On disk before the rename, so a crash cannot leave an empty "verified" file.
            os.fsync(out.fileno())
        os.replace(tmp, dest / spec.name)
    except BaseException as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the open connection
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _remove_stale_parts(dest):
    now = time.time()
    for part in dest.glob(".*" + _PART_SUFFIX):
        try:
            if now - part.stat().st_mtime > _STALE_PART_SECONDS:
                part.unlink()
        except OSError:
            pass  # another process may be removing it too


def download_mnist(dest=None, mirrors=None, progress=True, *, files=None, timeout=30.0,
                   lock_timeout=600.0):
    """Download the MNIST IDX files into ``dest``, each verified before it appears there.

    Files already in ``dest`` that verify are kept; a file that does not verify is
    replaced by a verified download.  Concurrent calls on the same folder wait for each
    other (a lock file, ``.mnist_native.lock``, stays in the folder), and every file
    appears by an atomic rename, so readers never see a partial file.

    Parameters
    ----------
    dest : str or os.PathLike, optional
        Target folder, created if needed.  Default: the cache folder
        (:func:`mnist_native.data.cache.cache_dir`).
    mirrors : sequence of str, optional
        Base URLs tried in order for each file.  Default: ``MNIST_NATIVE_MIRRORS``
        (comma-separated) if set, else :data:`MIRRORS`.
    progress : bool, default True
        Show a progress bar (on stderr) per file.
    files : mapping of str to FileSpec, optional
        The files and their checksums.  Default: :data:`FILES`, the official ones.
    timeout : float, default 30
        Seconds without data after which a connection is abandoned for the next mirror.
    lock_timeout : float, default 600
        Seconds to wait for another process downloading into the same folder.

    Returns
    -------
    pathlib.Path
        The folder holding the verified files.

    Raises
    ------
    MNISTDownloadError
        A file could be fetched from no mirror; the message lists each URL and why.
    ValueError
        A mirror URL is not http(s).
    """
    dest = cache.cache_dir(dest)
    bases = resolve_mirrors(mirrors)
    specs = FILES if files is None else files
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MNISTDownloadError(f"cannot create the download folder {dest}: {exc}") from None
    # A fresh opener reads the proxy variables now (urlopen's cached one read them at its
    # first use); its HTTPS handler verifies certificates with the default context.
    opener = urllib.request.build_opener()
    with file_lock(dest / _LOCK_NAME, lock_timeout):
        _remove_stale_parts(dest)
        for spec in specs.values():
            target = dest / spec.name
            # Checked under the lock: another process may have just fetched it.
            if target.is_file() and verify_file(target, spec):
                continue
            failures = []
            for base in bases:
                url = urllib.parse.urljoin(base, spec.name)
                try:
                    _fetch(opener, url, spec, dest, timeout, progress)
                except (OSError, http.client.HTTPException, ValueError, _Rejected) as exc:
                    # OSError covers URLError, HTTPError, timeouts and refused connections.
                    failures.append(f"{url}: {_describe(exc, timeout)}")
                    continue
                # Start the next file with the mirror that just worked.
                bases = [base] + [b for b in bases if b != base]
                break
            else:
                raise MNISTDownloadError(
                    f"could not download {spec.name} into {dest}; tried:\n"
                    + "\n".join("  " + f for f in failures)
                )
    return dest

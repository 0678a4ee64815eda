"""Open a file that may or may not be gzip'd."""

import gzip

__all__ = ["GZIP_MAGIC", "open_maybe_gzip", "read_at_most"]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22


def open_maybe_gzip(path):
    """Open ``path`` for binary reading, through gzip when its first bytes are the gzip magic.

    The content decides, not the name: users rename files, and some tools decompress
    ``.gz`` files in place without renaming them.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    stream : file object
        What to read the content from (the raw file itself when not gzip'd).
    raw : file object
        The underlying file; close both (closing ``stream`` does not close ``raw``).
    is_gzip : bool
        Whether the file is gzip'd.
    """
    raw = open(path, "rb")
    try:
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    return (gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw), raw, is_gzip


def read_at_most(stream, n, kind=bytes):
    """Up to ``n`` bytes of ``stream`` (fewer only at its end), as ``kind`` (``bytes`` or,
    for a writable buffer, ``bytearray``).

    Read a chunk at a time, so that memory follows the bytes actually present, not a size
    a file states: a ``GzipFile`` asked for ``n`` bytes sets aside ``n`` at once.
    """
    chunks, held = [], 0
    while held < n:
        chunk = stream.read(min(_CHUNK, n - held))
        if not chunk:
            break
        chunks.append(chunk)
        held += len(chunk)
    return kind().join(chunks)

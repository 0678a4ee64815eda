"""Open a file that may or may not be gzip'd."""

import gzip

__all__ = ["GZIP_MAGIC", "open_maybe_gzip", "StreamTooLarge", "read_limited"]

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


class StreamTooLarge(ValueError):
    """A stream held more bytes than the reader's limit."""


def read_limited(stream, limit):
    """All of ``stream``, read one chunk at a time, or :class:`StreamTooLarge` past ``limit`` bytes.

    Chunks keep memory in step with the bytes actually present, which also stops a gzip
    bomb at ``limit``: a ``GzipFile`` asked for ``n`` bytes sets aside ``n`` at once.
    """
    parts, held = [], 0
    while True:
        part = stream.read(_CHUNK)
        if not part:
            return b"".join(parts)
        held += len(part)
        if held > limit:
            raise StreamTooLarge(f"more than {limit:,} bytes once decompressed")
        parts.append(part)

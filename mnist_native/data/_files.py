"""Open a file that may or may not be gzip'd."""

import gzip

__all__ = ["GZIP_MAGIC", "open_maybe_gzip"]

GZIP_MAGIC = b"\x1f\x8b"


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

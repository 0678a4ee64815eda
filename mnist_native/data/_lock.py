"""An inter-process lock on a file, released by the OS if its holder dies."""
import contextlib
import os
import time
import warnings

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

__all__ = ["file_lock"]


def _try_lock(fd):
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _unlock(fd):
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def file_lock(path, timeout):
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file.  It is left in place: removing a lock file races with the
        processes waiting on it.
    timeout : float
        Seconds to wait.  After that the block runs without the lock, with a warning:
        the lock only avoids duplicate work, correctness never depends on it.

    Yields
    ------
    bool
        Whether the lock is held.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    locked = False
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _try_lock(fd)
                locked = True
                break
            except OSError:
                if time.monotonic() >= deadline:
                    warnings.warn(
                        f"could not lock {os.fspath(path)} within {timeout} s; going on without it",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    break
                time.sleep(0.1)
        yield locked
    finally:
        if locked:
            _unlock(fd)
        os.close(fd)

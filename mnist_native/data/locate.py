"""Find MNIST wherever the user has it, in a fixed order, or download it into the cache.

Order: the ``path`` argument; ``MNIST_NATIVE_DATA``; ``./Data/mnist.pkl.gz`` (the lab's
layout); the cache folder; a download into the cache.  A location the user names (the
argument or the variable) is used or reported, never silently replaced by another one.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from . import cache
from .download import download_mnist
from .errors import MNISTDownloadError, MNISTNotFoundError
from .idx import IDX_NAMES, find_idx_files

__all__ = ["DATA_ENV", "PICKLE_NAME", "LAB_PICKLE", "Source", "find_mnist"]

DATA_ENV = "MNIST_NATIVE_DATA"
PICKLE_NAME = "mnist.pkl.gz"
LAB_PICKLE = Path("Data") / PICKLE_NAME


@dataclass(frozen=True)
class Source:
    """Where MNIST was found.

    Attributes
    ----------
    kind : {"pickle", "idx"}
        The lab's pickle file, or a folder of IDX files.
    path : pathlib.Path
        The pickle file, or the IDX folder.
    origin : str
        Which step of the search found it, e.g. ``"MNIST_NATIVE_DATA"``.
    """

    kind: str
    path: Path
    origin: str


def _source_at(location, origin):
    """The MNIST at a location the user named, or an error saying what is wrong there."""
    path = Path(location).expanduser()
    if path.is_file():
        if "idx" in path.name:
            problem = "is a single IDX file; give the folder that holds the four IDX files"
        else:
            return Source("pickle", path, origin)
    elif path.is_dir():
        found, missing = find_idx_files(path)
        if not missing:
            return Source("idx", path, origin)
        if (path / PICKLE_NAME).is_file():
            return Source("pickle", path / PICKLE_NAME, origin)
        if found:
            problem = "is a folder missing IDX file(s) " + ", ".join(f"{m}[.gz]" for m in missing)
        else:
            problem = f"is a folder holding neither the four MNIST IDX files nor {PICKLE_NAME}"
    else:
        problem = "does not exist"
    raise MNISTNotFoundError(
        f"MNIST not found: {origin} = {path} {problem}.\n"
        f"It must be the lab's {PICKLE_NAME} or a folder holding "
        + ", ".join(n + "[.gz]" for n in IDX_NAMES.values())
        + "."
    )


def _cache_source(folder):
    found, missing = find_idx_files(folder)
    if not missing:
        return Source("idx", folder, "cache"), None
    if (folder / PICKLE_NAME).is_file():
        return Source("pickle", folder / PICKLE_NAME, "cache"), None
    if not folder.is_dir():
        return None, "does not exist"
    return None, "missing " + ", ".join(missing)


def _not_found(tried, folder):
    lines = ["MNIST was not found anywhere. Tried, in order:"]
    lines += [f"  {i}. {step}" for i, step in enumerate(tried, 1)]
    lines += [
        "To fix it, do one of:",
        f"  - pass its location: load_data('path/to/{PICKLE_NAME}') or a folder holding the four IDX files;",
        f"  - set {DATA_ENV} to that file or folder;",
        f"  - put the lab's {PICKLE_NAME} in ./{LAB_PICKLE.parent}/ (next to the notebook);",
        "  - to download: check the network; behind a proxy set HTTPS_PROXY / HTTP_PROXY;",
        "    or list reachable mirrors in MNIST_NATIVE_MIRRORS (comma-separated base URLs);",
        "  - or fetch " + ", ".join(n + ".gz" for n in IDX_NAMES.values()),
        f"    on another machine and copy them into {folder}",
    ]
    return "\n".join(lines)


def find_mnist(path=None, *, cache_dir=None, download=True, mirrors=None, progress=True):
    """Find MNIST, downloading it into the cache as the last resort.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The lab's ``mnist.pkl.gz``, or a folder holding the four IDX files (or a
        ``mnist.pkl.gz``).  When given, nothing else is tried.
    cache_dir : str or os.PathLike, optional
        The cache folder; default ``MNIST_NATIVE_CACHE``, else the platform's user cache
        (see :func:`mnist_native.data.cache.cache_dir`).
    download : bool, default True
        Whether to download into the cache when MNIST is found nowhere else.
    mirrors : sequence of str, optional
        Mirror base URLs for the download (default: ``MNIST_NATIVE_MIRRORS``, else the
        official mirrors).
    progress : bool, default True
        Show download progress bars.

    Returns
    -------
    Source
        What was found and where.

    Raises
    ------
    MNISTNotFoundError
        Nothing usable was found; the message lists each step tried and how to fix it.
        Also raised at once when ``path`` or ``MNIST_NATIVE_DATA`` names an unusable place.
    """
    if path is not None:
        return _source_at(path, "path argument")
    tried = ["path argument: not given"]
    env = os.environ.get(DATA_ENV, "")
    if env:
        return _source_at(env, DATA_ENV)
    tried.append(f"{DATA_ENV}: not set")
    lab = Path.cwd() / LAB_PICKLE
    if lab.is_file():
        return Source("pickle", lab, f"./{LAB_PICKLE.as_posix()}")
    tried.append(f"./{LAB_PICKLE.as_posix()}: not found in {Path.cwd()}")
    folder = cache.cache_dir(cache_dir)
    source, problem = _cache_source(folder)
    if source is not None:
        return source
    tried.append(f"cache folder {folder}: {problem}")
    if not download:
        tried.append("download: not attempted (download=False)")
    else:
        try:
            download_mnist(folder, mirrors=mirrors, progress=progress)
        except (MNISTDownloadError, ValueError) as exc:
            tried.append("download: " + str(exc).replace("\n", "\n     "))
        else:
            return Source("idx", folder, "download")
    raise MNISTNotFoundError(_not_found(tried, folder))

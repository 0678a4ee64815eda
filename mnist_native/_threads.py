"""The one place that decides how many threads the native kernels use."""
import os

from . import _kernels
from ._validation import check_positive_int


def available_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_num_threads(num_threads=None):
    """Threads for the kernels: ``num_threads`` if given, else ``OMP_NUM_THREADS``, else the CPUs
    this process may use; always 1 when the package was built without OpenMP."""
    if num_threads is not None:
        n = check_positive_int(num_threads, "num_threads")
    else:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        n = int(env) if env.isdigit() and int(env) > 0 else available_cpus()
    return n if _kernels.OPENMP else 1

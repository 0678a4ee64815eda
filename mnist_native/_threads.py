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


# The most threads a model may ask for.  Each is an OS thread with its own stack, and the
# per-call kernels start them all even for one sample: a count far past any machine's CPUs
# (a slip, or a forged model file) would exhaust memory or make OpenMP abort the process.
MAX_THREADS = 1024


def check_num_threads(value):
    """``value`` as an int from 1 to MAX_THREADS, else ``TypeError``/``ValueError``."""
    n = check_positive_int(value, "num_threads")
    if n > MAX_THREADS:
        raise ValueError(f"num_threads must be at most {MAX_THREADS}, got {n}")
    return n


def resolve_num_threads(num_threads=None):
    """Threads for the kernels: ``num_threads`` if given (checked), else ``OMP_NUM_THREADS``
    (at most MAX_THREADS), else the CPUs this process may use; always 1 when the package was
    built without OpenMP."""
    if num_threads is not None:
        n = check_num_threads(num_threads)
    else:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        n = min(int(env), MAX_THREADS) if env.isdigit() and int(env) > 0 else available_cpus()
    return n if _kernels.OPENMP else 1

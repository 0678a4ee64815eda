"""mnist_native: the MNIST neural-network teaching lab at native speed.

``NeuralNetwork`` is the lab's class (same constructor, attributes and methods) with every
step done by Cython + OpenMP kernels; ``mnist_native.reference`` holds the same network in
plain NumPy, against which the kernels are tested.
"""
from ._extensions import require_extensions as _require_extensions

# From a source checkout without a build, say so (not "cannot import name '_kernels'").
_require_extensions(__name__, __path__[0])

from . import _fused, _kernels  # noqa: E402
from ._threads import available_cpus, resolve_num_threads  # noqa: E402
from .data import download_mnist, load_data, load_mnist  # noqa: E402
from .history import TrainingHistory  # noqa: E402
from .network import NeuralNetwork  # noqa: E402
from .plotting import plot_learning_curves  # noqa: E402
from .transfer_functions import dsigmoid, dtanh, sigmoid, softmax, tanh  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "NeuralNetwork",
    "TrainingHistory",
    "build_info",
    "check",
    "load_data",
    "load_mnist",
    "download_mnist",
    "plot_learning_curves",
    "sigmoid",
    "dsigmoid",
    "tanh",
    "dtanh",
    "softmax",
]


def __getattr__(name):
    """``mnist_native.check`` (``checker.check``), imported on first use only."""
    if name == "check":
        from .checker import check

        return check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_info():
    """How this copy of mnist_native was built and what it will use.

    Returns
    -------
    dict
        ``version``; ``openmp`` (bool: kernels built with OpenMP); ``max_threads`` (threads a
        model uses by default: ``OMP_NUM_THREADS`` or the CPUs this process may use, 1 without
        OpenMP); ``compiler`` (the C compiler that built the kernels); ``simd`` (the
        instruction-set variant of the training kernels in use: ``"avx512"``,
        ``"avx2+fma"`` or ``"baseline"`` (SSE2) on x86-64, ``"neon"`` on ARM, ``"portable"``
        elsewhere; the widest the CPU runs, chosen at import;
        ``MNIST_NATIVE_SIMD`` caps it); ``caches`` (the running CPU's per-core ``l1d`` and
        ``l2`` in bytes, the ``source`` they were read from, and the kernels' ``tuning``
        derived from them: tiles of weight rows and when to prefetch, in bytes);
        ``flushes_subnormals`` (bool: the fused kernels that ``train`` and ``train_xe``
        run treat floats too small to be normal, below 1.2e-38 in float32, as 0, which
        keeps them fast; x86-64 and aarch64 builds do, except MSVC's for ARM64).
    """
    return {
        "version": __version__,
        "openmp": _kernels.OPENMP,
        "max_threads": resolve_num_threads(None),
        "compiler": _kernels.COMPILER,
        "simd": _fused.SIMD,
        "caches": {"l1d": _fused.L1D, "l2": _fused.L2, "source": _fused.CACHE_SOURCE,
                   "tuning": dict(_fused.CACHE_TUNING)},
        "flushes_subnormals": _fused.FLUSHES_SUBNORMALS,
    }

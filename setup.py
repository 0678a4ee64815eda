"""Build the Cython kernels, with OpenMP when the compiler in use can build and run it.

OpenMP is decided by compiling, linking and *running* a tiny OpenMP program with the very
compiler setuptools will use (as scikit-learn does): a flag that compiles but does not link
or run is no use.  Without OpenMP the package still builds, serial, with a loud warning;
``MNIST_NATIVE_REQUIRE_OPENMP=1`` turns that into an error, ``MNIST_NATIVE_NO_OPENMP=1``
builds serial on purpose.  ``MNIST_NATIVE_DEBUG=1`` builds with Cython bounds checks on and
AddressSanitizer/UBSan.  ``MNIST_NATIVE_OPT=-O0`` replaces the optimisation flag (the
mutation tests rebuild each mutant that way, several times faster).  ``MNIST_NATIVE_PORTABLE=1`` defines ``MN_PORTABLE=1`` for both
extensions: the kernels' portable code path (the one MSVC gets), built with any compiler.

The OpenMP flags depend on the compiler, not on the OS (``src/openmp_build.py``): GCC
``-fopenmp``, MSVC ``/openmp``, Apple clang ``-Xpreprocessor -fopenmp`` + ``-lomp`` from
``MNIST_NATIVE_OPENMP_PREFIX`` or Homebrew's libomp, LLVM's clang either.  The compiler and
the flags chosen are printed (``pip install -v`` shows them).
"""
import glob
import os
import sys
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# src/openmp_build.py picks and proves the OpenMP flags.  src/ is not a package: put it on the
# path, from this file's folder, which works in pip's isolated build and in an sdist too.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src"))
import openmp_build  # noqa: E402


def flag(name):
    """A build switch from the environment: set and not "0"."""
    return os.environ.get(name, "") not in ("", "0")


DEBUG = flag("MNIST_NATIVE_DEBUG")
REQUIRE_OPENMP = flag("MNIST_NATIVE_REQUIRE_OPENMP")
# Build serial kernels on purpose (CI tests the fallback this way).
NO_OPENMP = flag("MNIST_NATIVE_NO_OPENMP")
# The kernels' portable (MSVC-compatible) code path, built with any compiler: MN_PORTABLE=1.
PORTABLE = flag("MNIST_NATIVE_PORTABLE")
# The optimisation flag, for GCC and Clang (tests/mutation/run.py builds with -O0: quicker).
OPT = os.environ.get("MNIST_NATIVE_OPT", "-O3")


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        cflags, ldflags = [], []
        openmp = False
        if NO_OPENMP:
            print("mnist_native: MNIST_NATIVE_NO_OPENMP is set: building serial kernels")
        else:
            chosen, tried, kind, description = openmp_build.find_openmp(self.compiler)
            if chosen is not None:
                openmp = True
                cflags, ldflags = list(chosen.compile_args), list(chosen.link_args)
                print(f"mnist_native: OpenMP with: {chosen.describe()}")
            else:
                message = (
                    "\n" + "*" * 72 + "\n"
                    "mnist_native: this compiler cannot build and run an OpenMP program.\n"
                    f"Compiler: {kind} ({description}). Tried, in order:\n"
                    + "".join(f"  {c.describe()}\n" for c in tried)
                    + "Building SERIAL kernels: every model will run on one core. Install\n"
                    "OpenMP and rebuild for multi-core speed: GCC's libgomp; with Clang,\n"
                    "LLVM's libomp ('brew install libomp' on macOS, libomp-dev on Debian),\n"
                    f"or point {openmp_build.PREFIX_VARIABLE} at a folder holding\n"
                    "include/omp.h and lib/libomp; with MSVC, the C++ build tools.\n"
                    + "*" * 72
                )
                if REQUIRE_OPENMP:
                    raise RuntimeError(message + "\nMNIST_NATIVE_REQUIRE_OPENMP is set: "
                                       "refusing to build without OpenMP.")
                warnings.warn(message)
        if ctype == "msvc":
            opt = ["/O2"]
        else:
            opt = ["-O0", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if DEBUG else [OPT]
            # The baseline SIMD variant's vector helpers are always inlined: no ABI crosses.
            opt.append("-Wno-psabi")
            # No multiply-add fused by the compiler's choice (the kernels write theirs as
            # intrinsics): the same expression then rounds alike in every function, whatever
            # its target, as MSVC (2022 and later) compiles it by default.
            opt.append("-ffp-contract=off")
            ldflags = ldflags + (["-fsanitize=address,undefined"] if DEBUG else [])
        for ext in self.extensions:
            ext.extra_compile_args = opt + cflags
            ext.extra_link_args = ldflags
            ext.define_macros.append(("MNIST_NATIVE_OPENMP", "1" if openmp else "0"))
        super().build_extensions()


def extensions():
    if PORTABLE:
        print("mnist_native: MNIST_NATIVE_PORTABLE is set: building the portable kernels "
              "(MN_PORTABLE=1)")
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "initializedcheck": DEBUG,
        "cdivision": True,
    }
    exts = [
        Extension(
            f"mnist_native.{name}",
            [f"src/{name}.pyx"],
            include_dirs=[np.get_include(), "src"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
            + ([("MN_PORTABLE", "1")] if PORTABLE else []),
            # Every header: the kernels' headers come and go as the SIMD layers grow.
            depends=sorted(glob.glob(os.path.join("src", "*.h"))),
        )
        for name in ("_kernels", "_train")
    ]
    return cythonize(exts, compiler_directives=directives, compile_time_env={"DEBUG": DEBUG})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})

"""Build the Cython kernels, with OpenMP when the compiler in use can build and run it.

OpenMP is decided by compiling, linking and *running* a tiny OpenMP program with the very
compiler setuptools will use (as scikit-learn does): a flag that compiles but does not link
or run is no use.  Without OpenMP the package still builds, serial, with a loud warning;
``MNIST_NATIVE_REQUIRE_OPENMP=1`` turns that into an error, ``MNIST_NATIVE_NO_OPENMP=1``
builds serial on purpose.  ``MNIST_NATIVE_DEBUG=1`` builds with Cython bounds checks on and
AddressSanitizer/UBSan.
"""
import os
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("MNIST_NATIVE_DEBUG", "") not in ("", "0")
REQUIRE_OPENMP = os.environ.get("MNIST_NATIVE_REQUIRE_OPENMP", "") not in ("", "0")
# Build serial kernels on purpose (CI tests the fallback this way).
NO_OPENMP = os.environ.get("MNIST_NATIVE_NO_OPENMP", "") not in ("", "0")

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d %d\\n", n > 0, omp_get_max_threads());
        return 0;
    }
    """
)


def openmp_flags(compiler_type):
    """(compile flags, link flags) to try for OpenMP with this kind of compiler."""
    if compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def openmp_works(compiler, cflags, ldflags):
    """Compile, link and run the test program; True only if all three succeed."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "omp_test.c")
        with open(source, "w") as f:
            f.write(OPENMP_TEST)
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=cflags)
            exe = os.path.join(tmp, "omp_test")
            compiler.link_executable(objects, exe, extra_postargs=ldflags)
            exe_file = exe + (".exe" if sys.platform == "win32" else "")
            out = subprocess.run([exe_file], capture_output=True, text=True, timeout=60)
        except Exception:
            return False
        return out.returncode == 0 and out.stdout.startswith("1 ")


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        cflags, ldflags = openmp_flags(ctype)
        openmp = not NO_OPENMP and openmp_works(self.compiler, cflags, ldflags)
        if NO_OPENMP:
            print("mnist_native: MNIST_NATIVE_NO_OPENMP is set: building serial kernels")
            cflags, ldflags = [], []
        elif not openmp:
            message = (
                "\n" + "*" * 72 + "\n"
                "mnist_native: this compiler cannot build and run an OpenMP program\n"
                f"(tried {' '.join(cflags + ldflags)}). Building SERIAL kernels: every\n"
                "model will run on one core. Install OpenMP (gcc's libgomp, or\n"
                "'brew install libomp' on macOS) and rebuild for multi-core speed.\n"
                + "*" * 72
            )
            if REQUIRE_OPENMP:
                raise RuntimeError(message + "\nMNIST_NATIVE_REQUIRE_OPENMP is set: refusing to build without OpenMP.")
            warnings.warn(message)
            cflags, ldflags = [], []
        if ctype == "msvc":
            opt = ["/O2"]
        else:
            opt = ["-O0", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if DEBUG else ["-O3"]
            # The baseline SIMD variant's vector helpers are always inlined: no ABI crosses.
            opt.append("-Wno-psabi")
            ldflags = ldflags + (["-fsanitize=address,undefined"] if DEBUG else [])
        for ext in self.extensions:
            ext.extra_compile_args = opt + cflags
            ext.extra_link_args = ldflags
            ext.define_macros.append(("MNIST_NATIVE_OPENMP", "1" if openmp else "0"))
        super().build_extensions()


def extensions():
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
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            depends=["src/platform.h", "src/fused.h", "src/fused_variants.h",
                     "src/fused_body.h"],
        )
        for name in ("_kernels", "_train")
    ]
    return cythonize(exts, compiler_directives=directives, compile_time_env={"DEBUG": DEBUG})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})

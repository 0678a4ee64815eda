"""Host side of .ci/aarch64.sh: cross-build mnist_native for Linux aarch64 with setup.py's own settings.

    python aarch64_build.py requirements            the arm64 wheels the kernel tests need
    python aarch64_build.py build-requirements      pyproject's [build-system] requires
    python aarch64_build.py build ROOT SITE OUT     cythonize + cross-compile into OUT/pkg

Nothing is copied from setup.py: it is executed with ``setuptools.setup`` and
``Cython.Build.cythonize`` replaced by recorders, which gives its Extension objects (sources,
include dirs, macros), its Cython directives and compile-time env (cythonize is then called
with exactly those, writing the C into OUT, never into src/).  Its ``BuildExt`` is then run
with a cross compiler object, up to where it hands over to setuptools: its own logic proves
OpenMP (compiling, linking and *running* its test program, here under qemu-aarch64) and sets
the compile/link flags and the ``MNIST_NATIVE_OPENMP`` macro.  Each module is then compiled as
setuptools would on an aarch64 Debian: the target Python's own CFLAGS, CCSHARED and LDSHARED
(read from its sysconfigdata), setup.py's macros and include dirs (the host NumPy's headers
swapped for the arm64 wheel's), then setup.py's extra arguments; both modules at once.
"""
import ast
import concurrent.futures
import glob
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("AARCH64_CC", "aarch64-linux-gnu-gcc")
QEMU = os.environ.get("AARCH64_QEMU", "qemu-aarch64")
# Test-extra packages that run under qemu (the notebook/build ones need subprocesses).
TEST_PACKAGES = ("pytest", "hypothesis")


def pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def requirements():
    """The package's dependencies plus the test extra's pytest and hypothesis."""
    meta = pyproject()["project"]
    test = [r for r in meta["optional-dependencies"]["test"]
            if re.match(r"[A-Za-z0-9_.-]+", r).group().lower() in TEST_PACKAGES]
    return list(meta["dependencies"]) + test


def target_sysconfig(root):
    """build_time_vars of the arm64 Python in ROOT (a dict literal; read, not executed)."""
    paths = sorted(glob.glob(os.path.join(root, "usr/lib/python3.11/_sysconfigdata__linux_*.py")))
    if not paths:
        sys.exit(f"no _sysconfigdata__linux_*.py under {root}/usr/lib/python3.11")
    tree = ast.parse(open(paths[0]).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "build_time_vars":
            return ast.literal_eval(node.value)
    sys.exit(f"no build_time_vars in {paths[0]}")


def run_setup_py():
    """Execute setup.py with setup()/cythonize() recorded instead of run."""
    import Cython.Build
    import setuptools

    seen = {}

    def record_cythonize(module_list, **kwargs):
        seen["cythonize"] = kwargs
        return module_list

    def record_setup(**kwargs):
        seen["setup"] = kwargs

    saved = setuptools.setup, Cython.Build.__dict__.get("cythonize")
    setuptools.setup, Cython.Build.cythonize = record_setup, record_cythonize
    try:
        runpy.run_path(os.path.join(REPO, "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = saved[0]
        if saved[1] is None:
            del Cython.Build.cythonize
        else:
            Cython.Build.cythonize = saved[1]
    if "setup" not in seen or "cythonize" not in seen:
        sys.exit("setup.py did not call cythonize() and setup() as expected")
    return seen["setup"], seen["cythonize"]


def cross_gcc(root):
    """The cross compiler with the arm64 root as its sysroot: the target's own libc headers,
    Python headers and libraries (the toolchain brings only its runtime: libgcc, libgomp)."""
    return [CC, f"--sysroot={root}"]


def cross_compiler(root, tvars):
    """A setuptools unix compiler driving the cross compiler with the target Python's flags,
    for setup.py's OpenMP probe: the programs it links are run under qemu-aarch64 (a small
    launcher script stands where the program would be), so the probe really runs them."""
    from distutils.ccompiler import new_compiler

    base = type(new_compiler(compiler="unix"))

    class CrossCompiler(base):
        def link_executable(self, objects, output_progname, *args, **kwargs):
            real = output_progname + ".aarch64"
            super().link_executable(objects, real, *args, **kwargs)
            with open(output_progname, "w") as f:
                f.write("#!/bin/sh\n" f"QEMU_LD_PREFIX={shlex.quote(root)} "
                        f"exec {shlex.quote(QEMU)} {shlex.quote(real)} \"$@\"\n")
            os.chmod(output_progname, 0o755)
            probe = subprocess.run([output_progname], capture_output=True, text=True,
                                   timeout=120)
            print(f"OpenMP probe: linked {' '.join(kwargs.get('extra_postargs') or [])}, "
                  f"under {QEMU}: exit {probe.returncode}, prints {probe.stdout.strip()!r}")

    cc = CrossCompiler()
    gcc, cflags = cross_gcc(root), shlex.split(tvars["CFLAGS"])
    cc.set_executables(compiler=[*gcc, *cflags],
                       compiler_so=[*gcc, *cflags, *shlex.split(tvars["CCSHARED"])],
                       linker_exe=[*gcc, *shlex.split(tvars["LDFLAGS"])],
                       linker_so=[*gcc, *shlex.split(tvars["LDSHARED"])[1:]])
    return cc


def setup_flags(ext_modules, build_ext_cls, compiler):
    """Run setup.py's BuildExt.build_extensions with the cross compiler, stopping where it
    hands over to setuptools: it sets each extension's extra_compile_args, extra_link_args
    and MNIST_NATIVE_OPENMP macro, after proving OpenMP by its own probe."""
    from setuptools.command.build_ext import build_ext as setuptools_build_ext
    from setuptools.dist import Distribution

    class NoCompile(setuptools_build_ext):
        def build_extensions(self):  # what BuildExt's super() call reaches: compile nothing
            pass

    class Capture(build_ext_cls, NoCompile):
        pass

    cmd = Capture(Distribution({"name": "mnist_native", "ext_modules": ext_modules}))
    cmd.extensions = ext_modules
    cmd.compiler = compiler
    cmd.build_extensions()


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", path
    return int.from_bytes(head[18:20], "little")


def build(root, site, out):
    import numpy
    from Cython.Build import cythonize

    for var in ("MNIST_NATIVE_DEBUG", "MNIST_NATIVE_NO_OPENMP", "MNIST_NATIVE_PORTABLE"):
        if os.environ.pop(var, None) not in (None, "", "0"):
            print(f"note: {var} ignored: the aarch64 build is the default release build")
    os.environ["MNIST_NATIVE_REQUIRE_OPENMP"] = "1"   # as .ci/run builds: no serial fallback
    os.chdir(REPO)
    setup_kwargs, cy_kwargs = run_setup_py()
    print(f"setup.py: cythonize options {cy_kwargs}")
    cdir = os.path.join(out, "cython")
    exts = cythonize(setup_kwargs["ext_modules"], build_dir=cdir, force=True, quiet=True,
                     nthreads=2, **cy_kwargs)
    tvars = target_sysconfig(root)
    setup_flags(exts, setup_kwargs["cmdclass"]["build_ext"], cross_compiler(root, tvars))
    ext_suffix = tvars["EXT_SUFFIX"]
    if "aarch64" not in ext_suffix:
        sys.exit(f"target EXT_SUFFIX {ext_suffix!r} is not aarch64")
    host_np, site_np = numpy.get_include(), os.path.join(site, "numpy", "_core", "include")
    if not os.path.isfile(os.path.join(site_np, "numpy", "ndarrayobject.h")):
        sys.exit(f"no arm64 NumPy headers at {site_np}")
    py_inc = os.path.join(root, "usr/include/python3.11")
    py_plat_inc = os.path.join(root, "usr/include/aarch64-linux-gnu/python3.11")
    pkg = os.path.join(out, "pkg")
    shutil.copytree(os.path.join(REPO, "mnist_native"), os.path.join(pkg, "mnist_native"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.py[cod]"))

    jobs = []
    for ext in exts:
        macros = dict(ext.define_macros)
        if macros.get("MNIST_NATIVE_OPENMP") != "1":
            sys.exit(f"{ext.name}: setup.py did not enable OpenMP ({ext.define_macros})")
        incs = [site_np if os.path.samefile(d, host_np) else d
                for d in ext.include_dirs if os.path.exists(d)]
        target = os.path.join(pkg, *ext.name.split(".")[:-1],
                               ext.name.split(".")[-1] + ext_suffix)
        (source,) = ext.sources
        obj = os.path.join(out, "obj", ext.name + ".o")
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        # As setuptools does: compile (CC CFLAGS CCSHARED ... extra_compile_args), then link
        # (LDSHARED ... extra_link_args): one command would let LDSHARED's -O2 undo -O3.
        compile_cmd = [*cross_gcc(root), *shlex.split(tvars["CFLAGS"]),
                       *shlex.split(tvars["CCSHARED"]),
                       *[f"-D{k}" if v is None else f"-D{k}={v}" for k, v in ext.define_macros],
                       *[f"-I{d}" for d in incs], f"-I{py_inc}", f"-I{py_plat_inc}",
                       "-c", source, "-o", obj, *ext.extra_compile_args]
        link_cmd = [*cross_gcc(root), *shlex.split(tvars["LDSHARED"])[1:], obj,
                    *ext.extra_link_args, "-o", target]
        print(f"{ext.name}: {shlex.join(compile_cmd)}\n  then: {shlex.join(link_cmd)}",
              flush=True)
        jobs.append((ext.name, target, [compile_cmd, link_cmd]))

    def run(job):
        start, output = time.monotonic(), ""
        for cmd in job[2]:
            done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
            output += done.stdout
            if done.returncode:
                break
        return done.returncode, output, time.monotonic() - start

    failed = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        # Both modules at once (2 cores); the longest (_train) decides the wall time.
        for (name, target, _), (rc, output, seconds) in zip(jobs, pool.map(run, jobs)):
            print(f"{name}: built in {seconds:.1f} s, exit {rc}"
                  + (f", {output.count('warning:')} warning(s)" if output else ", no warnings"))
            if output:
                lines = output.splitlines(True)
                sys.stdout.write("".join(lines if rc else lines[:40]))
            if rc:
                failed = True
            elif elf_machine(target) != 183:   # EM_AARCH64
                sys.exit(f"{target} is not an aarch64 ELF file")
    if failed:
        sys.exit("cross-compile failed")
    print(f"package tree: {pkg}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "requirements":
        print("\n".join(requirements()))
    elif cmd == "build-requirements":
        print("\n".join(pyproject()["build-system"]["requires"]))
    elif cmd == "build" and len(sys.argv) == 5:
        build(*map(os.path.abspath, sys.argv[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

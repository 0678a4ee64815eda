"""How setup.py finds OpenMP: flags chosen per compiler, then proven by a program that runs.

setup.py imports this file (it puts its own ``src/`` folder on ``sys.path``, which works in
pip's isolated build and from an sdist, whose MANIFEST.in ships this file).

Three layers:

* Pure functions, unit-tested in ``tests/test_openmp_build.py`` for every platform and
  compiler this project knows, none of which needs that platform:

  - ``identify_compiler(compiler_type, version_text)``: setuptools' ``compiler_type`` plus the
    compiler's ``--version`` text give ``"gcc"``, ``"clang"``, ``"apple-clang"``, ``"msvc"``
    or ``"unknown"``.  The flags depend on the compiler, not on the OS: a Homebrew GCC on
    macOS takes GCC's ``-fopenmp``; Debian's clang takes ``-fopenmp`` too, Apple's refuses it.
  - ``openmp_candidates(platform, compiler, env, brew_libomp_prefix=None)``: the ordered list
    of ``Candidate(compile_args, link_args)`` to try.

* ``detect_compiler(compiler)``: runs ``--version`` on the compiler setuptools will really use
  and, for Clang, ``brew --prefix libomp`` where Homebrew is installed.

* ``openmp_works`` / ``find_openmp``: compile, link AND run a tiny OpenMP program with each
  candidate in order (as scikit-learn's build does); the first that works wins.

Where Clang looks for LLVM's libomp, in order:

1. ``MNIST_NATIVE_OPENMP_PREFIX``: a folder with ``include/omp.h`` and ``lib/libomp.*``;
2. ``$(brew --prefix libomp)``: Homebrew's keg-only libomp (``/opt/homebrew/opt/libomp`` on
   Apple silicon, ``/usr/local/opt/libomp`` on Intel Macs);
3. wherever ``CPPFLAGS``/``LDFLAGS`` and the compiler's own defaults point (setuptools passes
   ``CPPFLAGS`` and ``CFLAGS`` to every compile and ``LDFLAGS`` to the extensions' link;
   ``openmp_works`` adds ``LDFLAGS`` to the test program's link, which setuptools omits).

No rpath on macOS: a wheel gets libomp bundled by delocate, and Homebrew's libomp carries an
absolute install name.  On Linux a prefix's ``lib/`` is also added as an rpath, so a libomp
outside the loader's path is found at run time.
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import namedtuple

PREFIX_VARIABLE = "MNIST_NATIVE_OPENMP_PREFIX"

KINDS = ("gcc", "clang", "apple-clang", "msvc", "unknown")

# What every candidate must build, link and run: a parallel region whose threads all count.
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


class Candidate(namedtuple("Candidate", ["compile_args", "link_args"])):
    """One way to ask for OpenMP: extra compile arguments and extra link arguments."""

    __slots__ = ()

    def describe(self):
        """One line for the build log: ``compile: ... | link: ...``."""
        link = " ".join(self.link_args) or "(nothing)"
        return f"compile: {' '.join(self.compile_args)} | link: {link}"


# --------------------------------------------------------------------------- pure functions


def identify_compiler(compiler_type, version_text):
    """The kind of C compiler, from setuptools' ``compiler_type`` and its ``--version`` text.

    Parameters
    ----------
    compiler_type : str
        ``self.compiler.compiler_type``: ``"unix"``, ``"msvc"``, ``"mingw32"``, ...
    version_text : str
        What ``CC --version`` printed (stdout and stderr), ``""`` if it could not run.

    Returns
    -------
    str
        ``"msvc"``, ``"apple-clang"`` (Xcode's clang, which refuses a bare ``-fopenmp``),
        ``"clang"`` (LLVM's own: Debian's, Homebrew's llvm, ...), ``"gcc"`` or ``"unknown"``.
        Apple clang is tested first: macOS's ``gcc`` command is Apple clang and says so.
    """
    if compiler_type == "msvc":
        return "msvc"
    text = (version_text or "").lower()
    if "apple clang" in text or "apple llvm" in text:
        return "apple-clang"
    if "clang" in text:
        return "clang"
    if "free software foundation" in text or "gcc" in text:
        return "gcc"
    if not text and compiler_type in ("mingw32", "cygwin"):
        return "gcc"
    return "unknown"


def _prefixes(env, brew_libomp_prefix):
    """LLVM libomp prefixes to try, in order, without repeats."""
    found = []
    for prefix in ((env.get(PREFIX_VARIABLE) or "").strip(), (brew_libomp_prefix or "").strip()):
        if prefix and prefix not in found:
            found.append(prefix)
    return found


def _libomp_candidate(openmp_args, platform, prefix):
    """Clang asking for LLVM's libomp, from ``prefix`` or (None) from the default paths.

    ``openmp_args`` is ``["-fopenmp"]`` (LLVM clang's driver links libomp itself) or
    ``["-Xpreprocessor", "-fopenmp"]`` (Apple clang: the flag goes past the driver to the
    preprocessor, so libomp is linked by hand with ``-lomp``).
    """
    compile_args = list(openmp_args)
    link_args = ["-fopenmp"] if openmp_args == ["-fopenmp"] else []
    if prefix is not None:
        compile_args.append("-I" + prefix.rstrip("/\\") + "/include")
        lib = prefix.rstrip("/\\") + "/lib"
        link_args.append("-L" + lib)
        if platform.startswith("linux"):
            link_args.append("-Wl,-rpath," + lib)
    if openmp_args != ["-fopenmp"]:
        link_args.append("-lomp")
    return Candidate(compile_args, link_args)


def openmp_candidates(platform, compiler, env, brew_libomp_prefix=None):
    """The (compile args, link args) to try for OpenMP, best first.

    Parameters
    ----------
    platform : str
        ``sys.platform``: ``"linux"``, ``"darwin"``, ``"win32"``.
    compiler : str
        ``identify_compiler``'s answer.
    env : Mapping[str, str]
        The environment; ``MNIST_NATIVE_OPENMP_PREFIX`` names a libomp prefix for Clang.
    brew_libomp_prefix : str or None
        What ``brew --prefix libomp`` printed, if Homebrew is installed.

    Returns
    -------
    list of Candidate
        * GCC: ``-fopenmp`` to compile and link (libgomp comes with GCC, on any OS).
        * MSVC: ``/openmp``.
        * Apple clang: ``-Xpreprocessor -fopenmp`` and ``-lomp``, with ``-I<p>/include`` and
          ``-L<p>/lib`` for each prefix (``MNIST_NATIVE_OPENMP_PREFIX``, then Homebrew's), and
          last without any, for ``CPPFLAGS``/``LDFLAGS`` to supply.
        * Clang: for each prefix, then without one: ``-fopenmp`` (Debian's clang + libomp-dev),
          then the ``-Xpreprocessor`` form.
        * Unknown: GCC's flags, then Clang's.
    """
    if compiler == "msvc":
        return [Candidate(["/openmp"], [])]
    gcc = Candidate(["-fopenmp"], ["-fopenmp"])
    if compiler == "gcc":
        return [gcc]
    prefixes = _prefixes(env, brew_libomp_prefix)
    if compiler == "apple-clang":
        styles = (["-Xpreprocessor", "-fopenmp"],)
    else:
        styles = (["-fopenmp"], ["-Xpreprocessor", "-fopenmp"])
    candidates = [_libomp_candidate(style, platform, prefix)
                  for prefix in prefixes + [None] for style in styles]
    if compiler != "clang" and compiler != "apple-clang":
        candidates.insert(0, gcc)
    unique = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


# --------------------------------------------------------------------------- the real machine

_LAUNCHERS = ("ccache", "sccache", "distcc")


def _compiler_command(compiler):
    """The compiler executable setuptools will run (a ``ccache`` in front skipped)."""
    command = list(getattr(compiler, "compiler", None) or [])
    while len(command) > 1 and os.path.basename(command[0]) in _LAUNCHERS:
        command = command[1:]
    return command[0] if command else None


def _run(args, timeout=60):
    """stdout + stderr of ``args``, or ``""`` when it cannot run or fails."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout + out.stderr) if out.returncode == 0 else ""


def brew_libomp_prefix():
    """``brew --prefix libomp`` where Homebrew is installed and libomp is there, else None."""
    brew = shutil.which("brew")
    if brew is None:
        brew = next((b for b in ("/opt/homebrew/bin/brew", "/usr/local/bin/brew")
                     if os.access(b, os.X_OK)), None)
    if brew is None:
        return None
    prefix = _run([brew, "--prefix", "libomp"]).strip()
    return prefix if prefix and os.path.isdir(prefix) else None


def detect_compiler(compiler):
    """What setuptools' ``compiler`` object really is.

    Returns
    -------
    (kind, description, brew prefix)
        ``kind`` from ``identify_compiler``; ``description`` the command and the first line of
        its ``--version``; the brew prefix of libomp (Clang only) or None.
    """
    ctype = compiler.compiler_type
    if ctype == "msvc":
        return "msvc", "MSVC", None
    command = _compiler_command(compiler)
    version = _run([command, "--version"]) if command else ""
    kind = identify_compiler(ctype, version)
    first = version.strip().splitlines()[0] if version.strip() else "--version gave nothing"
    brew = brew_libomp_prefix() if kind in ("clang", "apple-clang", "unknown") else None
    return kind, f"{command}: {first}", brew


def openmp_works(compiler, candidate, env=None):
    """Compile, link and run the test program with ``candidate``; True only if all three do.

    ``LDFLAGS`` from ``env`` go to the test program's link too: setuptools gives them to the
    extensions' link but not to ``link_executable``, and they may be where libomp lives.
    """
    env = os.environ if env is None else env
    ldflags = list(candidate.link_args)
    if compiler.compiler_type != "msvc":
        ldflags = shlex.split(env.get("LDFLAGS", "")) + ldflags
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "omp_test.c")
        with open(source, "w") as f:
            f.write(OPENMP_TEST)
        try:
            objects = compiler.compile([source], output_dir=tmp,
                                       extra_postargs=list(candidate.compile_args))
            exe = os.path.join(tmp, "omp_test")
            compiler.link_executable(objects, exe, extra_postargs=ldflags)
            exe_file = exe + (".exe" if sys.platform == "win32" else "")
            out = subprocess.run([exe_file], capture_output=True, text=True, timeout=60)
        except Exception:
            return False
        return out.returncode == 0 and out.stdout.startswith("1 ")


def find_openmp(compiler, env=None, log=print):
    """The first candidate that builds and runs OpenMP with this compiler.

    Returns
    -------
    (Candidate or None, list of Candidate tried, kind, description)
    """
    env = os.environ if env is None else env
    kind, description, brew = detect_compiler(compiler)
    log(f"mnist_native: C compiler: {kind} ({description})")
    candidates = openmp_candidates(sys.platform, kind, env, brew)
    tried = []
    for candidate in candidates:
        tried.append(candidate)
        if openmp_works(compiler, candidate, env):
            return candidate, tried, kind, description
        log(f"mnist_native: OpenMP test failed with: {candidate.describe()}")
    return None, tried, kind, description

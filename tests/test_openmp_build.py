"""The build's OpenMP flags (``src/openmp_build.py``): chosen per compiler, tried in order.

The pure functions are checked for every platform and compiler the project builds with,
none of which needs that platform here: GCC (Linux, and Homebrew's on macOS), LLVM clang,
Apple clang (Homebrew's libomp on Apple silicon and Intel, ``MNIST_NATIVE_OPENMP_PREFIX``,
nothing found), MSVC; then the compiler identification on real ``--version`` texts, and the
compile-link-run probe with a stand-in compiler.

``src/`` is not a package and is not installed: the module is loaded from its file, found
beside this folder in a checkout or an unpacked sdist (both carry ``src/openmp_build.py``).
"""
import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parent.parent / "src" / "openmp_build.py"
if not MODULE_PATH.is_file():
    pytest.skip(f"{MODULE_PATH} is not here (tests run outside a source tree or sdist)",
                allow_module_level=True)


def _load():
    spec = importlib.util.spec_from_file_location("mnist_native_openmp_build", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ob = _load()

GCC = (["-fopenmp"], ["-fopenmp"])
XPRE = ["-Xpreprocessor", "-fopenmp"]
ARM_BREW = "/opt/homebrew/opt/libomp"
INTEL_BREW = "/usr/local/opt/libomp"


def plain(candidates):
    """Candidates as plain (compile, link) tuples of lists, for comparisons."""
    return [(list(c.compile_args), list(c.link_args)) for c in candidates]


# --------------------------------------------------------------------------- candidates


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_gcc_takes_fopenmp_on_any_os(platform):
    # GCC on Linux, Homebrew's gcc-14 on macOS (not clang's flags), MinGW: libgomp, -fopenmp.
    env = {"MNIST_NATIVE_OPENMP_PREFIX": "/opt/llvm"}
    assert plain(ob.openmp_candidates(platform, "gcc", env, ARM_BREW)) == [GCC]
    assert plain(ob.openmp_candidates(platform, "gcc", {})) == [GCC]


def test_clang_linux_tries_fopenmp_first():
    # Debian's clang + libomp-dev builds with a bare -fopenmp: that must stay the first try.
    assert plain(ob.openmp_candidates("linux", "clang", {})) == [
        GCC,
        (XPRE, ["-lomp"]),
    ]


def test_clang_linux_with_prefix_adds_include_lib_and_rpath():
    env = {"MNIST_NATIVE_OPENMP_PREFIX": "/opt/llvm/"}
    assert plain(ob.openmp_candidates("linux", "clang", env)) == [
        (["-fopenmp", "-I/opt/llvm/include"],
         ["-fopenmp", "-L/opt/llvm/lib", "-Wl,-rpath,/opt/llvm/lib"]),
        (XPRE + ["-I/opt/llvm/include"], ["-L/opt/llvm/lib", "-Wl,-rpath,/opt/llvm/lib", "-lomp"]),
        GCC,
        (XPRE, ["-lomp"]),
    ]


def test_homebrew_llvm_clang_on_macos():
    # Homebrew's own clang (not Apple's) accepts -fopenmp; the keg-only libomp needs -I/-L.
    assert plain(ob.openmp_candidates("darwin", "clang", {}, ARM_BREW)) == [
        (["-fopenmp", f"-I{ARM_BREW}/include"], ["-fopenmp", f"-L{ARM_BREW}/lib"]),
        (XPRE + [f"-I{ARM_BREW}/include"], [f"-L{ARM_BREW}/lib", "-lomp"]),
        GCC,
        (XPRE, ["-lomp"]),
    ]


def test_apple_clang_arm64_homebrew():
    assert plain(ob.openmp_candidates("darwin", "apple-clang", {}, ARM_BREW)) == [
        (XPRE + ["-I/opt/homebrew/opt/libomp/include"],
         ["-L/opt/homebrew/opt/libomp/lib", "-lomp"]),
        (XPRE, ["-lomp"]),
    ]


def test_apple_clang_intel_homebrew():
    assert plain(ob.openmp_candidates("darwin", "apple-clang", {}, INTEL_BREW)) == [
        (XPRE + ["-I/usr/local/opt/libomp/include"], ["-L/usr/local/opt/libomp/lib", "-lomp"]),
        (XPRE, ["-lomp"]),
    ]


def test_apple_clang_prefix_variable_comes_before_homebrew():
    env = {"MNIST_NATIVE_OPENMP_PREFIX": "/Users/me/libomp", "PATH": "/usr/bin"}
    assert plain(ob.openmp_candidates("darwin", "apple-clang", env, ARM_BREW)) == [
        (XPRE + ["-I/Users/me/libomp/include"], ["-L/Users/me/libomp/lib", "-lomp"]),
        (XPRE + [f"-I{ARM_BREW}/include"], [f"-L{ARM_BREW}/lib", "-lomp"]),
        (XPRE, ["-lomp"]),
    ]
    # Alone, and the same prefix twice is tried once.
    assert plain(ob.openmp_candidates("darwin", "apple-clang", env)) == [
        (XPRE + ["-I/Users/me/libomp/include"], ["-L/Users/me/libomp/lib", "-lomp"]),
        (XPRE, ["-lomp"]),
    ]
    same = {"MNIST_NATIVE_OPENMP_PREFIX": ARM_BREW}
    assert len(ob.openmp_candidates("darwin", "apple-clang", same, ARM_BREW)) == 2


def test_apple_clang_nothing_found_still_tries_bare_xpreprocessor():
    # No prefix, no Homebrew: CPPFLAGS/LDFLAGS may still carry the paths (setuptools passes
    # them), so the bare form is tried; never a bare -fopenmp, which Apple clang refuses.
    for env in ({}, {"MNIST_NATIVE_OPENMP_PREFIX": "  "}):
        assert plain(ob.openmp_candidates("darwin", "apple-clang", env, None)) == [
            (XPRE, ["-lomp"])]
        assert plain(ob.openmp_candidates("darwin", "apple-clang", env, "")) == [
            (XPRE, ["-lomp"])]


@pytest.mark.parametrize("platform", ["win32", "linux"])
def test_msvc(platform):
    env = {"MNIST_NATIVE_OPENMP_PREFIX": "C:/llvm"}
    assert plain(ob.openmp_candidates(platform, "msvc", env, None)) == [(["/openmp"], [])]


def test_unknown_compiler_tries_gcc_then_clang_forms():
    got = plain(ob.openmp_candidates("linux", "unknown", {}))
    assert got == [GCC, (XPRE, ["-lomp"])]
    assert len(got) == len({repr(c) for c in got})


def test_candidates_are_fresh_lists_and_describe():
    first = ob.openmp_candidates("darwin", "apple-clang", {}, ARM_BREW)
    first[0].compile_args.append("-junk")
    assert "-junk" not in ob.openmp_candidates("darwin", "apple-clang", {}, ARM_BREW)[0][0]
    line = ob.openmp_candidates("darwin", "apple-clang", {}, None)[0].describe()
    assert line == "compile: -Xpreprocessor -fopenmp | link: -lomp"
    assert ob.openmp_candidates("win32", "msvc", {})[0].describe() == \
        "compile: /openmp | link: (nothing)"


# --------------------------------------------------------------------------- identification

VERSIONS = {
    "gcc": [
        "gcc (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright (C) 2022 Free Software Foundation, "
        "Inc.\nThis is free software; see the source for copying conditions.  There is NO\n"
        "warranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.\n",
        "x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0\n",
        "gcc (GCC) 10.2.1 20210130 (Red Hat 10.2.1-11)\nCopyright (C) 2020 Free Software "
        "Foundation, Inc.\n",
        # Homebrew's GCC on macOS: GCC's flags, not clang's.
        "gcc-14 (Homebrew GCC 14.2.0_1) 14.2.0\nCopyright (C) 2024 Free Software Foundation, "
        "Inc.\n",
        "cc (Ubuntu 13.2.0-23ubuntu4) 13.2.0\nCopyright (C) 2023 Free Software Foundation, Inc.\n",
    ],
    "clang": [
        "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\nThread model: posix\n"
        "InstalledDir: /usr/bin\n",
        "clang version 18.1.8 (https://github.com/llvm/llvm-project "
        "3b5b5c1ec4a3095ab096dd780e84d7ab81f3d7ff)\nTarget: x86_64-unknown-linux-gnu\n"
        "Thread model: posix\nInstalledDir: /usr/local/bin\n",
        "Ubuntu clang version 18.1.3 (1ubuntu1)\nTarget: x86_64-pc-linux-gnu\n",
        "Homebrew clang version 19.1.7\nTarget: arm64-apple-darwin24.3.0\nThread model: posix\n"
        "InstalledDir: /opt/homebrew/Cellar/llvm/19.1.7_1/bin\n",
    ],
    "apple-clang": [
        "Apple clang version 15.0.0 (clang-1500.3.9.4)\nTarget: arm64-apple-darwin23.4.0\n"
        "Thread model: posix\nInstalledDir: /Library/Developer/CommandLineTools/usr/bin\n",
        "Apple clang version 14.0.0 (clang-1400.0.29.202)\nTarget: x86_64-apple-darwin21.6.0\n"
        "Thread model: posix\nInstalledDir: /Applications/Xcode.app/Contents/Developer/"
        "Toolchains/XcodeDefault.xctoolchain/usr/bin\n",
        # macOS's /usr/bin/gcc is Apple clang, and older ones say "Configured with ... gxx".
        "Configured with: --prefix=/Library/Developer/CommandLineTools/usr "
        "--with-gxx-include-dir=/Library/Developer/CommandLineTools/SDKs/MacOSX.sdk/usr/"
        "include/c++/4.2.1\nApple clang version 12.0.0 (clang-1200.0.32.29)\n"
        "Target: x86_64-apple-darwin19.6.0\n",
        "Apple LLVM version 10.0.0 (clang-1000.11.45.5)\nTarget: x86_64-apple-darwin18.2.0\n",
    ],
    "unknown": [
        "",
        "Intel(R) oneAPI DPC++/C++ Compiler 2024.0.2 (2024.0.2.20231213)\nTarget: "
        "x86_64-unknown-linux-gnu\nThread model: posix\n",
    ],
}


@pytest.mark.parametrize("kind,text", [(k, t) for k, texts in VERSIONS.items() for t in texts])
def test_identify_compiler_from_version_text(kind, text):
    assert ob.identify_compiler("unix", text) == kind


def test_identify_compiler_type_first():
    assert ob.identify_compiler("msvc", "") == "msvc"
    assert ob.identify_compiler("msvc", "whatever") == "msvc"
    assert ob.identify_compiler("mingw32", "") == "gcc"
    assert ob.identify_compiler(
        "mingw32", "gcc.exe (Rev2, Built by MSYS2 project) 13.2.0\n") == "gcc"
    assert ob.identify_compiler("unix", None) == "unknown"


# --------------------------------------------------------------------------- the probe

posix_only = pytest.mark.skipif(os.name != "posix", reason="stand-in compilers are shell scripts")


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class FakeCompiler:
    """What ``openmp_works`` and ``detect_compiler`` use of a setuptools compiler."""

    compiler_type = "unix"

    def __init__(self, command, run_output="1 2"):
        self.compiler = command
        self.run_output = run_output
        self.calls = []

    def compile(self, sources, output_dir, extra_postargs):
        self.calls.append(("compile", list(extra_postargs)))
        return [os.path.join(output_dir, "omp_test.o")]

    def link_executable(self, objects, exe, extra_postargs):
        self.calls.append(("link", list(extra_postargs)))
        _script(Path(exe), f'echo "{self.run_output}"\n')


@posix_only
def test_openmp_works_needs_a_run_that_counts_threads():
    candidate = ob.Candidate(XPRE, ["-lomp"])
    good = FakeCompiler(["cc"])
    env = {"LDFLAGS": "-L/opt/homebrew/opt/libomp/lib -Wl,-x"}
    assert ob.openmp_works(good, candidate, env) is True
    # LDFLAGS reach the test program's link (setuptools' link_executable leaves them out).
    assert good.calls == [("compile", XPRE),
                          ("link", ["-L/opt/homebrew/opt/libomp/lib", "-Wl,-x", "-lomp"])]
    assert ob.openmp_works(FakeCompiler(["cc"], run_output="0 1"), candidate, {}) is False


def test_openmp_works_false_when_compile_fails():
    class Broken(FakeCompiler):
        def compile(self, *args, **kwargs):
            raise RuntimeError("clang: error: unsupported option '-fopenmp'")

    assert ob.openmp_works(Broken(["cc"]), ob.Candidate(["-fopenmp"], ["-fopenmp"]), {}) is False


@posix_only
def test_detect_compiler_runs_the_real_command(tmp_path, monkeypatch):
    apple = _script(tmp_path / "cc", "echo 'Apple clang version 15.0.0 (clang-1500.3.9.4)'\n"
                                     "echo 'Target: arm64-apple-darwin23.4.0'\n")
    monkeypatch.setattr(ob, "brew_libomp_prefix", lambda: ARM_BREW)
    # A ccache in front is skipped: the compiler behind it is what counts.
    kind, description, brew = ob.detect_compiler(FakeCompiler(["ccache", str(apple), "-O2"]))
    assert (kind, brew) == ("apple-clang", ARM_BREW)
    assert description == f"{apple}: Apple clang version 15.0.0 (clang-1500.3.9.4)"
    gcc = _script(tmp_path / "gcc-14", "echo 'gcc-14 (Homebrew GCC 14.2.0_1) 14.2.0'\n")
    assert ob.detect_compiler(FakeCompiler([str(gcc)]))[::2] == ("gcc", None)
    kind, description, _ = ob.detect_compiler(FakeCompiler([str(tmp_path / "absent")]))
    assert kind == "unknown" and "--version gave nothing" in description


def test_detect_compiler_msvc_runs_nothing():
    class Msvc:
        compiler_type = "msvc"

    assert ob.detect_compiler(Msvc()) == ("msvc", "MSVC", None)


def test_find_openmp_takes_the_first_that_works(monkeypatch):
    monkeypatch.setattr(ob, "detect_compiler", lambda c: ("apple-clang", "cc: Apple", ARM_BREW))
    monkeypatch.setattr(sys, "platform", "darwin")
    works = {}
    monkeypatch.setattr(ob, "openmp_works", lambda c, cand, env: works.get(tuple(cand[0]), False))
    lines = []
    env = {"MNIST_NATIVE_OPENMP_PREFIX": "/nowhere"}
    works[tuple(XPRE + [f"-I{ARM_BREW}/include"])] = True
    chosen, tried, kind, _ = ob.find_openmp(object(), env, lines.append)
    assert kind == "apple-clang"
    assert chosen == (XPRE + [f"-I{ARM_BREW}/include"], [f"-L{ARM_BREW}/lib", "-lomp"])
    assert [c[0][-1] for c in tried] == ["-I/nowhere/include", f"-I{ARM_BREW}/include"]
    assert lines[0] == "mnist_native: C compiler: apple-clang (cc: Apple)"
    assert "OpenMP test failed with: compile: -Xpreprocessor -fopenmp -I/nowhere" in lines[1]
    works.clear()
    chosen, tried, _, _ = ob.find_openmp(object(), env, lines.append)
    assert chosen is None and len(tried) == 3

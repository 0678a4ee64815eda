"""Check what MSVC would compile, since no MSVC runs here.

1. Every header in src/, reduced by unifdef to what MSVC sees (x64 and arm64), holds none of
   the GNU-only constructs MSVC rejects.
2. The C that Cython generates for src/*.pyx keeps to OpenMP 2.0, MSVC's: every
   ``#pragma omp for`` loop has a signed index, and no clause is newer than 2.0.

Usage: python .ci/msvc_view.py [GENERATED_C ...]  (default: src/*.c, from a build)
Exits 1 with every finding listed, 0 when clean.
"""
import glob
import re
import subprocess
import sys

MSVC_VIEWS = {
    "x64": ["-D_MSC_VER=1930", "-D_M_X64=100", "-D_WIN32=1", "-U_M_ARM64"],
    "arm64": ["-D_MSC_VER=1930", "-D_M_ARM64=1", "-D_WIN32=1", "-U_M_X64"],
}
NOT_MSVC = ["-U__GNUC__", "-U__clang__", "-U__x86_64__", "-U__i386__", "-U__aarch64__",
            "-U_OPENMP"]
GNU_ONLY = {
    "__attribute__": r"__attribute__",
    "__builtin_": r"__builtin_",
    "vector_size": r"vector_size",
    '_Pragma("GCC': r'_Pragma\s*\(\s*"GCC',
    "#pragma GCC": r"#\s*pragma\s+GCC",
    "__typeof__": r"__typeof__|\btypeof\b",
    "statement expression": r"\(\s*\{",
    "inline assembly": r"__asm__|\basm\b",
    "_Static_assert": r"_Static_assert",
}
SIGNED = {"Py_ssize_t", "int", "long", "long long", "int64_t", "int32_t", "ptrdiff_t",
          "npy_intp", "signed"}
NEWER_THAN_OMP2 = r"\b(collapse|simd|task\w*|reduction\s*\(\s*(min|max)|atomic\s+capture)\b"


def msvc_view(path, defines):
    out = subprocess.run(["unifdef", *defines, *NOT_MSVC, path], capture_output=True,
                         text=True)
    if out.returncode not in (0, 1):  # 1: the file changed
        raise SystemExit(f"unifdef failed on {path}: {out.stderr}")
    return out.stdout


def strip_comments(code):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", code, flags=re.S)


def header_findings():
    findings = []
    for view, defines in MSVC_VIEWS.items():
        for path in sorted(glob.glob("src/*.h")):
            code = strip_comments(msvc_view(path, defines))
            for lineno, line in enumerate(code.splitlines(), 1):
                for name, pattern in GNU_ONLY.items():
                    if re.search(pattern, line):
                        findings.append(f"{path} ({view} view) line {lineno}: {name}: "
                                        f"{line.strip()}")
    return findings


def omp_findings(c_path):
    findings, loops = [], 0
    lines = open(c_path, encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        if not re.match(r"\s*#\s*pragma\s+omp\b", line):
            continue
        if re.search(NEWER_THAN_OMP2, line):
            findings.append(f"{c_path}:{i + 1}: newer than OpenMP 2.0: {line.strip()}")
        if not re.match(r"\s*#\s*pragma\s+omp\s+(parallel\s+)?for\b", line):
            continue
        loop = next((m for m in (re.match(r"\s*for\s*\(\s*(\w+)\s*=", lines[j])
                                 for j in range(i + 1, min(i + 6, len(lines)))) if m), None)
        if loop is None:
            findings.append(f"{c_path}:{i + 1}: no for loop after the pragma")
            continue
        var = loop.group(1)
        declared = None
        for j in range(i, -1, -1):  # Cython declares a function's temporaries at its top
            m = re.match(rf"\s*((?:\w+\s+)*?\w+)\s+{var}\s*;", lines[j])
            if m:
                declared = m.group(1).strip()
                break
        loops += 1
        if declared not in SIGNED:
            findings.append(f"{c_path}:{i + 1}: loop index {var} is {declared!r}, not signed")
    return findings, loops


def main(argv):
    c_files = argv or sorted(glob.glob("src/*.c"))
    if not c_files:
        raise SystemExit("no generated C: build first (python setup.py build_ext --inplace)")
    findings = header_findings()
    print(f"MSVC view of src/*.h (x64, arm64): {len(findings)} GNU-only constructs")
    for path in c_files:
        found, loops = omp_findings(path)
        findings += found
        print(f"{path}: {loops} OpenMP loops, {len(found)} not OpenMP 2.0")
        if loops == 0:
            findings.append(f"{path}: no OpenMP loop found (was it built with prange?)")
    for f in findings:
        print("  " + f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

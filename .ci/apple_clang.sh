#!/usr/bin/env bash
# An Apple-clang-like build, on Debian: the macOS OpenMP path of setup.py, proven here.
#
# Apple clang refuses a bare -fopenmp ("clang: error: unsupported option '-fopenmp'"), ships
# no omp.h, and finds LLVM's libomp only where it is told: Homebrew's keg-only libomp, with
# -Xpreprocessor -fopenmp, -I<prefix>/include, -L<prefix>/lib and -lomp.  This script
# imitates all of that around Debian's clang 14 + libomp:
#   * a wrapper `clang` that rejects a bare -fopenmp, answers --version as Apple clang does,
#     and runs the real clang with a resource folder that has no omp.h;
#   * a Homebrew-like libomp prefix, PREFIX/include/omp.h and PREFIX/lib/libomp.so, made of
#     links to Debian's files, named by MNIST_NATIVE_OPENMP_PREFIX.
# Then it builds the package with that wrapper (MNIST_NATIVE_REQUIRE_OPENMP=1: a serial
# fallback fails), checks the flags chosen and build_info(), and runs the whole test suite.
#
# Needs: Debian 12 with python3 (venv), pip and root for apt-get.  Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
t0=$SECONDS

export MNIST_NATIVE_DATA="${MNIST_NATIVE_DATA:-$(cd .. && pwd)/shared/data/mnist}"
export MNIST_NATIVE_REQUIRE_OPENMP=1   # a serial fallback fails the build
export MNIST_NATIVE_EXPECT_OPENMP=1    # and the tests check that it did not happen
export MPLBACKEND=Agg
unset PYTHONPATH

echo "== apt-get: clang, libomp-dev"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq clang libomp-dev >/dev/null
real_clang="$(command -v clang)"
echo "$("$real_clang" --version | head -n1) at $real_clang"

work="$(mktemp -d /tmp/mnist-apple-clang.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# --- Homebrew's keg, imitated: PREFIX/include/omp.h and PREFIX/lib/libomp.so ---------------
resource="$("$real_clang" -print-resource-dir)"
omp_h="$resource/include/omp.h"
libomp="$(find /usr/lib/llvm-*/lib -maxdepth 1 -name libomp.so | sort -V | tail -n1)"
if [ ! -f "$omp_h" ] || [ -z "$libomp" ]; then
  echo "libomp-dev's omp.h or libomp.so not found" >&2; exit 1
fi
prefix="$work/opt/libomp"
mkdir -p "$prefix/include" "$prefix/lib"
ln -s "$omp_h" "$prefix/include/omp.h"
ln -s "$libomp" "$prefix/lib/libomp.so"
echo "libomp prefix: $prefix (omp.h -> $omp_h, libomp.so -> $libomp)"

# --- clang's resource folder without OpenMP's headers: like Apple's, omp.h only via -I ------
fake_resource="$work/clang-resource"
mkdir -p "$fake_resource/include"
for entry in "$resource"/*; do
  [ "$(basename "$entry")" = include ] || ln -s "$entry" "$fake_resource/"
done
for entry in "$resource"/include/*; do
  case "$(basename "$entry")" in
    omp.h | omp-tools.h | ompt.h) ;;
    *) ln -s "$entry" "$fake_resource/include/" ;;
  esac
done

# --- the wrapper ---------------------------------------------------------------------------
wrapper="$work/bin/clang"
mkdir -p "$work/bin"
cat > "$wrapper" <<EOF
#!/usr/bin/env bash
# Apple clang, imitated by .ci/apple_clang.sh around $real_clang.
prev=
for arg in "\$@"; do
  case "\$arg" in
    --version)
      echo "Apple clang version 14.0.0 (clang-1400.0.29.202)"
      echo "Target: \$("$real_clang" -dumpmachine)"
      echo "Thread model: posix"
      echo "InstalledDir: $work/bin"
      echo "(imitated: $("$real_clang" --version | head -n1), refusing a bare -fopenmp)"
      exit 0 ;;
    -fopenmp | -fopenmp=*)
      if [ "\$prev" != "-Xpreprocessor" ]; then
        echo "clang: error: unsupported option '\$arg'" >&2
        exit 1
      fi ;;
  esac
  prev="\$arg"
done
exec "$real_clang" -resource-dir="$fake_resource" "\$@"
EOF
chmod +x "$wrapper"

echo "== the wrapper refuses what Apple clang refuses"
printf '#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n' > "$work/t.c"
if "$wrapper" -fopenmp -c "$work/t.c" -o "$work/t.o" 2> "$work/err.txt"; then
  echo "the wrapper accepted a bare -fopenmp" >&2; exit 1
fi
cat "$work/err.txt"
if "$wrapper" -Xpreprocessor -fopenmp -c "$work/t.c" -o "$work/t.o" 2> /dev/null; then
  echo "the wrapper found omp.h without -I: not like Apple clang" >&2; exit 1
fi
echo "and finds no omp.h without -I"
"$wrapper" -Xpreprocessor -fopenmp -I"$prefix/include" -c "$work/t.c" -o "$work/t.o"
"$wrapper" "$work/t.o" -L"$prefix/lib" -lomp -o "$work/t" && "$work/t"
echo "accepts -Xpreprocessor -fopenmp -I$prefix/include ... -L$prefix/lib -lomp"

# --- build and install, with the wrapper, from a clean copy of the tree --------------------
# (a copy: an earlier gcc build's build/ folder here would otherwise be reused as it is)
echo "== pip install .[test] with CC=$wrapper, MNIST_NATIVE_OPENMP_PREFIX=$prefix"
tree="$work/tree"
mkdir -p "$tree"
tar -C "$repo" --exclude=./.git --exclude=./build --exclude='./.venv*' --exclude='./dist*' \
  --exclude='*.egg-info' --exclude='*.so' --exclude='src/*.c' -cf - . | tar -C "$tree" -xf -
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
t_build=$SECONDS
if ! (cd "$tree" && CC="$wrapper" LDSHARED="$wrapper -shared" \
      MNIST_NATIVE_OPENMP_PREFIX="$prefix" \
      "$work/venv/bin/python" -m pip install -v ".[test]" > "$work/build.log" 2>&1); then
  tail -n 80 "$work/build.log" >&2
  echo "the Apple-clang-like build failed" >&2; exit 1
fi
echo "built and installed in $((SECONDS - t_build)) s"
grep -E '^ *mnist_native: ' "$work/build.log" | sed 's/^ *//'
grep -q 'mnist_native: C compiler: apple-clang ' "$work/build.log" \
  || { echo "setup.py did not identify the wrapper as Apple clang" >&2; exit 1; }
chosen="$(grep -E '^ *mnist_native: OpenMP with: ' "$work/build.log" | sed 's/^ *//')"
expected="mnist_native: OpenMP with: compile: -Xpreprocessor -fopenmp -I$prefix/include"
expected="$expected | link: -L$prefix/lib "
case "$chosen" in
  "$expected"*" -lomp") ;;
  *) echo "unexpected OpenMP flags: '$chosen'" >&2; exit 1 ;;
esac

echo "== the installed copy"
(cd "$work" && "$work/venv/bin/python" - <<'EOF'
import mnist_native, os
info = mnist_native.build_info()
print("build_info:", info)
assert info["openmp"] is True, info
assert info["compiler"].startswith("clang "), info
assert info["max_threads"] >= 1, info
libs = [os.path.join(os.path.dirname(mnist_native.__file__), f)
        for f in os.listdir(os.path.dirname(mnist_native.__file__)) if f.endswith(".so")]
print("extensions:", ", ".join(sorted(os.path.basename(l) for l in libs)))
EOF
)
for so in "$work"/venv/lib/python3*/site-packages/mnist_native/*.so; do
  libs="$(ldd "$so")"   # not piped into grep -q: with pipefail, ldd's SIGPIPE would fail it
  case "$libs" in *libgomp*) echo "$so links GCC's libgomp" >&2; exit 1 ;; esac
  case "$libs" in
    *libomp.so*) echo "$(basename "$so"): $(grep -o 'libomp\.so[^ ]* => [^ ]*' <<< "$libs")" ;;
    *) echo "$so does not link libomp" >&2; exit 1 ;;
  esac
done

echo "== the whole test suite, from the repository root, against the clang build"
. "$work/venv/bin/activate"
t_tests=$SECONDS
pytest -p no:cacheprovider 2>&1 | tee "$work/pytest.log" | tail -n 25
echo "tests: $(tail -n 1 "$work/pytest.log" | tr -d '=' | sed 's/^ *//') ($((SECONDS - t_tests)) s)"
deactivate
echo "apple_clang.sh: Apple-clang-like build with OpenMP verified in $((SECONDS - t0)) s"

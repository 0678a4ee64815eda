"""Mutation testing of the native kernels: do the kernel tests catch a real bug?

Each mutant is one small change to one line of the kernels' sources (an operator swapped, a
loop bound moved by one, a term dropped, two indices swapped, a constant changed).  The
script works in scratch copies of the repository: for each mutant it rebuilds the
extensions in place there (``MNIST_NATIVE_OPT=-O0``: a few seconds), runs the kernel tests
with ``-x`` and records the outcome:

* killed: a test failed (a crash counts);
* timed out: the tests ran past the limit (an endless loop, say): counted as caught;
* killed (sanitizers): the quick build's tests passed, but the same tests on a build with
  bounds checks, AddressSanitizer and UBSan (CI's debug step) failed: an out-of-bounds
  access that happened to change no result;
* survived: every test passed on both builds.  A survivor is a missing test, unless it is
  listed in ``equivalent.toml`` with the reason it cannot change any result;
* built the same: the mutant compiled to the very same libraries as the original (code not
  built on this architecture, or folded away by the compiler);
* stillborn: the mutant does not compile.  Neither of the last two counts.

The sample is drawn evenly from the four files, with a fixed seed: the same mutants on any
clone of the same sources.  The score is caught / (caught + survivors not listed as
equivalent).

    python tests/mutation/run.py --jobs 2          # 160 mutants, 40 per file
    python tests/mutation/run.py --resume          # go on after an interruption
    python tests/mutation/run.py --only ID [ID ...]  # run some again (after a new test)
    python tests/mutation/run.py --no-sanitizers    # survivors not tried on ASan/UBSan
    python tests/mutation/run.py --list            # the sample, without running it
    python tests/mutation/run.py --report          # the report of the outcomes so far

Needs Python >= 3.11 (tomllib), GCC or Clang with their sanitizer runtimes, and the build
requirements (Cython, NumPy, setuptools); the tests find MNIST through MNIST_NATIVE_DATA
as usual (they skip without it).  Outcomes so far are kept in ``progress.jsonl`` (not in
git); every run ends by writing the survivors to ``survivors.txt`` and every outcome to
``last_run.json`` beside this file.  1 to 2 hours for the 160 on two cores.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROGRESS = HERE / "progress.jsonl"  # outcomes so far, for --resume (not kept in git)
SOURCES = ["src/fused_body.h", "src/fused.h", "src/_train.pyx", "src/_kernels.pyx"]
# The kernel tests, the quickest to fail first.
TESTS = ["tests/test_part1.py", "tests/test_fused.py", "tests/test_native_vs_reference.py",
         "tests/test_variants.py", "tests/test_robustness.py"]


@dataclass(frozen=True)
class Mutant:
    file: str
    line: int        # 1-based, in the sources as they are now
    operator: str
    original: str    # the line's text
    mutated: str
    occurrence: int = 0  # how many identical lines come before this one in the file

    @property
    def id(self):
        """Stable while the line itself is unchanged (line numbers may move)."""
        key = f"{self.file}\0{self.original.strip()}\0{self.mutated.strip()}"
        if self.occurrence:
            key += f"\0{self.occurrence}"
        return hashlib.sha1(key.encode()).hexdigest()[:10]


# -- which parts of a line are code ------------------------------------------------------

def code_lines(path):
    """(line number, text, code part) for each line holding code: comments, docstrings,
    includes, imports and declarations of external C are left out."""
    text = path.read_text().splitlines()
    c_like = path.suffix == ".h"
    in_comment = in_doc = in_extern = False
    for number, line in enumerate(text, 1):
        stripped = line.strip()
        if c_like:
            code = line
            if in_comment:
                if "*/" not in code:
                    continue
                code = " " * (code.index("*/") + 2) + code[code.index("*/") + 2:]
                in_comment = False
            code = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group()), code)
            if "/*" in code:
                code = code[:code.index("/*")]
                in_comment = True
            code = code.split("//")[0]
            if re.match(r"\s*#\s*(include|ifn?def|endif|else|undef|pragma)", code):
                continue
        else:
            if in_doc:
                if '"""' in stripped:
                    in_doc = False
                continue
            if stripped.startswith('"""') or stripped.startswith('r"""'):
                in_doc = stripped.count('"""') == 1
                continue
            if in_extern:
                if line.startswith((" ", "\t")) or not stripped:
                    continue
                in_extern = False
            if stripped.startswith("cdef extern"):
                in_extern = True
                continue
            if re.match(r"(cimport|from|import|@|def |cdef |cpdef )", stripped) and \
                    not re.match(r"cdef (int|double|float|int64_t|Py_ssize_t|floating)\b.*=",
                                 stripped):
                continue
            code = line.split("#")[0]
        if code.strip():
            yield number, line, code


# -- the operators: each yields mutated versions of one line ------------------------------

def _replace_at(line, start, end, new):
    return line[:start] + new + line[end:]


def _each(line, code, pattern, make, operator):
    for m in re.finditer(pattern, code):
        new = make(m)
        if new is not None and new != m.group(0):
            yield operator, _replace_at(line, m.start(), m.end(), new)


ARITH = {" + ": " - ", " - ": " + ", " * ": " / ", " / ": " * ", "+=": "-=", "-=": "+=",
         "*=": "/="}
COMPARE = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
IDENT = r"[A-Za-z_]\w*"
OPERAND = rf"(?:\(\w+\))?(?:{IDENT}|\d[\w.]*)(?:\[[^\]]*\]|\([^()]*\))*"


def arithmetic(line, code):
    yield from _each(line, code, r" [+\-*/] |[+\-*]=", lambda m: ARITH[m.group(0)],
                     "arithmetic")


def comparison(line, code):
    # Not <<, >>, ->, <=> or a template/include; <= and >= before < and >.
    pattern = r"(?<![<>\-=!])(<=|>=|==|!=|<|>)(?![<>=])"
    yield from _each(line, code, pattern, lambda m: COMPARE[m.group(0)], "comparison")


def loop_bound(line, code):
    """A loop's bound moved by one: C `for (...; i < B; ...)`, Cython `range(B)`."""
    for m in re.finditer(r"for \(.*?;\s*\w+\s*(<=|<|>=|>)\s*([^;]+);", code):
        start, end = m.span(2)
        for delta in (" + 1", " - 1"):
            yield "loop bound", _replace_at(line, start, end, f"({m.group(2)}){delta}")
    for m in re.finditer(r"\b(p?range)\(([^,()]+(?:\([^()]*\))?)(,|\))", code):
        start, end = m.span(2)
        for delta in (" + 1", " - 1"):
            yield "loop bound", _replace_at(line, start, end, f"{m.group(2)}{delta}")


def dropped_term(line, code):
    """`a + b` -> `a`, and a whole accumulating statement removed."""
    yield from _each(line, code, rf" [+\-] {OPERAND}(?= *[;,)\]]| *$)", lambda m: "",
                     "dropped term")
    m = re.match(r"(\s*)([^=]*[^=!<>+\-*/])\s*([+\-*/]?=)\s*(.+?);?\s*$", code)
    if m and m.group(3) in ("+=", "-=") and not code.strip().startswith(("for", "if")):
        yield "dropped term", m.group(1) + ("pass" if not line.rstrip().endswith(";") else ";")


INDEX_NAMES = r"\b(s|v|q|p|i|j|r|c|t|g|gi|j0|r0|r1|t0|t1|row|col|k|h|hp|n|m)\b"


def swapped_indices(line, code):
    """Two indices swapped: `a[i, j]` -> `a[j, i]`, and in a C subscript the first two
    index variables exchanged."""
    for m in re.finditer(r"\[([^\[\],]+),\s*([^\[\],]+)\]", code):
        if m.group(1).strip() != m.group(2).strip():
            yield "swapped indices", _replace_at(line, m.start(), m.end(),
                                                 f"[{m.group(2).strip()}, {m.group(1).strip()}]")
    for m in re.finditer(r"\[([^\[\]]+)\]", code):
        names = list(re.finditer(INDEX_NAMES, m.group(1)))
        distinct = [n for n in names if n.group(0) != names[0].group(0)] if names else []
        if distinct:
            a, b = names[0], distinct[0]
            inner = m.group(1)
            inner = inner[:a.start()] + b.group(0) + inner[a.end():b.start()] + a.group(0) + \
                inner[b.end():]
            yield "swapped indices", _replace_at(line, m.start(1), m.end(1), inner)


def constant(line, code):
    """A literal changed: an integer n -> n + 1 (and 1 -> 0), a decimal x -> x + 1."""
    for m in re.finditer(r"(?<![\w.])(\d+\.\d*(?:[eE][+-]?\d+)?|\d+)(?![\w.])", code):
        text = m.group(0)
        if "." in text or "e" in text.lower():
            new = repr(float(text) + 1.0)
        else:
            new = "0" if text == "1" else str(int(text) + 1)
        yield "constant", _replace_at(line, m.start(), m.end(), new)


OPERATORS = [arithmetic, comparison, loop_bound, dropped_term, swapped_indices, constant]


def mutants_of(relpath):
    path = REPO / relpath
    seen, occurrences = set(), {}
    for number, line, code in code_lines(path):
        occurrence = occurrences.get(line.strip(), 0)
        occurrences[line.strip()] = occurrence + 1
        for op in OPERATORS:
            for operator, mutated in op(line, code):
                if mutated != line and (number, mutated) not in seen:
                    seen.add((number, mutated))
                    yield Mutant(relpath, number, operator, line, mutated, occurrence)


def sample(per_file, seed):
    chosen = []
    for relpath in SOURCES:
        pool = list(mutants_of(relpath))
        rng = random.Random(f"{seed}:{relpath}")
        chosen += sorted(rng.sample(pool, min(per_file, len(pool))),
                         key=lambda m: (m.line, m.mutated))
    return chosen


# -- building and testing -----------------------------------------------------------------

def scratch_copy(dest, head=False):
    """The repository's files in `dest`: the last commit's (`head`), or the working tree's
    tracked and untracked ones (not the ignored)."""
    if head:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def build(tree, sanitized=False):
    """Build the extensions in place in `tree`: quickly (-O0), or with bounds checks,
    AddressSanitizer and UBSan (`sanitized`, as CI's debug step).  Returns a digest of the
    libraries, or None when the build fails."""
    env = dict(os.environ, MNIST_NATIVE_OPT="-O0")
    if sanitized:
        env["MNIST_NATIVE_DEBUG"] = "1"
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                            cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    digest = hashlib.sha1()
    for lib in sorted((tree / "mnist_native").glob("_*.so")) + \
            sorted((tree / "mnist_native").glob("_*.pyd")):
        digest.update(lib.read_bytes())
    return digest.hexdigest()


def sanitizer_preload():
    """LD_PRELOAD for a sanitized build's tests (GCC's runtimes), as .ci/run does."""
    libs = [subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                           text=True).stdout.strip() for name in ("libasan.so", "libubsan.so")]
    return ":".join(libs)


def run_tests(tree, timeout, sanitized=False):
    # One thread per test run unless a test asks for more (the thread-count tests do): runs
    # of --jobs mutants at once then share the cores without oversubscribing them.
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if sanitized:
        env.update(LD_PRELOAD=sanitizer_preload(), ASAN_OPTIONS="detect_leaks=0",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           *[t for t in TESTS if (tree / t).exists()]]
    try:
        result = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timed out", ""
    if result.returncode == 0:
        return "survived", ""
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.M)
    last = (result.stdout.strip().splitlines() or [""])[-1]
    return "killed", failed[0] if failed else last


class Slot:
    """One worker's scratch trees: a quick build, and a sanitized build for survivors."""

    def __init__(self, head, sanitizers=True):
        self.trees = [Path(tempfile.mkdtemp(prefix="mnist-mutation-"))
                      for _ in range(2 if sanitizers else 1)]
        for tree in self.trees:
            scratch_copy(tree, head)
        self.quick_hash = build(self.trees[0])
        if self.quick_hash is None or (sanitizers and build(self.trees[1], sanitized=True)
                                       is None):
            raise SystemExit("the unmutated sources do not build")
        self.sanitized_checked = False

    def check_sanitized(self, timeout):
        """Before the sanitized build judges a mutant: its tests pass unmutated (once)."""
        if not self.sanitized_checked:
            outcome, detail = run_tests(self.trees[1], 3 * timeout, sanitized=True)
            if outcome != "survived":
                raise SystemExit(f"the kernel tests fail on the unmutated sanitized build: "
                                 f"{outcome} {detail}")
            self.sanitized_checked = True

    def remove(self):
        for tree in self.trees:
            shutil.rmtree(tree, ignore_errors=True)


def mutated_file(tree, mutant):
    """Write the mutant into `tree`; returns the original text, to put back."""
    path = tree / mutant.file
    original = path.read_text()
    lines = original.split("\n")
    assert lines[mutant.line - 1] == mutant.original, "sources changed since sampling"
    lines[mutant.line - 1] = mutant.mutated
    path.write_text("\n".join(lines))
    return original


def try_mutant(slot, mutant, timeout):
    """Build and test one mutant; a survivor is tried again on the sanitized build, if the
    slot has one (an out-of-bounds write that changes no result is still a bug CI's debug
    step catches)."""
    start = time.monotonic()
    quick = slot.trees[0]
    original = mutated_file(quick, mutant)
    try:
        built = build(quick)
        if built is None:
            outcome, detail = "stillborn", ""
        elif built == slot.quick_hash:
            outcome, detail = "built the same", ""
        else:
            outcome, detail = run_tests(quick, timeout)
    finally:
        (quick / mutant.file).write_text(original)
    if outcome == "survived" and len(slot.trees) > 1:
        sanitized = slot.trees[1]
        slot.check_sanitized(timeout)
        original = mutated_file(sanitized, mutant)
        try:
            if build(sanitized, sanitized=True) is not None:
                outcome, detail = run_tests(sanitized, 3 * timeout, sanitized=True)
                if outcome != "survived":
                    outcome = f"{outcome} (sanitizers)"
        finally:
            (sanitized / mutant.file).write_text(original)
    return outcome, detail, time.monotonic() - start


def load_equivalent():
    with open(HERE / "equivalent.toml", "rb") as f:
        entries = tomllib.load(f).get("mutant", [])
    return {e["id"]: e for e in entries}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-file", type=int, default=40, help="mutants per file (40)")
    parser.add_argument("--seed", default="2026", help="the sample's seed")
    parser.add_argument("--jobs", type=int, default=1, help="mutants built and tested at once")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before a test run counts as timed out "
                             "(default: 4x the original's run, at least 120)")
    parser.add_argument("--only", nargs="+", metavar="ID",
                        help="run these mutants of the sample again (the others keep their "
                             "outcomes in progress.jsonl)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the outcomes so far (progress.jsonl), run the rest")
    parser.add_argument("--head", action="store_true",
                        help="test the last commit, not the working tree")
    parser.add_argument("--list", action="store_true", help="print the sample and stop")
    parser.add_argument("--no-sanitizers", action="store_true",
                        help="do not try survivors again on the sanitized build (faster: a "
                        "survivor may then be one the sanitizers catch; --only ID tries it)")
    parser.add_argument("--report", action="store_true",
                        help="write the report of the outcomes so far, running nothing")
    args = parser.parse_args(argv)

    mutants = sample(args.per_file, args.seed)
    if args.list:
        for m in mutants:
            print(f"{m.id} {m.file}:{m.line} [{m.operator}] {m.mutated.strip()}")
        return 0
    done = {}
    if (args.resume or args.only or args.report) and PROGRESS.exists():
        for line in PROGRESS.read_text().splitlines():
            record = json.loads(line)
            done[record["id"]] = record
    if args.report:
        todo = []
    elif args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            raise SystemExit(f"not in the sample: {', '.join(sorted(unknown))}")
        todo = [m for m in mutants if m.id in set(args.only)]
    else:
        # A mutant listed as equivalent is only run again when asked for (--only): it
        # counts for nothing either way.
        equivalent = load_equivalent()
        todo = [m for m in mutants if m.id not in done and m.id not in equivalent]

    slots = []
    try:
        if todo:
            print(f"building the original ({args.jobs} worker(s))...", flush=True)
            slots = [Slot(args.head, not args.no_sanitizers) for _ in range(args.jobs)]
            started = time.monotonic()
            outcome, detail = run_tests(slots[0].trees[0], timeout=None)
            baseline = time.monotonic() - started
            if outcome != "survived":
                raise SystemExit(f"the kernel tests fail on the unmutated sources: {detail}")
            timeout = args.timeout or max(120.0, 4 * baseline)
            print(f"original: tests pass in {baseline:.0f} s; timeout {timeout:.0f} s; "
                  f"{len(todo)} of {len(mutants)} mutants to run", flush=True)
        else:
            timeout = None
        free = list(slots)

        def work(m):
            slot = free.pop()
            try:
                return m, try_mutant(slot, m, timeout)
            finally:
                free.append(slot)

        with concurrent.futures.ThreadPoolExecutor(max(args.jobs, 1)) as pool:
            for i, (m, (outcome, detail, seconds)) in enumerate(pool.map(work, todo), 1):
                done[m.id] = dict(asdict(m), id=m.id, outcome=outcome, detail=detail,
                                  seconds=round(seconds, 1))
                PROGRESS.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
                print(f"[{i}/{len(todo)}] {outcome:>20}  {m.id} {m.file}:{m.line} "
                      f"[{m.operator}] {m.mutated.strip()}  ({seconds:.0f} s)", flush=True)
    finally:
        for slot in slots:
            slot.remove()

    equivalent = load_equivalent()
    results = [done[m.id] if m.id in done
               else dict(asdict(m), id=m.id, outcome="equivalent (listed, not run)",
                         detail="", seconds=0.0)
               for m in mutants if m.id in done or m.id in equivalent]
    report(results, len(mutants), args)
    return 0


def report(results, sampled, args):
    """Print the counts and the score; write survivors.txt and last_run.json."""
    equivalent = load_equivalent()
    for r in results:
        if r["outcome"] == "survived" and r["id"] in equivalent:
            r["outcome"] = "equivalent (listed)"
    count = {}
    for r in results:
        count[r["outcome"]] = count.get(r["outcome"], 0) + 1
    if len(results) < sampled:
        count["not run yet"] = sampled - len(results)
    caught = sum(v for k, v in count.items() if k.startswith(("killed", "timed out")))
    survivors = [r for r in results if r["outcome"] == "survived"]
    scored = caught + len(survivors)
    score = 100.0 * caught / scored if scored else 100.0
    print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(count.items())))
    print(f"score: {caught} of {scored} non-equivalent mutants caught ({score:.1f} %)")
    with open(HERE / "survivors.txt", "w") as f:
        f.write(f"# Survivors not listed in equivalent.toml (seed {args.seed}, "
                f"{args.per_file} per file): {len(survivors)}\n")
        for r in survivors:
            f.write(f"{r['id']} {r['file']}:{r['line']} [{r['operator']}]\n"
                    f"    - {r['original'].strip()}\n    + {r['mutated'].strip()}\n")
    with open(HERE / "last_run.json", "w") as f:
        json.dump(dict(seed=args.seed, per_file=args.per_file, counts=count,
                       score_percent=round(score, 1), mutants=results), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())

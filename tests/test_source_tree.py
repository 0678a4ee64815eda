"""``import mnist_native`` from a folder without the compiled extensions explains itself.

From a source checkout, Python finds the SOURCE folder ``mnist_native/`` first; unbuilt, it
has no ``_kernels``/``_train``.  The error must say so and what to do (``pip install .`` and
run from elsewhere, or ``pip install -e .``), but only when an extension is truly absent: one
that is there and fails to load keeps its own error.  And ``python -m pytest`` from the
repository root must test the installed copy (``conftest.py`` sees to that).

Each case runs a fresh interpreter whose current folder holds the copy under test; the copies
leave out every compiled file, so the tests pass as well with an in-place build.
"""
import importlib.machinery
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

import mnist_native

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(mnist_native.__file__).resolve().parent
COMPILED = ("*.so", "*.pyd", "*.dylib", "*.dll", "__pycache__")


def run_python(args, cwd, keep_pythonpath=False, no_site_hooks=False):
    """Run ``sys.executable args`` in ``cwd``; the interpreter's own path, nothing added.

    ``no_site_hooks``: ``-S``, with the site-packages folders on PYTHONPATH instead.  An
    editable install (``pip install -e .``) maps ``mnist_native`` to its checkout by an import
    hook that a ``.pth`` file installs ahead of every path entry, the current folder included;
    ``-S`` runs no ``.pth``, so the copy in ``cwd`` is what ``import mnist_native`` finds, as
    it is after ``pip install .``, and NumPy and the rest still import.
    """
    env = dict(os.environ)
    env.pop("PYTHONSAFEPATH", None)  # would keep the current folder off sys.path
    if not keep_pythonpath:
        env.pop("PYTHONPATH", None)
    options = []
    if no_site_hooks:
        options = ["-S"]
        folders = list(site.getsitepackages())
        if site.ENABLE_USER_SITE:
            folders.append(site.getusersitepackages())
        env["PYTHONPATH"] = os.pathsep.join(folders)
    try:
        return subprocess.run([sys.executable, *options, *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)
    except OSError as exc:  # qemu-user cannot start another foreign-architecture program
        if exc.errno == 8:
            pytest.skip(f"cannot start {sys.executable} in a subprocess here (qemu-user?): {exc}")
        raise


def unbuilt_copy(tmp_path, source_tree):
    """A copy of the package, without compiled files, in ``tmp_path``; with a setup.py beside
    it when it should look like a source checkout."""
    shutil.copytree(PACKAGE, tmp_path / "mnist_native", ignore=shutil.ignore_patterns(*COMPILED))
    if source_tree:
        (tmp_path / "setup.py").write_text("# stands for mnist_native's setup.py\n")
    return tmp_path / "mnist_native"


def installed_copy_visible(cwd):
    """Does a fresh interpreter in ``cwd`` see another mnist_native behind the current folder?"""
    out = run_python(["-c", "import importlib.machinery as m, sys; "
                            "print(m.PathFinder.find_spec('mnist_native', sys.path[1:]) "
                            "is not None)"], cwd, no_site_hooks=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() == "True"


def check_message(stderr, folder, source_tree):
    last = stderr[stderr.index("ImportError: "):]
    assert ("ImportError: mnist_native's compiled extensions (mnist_native._kernels and "
            f"mnist_native._train) are missing from {folder}.") in last
    assert "`pip install .`" in last and "outside the source tree" in last
    assert "`pip install -e .`" in last and "build_ext --inplace" in last
    assert "partially initialized" not in stderr
    assert ("SOURCE folder" in last) == source_tree
    assert ("installed without its compiled part" in last) == (not source_tree)
    return last


@pytest.mark.parametrize("source_tree", [True, False], ids=["checkout", "bare-copy"])
def test_import_without_extensions_says_what_to_do(tmp_path, source_tree):
    folder = unbuilt_copy(tmp_path, source_tree)
    out = run_python(["-c", "import mnist_native"], tmp_path, no_site_hooks=True)
    assert out.returncode == 1
    last = check_message(out.stderr, folder.resolve(), source_tree)
    if source_tree:
        # Names the installed copy it hides, when there is one on the path.
        assert ("It hides the installed copy in " in last) == installed_copy_visible(tmp_path)


def test_extension_that_fails_to_load_keeps_its_own_error(tmp_path):
    folder = unbuilt_copy(tmp_path, source_tree=True)
    broken = folder / ("_kernels" + importlib.machinery.EXTENSION_SUFFIXES[0])
    broken.write_bytes(b"not a shared library\n" * 64)
    out = run_python(["-c", "import mnist_native"], tmp_path, no_site_hooks=True)
    assert out.returncode == 1
    assert "missing from" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "_kernels" in last, out.stderr


def test_repository_root_without_a_build(tmp_path):
    source = REPO_ROOT / "mnist_native"
    if not (source / "__init__.py").is_file() or not (REPO_ROOT / "setup.py").is_file():
        pytest.skip("the tests are not in a source tree")
    built = [p.name for p in source.iterdir()
             if any(p.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)]
    if built:
        pytest.skip(f"the source tree is built in place ({', '.join(built)}): it imports")
    out = run_python(["-c", "import mnist_native"], REPO_ROOT)
    assert out.returncode == 1
    check_message(out.stderr, source.resolve(), source_tree=True)


def test_python_m_pytest_from_the_repository_root():
    # `python -m pytest` puts the root first on sys.path; conftest.py must step past an
    # unbuilt source folder to the installed copy (or use the in-place build).
    if not (REPO_ROOT / "setup.py").is_file():
        pytest.skip("the tests are not in a source tree")
    out = run_python(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_build_info.py"],
                     REPO_ROOT, keep_pythonpath=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " passed" in out.stdout

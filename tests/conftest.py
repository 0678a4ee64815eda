"""Shared test set-up for mnist_native.

* matplotlib is forced onto the non-interactive Agg backend before anything imports pyplot,
  so ``train(..., plot=True)`` can never open a window or block a test run.
* ``mnist_dir``: the folder of the real MNIST files, from ``MNIST_NATIVE_DATA``; tests that
  need it are skipped (not failed) where it is not set.  Session-scoped, so module fixtures
  (a model trained once) can use it.

The tests import the INSTALLED ``mnist_native`` (CI: ``pip install .``); for an in-place build
run them with ``PYTHONPATH=<repo root>``.
"""
import importlib.machinery
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _unbuilt_source_hides_installed_copy():
    """Is the repository root on sys.path, its mnist_native/ unbuilt, and a built copy elsewhere?

    ``python -m pytest`` puts the current folder first on ``sys.path``: from the repository
    root, ``import mnist_native`` would then find the SOURCE folder, which has no compiled
    extensions unless it was built in place, instead of the copy ``pip install .`` installed.
    """
    source = REPO_ROOT / "mnist_native"
    if not (source / "__init__.py").is_file():
        return False  # tests run outside a source tree
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    if all(any((source / (name + suffix)).is_file() for suffix in suffixes)
           for name in ("_kernels", "_train")):
        return False  # built in place: the source folder is a working copy
    others = [p for p in sys.path if not _is_repo_root(p)]
    if len(others) == len(sys.path):
        return False  # the repository root is not on sys.path
    return importlib.machinery.PathFinder.find_spec("mnist_native", others) is not None


def _is_repo_root(entry):
    try:
        return Path(entry or os.getcwd()).resolve() == REPO_ROOT
    except (OSError, TypeError):
        return False


# Before any test imports mnist_native: with an unbuilt source folder shadowing an installed
# copy (``python -m pytest`` from the repository root after ``pip install .``), drop the
# repository root from sys.path so the tests get the installed, compiled package.  Without an
# installed copy it stays, and ``import mnist_native`` explains what is missing.
if "mnist_native" not in sys.modules and _unbuilt_source_hides_installed_copy():
    sys.path[:] = [p for p in sys.path if not _is_repo_root(p)]

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST data folder named by ``MNIST_NATIVE_DATA`` (a ``Path``), else skip the test."""
    path = os.environ.get("MNIST_NATIVE_DATA", "").strip()
    if not path:
        pytest.skip("MNIST_NATIVE_DATA is not set: point it at a folder holding the MNIST "
                    "data to run this test")
    return Path(path)


@pytest.fixture(autouse=True)
def _small_passes_shared(monkeypatch):
    """The tests' data are small: their full-batch and measuring passes would run on one
    thread (``_fused.PASS_SHARE_WORK``), so here every thread takes part, and the parallel
    path is what they test.  ``test_fused.py`` tests the cut-off itself."""
    from mnist_native import _fused

    monkeypatch.setattr(_fused, "PASS_SHARE_WORK", 0)


# One line per kernel variant in the summary (test_variants.py): which ran, and which were
# skipped because this CPU lacks them.
_variant_outcomes = {}


# Lines a test asks for in the summary: ``record_property("summary", "...")``.
_summary_lines = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        _summary_lines.extend(v for k, v in report.user_properties if k == "summary")
    callspec = getattr(report, "_variant", None)
    if callspec is not None and report.when in ("setup", "call"):
        counts = _variant_outcomes.setdefault(callspec, {"passed": 0, "failed": 0, "skipped": 0})
        if report.when == "call" or not report.passed:
            counts[report.outcome] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if hasattr(item, "callspec") and "variant" in item.callspec.params:
        outcome.get_result()._variant = item.callspec.params["variant"]


def pytest_terminal_summary(terminalreporter):
    for line in _summary_lines:
        terminalreporter.write_line(line)
    for name, counts in _variant_outcomes.items():
        if counts["passed"] or counts["failed"]:
            line = f"kernel variant {name}: ran ({counts['passed']} passed, {counts['failed']} failed)"
        else:
            line = f"kernel variant {name}: skipped, this CPU lacks it"
        terminalreporter.write_line(line)

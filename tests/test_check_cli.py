"""``mnist-native check PATH``: exit 0 when everything passes, 1 when something is wrong (or
the student's code had to be stopped), 2 when PATH cannot be loaded; ``--json``; ``--class``;
a child process with time limits.  Most tests call ``cli.main`` in this process (the check
itself still runs in its child process); one runs the command as a user does."""
import json
import os
import re
import subprocess
import sys

import pytest

from mnist_native import cli
from mnist_native.lab import write_lab_files
from test_check_students import LAB_STYLE, ORIGINAL_LAB


def check(capsys, *args):
    """``mnist-native check ARGS`` in this process: (exit status, stdout, stderr)."""
    status = cli.main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_lab_init_folder_passes_in_a_subprocess(tmp_path):
    write_lab_files(tmp_path / "my_lab")
    result = subprocess.run([sys.executable, "-m", "mnist_native", "check", "my_lab"],
                            cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("Checking NeuralNetwork from ")
    assert "Everything passed." in result.stdout and not result.stderr


def test_wrong_code_exits_1_with_the_diagnosis(tmp_path, capsys):
    path = tmp_path / "NeuralNetwork.py"
    path.write_text(ORIGINAL_LAB)
    status, out, err = check(capsys, path)
    assert status == 1 and not err
    assert re.search(r"^  train +WRONG$", out, re.M) and re.search(r"^  feedforward +ok$", out, re.M)
    assert "keep copies" in " ".join(out.split())

    status, out, err = check(capsys, tmp_path, "--json")  # the folder holding it
    assert status == 1 and not err
    data = json.loads(out)
    assert data["passed"] is False and data["diagnoses"] == ["best_weights_aliased"]
    assert data["methods"]["train"] == "wrong" and data["methods"]["predict"] == "passed"
    assert {f["method"] for f in data["findings"]} >= {"constructor", "predict"}


def test_class_chooses_the_class(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text(LAB_STYLE.replace("class NeuralNetwork(object):", "class MyNet(object):"))
    status, out, err = check(capsys, path)
    assert status == 2 and not out
    assert err.startswith("mnist-native check: error: cannot load ")
    assert "has no NeuralNetwork (it defines MyNet: choose one with --class)" in err
    status, out, err = check(capsys, path, "--class", "MyNet", "--json")
    assert status == 0 and json.loads(out)["passed"] is True


@pytest.mark.parametrize("name, content, message", [
    ("missing.py", None, "does not exist"),
    ("notes.txt", "hello", "is not a .py file"),
    ("empty_folder", "", "has no NeuralNetwork.py: give the .py file"),
    ("broken.py", "class NeuralNetwork(:\n", "line 1: SyntaxError"),
    ("raises.py", "import numpy\nraise RuntimeError('no data here')\n",
     "raised RuntimeError: no data here (line 2 of raises.py"),
    ("not_a_class.py", "NeuralNetwork = 3\n", "NeuralNetwork in "),
])
def test_what_cannot_be_loaded_exits_2_saying_why(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if name == "empty_folder":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    status, out, err = check(capsys, path)
    assert status == 2 and not out
    assert err.startswith(f"mnist-native check: error: cannot load {path}: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_json_when_it_cannot_load(tmp_path, capsys):
    status, out, err = check(capsys, tmp_path / "missing.py", "--json")
    assert status == 2 and json.loads(out) == {"passed": False,
                                               "error": err.split("error: ", 1)[1].strip()}


def _lab_with(method, first_line):
    """LAB_STYLE whose ``method`` starts with ``first_line``."""
    header = f"    def {method}("
    start = LAB_STYLE.index(header)
    body = LAB_STYLE.index("):\n", start) + 3
    return LAB_STYLE[:body] + f"        {first_line}\n" + LAB_STYLE[body:]


@pytest.fixture
def short_limits(monkeypatch):
    monkeypatch.setattr(cli, "CHECK_STEP_LIMIT", 0.5)


@pytest.mark.parametrize("name, content, status, message", [
    ("sleeps.py", _lab_with("predict", "import time; time.sleep(600)"), 1,
     "it was stopped after 1.1 s while checking predict: your predict (or a method it calls) "
     "is blocked in a call that cannot be interrupted"),
    ("exits.py", _lab_with("predict", "import os; os._exit(3)"), 1,
     "Python exited with status 3 while checking predict: your predict (or a method it "
     "calls) ends the process"),
    ("sleeps_on_import.py", "import time\ntime.sleep(600)\n", 2,
     "cannot load {path}: it was stopped after 1.1 s while importing it"),
])
def test_code_that_cannot_be_stopped_inside_is_stopped_from_outside(
        tmp_path, capsys, short_limits, name, content, status, message):
    path = tmp_path / name
    path.write_text(content)
    got, out, err = check(capsys, path, "--timeout", "0.2")
    assert got == status and not out
    assert err.startswith("mnist-native check: error: ")
    assert message.format(path=path) in err


def test_an_endless_loop_is_a_finding(tmp_path, capsys):
    path = tmp_path / "loops.py"
    path.write_text(_lab_with("backpropagate", "while True: pass"))
    status, out, err = check(capsys, path, "--timeout", "0.3")
    assert status == 1 and not err
    assert re.search(r"^  backpropagate +TIMED OUT$", out, re.M)
    assert "did not finish within 0.3 s (an endless loop?)" in out


def test_help_and_bad_command_lines(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["check", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mnist-native check") and "--class NAME" in out
    assert "Exit status: 0 everything passes, 1 something is wrong, 2 PATH cannot be loaded" in out
    for argv in (["check"], ["check", "x.py", "--timeout", "0"], ["check", "x.py", "--bogus"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_check_is_listed_in_the_main_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert re.search(r"^\s+check\s", capsys.readouterr().out, re.M)

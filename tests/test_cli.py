"""The ``mnist-native`` command line, run as a user runs it: ``python -m mnist_native ...`` in
a subprocess (in a scratch folder, so it is the installed package that runs), with small
settings.  Tests that train need the real MNIST (``MNIST_NATIVE_DATA``) and are skipped
without it."""
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mnist_native
from mnist_native import cli

REPO = Path(__file__).resolve().parent.parent
PROXY_VARS = [v for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
              for v in (name, name.upper())]
SMALL = ["--n-train", "500", "--n-validation", "100", "--iterations", "5"]


def run(*args, cwd, env=None, timeout=300, python_args=("-m", "mnist_native")):
    """Run the command line in a subprocess; returns the CompletedProcess (text)."""
    full_env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    full_env["MPLBACKEND"] = "Agg"
    full_env.update(env or {})
    return subprocess.run([sys.executable, *python_args, *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def assert_clean_error(result, status=1, command=None):
    """A non-zero exit with ``error:`` on the first line of stderr and no traceback."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert lines, result.stderr
    if command:
        assert lines[0].startswith(f"mnist-native {command}: error:"), result.stderr


def assert_png(path, min_width=300, min_height=200):
    """``path`` is a valid, non-empty, non-blank PNG of at least the given size."""
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 2000
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= min_width and im.height >= min_height
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.std() > 5  # something was drawn


# --------------------------------------------------------------------------------------
# help, version, the console script
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "sweep", "download", "lab-init", "check",
                                     "predict"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mnist-native {command}")
    assert len(out.splitlines()) > 5


def test_main_help_lists_every_command(tmp_path):
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("train", "sweep", "bench", "download", "lab-init", "check", "predict"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0 and mnist_native.__version__ in version.stdout


def test_console_script(tmp_path):
    script = shutil.which("mnist-native")
    if script is None:
        pytest.skip("the mnist-native console script is not installed (pip install .)")
    result = subprocess.run([script, "train", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "--iterations" in result.stdout


# --------------------------------------------------------------------------------------
# bad command lines: argparse, exit 2
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [],
    ["fly"],
    ["train", "--hidden", "0"],
    ["train", "--hidden", "ten"],
    ["train", "--lr", "-1"],
    ["train", "--lr", "nan"],
    ["train", "--loss", "hinge"],
    ["train", "--dtype", "float16"],
    ["train", "--threads", "0"],
    ["train", "--seed", "-3"],
    ["train", "--bogus"],
    ["sweep", "--lr", "0"],
    ["sweep", "--hidden"],
    ["download", "--dest"],
    ["lab-init"],
    ["predict", "digit.png"],
    ["predict", "--model", "m.npz"],
])
def test_bad_command_lines_exit_2_without_traceback(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_bad_command_line_in_a_subprocess(tmp_path):
    assert_clean_error(run("train", "--hidden", "0", cwd=tmp_path), status=2)


# --------------------------------------------------------------------------------------
# bad input found at run time: one line, exit 1, before any training
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["train", "--data", "{tmp}/nowhere"], "MNIST not found"),
    (["train", "--plot", "{tmp}/no/such/folder/c.png"], "does not exist"),
    (["train", "--plot", "{tmp}/curves.txt"], "must end with one of"),
    (["train", "--save", "{tmp}/no/such/folder/m.npz"], "does not exist"),
    (["train", "--save", "{tmp}"], "give a file name"),  # a folder
    (["train", "--save", "."], "give a file name"),
    (["train", "--save", ".."], "give a file name"),
    (["train", "--save", ""], "give a file name"),
    (["train", "--plot", "{tmp}"], "it is a folder"),
    (["sweep", "--data", "{tmp}/nowhere"], "MNIST not found"),
    (["sweep", "--plot", "{tmp}/grid.nope"], "must end with one of"),
    (["download", "--dest", "{tmp}/d", "--mirror", "ftp://example.invalid/"], "http"),
    (["predict", "{tmp}/missing.png", "--model", "{tmp}/missing.npz"], "No such file or directory"),
])
def test_run_time_errors_are_one_clean_line(tmp_path, args, message):
    result = run(*[a.format(tmp=tmp_path) for a in args], "--quiet"
                 if args[0] in ("train", "sweep", "download") else "--invert", cwd=tmp_path,
                 timeout=120)
    assert_clean_error(result, status=1, command=args[0])
    assert message in result.stderr
    assert not list(tmp_path.glob("*.png"))


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------

def test_train_reports_accuracy_and_time_and_writes_the_curves(tmp_path, mnist_dir):
    result = run("train", *SMALL, "--hidden", "20", "--save", "model.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Training 784-20-10 (mse, full batch, lr 1, 5 iterations" in out
    assert "on 500 images, validating on 100" in out
    accuracy = float(re.search(r"^Test accuracy: (\d+\.\d\d) % \([\d,]+/10,000\)$", out,
                               re.M).group(1))
    assert 0.0 <= accuracy <= 100.0
    assert re.search(r"^Training time: \d+\.\d\d s \(\d+\.\d\d ms per iteration\)$", out, re.M)
    assert re.search(r"^Best validation accuracy: \d+\.\d\d % \(iteration \d of 5\)$", out, re.M)
    # the progress bar, on stderr, with live accuracies
    assert "train=" in result.stderr and "val=" in result.stderr
    assert_png(tmp_path / "learning_curves.png", min_width=800)
    assert "Learning curves saved to learning_curves.png" in out
    model = mnist_native.NeuralNetwork.load(tmp_path / "model.npz")
    assert (model.input_layer_size, model.hidden_layer_size, model.output_layer_size) == (
        785, 21, 10)
    assert model.loss_kind == "mse" and model.dtype == np.float32


def test_train_cross_entropy_mini_batch_options(tmp_path, mnist_dir):
    result = run("train", "--loss", "xe", "--batch-size", "50", "--epochs", "2", "--lr", "0.5",
                 "--hidden", "16", "--dtype", "float64", "--threads", "1", "--seed", "3",
                 "--n-train", "1000", "--n-validation", "200", "--data", mnist_dir,
                 "--save", "xe", "--plot", "xe-curves.png", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(xe, mini-batch 50, lr 0.5, 2 epochs, float64, 1 thread," in result.stdout
    assert "ms per epoch" in result.stdout
    assert result.stderr == ""  # --quiet: no progress bar
    assert_png(tmp_path / "xe-curves.png")
    model = mnist_native.NeuralNetwork.load(tmp_path / "xe.npz")  # np.savez's suffix
    assert model.loss_kind == "cross-entropy" and model.dtype == np.float64
    # mini-batch SGD learns something in 2 epochs
    accuracy = float(re.search(r"Test accuracy: (\d+\.\d\d)", result.stdout).group(1))
    assert accuracy > 30  # chance: 10


def test_train_no_plot_writes_no_image(tmp_path, mnist_dir):
    result = run("train", *SMALL, "--hidden", "8", "--no-plot", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Test accuracy:" in result.stdout
    assert not list(tmp_path.iterdir())


def test_train_same_seed_same_result(tmp_path, mnist_dir):
    outs = [run("train", *SMALL, "--hidden", "12", "--seed", "5", "--no-plot", "--quiet",
                "--threads", str(t), cwd=tmp_path).stdout for t in (1, 2)]
    accuracies = [re.search(r"Test accuracy: .*", o).group(0) for o in outs]
    assert accuracies[0] == accuracies[1]


# --------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------

def test_sweep_prints_the_labs_tables_and_writes_the_grid(tmp_path, mnist_dir):
    result = run("sweep", "--iterations", "3", "--threads", "1", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Sweep: 36 runs of 3 iterations" in out
    header = ("| training set | loss | hidden | learning rate | iterations | "
              "best validation (iteration) | test accuracy | training time |")
    assert header in out
    rows = re.findall(r"^\| (first 1,000|10 samples) \| (MSE|cross-entropy) \| (\d+) \| "
                      r"([\d.]+) \| 3 \| \d+\.\d\d % \(\d\) \| (\d+\.\d\d) % \| [\d.]+ s \|$",
                      out, re.M)
    assert len(rows) == 36
    assert {(s, loss) for s, loss, *_ in rows} == {
        (s, loss) for s in ("first 1,000", "10 samples") for loss in ("MSE", "cross-entropy")}
    assert {h for _, _, h, _, _ in rows} == {"15", "30", "75"}
    assert {lr for _, _, _, lr, _ in rows} == {"0.1", "1", "10"}
    grids = re.findall(r"^## Test accuracy: (.+), (MSE|cross-entropy), 3 iterations$", out,
                       re.M)
    assert len(grids) == 4
    assert out.count("| hidden \\ learning rate | 0.1 | 1 | 10 |") == 4
    assert re.search(r"^\| 75 \| \d+\.\d\d % \| \d+\.\d\d % \| \d+\.\d\d % \|$", out, re.M)
    assert_png(tmp_path / "sweep.png", min_width=1000, min_height=1000)


def test_sweep_custom_grid(tmp_path, mnist_dir):
    result = run("sweep", "--iterations", "2", "--hidden", "10", "--lr", "1", "3",
                 "--loss", "xe", "--n-train", "300", "--n-validation", "50",
                 "--plot", "g.png", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Sweep: 4 runs of 2 iterations" in result.stdout
    assert "## Test accuracy: first 300, cross-entropy, 2 iterations" in result.stdout
    assert "## Test accuracy: 10 samples, cross-entropy, 2 iterations" in result.stdout
    assert "MSE" not in result.stdout
    assert_png(tmp_path / "g.png")


# --------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------

@pytest.fixture
def mirror(mnist_dir):
    """A loopback HTTP server serving the MNIST IDX files of MNIST_NATIVE_DATA."""
    from mnist_native.data import FILES

    if not all((mnist_dir / spec.name).is_file() for spec in FILES.values()):
        pytest.skip(f"{mnist_dir} does not hold the four official .gz IDX files to serve")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mnist_dir))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_fetches_and_verifies(tmp_path, mirror):
    from mnist_native.data import FILES

    dest = tmp_path / "cache"
    result = run("download", "--dest", dest, "--mirror", mirror, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"MNIST is in {dest} (verified)" in result.stdout
    assert all((dest / spec.name).is_file() for spec in FILES.values())
    again = run("download", "--dest", dest, "--mirror", "http://127.0.0.1:9/", "--quiet",
                cwd=tmp_path)  # all there and verified: nothing fetched
    assert again.returncode == 0, again.stderr


def test_download_from_nowhere_fails_cleanly(tmp_path):
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("download", "--dest", tmp_path / "d", "--mirror", f"http://127.0.0.1:{port}/",
                 "--quiet", cwd=tmp_path)
    assert_clean_error(result, status=1, command="download")
    assert "could not download" in result.stderr


# --------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------

def test_bench_runs_the_benchmarks_of_the_source_checkout(tmp_path):
    if not (REPO / "benches" / "bench.py").is_file():
        pytest.skip("benches/bench.py is not in this checkout")
    # Started in a scratch folder (so the installed package is imported), then in the
    # checkout, where bench finds benches/bench.py; its own --help answers.
    code = ("import os, sys; from mnist_native.cli import main; os.chdir(sys.argv[1]); "
            "sys.exit(main(sys.argv[2:]))")
    result = run(REPO, "bench", "--help", cwd=tmp_path, python_args=("-c", code))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "mnist-native bench" not in result.stdout


def test_bench_without_a_source_checkout_says_so(monkeypatch, capsys):
    monkeypatch.setattr(cli, "find_bench_script", lambda: None)
    assert cli.main(["bench", "--quick"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mnist-native bench: error: bench needs a source checkout")
    assert len(err.strip().splitlines()) == 1


def test_bench_passes_every_argument_through(tmp_path, monkeypatch):
    script = tmp_path / "benches" / "bench.py"
    script.parent.mkdir()
    script.write_text("import json, sys\n"
                      "def main(argv=None):\n"
                      "    print(json.dumps(argv))\n"
                      "    return 7\n")
    monkeypatch.setattr(cli, "find_bench_script", lambda: script)
    import json

    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        status = cli.main(["bench", "--quick", "--workload", "subset", "-h"])
    assert status == 7
    assert json.loads(out.getvalue()) == ["--quick", "--workload", "subset", "-h"]
    assert str(script.parent) not in sys.path


# --------------------------------------------------------------------------------------
# lab-init (the shims themselves: test_lab.py)
# --------------------------------------------------------------------------------------

def test_lab_init_writes_the_three_files_and_never_overwrites_silently(tmp_path):
    lab = tmp_path / "my lab"
    result = run("lab-init", lab, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in lab.iterdir())
    assert names == ["NeuralNetwork.py", "transfer_functions.py", "utils.py"]
    (lab / "utils.py").write_text("# mine\n")
    again = run("lab-init", lab, cwd=tmp_path)
    assert_clean_error(again, status=1, command="lab-init")
    assert "already exist" in again.stderr
    assert (lab / "utils.py").read_text() == "# mine\n"
    forced = run("lab-init", lab, "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert "mnist_native.lab" in (lab / "utils.py").read_text()


def test_lab_init_on_a_file_fails_cleanly(tmp_path):
    (tmp_path / "taken").write_text("")
    assert_clean_error(run("lab-init", tmp_path / "taken", cwd=tmp_path), status=1,
                       command="lab-init")

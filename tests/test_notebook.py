"""``examples/lab.ipynb`` executed headless in a real Jupyter kernel (nbclient + ipykernel).

The notebook runs in a scratch folder next to the lab's three files as ``lab-init`` writes
them, with its first cell exactly as in the lab; only the cell tagged ``parameters`` is
replaced (fewer iterations, so the test stays fast).  Any failing cell fails the test.
Matplotlib is left to the kernel (the inline backend), so the learning curves must arrive
as PNG outputs, as a student sees them.
"""
import base64
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "examples" / "lab.ipynb"
FIRST_CELL = """\
from NeuralNetwork import NeuralNetwork
from transfer_functions import *
from utils import *
import numpy as np
import matplotlib"""

nbformat = pytest.importorskip(
    "nbformat", reason="nbformat is not installed: pip install '.[test]' to execute the notebook")
nbclient = pytest.importorskip(
    "nbclient", reason="nbclient is not installed: pip install '.[test]' to execute the notebook")
pytest.importorskip(
    "ipykernel", reason="ipykernel is not installed: pip install '.[test]' to get a kernel")


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_starts_with_the_labs_first_cell():
    nb = read_notebook()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == FIRST_CELL
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert all(not c.get("outputs") for c in code)  # committed without outputs


def test_example_notebook_executes_in_a_jupyter_kernel(tmp_path, monkeypatch):
    data = os.environ.get("MNIST_NATIVE_DATA", "").strip()
    if not data:
        pytest.skip("MNIST_NATIVE_DATA is not set: point it at a folder holding the MNIST "
                    "data to execute the example notebook")
    from mnist_native.lab import write_lab_files

    write_lab_files(tmp_path)
    nb = read_notebook()
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = "ITERATIONS = 25"
    # The kernel inherits this environment: no forced Agg, so the inline backend is used.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError when a cell fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Part 1 matches the lab's numbers" in text
    # the check cell: the bug named, then the fixed class passing
    assert "feedforward_xe    WRONG" in text and "The softmax overflows" in text
    assert "Everything passed." in text
    assert "Loading MNIST data ....." in text
    assert "50000 10000 10000" in text
    assert text.count("Training time:") >= 7
    accuracies = [float(line.split()[-2]) for line in text.splitlines()
                  if line.startswith("Test accuracy:")]
    assert len(accuracies) == 4 and all(0 <= a <= 100 for a in accuracies)
    pngs = [o.data["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 8  # 6 learning-curve figures and 2 digit displays, inline
    assert all(base64.b64decode(p).startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".pyc" and p.is_file()) == [
        "NeuralNetwork.py", "transfer_functions.py", "utils.py"]  # it wrote nothing else

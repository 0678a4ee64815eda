"""``mnist_native.check``: correct networks pass, the lab's original code gets exactly its
aliasing bug, unwritten methods are "not implemented", and nothing a student's code does
(raise, loop, return garbage, change its arguments) escapes as an exception."""
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

import mnist_native
from mnist_native import check, reference
from mnist_native.checker import CheckFailed, Report
from test_check_students import LAB_STYLE, LOOP_STYLE, ORIGINAL_LAB, edit, student

REPO = Path(__file__).resolve().parent.parent


def failing(report):
    return {m: s for m, s in report.methods.items() if s != "passed"}


def text(report):
    return " ".join(str(report).split())  # the text wraps its lines


# ------------------------------------------------------------------------------------------
# right networks pass
# ------------------------------------------------------------------------------------------

def _original_lab_benchmark():
    spec = importlib.util.spec_from_file_location("_original_lab", REPO / "benches" / "original_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NeuralNetwork


class SubclassOfNative(mnist_native.NeuralNetwork):
    """The notebook's subclass: a list-based feedforward over the native class."""

    def feedforward(self, inputs):
        inputs = [x + [1.] for x in inputs]
        self.input = np.array(inputs)
        self.u_hidden = self.input.dot(self.W_input_to_hidden)
        self.o_hidden = np.hstack([self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))])
        self.u_output = self.o_hidden.dot(self.W_hidden_to_output)
        self.o_output = self.transfer_f(self.u_output)


@pytest.mark.parametrize("network", [
    pytest.param(lambda: student(LAB_STYLE), id="lab-style student"),
    pytest.param(lambda: student(LOOP_STYLE), id="loop-style student"),
    pytest.param(lambda: mnist_native.NeuralNetwork, id="mnist_native"),
    pytest.param(lambda: reference.NeuralNetwork, id="reference"),
    pytest.param(lambda: SubclassOfNative, id="notebook subclass of mnist_native"),
    pytest.param(lambda: mnist_native.NeuralNetwork(3, 4, 2, seed=0), id="an instance"),
])
def test_right_networks_pass(network):
    report = check(network())
    assert report.passed, str(report)
    assert set(report.methods) == {"constructor", "feedforward", "backpropagate",
                                   "feedforward_xe", "backpropagate_xe", "train", "train_xe",
                                   "predict"}
    assert report.diagnoses == [] and report.failures == []
    assert "Everything passed." in str(report)
    assert check(network(), raise_on_failure=True).passed


def test_every_quantity_is_a_finding():
    report = check(student(LAB_STYLE))
    quantities = {(f.method, f.quantity) for f in report.findings}
    for method in ("feedforward", "feedforward_xe"):
        for q in ("input", "u_hidden", "o_hidden", "u_output", "o_output"):
            assert (method, q) in quantities
    for method in ("backpropagate", "backpropagate_xe"):
        for matrix in ("W_input_to_hidden", "W_hidden_to_output"):
            assert (method, f"{matrix} update") in quantities
            assert (method, f"{matrix} bias-row update") in quantities
    assert ("constructor", "layer sizes") in quantities
    assert ("train", "weights kept") in quantities and ("predict", "count") in quantities


# ------------------------------------------------------------------------------------------
# the lab's original code: its aliasing bug, and only it
# ------------------------------------------------------------------------------------------

def test_the_labs_original_code_has_exactly_the_aliasing_bug():
    report = check(student(ORIGINAL_LAB))
    assert failing(report) == {"train": "wrong", "train_xe": "wrong"}, str(report)
    assert report.diagnoses == ["best_weights_aliased"]
    kept = next(f for f in report.for_method("train") if f.quantity == "weights kept")
    assert kept.expected == [2, 2] and kept.got == [6, 6]
    assert "keep copies" in text(report) and ".copy()" in text(report)


def test_aliases_with_a_rebinding_backpropagate_are_only_a_note():
    """benches/original_lab.py keeps aliases too, but its backpropagate builds new arrays
    (W = W - ...), so its train keeps the right weights."""
    report = check(_original_lab_benchmark())
    assert report.passed, str(report)
    assert "Note: The best weights are kept as aliases" in text(report)


def test_the_lab_init_files_pass():
    spec = importlib.util.spec_from_file_location("_lab_init_nn", REPO / "examples" / "NeuralNetwork.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert check(module.NeuralNetwork).passed


# ------------------------------------------------------------------------------------------
# methods not written yet
# ------------------------------------------------------------------------------------------

def _skeleton(*written):
    """The lab's file with only ``written`` methods done: the others ``pass`` or raise
    NotImplementedError, as a skeleton would have them."""
    source = LAB_STYLE
    bodies = {
        "backpropagate": "        pass\n",
        "backpropagate_xe": "        raise NotImplementedError\n",
        "feedforward": "        pass\n",
        "feedforward_xe": "        raise NotImplementedError('TODO')\n",
    }
    for method, body in bodies.items():
        if method not in written:
            start = source.index(f"    def {method}(")
            header_end = source.index("\n", start) + 1
            end = source.find("\n    def ", header_end)
            end = len(source) if end < 0 else end + 1
            source = source[:header_end] + body + source[end:]
    return student(source)


def test_only_feedforward_done():
    report = check(_skeleton("feedforward"))
    assert failing(report) == {"backpropagate": "not implemented",
                               "feedforward_xe": "not implemented",
                               "backpropagate_xe": "not implemented"}, str(report)
    assert any(f.message.startswith("backpropagate: not implemented (it returns without")
               for f in report.findings)
    assert re.search(r"^  backpropagate +NOT IMPLEMENTED$", str(report), re.M), str(report)
    assert report.diagnoses == []


def test_nothing_done_yet():
    report = check(_skeleton())
    statuses = failing(report)
    assert statuses["feedforward"] == statuses["backpropagate"] == "not implemented"
    # predict needs feedforward: not blamed for it
    assert statuses["predict"] == "not checked"
    assert statuses.keys() == {"feedforward", "backpropagate", "feedforward_xe",
                               "backpropagate_xe", "predict"}


def test_missing_methods_are_not_implemented():
    lab = student(LAB_STYLE)

    class OnlyFeedforward:
        transfer_f = staticmethod(lab.__init__.__defaults__[0])

        def __init__(self, n_in, n_hidden, n_out):
            self.input_layer_size, self.hidden_layer_size = n_in + 1, n_hidden + 1
            self.output_layer_size = n_out
            self.W_input_to_hidden = np.zeros((n_in + 1, n_hidden))
            self.W_hidden_to_output = np.zeros((n_hidden + 1, n_out))

        feedforward = lab.feedforward

    report = check(OnlyFeedforward)
    statuses = failing(report)
    for method in ("backpropagate", "feedforward_xe", "backpropagate_xe", "train", "train_xe",
                   "predict"):
        assert statuses[method] == "not implemented", (method, str(report))
    assert statuses["constructor"] == "wrong"  # no weights_init
    assert "feedforward" not in statuses


def test_a_misspelt_method_is_not_implemented_with_a_hint():
    source = LAB_STYLE.replace("def backpropagate(self,", "def backpropogate(self,")
    report = check(student(source))
    assert failing(report) == {"backpropagate": "not implemented"}
    assert "is backpropogate meant to be backpropagate?" in text(report)


RETURNS = ("train", "        self.W_hidden_to_output = best_h2o_W\n",
           "        self.W_hidden_to_output = best_h2o_W\n"
           "        return training_accuracies, validation_accuracies\n")


def test_the_accuracies_train_returns_are_checked():
    right = check(student(LAB_STYLE, RETURNS))
    assert right.passed
    assert [f.status for f in right.findings if f.quantity == "returned accuracies"] == ["passed"]
    late = check(student(LAB_STYLE, RETURNS, (
        "train", "            self.feedforward(inputs)\n"
                 "            self.backpropagate(targets, learning_rate=learning_rate)\n"
                 "            training_accuracies.append(100 * self.predict(data) / len(data[0]))\n"
                 "            validation_accuracies.append(100 * self.predict(validation_data) / "
                 "len(validation_data[0]))\n",
        "            training_accuracies.append(100 * self.predict(data) / len(data[0]))\n"
        "            validation_accuracies.append(100 * self.predict(validation_data) / "
        "len(validation_data[0]))\n"
        "            self.feedforward(inputs)\n"
        "            self.backpropagate(targets, learning_rate=learning_rate)\n")))
    finding = next(f for f in late.findings if f.quantity == "returned accuracies")
    assert finding.status == "wrong" and finding.got == [37.5, 50.0, 87.5, 62.5, 75.0, 25.0]
    assert [d.name for d in finding.diagnosis] == ["accuracy_measured_before_step"]


def test_a_train_that_does_nothing_is_not_implemented():
    report = check(student(LAB_STYLE, ("train", "        start_time = time.time()\n",
                                       "        return\n")))
    assert failing(report) == {"train": "not implemented"}


# ------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------

def test_raise_on_failure_raises_an_assertion_error_carrying_the_report():
    buggy = student(LAB_STYLE, ("backpropagate", " * self.transfer_df(self.u_hidden)", ""))
    with pytest.raises(AssertionError) as info:
        check(buggy, raise_on_failure=True)
    assert isinstance(info.value, CheckFailed)
    assert isinstance(info.value.report, Report) and not info.value.report.passed
    assert str(info.value) == str(info.value.report)
    assert "hidden-layer delta is missing the transfer derivative" in text(info.value.report)


def test_findings_say_expected_got_where_and_why():
    buggy = student(LAB_STYLE, ("backpropagate", "2 * (self.o_output", "(self.o_output"))
    report = check(buggy)
    finding = next(f for f in report.findings if f.method == "backpropagate"
                   and f.quantity == "W_hidden_to_output update")
    assert finding.status == "wrong" and finding.probe.startswith("Part 1's 2-2-1 network")
    assert np.allclose(np.array(finding.got) * 2, finding.expected)
    assert finding.where.startswith("W_hidden_to_output update[0, 0]: expected -0.254147")
    assert [d.name for d in finding.diagnosis] == ["mse_factor_2_dropped"]
    assert finding.diagnosis[0].message.startswith("backpropagate: the factor 2")
    assert finding.diagnosis[0].message.endswith("what that mistake gives")


def test_no_known_mistake_shows_the_first_difference():
    buggy = student(LAB_STYLE, ("feedforward", "self.o_output = self.transfer_f(self.u_output)",
                                "self.o_output = self.transfer_f(self.u_output) + 0.1"))
    report = check(buggy)
    assert failing(report) == {"feedforward": "wrong"} and report.diagnoses == []
    assert ("First difference: o_output[0, 0]: expected 0.55973, got 0.65973 (off by 0.1)"
            in text(report))
    assert "No mistake in the catalogue reproduces your numbers." in text(report)


def test_to_dict_is_json_and_round_trips(tmp_path):
    buggy = student(LAB_STYLE, ("feedforward_xe", "self.o_output = softmax(self.u_output)",
                                "self.o_output = np.exp(self.u_output) / "
                                "np.sum(np.exp(self.u_output), axis=1, keepdims=True)"))
    report = check(buggy)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))  # NaN became "nan"
    assert data["passed"] is False and data["diagnoses"] == ["softmax_overflow"]
    assert data["methods"]["feedforward_xe"] == "wrong"
    finding = next(f for f in data["findings"] if f["quantity"] == "o_output"
                   and f["method"] == "feedforward_xe")
    assert "nan" in json.dumps(finding["got"])
    assert set(finding) == {"method", "quantity", "status", "message", "probe", "expected",
                            "got", "where", "diagnosis"}
    again = Report.from_dict(data)
    assert str(again) == str(report) and again.passed == report.passed


def test_check_takes_classes_or_instances_only():
    with pytest.raises(TypeError, match="takes a class"):
        check(42)
    with pytest.raises(TypeError, match="takes a class"):
        check(print)


def test_mnist_native_exports_check():
    assert "check" in mnist_native.__all__
    from mnist_native import check as exported

    assert exported is check


# ------------------------------------------------------------------------------------------
# robustness: a student's code is untrusted input
# ------------------------------------------------------------------------------------------

def _with(method, body):
    """LAB_STYLE with ``method``'s body replaced by ``body`` (lines of code)."""
    source = LAB_STYLE
    start = source.index(f"    def {method}(")
    header_end = source.index("):\n", start) + 3
    end = source.find("\n    def ", header_end)
    end = len(source) if end < 0 else end + 1
    lines = "".join(f"        {line}\n" for line in body.strip("\n").splitlines())
    return student(source[:header_end] + lines + source[end:])


@pytest.mark.parametrize("last_line, status, words", [
    ("x = 1 / 0", "error", "raised ZeroDivisionError: division by zero (line {line} of "
                           "NeuralNetwork.py)"),
    ("self.o_output = 'nothing'", "wrong", "self.o_output is a str that is not an array"),
    ("self.o_output = [[1.0, 2.0], [3.0]]", "wrong", "is a list that is not an array"),
    ("self.o_output = None", "wrong", "self.o_output is None"),
    ("self.o_output = self.u_output * np.nan", "wrong", "expected 0.55973, got nan"),
    ("self.o_output = np.zeros(3)", "wrong", "o_output has shape (3,), expected (1, 1)"),
    ("import sys; sys.exit(3)", "error", "called sys.exit()"),
    ("raise KeyError('x')", "error", "raised KeyError: 'x'"),
])
def test_a_broken_feedforward_is_a_finding_not_a_crash(last_line, status, words):
    line = 1 + LAB_STYLE[:LAB_STYLE.index("self.o_output = self.transfer_f(self.u_output)")].count("\n")
    report = check(student(LAB_STYLE, ("feedforward", "self.o_output = self.transfer_f(self.u_output)",
                                       last_line)))
    assert report.methods["feedforward"] == status, str(report)
    assert words.format(line=line) in text(report)


def test_errors_say_where_in_the_students_file(tmp_path):
    path = tmp_path / "mine.py"
    source = edit(LAB_STYLE, "backpropagate", "* self.transfer_df(self.u_output)",
                  "* self.transfer_df(self.u_output) * targets[0][1]")
    path.write_text(source)
    line = 1 + source[:source.index("targets[0][1]")].count("\n")
    spec = importlib.util.spec_from_file_location("mine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = check(module.NeuralNetwork)
    assert report.methods["backpropagate"] == "error"  # Part 1's target has one value
    assert (f"raised IndexError: list index out of range (line {line} of mine.py: "
            "self.dE_du_output = 2 * (self.o_output") in text(report)
    assert "on Part 1's 2-2-1 network" in text(report)


def test_a_hanging_method_is_stopped_by_the_time_limit():
    report = check(_with("feedforward", "while True:\n    pass"), timeout=0.2)
    assert report.methods["feedforward"] == "timed out", str(report)
    assert "did not finish within 0.2 s" in text(report)
    assert report.methods["predict"] == "not checked"  # it needs feedforward
    assert report.methods["backpropagate"] == "passed"  # checked from the lab's values


def test_a_method_that_swallows_the_time_out_is_still_stopped():
    body = "while True:\n    try:\n        while True:\n            pass\n    except Exception:\n        pass"
    report = check(_with("predict", body), timeout=0.2)
    assert report.methods["predict"] == "timed out"


def test_a_hanging_or_failing_constructor_stops_nothing_else_from_being_reported():
    hanging = check(_with("__init__", "while True:\n    pass"), timeout=0.2)
    assert hanging.methods["constructor"] == "timed out"
    assert set(hanging.methods.values()) == {"timed out", "not checked"}
    failing_ = check(_with("__init__", "raise ValueError('no')"))
    assert failing_.methods["constructor"] == "error"
    assert "ValueError: no" in text(failing_)


def test_changing_the_arguments_in_place_is_reported():
    report = check(student(LAB_STYLE, ("feedforward", "inputs = [x + [1.] for x in inputs]",
                                       "for x in inputs:\n            x.append(1.)")))
    finding = next(f for f in report.findings if f.quantity == "inputs")
    assert finding.status == "wrong" and "changes the inputs list" in finding.message


def test_a_property_that_raises_is_a_finding():
    class Prickly(student(LAB_STYLE)):
        @property
        def o_output(self):
            raise RuntimeError("no peeking")

        @o_output.setter
        def o_output(self, value):
            pass

    report = check(Prickly)
    assert report.methods["feedforward"] == "wrong"
    assert "reading self.o_output raised RuntimeError: no peeking" in text(report)


def test_backpropagate_that_replaces_weights_with_garbage():
    report = check(_with("backpropagate", "self.W_input_to_hidden = 'oops'"))
    assert report.methods["backpropagate"] == "wrong"
    assert "self.W_input_to_hidden is a str" in text(report)


def test_weights_init_that_ignores_its_arguments():
    report = check(student(LAB_STYLE, ("weights_init", "if wi is not None:", "if False:"),
                           ("weights_init", "if wo is not None:", "if False:")))
    assert failing(report) == {"constructor": "wrong"}, str(report)
    assert "After weights_init(wi, wo), self.W_input_to_hidden is not the matrix given" \
        in text(report)


def test_the_callers_state_is_left_alone():
    import matplotlib.pyplot as plt

    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    show = plt.show
    figures = plt.get_fignums()
    plotting = student(LAB_STYLE, ("train", "        print(\"Training time:\"",
                                   "        plt.plot([1, 2]); plt.show()\n"
                                   "        print(\"Training time:\""))
    plotting.__init__.__globals__["plt"] = plt
    report = check(plotting)
    assert report.passed, str(report)
    assert np.random.rand() == expected  # the global random state is as it was
    assert plt.show is show and plt.get_fignums() == figures


@pytest.mark.parametrize("timeout, exc", [(0, ValueError), (-1, ValueError), ("x", ValueError),
                                          (float("nan"), ValueError), (True, ValueError)])
def test_a_bad_timeout_is_refused_before_any_check(timeout, exc):
    """As the command line refuses it: a timeout of 0 had reported every method of a right
    network as timed out."""
    with pytest.raises(exc, match="timeout must be"):
        check(mnist_native.NeuralNetwork, timeout=timeout)

"""Every mistake of the catalogue, written into a student's lab-style code, is diagnosed as
itself and nothing else, at the method that holds it; and the catalogue's computation
without mistakes is the lab's (the NumPy reference)."""
from pathlib import Path

import numpy as np
import pytest

from mnist_native import reference
from mnist_native.checker import CATALOGUE, check
from mnist_native.checker.catalogue import StepMistake
from mnist_native.checker.probes import backward_probes, forward_probes
from mnist_native.checker.steps import FORWARD_QUANTITIES, LabSteps
from test_check_students import LAB_STYLE, LOOP_STYLE, student

FF, BP = "feedforward", "backpropagate"
FFX, BPX = "feedforward_xe", "backpropagate_xe"
B1 = "self.W_hidden_to_output -= learning_rate * np.dot(self.o_hidden.T, self.dE_du_output) / len(targets)"
B2 = "self.W_input_to_hidden -= learning_rate * np.dot(self.input.T, self.dE_du_hidden) / len(targets)"
HIDDEN_DELTA = ("self.dE_du_hidden = np.dot(self.dE_du_output, self.W_hidden_to_output[:-1].T) "
                "* self.transfer_df(self.u_hidden)")
MEASURE = ("            training_accuracies.append(100 * self.predict(data) / len(data[0]))\n"
           "            validation_accuracies.append(100 * self.predict(validation_data) / "
           "len(validation_data[0]))\n")
STEP = ("            self.feedforward(inputs)\n"
        "            self.backpropagate(targets, learning_rate=learning_rate)\n")

# catalogue entry -> (the method that fails, the edits that put the mistake in LAB_STYLE)
LAB_STYLE_BUGS = {
    "sizes_without_bias": ("constructor", [
        ("__init__", "self.input_layer_size = input_layer_size + 1",
         "self.input_layer_size = input_layer_size"),
        ("__init__", "self.hidden_layer_size = hidden_layer_size + 1",
         "self.hidden_layer_size = hidden_layer_size"),
        ("__init__", "np.zeros((1, self.hidden_layer_size - 1))",
         "np.zeros((1, self.hidden_layer_size))"),
        ("weights_init", "1.0 / self.input_layer_size ** (1 / 2)",
         "1.0 / (self.input_layer_size + 1) ** (1 / 2)"),
        ("weights_init", "size=(self.input_layer_size, self.hidden_layer_size - 1)",
         "size=(self.input_layer_size + 1, self.hidden_layer_size)"),
        ("weights_init", "size=(self.hidden_layer_size, self.output_layer_size)",
         "size=(self.hidden_layer_size + 1, self.output_layer_size)"),
    ]),
    "weights_transposed": ("constructor", [
        ("weights_init", "size=(self.input_layer_size, self.hidden_layer_size - 1)",
         "size=(self.hidden_layer_size - 1, self.input_layer_size)"),
        ("weights_init", "size=(self.hidden_layer_size, self.output_layer_size)",
         "size=(self.output_layer_size, self.hidden_layer_size)"),
    ]),
    "weights_without_bias_row": ("constructor", [
        ("weights_init", "size=(self.input_layer_size, self.hidden_layer_size - 1)",
         "size=(self.input_layer_size - 1, self.hidden_layer_size - 1)"),
        ("weights_init", "size=(self.hidden_layer_size, self.output_layer_size)",
         "size=(self.hidden_layer_size - 1, self.output_layer_size)"),
    ]),
    "bias_input_missing": (FF, [
        (FF, "inputs = [x + [1.] for x in inputs]", "inputs = [x for x in inputs]"),
        (FF, "np.dot(self.input, self.W_input_to_hidden)",
         "np.dot(self.input, self.W_input_to_hidden[:-1])"),
    ]),
    "hidden_bias_missing": (FF, [
        (FF, "np.hstack((self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))))",
         "self.transfer_f(self.u_hidden)"),
        (FF, "np.dot(self.o_hidden, self.W_hidden_to_output)",
         "np.dot(self.o_hidden, self.W_hidden_to_output[:-1])"),
    ]),
    "bias_first": (FF, [
        (FF, "[x + [1.] for x in inputs]", "[[1.] + x for x in inputs]"),
        (FF, "np.hstack((self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))))",
         "np.hstack((np.ones((len(inputs), 1)), self.transfer_f(self.u_hidden)))"),
    ]),
    "input_bias_first": (FF, [
        (FF, "[x + [1.] for x in inputs]", "[[1.] + x for x in inputs]"),
    ]),
    "hidden_bias_first": (FF, [
        (FF, "np.hstack((self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))))",
         "np.hstack((np.ones((len(inputs), 1)), self.transfer_f(self.u_hidden)))"),
    ]),
    "hidden_activation_transposed": (FF, [
        (FF, "np.dot(self.input, self.W_input_to_hidden)",
         "np.dot(self.input, self.W_input_to_hidden.T)"),
    ]),
    "output_activation_transposed": (FF, [  # raises on all but the square network
        (FF, "np.dot(self.o_hidden, self.W_hidden_to_output)",
         "np.dot(self.o_hidden, self.W_hidden_to_output.T)"),
    ]),
    "hidden_transfer_missing": (FF, [
        (FF, "np.hstack((self.transfer_f(self.u_hidden),", "np.hstack((self.u_hidden,"),
    ]),
    "output_transfer_missing": (FF, [
        (FF, "self.o_output = self.transfer_f(self.u_output)", "self.o_output = self.u_output"),
    ]),
    "xe_output_not_softmax": (FFX, [
        (FFX, "self.o_output = softmax(self.u_output)",
         "self.o_output = self.transfer_f(self.u_output)"),
    ]),
    "softmax_overflow": (FFX, [
        (FFX, "self.o_output = softmax(self.u_output)",
         "self.o_output = np.exp(self.u_output) / np.sum(np.exp(self.u_output), axis=1, "
         "keepdims=True)"),
    ]),
    "softmax_over_samples": (FFX, [
        (FFX, "self.o_output = softmax(self.u_output)",
         "e = np.exp(self.u_output - np.max(self.u_output, axis=1, keepdims=True))\n"
         "        self.o_output = e / np.sum(e, axis=0, keepdims=True)"),
    ]),
    "softmax_over_batch": (FFX, [
        (FFX, "self.o_output = softmax(self.u_output)",
         "e = np.exp(self.u_output - np.max(self.u_output, axis=1, keepdims=True))\n"
         "        self.o_output = e / np.sum(e)"),
    ]),
    "output_derivative_missing": (BP, [
        (BP, "2 * (self.o_output - np.array(targets)) * self.transfer_df(self.u_output)",
         "2 * (self.o_output - np.array(targets))"),
    ]),
    "output_derivative_of_output": (BP, [
        (BP, "self.transfer_df(self.u_output)", "self.transfer_df(self.o_output)"),
    ]),
    "output_derivative_formula_on_u": (BP, [
        (BP, "self.transfer_df(self.u_output)", "self.u_output * (1 - self.u_output)"),
    ]),
    "mse_factor_2_dropped": (BP, [
        (BP, "2 * (self.o_output - np.array(targets))", "(self.o_output - np.array(targets))"),
    ]),
    "xe_uses_mse_delta": (BPX, [
        (BPX, "self.dE_du_output = self.o_output - np.array(targets)",
         "self.dE_du_output = 2 * (self.o_output - np.array(targets)) * "
         "self.transfer_df(self.u_output)"),
    ]),
    "xe_delta_with_transfer_derivative": (BPX, [
        (BPX, "self.dE_du_output = self.o_output - np.array(targets)",
         "self.dE_du_output = (self.o_output - np.array(targets)) * "
         "self.transfer_df(self.u_output)"),
    ]),
    "hidden_derivative_missing": (BP, [
        (BP, " * self.transfer_df(self.u_hidden)", ""),
    ]),
    "hidden_derivative_of_output": (BP, [
        (BP, "self.transfer_df(self.u_hidden)", "self.transfer_df(self.o_hidden[:, :-1])"),
    ]),
    "hidden_derivative_formula_on_u": (BP, [
        (BP, "self.transfer_df(self.u_hidden)", "self.u_hidden * (1 - self.u_hidden)"),
    ]),
    "hidden_delta_uses_bias_row": (BP, [
        (BP, "self.W_hidden_to_output[:-1].T", "self.W_hidden_to_output[1:].T"),
    ]),
    "hidden_delta_with_whole_w2": (BP, [  # a shape error on every network
        (BP, "self.W_hidden_to_output[:-1].T", "self.W_hidden_to_output.T"),
    ]),
    "hidden_delta_not_transposed": (BP, [
        (BP, "self.W_hidden_to_output[:-1].T", "self.W_hidden_to_output[:-1]"),
    ]),
    "output_gradient_transposed": (BP, [
        (BP, "np.dot(self.o_hidden.T, self.dE_du_output)",
         "np.dot(self.dE_du_output.T, self.o_hidden)"),
    ]),
    "hidden_gradient_transposed": (BP, [
        (BP, "np.dot(self.input.T, self.dE_du_hidden)",
         "np.dot(self.dE_du_hidden.T, self.input)"),
    ]),
    "weights_updated_before_hidden_delta": (BP, [
        (BP, f"{HIDDEN_DELTA}\n        {B1}", f"{B1}\n        {HIDDEN_DELTA}"),
    ]),
    "gradient_summed": (BP, [(BP, " / len(targets)", "", 2)]),
    "output_gradient_summed": (BP, [(BP, B1, B1[:-len(" / len(targets)")])]),
    "hidden_gradient_summed": (BP, [(BP, B2, B2[:-len(" / len(targets)")])]),
    "gradient_divided_twice": (BP, [(BP, "/ len(targets)", "/ len(targets) / len(targets)", 2)]),
    "output_bias_row_not_updated": (BP, [
        (BP, B1, "self.W_hidden_to_output[:-1] -= learning_rate * np.dot(self.o_hidden[:, :-1].T, "
                 "self.dE_du_output) / len(targets)"),
    ]),
    "hidden_bias_row_not_updated": (BP, [
        (BP, B2, "self.W_input_to_hidden[:-1] -= learning_rate * np.dot(self.input[:, :-1].T, "
                 "self.dE_du_hidden) / len(targets)"),
    ]),
    "bias_rows_not_updated": (BP, [
        (BP, B1, "self.W_hidden_to_output[:-1] -= learning_rate * np.dot(self.o_hidden[:, :-1].T, "
                 "self.dE_du_output) / len(targets)"),
        (BP, B2, "self.W_input_to_hidden[:-1] -= learning_rate * np.dot(self.input[:, :-1].T, "
                 "self.dE_du_hidden) / len(targets)"),
    ]),
    "learning_rate_sign_flipped": (BP, [(BP, "-= learning_rate", "+= learning_rate", 2)]),
    "output_learning_rate_sign_flipped": (BP, [(BP, B1, B1.replace("-=", "+="))]),
    "hidden_learning_rate_sign_flipped": (BP, [(BP, B2, B2.replace("-=", "+="))]),
    "learning_rate_not_applied": (BP, [(BP, "-= learning_rate * ", "-= ", 2)]),
    "best_weights_aliased": ("train", [
        ("train", "best_i2h_W = self.W_input_to_hidden.copy()",
         "best_i2h_W = self.W_input_to_hidden", 2),
        ("train", "best_h2o_W = self.W_hidden_to_output.copy()",
         "best_h2o_W = self.W_hidden_to_output", 2),
    ]),
    "best_weights_not_restored": ("train", [
        ("train", "        self.W_input_to_hidden = best_i2h_W\n"
                  "        self.W_hidden_to_output = best_h2o_W\n", ""),
    ]),
    "output_weights_not_restored": ("train", [
        ("train", "        self.W_hidden_to_output = best_h2o_W\n", ""),
    ]),
    "hidden_weights_not_restored": ("train", [
        ("train", "        self.W_input_to_hidden = best_i2h_W\n", ""),
    ]),
    "best_accuracy_not_updated": ("train", [
        ("train", "best_val_acc = validation_accuracies[-1]\n", "pass\n"),
    ]),
    "accuracy_measured_before_step": ("train", [
        ("train", STEP + MEASURE, MEASURE + STEP),
    ]),
    "best_by_training_accuracy": ("train", [
        ("train", "best_val_acc = 100 * self.predict(validation_data) / len(validation_data[0])",
         "best_val_acc = 100 * self.predict(data) / len(data[0])"),
        ("train", "if validation_accuracies[-1] > best_val_acc:",
         "if training_accuracies[-1] > best_val_acc:"),
        ("train", "best_val_acc = validation_accuracies[-1]",
         "best_val_acc = training_accuracies[-1]"),
    ]),
    "train_learning_rate_not_passed": ("train", [
        ("train", "self.backpropagate(targets, learning_rate=learning_rate)",
         "self.backpropagate(targets)"),
    ]),
    "train_calls_the_wrong_pair": ("train_xe", [
        ("train_xe", "self.feedforward_xe(inputs)", "self.feedforward(inputs)"),
        ("train_xe", "self.backpropagate_xe(targets", "self.backpropagate(targets"),
    ]),
    "step_after_validation_pass": ("train", [
        ("train", "self.feedforward(inputs)", "self.feedforward(validation_data[0])"),
    ]),
    "not_full_batch": ("train", [
        ("train", "self.feedforward(inputs)", "self.feedforward(inputs[:-1])"),
        ("train", "self.backpropagate(targets,", "self.backpropagate(targets[:-1],"),
    ]),
    "wrong_number_of_steps": ("train", [
        ("train", "for it in range(iterations):", "for it in range(iterations + 1):"),
    ]),
    "predict_returns_percentage": ("predict", [
        ("predict", "return len(test_data[0]) - np.count_nonzero(answer - prediction)",
         "return 100 * (len(test_data[0]) - np.count_nonzero(answer - prediction)) "
         "/ len(test_data[0])"),
    ]),
    "predict_returns_fraction": ("predict", [
        ("predict", "return len(test_data[0]) - np.count_nonzero(answer - prediction)",
         "return (len(test_data[0]) - np.count_nonzero(answer - prediction)) "
         "/ len(test_data[0])"),
    ]),
    "predict_counts_errors": ("predict", [
        ("predict", "return len(test_data[0]) - np.count_nonzero(answer - prediction)",
         "return np.count_nonzero(answer - prediction)"),
    ]),
}

# The same mistakes written sample by sample (LOOP_STYLE's feedforward/backpropagate).
LOOP_STYLE_BUGS = {
    "bias_first": (FF, [(FF, "[x + [1.] for x in inputs]", "[[1.] + x for x in inputs]"),
                        (FF, "np.append(self.transfer_f(u_h), 1.)",
                         "np.append(1., self.transfer_f(u_h))")]),
    "hidden_transfer_missing": (FF, [(FF, "np.append(self.transfer_f(u_h), 1.)",
                                      "np.append(u_h, 1.)")]),
    "output_derivative_missing": (BP, [(BP, " * self.transfer_df(self.u_output[n])", "")]),
    "mse_factor_2_dropped": (BP, [(BP, "d_out = 2 * ", "d_out = ")]),
    "hidden_derivative_missing": (BP, [(BP, " * self.transfer_df(self.u_hidden[n])", "")]),
    "hidden_derivative_of_output": (BP, [(BP, "self.transfer_df(self.u_hidden[n])",
                                          "self.transfer_df(self.o_hidden[n][:-1])")]),
    "hidden_delta_uses_bias_row": (BP, [(BP, "self.W_hidden_to_output[:-1], d_out",
                                         "self.W_hidden_to_output[1:], d_out")]),
    "hidden_delta_not_transposed": (BP, [(BP, "np.dot(self.W_hidden_to_output[:-1], d_out)",
                                          "np.dot(self.W_hidden_to_output[:-1].T, d_out)")]),
    "hidden_delta_with_whole_w2": (BP, [(BP, "np.dot(self.W_hidden_to_output[:-1], d_out)",
                                         "np.dot(self.W_hidden_to_output, d_out)")]),
    "hidden_gradient_transposed": (BP, [(BP, "np.outer(self.input[n], d_hid)",
                                         "np.outer(d_hid, self.input[n])")]),
    "gradient_summed": (BP, [(BP, " / len(targets)", "", 2)]),
    "bias_rows_not_updated": (BP, [
        (BP, "grad_wo += np.outer(self.o_hidden[n], d_out)",
         "grad_wo[:-1] += np.outer(self.o_hidden[n][:-1], d_out)"),
        (BP, "grad_wi += np.outer(self.input[n], d_hid)",
         "grad_wi[:-1] += np.outer(self.input[n][:-1], d_hid)")]),
    "learning_rate_sign_flipped": (BP, [(BP, "-= learning_rate", "+= learning_rate", 2)]),
}

# Mistakes written so that the student's code raises (a shape error) instead of giving
# numbers: diagnosed from the error, or from what the method had set before it.
CRASHING_BUGS = {
    "bias_input_missing (lab style)": ("bias_input_missing", LAB_STYLE, FF, [
        (FF, "inputs = [x + [1.] for x in inputs]", "inputs = [x for x in inputs]")]),
    "bias_input_missing (loop style)": ("bias_input_missing", LOOP_STYLE, FF, [
        (FF, "[x + [1.] for x in inputs]", "[x for x in inputs]")]),
    "hidden_bias_missing": ("hidden_bias_missing", LAB_STYLE, FF, [
        (FF, "np.hstack((self.transfer_f(self.u_hidden), np.ones((len(inputs), 1))))",
         "self.transfer_f(self.u_hidden)")]),
    "hidden_gradient_transposed (raises on all but the square network)": (
        "hidden_gradient_transposed", LAB_STYLE, BP, [
            (BP, "np.dot(self.input.T, self.dE_du_hidden)",
             "np.dot(self.dE_du_hidden.T, self.input)")]),
}

# Entries no single edit of LAB_STYLE can hold alone (none today); documented here if any.
INDISTINGUISHABLE = {}


def test_every_catalogue_entry_has_a_buggy_student():
    assert sorted(LAB_STYLE_BUGS) == sorted(m.name for m in CATALOGUE)


def _assert_diagnosed(report, name, method):
    failing = {m for m, status in report.methods.items() if status != "passed"}
    if report.methods["predict"] == "not checked":  # it calls a feedforward that raises
        failing.discard("predict")
    assert failing == {method}, (name, report.methods, str(report))
    assert report.diagnoses == [name] + INDISTINGUISHABLE.get(name, []), str(report)
    found = [f for f in report.for_method(method) if f.diagnosis]
    assert found and all(f.status in ("wrong", "error") for f in found)
    message = next(m for m in CATALOGUE if m.name == name).message
    assert any(message in d.message for f in found for d in f.diagnosis)
    # the text wraps long lines, and starts a sentence with a capital
    assert message[1:] in " ".join(str(report).split())


@pytest.mark.parametrize("name", list(LAB_STYLE_BUGS))
def test_lab_style_mistake_is_diagnosed_as_itself(name):
    method, edits = LAB_STYLE_BUGS[name]
    _assert_diagnosed(check(student(LAB_STYLE, *edits)), name, method)


@pytest.mark.parametrize("name", list(LOOP_STYLE_BUGS))
def test_loop_style_mistake_is_diagnosed_as_itself(name):
    method, edits = LOOP_STYLE_BUGS[name]
    _assert_diagnosed(check(student(LOOP_STYLE, *edits)), name, method)


@pytest.mark.parametrize("case", list(CRASHING_BUGS))
def test_a_mistake_that_raises_is_diagnosed_too(case):
    name, source, method, edits = CRASHING_BUGS[case]
    report = check(student(source, *edits))
    assert report.methods[method] == "error", str(report)
    assert report.diagnoses == [name], str(report)
    failing = {m for m, s in report.methods.items() if s != "passed"}
    assert failing <= {method, "predict"}  # predict needs a feedforward that runs
    if failing - {method}:
        assert report.methods["predict"] == "not checked"


def test_two_mistakes_together_are_diagnosed_as_the_pair():
    """The softmax of the original lab (no max subtracted) summed over the wrong axis."""
    buggy = student(LAB_STYLE, (FFX, "self.o_output = softmax(self.u_output)",
                                "self.o_output = np.exp(self.u_output) / "
                                "np.sum(np.exp(self.u_output), axis=0)"))
    report = check(buggy)
    assert report.diagnoses == ["softmax_overflow+softmax_over_samples"], str(report)
    assert "and the softmax is normalised over the samples" in " ".join(str(report).split())


def test_a_mistake_in_both_methods_of_a_pair_is_diagnosed_in_both():
    buggy = student(LAB_STYLE, (BP, " * self.transfer_df(self.u_hidden)", ""),
                    (BPX, " * self.transfer_df(self.u_hidden)", ""))
    report = check(buggy)
    assert {m for m, s in report.methods.items() if s != "passed"} == {BP, BPX}
    assert report.diagnoses == ["hidden_derivative_missing"]


# ------------------------------------------------------------------------------------------
# the catalogue's computation
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cross_entropy", [False, True])
def test_lab_steps_are_the_reference(cross_entropy):
    for probe in forward_probes(cross_entropy) + backward_probes(cross_entropy):
        model = reference.NeuralNetwork(*probe.sizes)
        model.weights_init(probe.w1, probe.w2)
        forward = model.feedforward_xe if cross_entropy else model.feedforward
        backward = model.backpropagate_xe if cross_entropy else model.backpropagate
        forward(probe.x)
        steps = LabSteps().feedforward(probe.x, probe.w1, probe.w2, cross_entropy)
        for q in FORWARD_QUANTITIES:
            np.testing.assert_allclose(steps[q], getattr(model, q), rtol=1e-13, atol=1e-13)
        backward(probe.y, probe.rate)
        w1, w2 = LabSteps().backpropagate(steps, probe.y, probe.rate, probe.w1, probe.w2,
                                          cross_entropy)
        np.testing.assert_allclose(w1, model.W_input_to_hidden, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(w2, model.W_hidden_to_output, rtol=1e-13, atol=1e-13)


def test_every_step_mistake_changes_the_numbers_on_the_probes():
    """A mistake the probes cannot see could never be diagnosed (one that raises is seen by
    its error)."""
    for mistake in (m for m in CATALOGUE if issubclass(m, StepMistake)):
        differs = False
        for method in mistake.methods:
            xe = method.endswith("_xe")
            for probe in (forward_probes(xe) if method.startswith("feed") else backward_probes(xe)):
                with np.errstate(all="ignore"):
                    try:
                        if method.startswith("feed"):
                            got = mistake().feedforward(probe.x, probe.w1, probe.w2, xe)["o_output"]
                            want = LabSteps().feedforward(probe.x, probe.w1, probe.w2, xe)["o_output"]
                        else:
                            fw = LabSteps().feedforward(probe.x, probe.w1, probe.w2, xe)
                            got = np.concatenate([w.ravel() for w in mistake().backpropagate(
                                fw, probe.y, probe.rate, probe.w1, probe.w2, xe)])
                            want = np.concatenate([w.ravel() for w in LabSteps().backpropagate(
                                fw, probe.y, probe.rate, probe.w1, probe.w2, xe)])
                    except ValueError:  # a shape error: the mistake shows as an error here
                        differs = True
                        continue
                differs |= got.shape != want.shape or not np.allclose(got, want, equal_nan=False)
        assert differs, mistake.name


def test_the_readme_documents_every_entry_with_its_message():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Check your own network")
    section = readme[start:readme.index("\n### ", start + 1)]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.replace("\\|", "\0").strip("|").split("|")]
            rows[cells[0].strip("`")] = [c.replace("\0", "|") for c in cells[1:]]
    assert list(rows) == [m.name for m in CATALOGUE]
    for m in CATALOGUE:
        assert rows[m.name] == [" / ".join(m.methods), m.message], m.name

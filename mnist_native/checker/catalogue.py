"""The catalogue: mistakes students make in the lab, each named, explained, and written as
the smallest change to the lab's computation that makes it.

A diagnosis is found by matching, not guessing: the checker runs every entry for a method
on the same inputs as the student's code and reports the entries that reproduce the
student's numbers.  The kinds of entries:

* forward and backward mistakes: a subclass of ``LabSteps`` overriding one step (one that
  cannot run, such as a product of mismatched shapes, is matched on the error it raises);
* ``train`` mistakes: a subclass of ``TrainLoop`` overriding one step of its bookkeeping
  (matched on which weights ``train`` leaves in the model, and what it records);
* ``predict`` and constructor mistakes: what the method returns or sets instead;
* rules: a wrong call pattern the checker sees directly (``train`` passing another learning
  rate, running ``backpropagate`` after the validation pass...), no matching needed.

``CATALOGUE`` lists them all in order; ``mistake(name)`` finds one.  The README's table is
this catalogue, one line per entry.
"""
import numpy as np

from .steps import LabSteps, TrainLoop, Weights, with_bias

FEEDFORWARD = ("feedforward", "feedforward_xe")
BACKPROPAGATE = ("backpropagate", "backpropagate_xe")
TRAIN = ("train", "train_xe")

CATALOGUE = []


def entry(cls):
    """Add ``cls`` to the catalogue (in the order of this file)."""
    CATALOGUE.append(cls)
    return cls


def mistake(name):
    """The catalogue entry called ``name`` (KeyError if there is none)."""
    for cls in CATALOGUE:
        if cls.name == name:
            return cls
    raise KeyError(name)


def for_method(method, kind=None):
    """The entries that can explain what ``method`` did, optionally only those of a kind."""
    return [cls for cls in CATALOGUE
            if method in cls.methods and (kind is None or issubclass(cls, kind))]


class Mistake:
    """An entry: ``name`` (an identifier), ``methods`` (where it can be), ``message`` (what
    the student reads, after the method's name)."""

    name = ""
    methods = ()
    message = ""


def _changed_steps(cls, base):
    """The steps (methods and settings) of ``base`` that ``cls`` or its parents override."""
    return {name for klass in cls.__mro__ if klass is not base and issubclass(klass, base)
            for name in vars(klass) if name in vars(base) and not name.startswith("__")}


class StepMistake(Mistake, LabSteps):
    """A mistake in ``feedforward``/``backpropagate`` (or their ``_xe`` pair)."""

    @staticmethod
    def together(first, second):
        """Both mistakes at once (None when they change the same step)."""
        if _changed_steps(first, LabSteps) & _changed_steps(second, LabSteps):
            return None
        return type(f"{first.__name__}_{second.__name__}", (first, second), {
            "name": f"{first.name}+{second.name}",
            "methods": tuple(m for m in first.methods if m in second.methods),
            "message": f"{first.message}; and {second.message}",
            "parts": (first, second)})


class TrainMistake(Mistake, TrainLoop):
    """A mistake in ``train``'s bookkeeping of the best weights."""

    methods = TRAIN

    @staticmethod
    def together(first, second):
        """Both mistakes at once (None when they change the same step)."""
        if _changed_steps(first, TrainLoop) & _changed_steps(second, TrainLoop):
            return None
        return type(f"{first.__name__}_{second.__name__}", (first, second), {
            "name": f"{first.name}+{second.name}",
            "message": f"{first.message}; and {second.message}",
            "parts": (first, second)})


class ReturnMistake(Mistake):
    """What a method returns instead of the right value: ``returns(right, n)``."""

    @staticmethod
    def returns(right, n):
        raise NotImplementedError


class ShapeMistake(Mistake):
    """Sizes and weight shapes the constructor sets instead of the lab's:
    ``sizes(n_in, n_hidden, n_out)`` and ``shapes(n_in, n_hidden, n_out)``."""

    methods = ("constructor",)

    @staticmethod
    def sizes(n_in, n_hidden, n_out):
        return n_in + 1, n_hidden + 1, n_out

    @staticmethod
    def shapes(n_in, n_hidden, n_out):
        return (n_in + 1, n_hidden), (n_hidden + 1, n_out)


class Rule(Mistake):
    """A mistake the checker sees directly in how the student's code calls the others."""


# ----------------------------------------------------------------------------------------
# the constructor
# ----------------------------------------------------------------------------------------

@entry
class SizesWithoutBias(ShapeMistake):
    """input_layer_size = n_in and hidden_layer_size = n_hidden."""

    name = "sizes_without_bias"
    message = ("the stored layer sizes leave out the bias units: the lab stores "
               "input_layer_size = n_in + 1 and hidden_layer_size = n_hidden + 1 "
               "(output_layer_size = n_out)")

    @staticmethod
    def sizes(n_in, n_hidden, n_out):
        return n_in, n_hidden, n_out


@entry
class WeightsTransposed(ShapeMistake):
    """W1 of shape (n_hidden, n_in + 1), W2 of shape (n_out, n_hidden + 1)."""

    name = "weights_transposed"
    message = ("the weight matrices are transposed: W_input_to_hidden must be "
               "(n_in + 1, n_hidden) and W_hidden_to_output (n_hidden + 1, n_out), one row "
               "per unit of the layer below, the bias row last")

    @staticmethod
    def shapes(n_in, n_hidden, n_out):
        return (n_hidden, n_in + 1), (n_out, n_hidden + 1)


@entry
class WeightsWithoutBiasRow(ShapeMistake):
    """W1 of shape (n_in, n_hidden), W2 of shape (n_hidden, n_out)."""

    name = "weights_without_bias_row"
    message = ("the weight matrices have no bias row: W_input_to_hidden must be "
               "(n_in + 1, n_hidden) and W_hidden_to_output (n_hidden + 1, n_out), the "
               "last row holding the bias weights")

    @staticmethod
    def shapes(n_in, n_hidden, n_out):
        return (n_in, n_hidden), (n_hidden, n_out)


# ----------------------------------------------------------------------------------------
# feedforward and feedforward_xe
# ----------------------------------------------------------------------------------------

@entry
class BiasInputMissing(StepMistake):
    """No 1 appended to the inputs; u_hidden = x W1[:-1]."""

    name = "bias_input_missing"
    methods = FEEDFORWARD
    message = ("the bias input is missing: append a 1 to every sample, LAST "
               "(u_hidden = [x, 1] . W_input_to_hidden), so that the last row of "
               "W_input_to_hidden, the bias weights, is used")

    def input_with_bias(self, x):
        return x

    def hidden_activation(self, inputs, w1):
        return np.dot(inputs, w1[:-1])


@entry
class HiddenBiasMissing(StepMistake):
    """o_hidden = f(u_hidden), without the bias unit; u_output = o_hidden W2[:-1]."""

    name = "hidden_bias_missing"
    methods = FEEDFORWARD
    message = ("the hidden layer's bias unit is missing: o_hidden must be "
               "[f(u_hidden), 1], a 1 appended LAST, so that the last row of "
               "W_hidden_to_output, the bias weights, is used")

    def hidden_output(self, u_hidden):
        return self.transfer_f(u_hidden)

    def output_activation(self, o_hidden, w2):
        return np.dot(o_hidden, w2[:-1])


@entry
class BiasFirst(StepMistake):
    """The bias 1 prepended instead of appended, in both layers."""

    name = "bias_first"
    methods = FEEDFORWARD
    message = ("the bias 1 is put FIRST; the lab appends it LAST ([x, 1] and "
               "[f(u_hidden), 1]), because the bias weights are the last row of each "
               "weight matrix")

    def input_with_bias(self, x):
        return np.hstack([np.ones((len(x), 1)), x])

    def hidden_output(self, u_hidden):
        return np.hstack([np.ones((len(u_hidden), 1)), self.transfer_f(u_hidden)])


@entry
class InputBiasFirst(StepMistake):
    """The bias 1 prepended to the inputs only."""

    name = "input_bias_first"
    methods = FEEDFORWARD
    message = ("the bias input 1 is put FIRST; the lab appends it LAST ([x, 1]), because "
               "the bias weights are the last row of W_input_to_hidden")

    def input_with_bias(self, x):
        return np.hstack([np.ones((len(x), 1)), x])


@entry
class HiddenBiasFirst(StepMistake):
    """The bias 1 prepended to the hidden layer's outputs only."""

    name = "hidden_bias_first"
    methods = FEEDFORWARD
    message = ("the hidden layer's bias 1 is put FIRST; the lab appends it LAST "
               "([f(u_hidden), 1]), because the bias weights are the last row of "
               "W_hidden_to_output")

    def hidden_output(self, u_hidden):
        return np.hstack([np.ones((len(u_hidden), 1)), self.transfer_f(u_hidden)])


@entry
class HiddenActivationTransposed(StepMistake):
    """u_hidden = X W1^T (a product the wrong way round; a shape error unless W1 is
    square)."""

    name = "hidden_activation_transposed"
    methods = FEEDFORWARD
    message = ("the hidden layer's activation is computed with W_input_to_hidden "
               "transposed: u_hidden = input . W_input_to_hidden (np.dot(self.input, "
               "self.W_input_to_hidden)), one row of W_input_to_hidden per input (bias "
               "last), one column per hidden unit")

    def hidden_activation(self, inputs, w1):
        return np.dot(inputs, w1.T)


@entry
class OutputActivationTransposed(StepMistake):
    """u_output = o_hidden W2^T (a shape error unless W2 is square)."""

    name = "output_activation_transposed"
    methods = FEEDFORWARD
    message = ("the output layer's activation is computed with W_hidden_to_output "
               "transposed: u_output = o_hidden . W_hidden_to_output (np.dot(self.o_hidden, "
               "self.W_hidden_to_output)), one row of W_hidden_to_output per hidden unit "
               "(bias last), one column per output")

    def output_activation(self, o_hidden, w2):
        return np.dot(o_hidden, w2.T)


@entry
class HiddenTransferMissing(StepMistake):
    """o_hidden = [u_hidden, 1]: no transfer function in the hidden layer."""

    name = "hidden_transfer_missing"
    methods = FEEDFORWARD
    message = ("the hidden layer's transfer function is missing: o_hidden must be "
               "[transfer_f(u_hidden), 1], not [u_hidden, 1]")

    def hidden_output(self, u_hidden):
        return with_bias(u_hidden)


@entry
class OutputTransferMissing(StepMistake):
    """o_output = u_output."""

    name = "output_transfer_missing"
    methods = ("feedforward",)
    message = ("the output transfer function is missing: o_output must be "
               "transfer_f(u_output), not u_output")

    def output(self, u_output):
        return u_output


@entry
class OutputNotSoftmax(StepMistake):
    """feedforward_xe's output is the sigmoid of u_output."""

    name = "xe_output_not_softmax"
    methods = ("feedforward_xe",)
    message = ("the output is transfer_f(u_output) (the sigmoid); feedforward_xe's output "
               "must be softmax(u_output)")

    def output_softmax(self, u_output):
        return self.transfer_f(u_output)


@entry
class SoftmaxOverflow(StepMistake):
    """exp(u) / sum(exp(u)) without subtracting the row's maximum first."""

    name = "softmax_overflow"
    methods = ("feedforward_xe",)
    message = ("the softmax overflows when u_output is large (np.exp of more than about 709 "
               "is inf, and inf / inf is NaN): subtract each row's maximum from u_output "
               "before np.exp (the result is the same)")

    def softmax_shift(self, u_output):
        return 0.0


@entry
class SoftmaxOverSamples(StepMistake):
    """The softmax normalised down each column (axis 0, over the samples)."""

    name = "softmax_over_samples"
    methods = ("feedforward_xe",)
    message = ("the softmax is normalised over the samples (axis 0) instead of over each "
               "sample's outputs: each ROW must sum to 1 (np.sum(..., axis=1, "
               "keepdims=True))")

    def softmax_total(self, e):
        return e.sum(axis=0, keepdims=True)


@entry
class SoftmaxOverBatch(StepMistake):
    """The softmax divided by the sum over the whole batch."""

    name = "softmax_over_batch"
    methods = ("feedforward_xe",)
    message = ("the softmax divides by the sum over the whole batch: each row (sample) "
               "must sum to 1 on its own (np.sum(..., axis=1, keepdims=True))")

    def softmax_total(self, e):
        return e.sum()


# ----------------------------------------------------------------------------------------
# backpropagate: the MSE output delta
# ----------------------------------------------------------------------------------------

@entry
class OutputDerivativeMissing(StepMistake):
    """delta_output = 2 (o - y)."""

    name = "output_derivative_missing"
    methods = ("backpropagate",)
    message = ("the output delta is missing the transfer derivative: dL/du_output = "
               "2 (o_output - y) * transfer_df(u_output)")

    def output_derivative(self, fw):
        return 1.0


@entry
class OutputDerivativeOfOutput(StepMistake):
    """delta_output uses f'(o_output) instead of f'(u_output)."""

    name = "output_derivative_of_output"
    methods = ("backpropagate",)
    message = ("the output delta applies transfer_df to o_output; transfer_df (dsigmoid) "
               "takes the activation: transfer_df(u_output)")

    def output_derivative(self, fw):
        return self.transfer_df(fw["o_output"])


@entry
class OutputDerivativeFormulaOnActivation(StepMistake):
    """delta_output uses u_output (1 - u_output)."""

    name = "output_derivative_formula_on_u"
    methods = ("backpropagate",)
    message = ("the output delta uses u_output * (1 - u_output); the sigmoid's derivative "
               "is o_output * (1 - o_output) with the OUTPUT, i.e. transfer_df(u_output)")

    def output_derivative(self, fw):
        return fw["u_output"] * (1 - fw["u_output"])


@entry
class MseFactorTwoDropped(StepMistake):
    """delta_output = (o - y) f'(u_output)."""

    name = "mse_factor_2_dropped"
    methods = ("backpropagate",)
    message = ("the factor 2 of the squared error's derivative is dropped: the loss is "
               "||o - y||^2, so dL/du_output = 2 (o_output - y) * transfer_df(u_output)")

    mse_factor = 1.0


# ----------------------------------------------------------------------------------------
# backpropagate_xe: the cross-entropy output delta
# ----------------------------------------------------------------------------------------

@entry
class CrossEntropyWithMseDelta(StepMistake):
    """backpropagate_xe uses the MSE delta 2 (o - y) f'(u_output)."""

    name = "xe_uses_mse_delta"
    methods = ("backpropagate_xe",)
    message = ("the output delta is the MSE one, 2 (o_output - y) * transfer_df(u_output); "
               "with a softmax output and the cross-entropy loss, dL/du_output = "
               "o_output - y, nothing more")

    def delta_output_xe(self, fw, y):
        return LabSteps.delta_output(self, fw, y)


@entry
class CrossEntropyDeltaWithDerivative(StepMistake):
    """backpropagate_xe uses (o - y) f'(u_output)."""

    name = "xe_delta_with_transfer_derivative"
    methods = ("backpropagate_xe",)
    message = ("the output delta is multiplied by transfer_df(u_output); with a softmax "
               "output and the cross-entropy loss the derivatives cancel: dL/du_output = "
               "o_output - y")

    def delta_output_xe(self, fw, y):
        return (fw["o_output"] - y) * self.transfer_df(fw["u_output"])


# ----------------------------------------------------------------------------------------
# both backpropagates: the hidden delta
# ----------------------------------------------------------------------------------------

@entry
class HiddenDerivativeMissing(StepMistake):
    """delta_hidden = delta_output W2[:-1]^T, without f'(u_hidden)."""

    name = "hidden_derivative_missing"
    methods = BACKPROPAGATE
    message = ("the hidden-layer delta is missing the transfer derivative: multiply it by "
               "dsigmoid(u_hidden), i.e. transfer_df(u_hidden)")

    def hidden_derivative(self, fw):
        return 1.0


@entry
class HiddenDerivativeOfOutput(StepMistake):
    """delta_hidden uses f'(o_hidden) instead of f'(u_hidden)."""

    name = "hidden_derivative_of_output"
    methods = BACKPROPAGATE
    message = ("the hidden-layer delta applies transfer_df to o_hidden; transfer_df "
               "(dsigmoid) takes the activation: transfer_df(u_hidden)")

    def hidden_derivative(self, fw):
        return self.transfer_df(fw["o_hidden"][:, :-1])


@entry
class HiddenDerivativeFormulaOnActivation(StepMistake):
    """delta_hidden uses u_hidden (1 - u_hidden)."""

    name = "hidden_derivative_formula_on_u"
    methods = BACKPROPAGATE
    message = ("the hidden-layer delta uses u_hidden * (1 - u_hidden); the sigmoid's "
               "derivative is o * (1 - o) with the OUTPUT o = sigmoid(u_hidden), i.e. "
               "transfer_df(u_hidden)")

    def hidden_derivative(self, fw):
        return fw["u_hidden"] * (1 - fw["u_hidden"])


@entry
class HiddenDeltaThroughBiasRow(StepMistake):
    """delta_hidden goes back through W2[1:] (bias row in, first hidden row out)."""

    name = "hidden_delta_uses_bias_row"
    methods = BACKPROPAGATE
    message = ("the hidden-layer delta goes back through the bias row of "
               "W_hidden_to_output (W_hidden_to_output[1:]); use the hidden units' rows, "
               "W_hidden_to_output[:-1]: the last row, the bias weights, has no hidden unit "
               "behind it")

    def back_through_w2(self, delta_output, w2):
        return np.dot(delta_output, w2[1:].T)


@entry
class HiddenDeltaThroughWholeW2(StepMistake):
    """delta_hidden = (delta_output W2^T) f'(u_hidden): one column too many, a shape error."""

    name = "hidden_delta_with_whole_w2"
    methods = BACKPROPAGATE
    message = ("the hidden-layer delta goes back through all of W_hidden_to_output, bias "
               "row included, so it has one column more than transfer_df(u_hidden) (the "
               "bias unit's) and the shapes do not match: use W_hidden_to_output[:-1], the "
               "hidden units' rows")

    def back_through_w2(self, delta_output, w2):
        return np.dot(delta_output, w2.T)


@entry
class HiddenDeltaNotTransposed(StepMistake):
    """delta_hidden = delta_output W2[:-1] (a transpose missing)."""

    name = "hidden_delta_not_transposed"
    methods = BACKPROPAGATE
    message = ("the hidden-layer delta multiplies by W_hidden_to_output[:-1] where its "
               "transpose belongs: delta_hidden = (delta_output . W_hidden_to_output[:-1]^T) "
               "* transfer_df(u_hidden)")

    def back_through_w2(self, delta_output, w2):
        return np.dot(delta_output, w2[:-1])


@entry
class OutputGradientTransposed(StepMistake):
    """W2's gradient computed as delta_output^T o_hidden (the transpose)."""

    name = "output_gradient_transposed"
    methods = BACKPROPAGATE
    message = ("W_hidden_to_output's gradient is transposed: it is o_hidden^T . "
               "delta_output, one row per hidden unit (bias last), one column per output")

    def output_layer_gradient(self, fw, delta_output):
        return self.batch_mean(np.dot(delta_output.T, fw["o_hidden"]), len(delta_output))


@entry
class HiddenGradientTransposed(StepMistake):
    """W1's gradient computed as delta_hidden^T X (the transpose)."""

    name = "hidden_gradient_transposed"
    methods = BACKPROPAGATE
    message = ("W_input_to_hidden's gradient is transposed: it is input^T . delta_hidden, "
               "one row per input (bias last), one column per hidden unit")

    def hidden_layer_gradient(self, fw, delta_hidden):
        return self.batch_mean(np.dot(delta_hidden.T, fw["input"]), len(delta_hidden))


@entry
class WeightsUpdatedBeforeHiddenDelta(StepMistake):
    """W2 is updated first and the hidden delta goes back through the NEW W2."""

    name = "weights_updated_before_hidden_delta"
    methods = BACKPROPAGATE
    message = ("W_hidden_to_output is updated before the hidden-layer delta is computed "
               "from it: compute both deltas with the weights of the forward pass, then "
               "update the weights")

    def w2_for_hidden_delta(self, w2, new_w2):
        return new_w2


# ----------------------------------------------------------------------------------------
# both backpropagates: the step
# ----------------------------------------------------------------------------------------

@entry
class GradientSummed(StepMistake):
    """The gradient summed over the batch, not averaged."""

    name = "gradient_summed"
    methods = BACKPROPAGATE
    message = ("the gradient is summed over the batch but not averaged: divide it by the "
               "number of samples (len(targets))")

    def batch_mean(self, summed, batch):
        return summed


@entry
class OutputGradientSummed(StepMistake):
    """W2's gradient summed over the batch, not averaged (W1's is)."""

    name = "output_gradient_summed"
    methods = BACKPROPAGATE
    message = ("W_hidden_to_output's gradient is summed over the batch but not averaged: "
               "divide it by the number of samples (len(targets)), as every gradient is")

    def output_layer_gradient(self, fw, delta_output):
        return np.dot(fw["o_hidden"].T, delta_output)


@entry
class HiddenGradientSummed(StepMistake):
    """W1's gradient summed over the batch, not averaged (W2's is)."""

    name = "hidden_gradient_summed"
    methods = BACKPROPAGATE
    message = ("W_input_to_hidden's gradient is summed over the batch but not averaged: "
               "divide it by the number of samples (len(targets)), as every gradient is")

    def hidden_layer_gradient(self, fw, delta_hidden):
        return np.dot(fw["input"].T, delta_hidden)


@entry
class GradientDividedTwice(StepMistake):
    """The gradient divided by the batch size twice."""

    name = "gradient_divided_twice"
    methods = BACKPROPAGATE
    message = ("the gradient is divided by the number of samples twice (once is the "
               "average)")

    def batch_mean(self, summed, batch):
        return summed / batch / batch


@entry
class OutputBiasRowNotUpdated(StepMistake):
    """W2's bias row (the last) never moves."""

    name = "output_bias_row_not_updated"
    methods = BACKPROPAGATE
    message = ("the bias row (the last row) of W_hidden_to_output is not updated: every "
               "row, bias included, moves by -learning_rate * gradient")

    def update_output_layer(self, w2, gradient, learning_rate):
        new = self.update(w2, gradient, learning_rate)
        new[-1] = w2[-1]
        return new


@entry
class HiddenBiasRowNotUpdated(StepMistake):
    """W1's bias row (the last) never moves."""

    name = "hidden_bias_row_not_updated"
    methods = BACKPROPAGATE
    message = ("the bias row (the last row) of W_input_to_hidden is not updated: every "
               "row, bias included, moves by -learning_rate * gradient")

    def update_hidden_layer(self, w1, gradient, learning_rate):
        new = self.update(w1, gradient, learning_rate)
        new[-1] = w1[-1]
        return new


@entry
class BiasRowsNotUpdated(StepMistake):
    """Neither bias row moves."""

    name = "bias_rows_not_updated"
    methods = BACKPROPAGATE
    message = ("the bias rows (the last row of each weight matrix) are not updated: every "
               "row, bias included, moves by -learning_rate * gradient")

    def update(self, w, gradient, learning_rate):
        new = LabSteps.update(self, w, gradient, learning_rate)
        new[-1] = w[-1]
        return new


@entry
class LearningRateSignFlipped(StepMistake):
    """W += learning_rate * gradient."""

    name = "learning_rate_sign_flipped"
    methods = BACKPROPAGATE
    message = ("the weights move UP the gradient: gradient descent subtracts, "
               "W -= learning_rate * gradient")

    def update(self, w, gradient, learning_rate):
        return w + learning_rate * gradient


@entry
class OutputLearningRateSignFlipped(StepMistake):
    """W2 += learning_rate * gradient (W1 moves the right way)."""

    name = "output_learning_rate_sign_flipped"
    methods = BACKPROPAGATE
    message = ("W_hidden_to_output moves UP its gradient: gradient descent subtracts, "
               "W_hidden_to_output -= learning_rate * gradient")

    def update_output_layer(self, w2, gradient, learning_rate):
        return w2 + learning_rate * gradient


@entry
class HiddenLearningRateSignFlipped(StepMistake):
    """W1 += learning_rate * gradient (W2 moves the right way)."""

    name = "hidden_learning_rate_sign_flipped"
    methods = BACKPROPAGATE
    message = ("W_input_to_hidden moves UP its gradient: gradient descent subtracts, "
               "W_input_to_hidden -= learning_rate * gradient")

    def update_hidden_layer(self, w1, gradient, learning_rate):
        return w1 + learning_rate * gradient


@entry
class LearningRateNotApplied(StepMistake):
    """W -= gradient, the learning rate left out."""

    name = "learning_rate_not_applied"
    methods = BACKPROPAGATE
    message = ("the learning rate is not applied: W -= learning_rate * gradient, with the "
               "learning_rate argument")

    def update(self, w, gradient, learning_rate):
        return w - gradient


# ----------------------------------------------------------------------------------------
# train and train_xe: which weights are kept
# ----------------------------------------------------------------------------------------

@entry
class BestWeightsAliased(TrainMistake):
    """best = self.W (the same array), which later in-place steps change too."""

    name = "best_weights_aliased"
    message = ("the best weights are kept as another name for the same arrays "
               "(best_W = self.W_input_to_hidden), so backpropagate's in-place updates "
               "(W -= ...) change them too and training ends with the LAST weights: keep "
               "copies, best_W = self.W_input_to_hidden.copy() (and the same for "
               "W_hidden_to_output)")

    def keep(self, model):
        return dict(model)


@entry
class BestWeightsNotRestored(TrainMistake):
    """The kept weights are never put back."""

    name = "best_weights_not_restored"
    message = ("the best-validation weights are never put back at the end, so training "
               "ends with the LAST weights: assign the kept copies to "
               "self.W_input_to_hidden and self.W_hidden_to_output after the loop")

    def restore(self, model, kept):
        pass


@entry
class OutputWeightsNotRestored(TrainMistake):
    """Only W1 is put back."""

    name = "output_weights_not_restored"
    message = ("only W_input_to_hidden is put back at the end: W_hidden_to_output keeps "
               "its last value, so the model mixes two iterations; restore both")

    def restore(self, model, kept):
        model["W1"] = Weights(kept["W1"].steps)


@entry
class HiddenWeightsNotRestored(TrainMistake):
    """Only W2 is put back."""

    name = "hidden_weights_not_restored"
    message = ("only W_hidden_to_output is put back at the end: W_input_to_hidden keeps "
               "its last value, so the model mixes two iterations; restore both")

    def restore(self, model, kept):
        model["W2"] = Weights(kept["W2"].steps)


@entry
class BestAccuracyNotUpdated(TrainMistake):
    """The best accuracy stays the starting one, so any later improvement over the start
    replaces the kept weights."""

    name = "best_accuracy_not_updated"
    message = ("the best validation accuracy is never updated when better weights are "
               "kept, so every iteration that beats the STARTING accuracy replaces them, "
               "not only a new best: set best_val_acc to the new accuracy too")

    def new_best(self, best_score, score):
        return best_score


@entry
class AccuracyMeasuredBeforeStep(TrainMistake):
    """Accuracies measured on the forward pass before backpropagate's step."""

    name = "accuracy_measured_before_step"
    message = ("the accuracies are measured BEFORE backpropagate's step, so each belongs to "
               "the previous weights and the weights kept are one step past the best: "
               "measure after the step (predict after backpropagate)")

    def recorded(self, before, after):
        return before


@entry
class BestByTrainingAccuracy(TrainMistake):
    """The kept weights are those of the best training accuracy."""

    name = "best_by_training_accuracy"
    message = ("the weights kept are those of the best TRAINING accuracy; the lab keeps "
               "the weights of the best VALIDATION accuracy")

    def score(self, measured):
        return measured[0]


# ----------------------------------------------------------------------------------------
# train and train_xe: how they call the other methods (seen directly)
# ----------------------------------------------------------------------------------------

@entry
class LearningRateNotPassed(Rule):
    """backpropagate gets another learning rate than train's."""

    name = "train_learning_rate_not_passed"
    methods = TRAIN
    message = ("the learning_rate given to train does not reach backpropagate: call "
               "self.backpropagate(targets, learning_rate)")


@entry
class WrongPairCalled(Rule):
    """train uses the _xe pair, or train_xe the MSE pair."""

    name = "train_calls_the_wrong_pair"
    methods = TRAIN
    message = ("train must step with feedforward + backpropagate and train_xe with "
               "feedforward_xe + backpropagate_xe")


@entry
class StepAfterValidationPass(Rule):
    """backpropagate runs right after a forward pass over the validation data."""

    name = "step_after_validation_pass"
    methods = TRAIN
    message = ("backpropagate runs after a forward pass over the VALIDATION data, so the "
               "step uses the validation set's activations: run feedforward on the "
               "training data right before backpropagate")


@entry
class NotFullBatch(Rule):
    """The forward pass before a step is not over all of the training data."""

    name = "not_full_batch"
    methods = TRAIN
    message = ("the gradient step does not see all of the training data: the lab's train "
               "is full-batch gradient descent (feedforward on all of data, then one "
               "backpropagate with all of its targets)")


@entry
class WrongNumberOfSteps(Rule):
    """Not one backpropagate per iteration."""

    name = "wrong_number_of_steps"
    methods = TRAIN
    message = "train must run exactly one backpropagate per iteration"


# ----------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------

@entry
class PredictReturnsPercentage(ReturnMistake):
    """100 * correct / n."""

    name = "predict_returns_percentage"
    methods = ("predict",)
    message = ("returns the percentage of correct samples; predict returns their NUMBER "
               "(the notebook computes 100 * model.predict(test_data) / len(test_data[0]))")

    @staticmethod
    def returns(right, n):
        return 100.0 * right / n


@entry
class PredictReturnsFraction(ReturnMistake):
    """correct / n."""

    name = "predict_returns_fraction"
    methods = ("predict",)
    message = ("returns the fraction of correct samples; predict returns their NUMBER "
               "(an int)")

    @staticmethod
    def returns(right, n):
        return right / n


@entry
class PredictCountsErrors(ReturnMistake):
    """n - correct."""

    name = "predict_counts_errors"
    methods = ("predict",)
    message = ("returns the number of WRONG samples; predict returns the number of samples "
               "whose largest output is at the target's 1")

    @staticmethod
    def returns(right, n):
        return n - right


__all__ = ["CATALOGUE", "mistake", "for_method", "Mistake", "StepMistake", "TrainMistake",
           "ReturnMistake", "ShapeMistake", "Rule"]

"""``train`` and ``train_xe``: what they call, which weights they keep, what they report.

``train`` is checked apart from the student's ``feedforward``/``backpropagate``: it runs on
a subclass of the student's class whose forward pass, step and ``predict`` are scripted
(``TrainScript``): the weights only count gradient steps (every entry is the number of steps
taken), and the accuracies of the weights after k steps are the script's table.  So the
weights ``train`` leaves in the model say which iteration it kept, and every way of keeping
the wrong ones keeps a different iteration (the catalogue's ``TrainMistake`` entries say
which).

It runs twice: once with the step updating the weights in place (``W -= ...``, as most
students write it) and once rebinding them (``W = W - ...``): best weights kept as an alias
of the model's arrays only go wrong the first way.
"""
import inspect
import re
from dataclasses import dataclass, field

import numpy as np

from . import catalogue, guard
from .probes import TrainScript
from .report import (ERROR, NOT_CHECKED, NOT_IMPLEMENTED, PASSED, TIMED_OUT, WRONG,
                     Diagnosis, Finding)
from .steps import TrainLoop, with_bias

SIZES = (2, 3, 4)  # inputs (set, index), hidden units, outputs


@dataclass
class Call:
    """One call the student's ``train`` made to the scripted methods."""

    kind: str            # "forward" or "step"
    method: str
    rows: int = 0
    which: int = None    # TrainScript.TRAINING / VALIDATION / None (mixed or unknown)
    learning_rate: float = None
    training_targets: bool = True


@dataclass
class TrainRun:
    outcome: object
    calls: list = field(default_factory=list)
    kept: tuple = None   # (steps of W_input_to_hidden, steps of W_hidden_to_output)
    problem: str = ""    # why ``kept`` is None


def check_train(session, cross_entropy=False):
    method = "train_xe" if cross_entropy else "train"
    if not session.has(method):
        return [Finding(method, None, NOT_IMPLEMENTED, session.missing(method))]
    script = TrainScript()
    in_place = _run(session, method, script, in_place=True, verbose=True)
    outcome = in_place.outcome
    if outcome is None:
        return [Finding(method, None, NOT_CHECKED, f"{method}: not checked ({in_place.problem})")]
    if not outcome.ok:
        if outcome.not_implemented:
            return [Finding(method, None, NOT_IMPLEMENTED,
                            f"{method}: not implemented (it raises NotImplementedError)")]
        status = TIMED_OUT if outcome.timed_out else ERROR
        return [Finding(method, None, status,
                        f"{method} {outcome.describe_error(session.timeout)} (on a small "
                        "scripted network: the check of train does not use your feedforward "
                        "or backpropagate)")]
    if not in_place.calls and in_place.kept == (0, 0) and outcome.value is None:
        return [Finding(method, None, NOT_IMPLEMENTED,
                        f"{method}: not implemented (it returns without calling feedforward "
                        "or backpropagate)")]
    rebinding = _run(session, method, script, in_place=False, verbose=False)
    steps = sum(c.kind == "step" for c in in_place.calls)
    findings = _call_findings(method, script, in_place.calls, cross_entropy)
    findings.append(_harmless_alias(session, cross_entropy,
                                    _kept_finding(method, script, steps, in_place, rebinding)))
    findings += _accuracy_findings(method, script, steps, outcome)
    return findings


# ------------------------------------------------------------------------------------------
# the scripted network
# ------------------------------------------------------------------------------------------

def scripted_class(cls, script, in_place, calls):
    """A subclass of the student's class whose forward passes, steps and ``predict`` follow
    ``script`` and record themselves in ``calls``."""

    def forward(self, inputs, method):
        rows = np.asarray(inputs, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != 2:
            raise ValueError(f"{method} was given inputs of shape {rows.shape}, not the "
                             "training or validation data")
        sets = set(np.round(rows[:, 0]).astype(int).tolist())
        which = sets.pop() if len(sets) == 1 else None
        calls.append(Call("forward", method, rows=len(rows), which=which))
        steps = _steps_of(self.W_input_to_hidden)
        out = np.full((len(rows), script.n_out), 0.1)
        for r, (kind, index) in enumerate(np.round(rows).astype(int).tolist()):
            label = script.label(index)
            right = index < script.correct_count(kind, steps)
            out[r, label if right else (label + 1) % script.n_out] = 0.7
        self.input = with_bias(rows)
        self.u_hidden = np.zeros((len(rows), SIZES[1]))
        self.o_hidden = with_bias(np.full((len(rows), SIZES[1]), 0.5))
        self.u_output = np.log(out)  # its softmax is ``out``: rows sum to 1
        self.o_output = out

    def step(self, targets, learning_rate, method):
        given = np.asarray(targets, dtype=np.float64)
        expected = np.asarray(script.targets(script.TRAINING), dtype=np.float64)
        calls.append(Call("step", method, rows=len(given), learning_rate=learning_rate,
                          training_targets=given.shape == expected.shape
                          and bool(np.array_equal(given, expected))))
        for name in ("W_input_to_hidden", "W_hidden_to_output"):
            w = getattr(self, name)
            if in_place and isinstance(w, np.ndarray):
                w += 1.0
            else:
                setattr(self, name, np.asarray(w, dtype=np.float64) + 1.0)

    def predict(self, test_data):
        self.feedforward(test_data[0])
        labels = np.argmax(np.asarray(test_data[1]), axis=1)
        return int(np.count_nonzero(np.argmax(self.o_output, axis=1) == labels))

    namespace = {
        "feedforward": lambda self, inputs: forward(self, inputs, "feedforward"),
        "feedforward_xe": lambda self, inputs: forward(self, inputs, "feedforward_xe"),
        "backpropagate": lambda self, targets, learning_rate=5.0:
            step(self, targets, learning_rate, "backpropagate"),
        "backpropagate_xe": lambda self, targets, learning_rate=5.0:
            step(self, targets, learning_rate, "backpropagate_xe"),
        "predict": predict,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
    }
    return type(cls.__name__, (cls,), namespace)


def _steps_of(w):
    """How many steps scripted weights have had (each entry holds the count)."""
    return int(round(float(np.asarray(w, dtype=np.float64).flat[0])))


def _run(session, method, script, in_place, verbose):
    calls = []
    made = guard.call(scripted_class, session.cls, script, in_place, calls)
    if not made.ok:
        return TrainRun(None, problem=f"a subclass of it could not be made: "
                                      f"{made.describe_error(session.timeout)}")
    sub_session = type(session)(made.value, session.timeout)
    n_in, n_hidden, n_out = SIZES
    model = sub_session.new_model(SIZES, np.zeros((n_in + 1, n_hidden)),
                                  np.zeros((n_hidden + 1, n_out)))
    if model is None:
        return TrainRun(None, problem="the constructor fails")
    data = (script.inputs(script.TRAINING), script.targets(script.TRAINING))
    validation = (script.inputs(script.VALIDATION), script.targets(script.VALIDATION))
    args, kwargs = _train_arguments(sub_session, model, method, script, verbose)
    calls.clear()  # weights_init and the like are not train's
    outcome = sub_session.call(model, method, data, validation, *args, **kwargs)
    if outcome.timed_out:
        session.stuck.add(method)
    run = TrainRun(outcome, calls)
    if outcome.ok:
        run.kept, run.problem = _kept(sub_session, model)
    return run


def _train_arguments(session, model, method, script, verbose):
    """Iterations and learning rate by keyword (positionally if the signature does not name
    them), ``verbose`` when it takes one, ``plot=False`` when it takes that."""
    bound = session.get(model, method)
    try:
        parameters = inspect.signature(bound.value).parameters
    except (TypeError, ValueError):
        parameters = {}
    names = set(parameters)
    if {"iterations", "learning_rate"} <= names:
        args, kwargs = (), {"iterations": script.iterations,
                            "learning_rate": script.learning_rate}
    else:
        args, kwargs = (script.iterations, script.learning_rate), {}
    if "verbose" in names:
        kwargs["verbose"] = verbose
    if "plot" in names:
        kwargs["plot"] = False
    return args, kwargs


def _kept(session, model):
    kept = []
    for name in ("W_input_to_hidden", "W_hidden_to_output"):
        w, problem = session.array(model, name)
        if problem:
            return None, problem
        if w.size == 0 or not np.all(w == w.flat[0]) or w.flat[0] != round(w.flat[0]):
            return None, (f"self.{name} after train is not the weights of any one iteration "
                          "(does train change the weights itself, other than through "
                          "backpropagate?)")
        kept.append(int(round(float(w.flat[0]))))
    return tuple(kept), ""


# ------------------------------------------------------------------------------------------
# findings
# ------------------------------------------------------------------------------------------

def _rule(method, rule, detail):
    entry = catalogue.mistake(rule)
    return Finding(method, "calls", WRONG, f"{method}: {detail}",
                   diagnosis=[Diagnosis(entry.name, f"{method}: {entry.message}")])


def _call_findings(method, script, calls, cross_entropy):
    forward = "feedforward_xe" if cross_entropy else "feedforward"
    backward = "backpropagate_xe" if cross_entropy else "backpropagate"
    findings = []
    steps = [i for i, c in enumerate(calls) if c.kind == "step"]
    if len(steps) != script.iterations:
        findings.append(_rule(method, "wrong_number_of_steps",
                              f"it ran {len(steps)} gradient step(s) (backpropagate calls) "
                              f"for iterations={script.iterations}"))
    wrong_pair = sorted({calls[i].method for i in steps if calls[i].method != backward})
    before = [next((c for c in reversed(calls[:i]) if c.kind == "forward"), None)
              for i in steps]
    wrong_pair += sorted({c.method for c in before if c is not None and c.method != forward})
    if wrong_pair:
        findings.append(_rule(method, "train_calls_the_wrong_pair",
                              f"it calls {' and '.join(wrong_pair)} to take its steps; "
                              f"{method} steps with {forward} + {backward}"))
    if any(c is None for c in before):
        findings.append(Finding(method, "calls", WRONG,
                                f"{method}: it calls {backward} before any forward pass"))
    if any(c is not None and c.which == script.VALIDATION for c in before):
        findings.append(_rule(method, "step_after_validation_pass",
                              f"it runs {backward} right after a forward pass over the "
                              "validation data"))
    elif any(c is not None and (c.which != script.TRAINING or c.rows != script.n_train)
             for c in before) or any(calls[i].rows != script.n_train for i in steps):
        findings.append(_rule(method, "not_full_batch",
                              f"the forward pass before {backward}, or its targets, are "
                              f"not all {script.n_train} training samples"))
    rates = sorted({calls[i].learning_rate for i in steps
                    if calls[i].learning_rate != script.learning_rate}, key=repr)
    if rates:
        findings.append(_rule(method, "train_learning_rate_not_passed",
                              f"{backward} gets learning_rate {', '.join(map(repr, rates))}; "
                              f"{method} was given {script.learning_rate}"))
    if any(not calls[i].training_targets and calls[i].rows == script.n_train for i in steps):
        findings.append(Finding(method, "calls", WRONG,
                                f"{method}: {backward} is not given the training data's "
                                "targets (data[1])"))
    return findings or [Finding(method, "calls", PASSED)]


def _describe_kept(kept):
    if kept[0] == kept[1]:
        return f"the weights after iteration {kept[0]}"
    return (f"W_input_to_hidden of iteration {kept[0]} and W_hidden_to_output of "
            f"iteration {kept[1]}")


def _kept_finding(method, script, steps, in_place, rebinding):
    loop = TrainLoop()
    expected = loop.run(script.train_accuracy, script.validation_accuracy, steps, True)[0]
    best = max(range(steps + 1), key=lambda k: (script.validation_accuracy[k]
                                                if k < len(script.validation_accuracy)
                                                else -1, -k))
    runs = [(True, in_place), (False, rebinding)]
    for _, run in runs:
        if run.outcome is not None and run.outcome.ok and run.kept is None:
            return Finding(method, "weights kept", WRONG, f"{method}: {run.problem}")
    observed = [(flag, run.kept) for flag, run in runs if run.kept is not None]
    if all(kept == expected for _, kept in observed):
        return Finding(method, "weights kept", PASSED)
    first_flag, first = next((f, k) for f, k in observed if k != expected)
    how = ("backpropagate updating the weights in place (W -= ...)" if first_flag
           else "backpropagate replacing the weights (W = W - ...)")
    message = (f"{method}: the model is left with {_describe_kept(first)} (with {how}); "
               f"the best validation accuracy, {script.validation_accuracy[best]:g} %, was "
               f"after iteration {best}")

    def matches(mistake):
        return all(mistake().run(script.train_accuracy, script.validation_accuracy, steps,
                                 flag)[0] == kept for flag, kept in observed)

    candidates = catalogue.for_method(method, catalogue.TrainMistake)
    found = [m for m in candidates if matches(m)]
    if not found:
        pairs = (catalogue.TrainMistake.together(a, b)
                 for i, a in enumerate(candidates) for b in candidates[i + 1:])
        found = [p for p in pairs if p is not None and matches(p)]
    diagnosis = [Diagnosis(m.name, f"{method}: {m.message}") for m in found]
    if not diagnosis:
        message += "; no mistake in the catalogue keeps those weights"
    return Finding(method, "weights kept", WRONG, message, probe="a scripted network "
                   f"({script.iterations} iterations)", expected=list(expected),
                   got=list(first), where=f"kept iteration {first}, expected {expected}",
                   diagnosis=diagnosis)


def _harmless_alias(session, cross_entropy, finding):
    """Best weights kept as aliases only go wrong with a backpropagate that updates the
    arrays in place: with the student's own, which replaces them, that is a note."""
    backward = "backpropagate_xe" if cross_entropy else "backpropagate"
    if ([d.name for d in finding.diagnosis] != ["best_weights_aliased"]
            or session.in_place.get(backward, True)):
        return finding
    return Finding(finding.method, finding.quantity, PASSED,
                   f"{finding.method}: the best weights are kept as aliases of the model's "
                   f"arrays (best_W = self.W_input_to_hidden); that works with your "
                   f"{backward}, which replaces the arrays (W = W - ...), but would keep the "
                   "LAST weights with one that updates them in place (W -= ...): keep copies "
                   "(.copy())")


def _accuracy_findings(method, script, steps, outcome):
    right = [r[1] for r in TrainLoop().run(script.train_accuracy, script.validation_accuracy,
                                           steps, True)[1]]
    late = [r[1] for r in catalogue.mistake("accuracy_measured_before_step")().run(
        script.train_accuracy, script.validation_accuracy, steps, True)[1]]
    lagging = Diagnosis("accuracy_measured_before_step",
                        f"{method}: {catalogue.mistake('accuracy_measured_before_step').message}")
    findings = []
    named, unnamed = _returned_accuracies(outcome.value, len(right))
    if named is not None and _same(named, right) or any(_same(c, right) for c in unnamed):
        findings.append(Finding(method, "returned accuracies", PASSED))
    elif named is not None or any(_same(c, late) for c in unnamed):
        # a sequence called validation accuracies, or one that is them a step late
        got = named if named is not None else next(c for c in unnamed if _same(c, late))
        findings.append(Finding(
            method, "returned accuracies", WRONG,
            f"{method}: the validation accuracies it returns are not those of the weights "
            "after each iteration", expected=right, got=got, where=f"expected {right}",
            diagnosis=[lagging] if _same(got, late) else []))
    printed = outcome.printed
    if "training time" not in printed.lower():
        findings.append(Finding(method, "printed", WRONG,
                                f"{method}: it does not print 'Training time: <seconds>' as "
                                "the lab's train does"))
    elif not _contains(printed, right) and _contains(printed, late):
        findings.append(Finding(method, "printed", WRONG,
                                f"{method}: the validation accuracies it prints with "
                                "verbose=True are those of the weights BEFORE each step",
                                expected=right, diagnosis=[lagging]))
    else:
        findings.append(Finding(method, "printed", PASSED))
    return findings


def _returned_accuracies(value, n):
    """What ``train`` returned that may be its per-iteration validation accuracies:
    ``(named, unnamed)``, the ``validation_accuracy`` of a history (mnist_native's
    TrainingHistory) or a dict, and the numeric sequences of length ``n`` in a returned
    tuple or list (which one is which, only their values can tell)."""
    if value is None:
        return None, []
    for name in ("validation_accuracy", "validation_accuracies"):
        got = (value.get(name) if isinstance(value, dict)
               else guard.call(getattr, value, name, None).value)
        if got is not None:
            return _numbers(got) or [], []
    if isinstance(value, (tuple, list)):
        sequences = [_numbers(v) for v in value if isinstance(v, (tuple, list, np.ndarray))]
        return None, [q for q in sequences if q is not None and len(q) == n]
    return None, []


def _numbers(values):
    try:
        return [float(v) for v in values]
    except Exception:
        return None


def _same(got, expected):
    """Equal, in % or as fractions."""
    if got is None or len(got) != len(expected):
        return False
    scale = 100.0 if expected and max(map(abs, got), default=0) <= 1.0 else 1.0
    return all(abs(g * scale - e) < 1e-6 for g, e in zip(got, expected))


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _contains(text, sequence):
    """Whether the numbers printed in ``text`` hold ``sequence`` in order (other numbers
    between them allowed), in % (to 0.5) or as fractions (to 0.005)."""
    numbers = [float(n) for n in _NUMBER.findall(text)]
    for scale, tolerance in ((1.0, 0.5), (0.01, 0.005)):
        wanted = iter(v * scale for v in sequence)
        target = next(wanted, None)
        for n in numbers:
            if target is not None and abs(n - target) <= tolerance:
                target = next(wanted, None)
        if target is None:
            return True
    return False

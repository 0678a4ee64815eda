"""``feedforward`` and ``backpropagate`` (and the ``_xe`` pair), number by number.

Each method runs on the probes' networks; every quantity it produces is compared with the
lab's (``LabSteps``).  When something differs, every catalogue mistake for that method is
run on the same inputs, and those that reproduce the student's numbers on EVERY network are
the diagnosis (single mistakes first, then two at once).

``backpropagate`` is checked on its own: after the student's ``feedforward`` has run, the
lab's forward values are put in ``self.input``, ``self.u_hidden``... so a wrong forward pass
does not make a right backward pass look wrong.
"""
import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from . import catalogue
from .compare import as_array, close, difference, fmt_shape, json_ready
from .probes import backward_probes, forward_probes
from .report import (DIFFERS, ERROR, NOT_IMPLEMENTED, PASSED, TIMED_OUT, WRONG, Diagnosis,
                     Finding)
from .session import lab_lists, snapshot
from .steps import FORWARD_QUANTITIES, LabSteps

#: backpropagate's quantities: (name, weight matrix, rows).  The bias row (the last) is
#: its own quantity, so "the bias row is not updated" shows as exactly that.
UPDATES = (
    ("W_hidden_to_output update", "W_hidden_to_output", slice(0, -1)),
    ("W_hidden_to_output bias-row update", "W_hidden_to_output", slice(-1, None)),
    ("W_input_to_hidden update", "W_input_to_hidden", slice(0, -1)),
    ("W_input_to_hidden bias-row update", "W_input_to_hidden", slice(-1, None)),
)
UPDATE_NAMES = tuple(u[0] for u in UPDATES)


@dataclass
class Run:
    """One network of the probes, as the student's method handled it."""

    probe: object
    outcome: object = None               # guard.Outcome; None: no instance could be made
    got: dict = field(default_factory=dict)        # quantity -> array (None: missing)
    problems: dict = field(default_factory=dict)   # quantity -> why it is missing
    expected: dict = field(default_factory=dict)
    changed_argument: bool = False
    no_effect: bool = False             # returned without setting/changing anything
    returned_value: bool = False
    forward_wrong: bool = False         # (backpropagate) the student's feedforward differed
    row_offset: dict = field(default_factory=dict)  # quantity -> its first row in the matrix
    partial: dict = field(default_factory=dict)  # what a run that raised had set before it

    @property
    def completed(self):
        return self.outcome is not None and self.outcome.ok and not self.no_effect


# ------------------------------------------------------------------------------------------
# feedforward
# ------------------------------------------------------------------------------------------

def check_feedforward(session, cross_entropy=False):
    method = "feedforward_xe" if cross_entropy else "feedforward"
    if not session.has(method):
        return [Finding(method, None, NOT_IMPLEMENTED, session.missing(method))]
    runs = [_forward_run(session, method, probe, cross_entropy)
            for probe in forward_probes(cross_entropy)]

    def predict(steps, run):
        return steps.feedforward(run.probe.x, run.probe.w1, run.probe.w2, cross_entropy)

    return _findings(session, method, runs, FORWARD_QUANTITIES, predict, _forward_reproduced,
                     argument="inputs", effect="setting self.o_output")


def _forward_run(session, method, probe, cross_entropy):
    run = Run(probe, expected=LabSteps().feedforward(probe.x, probe.w1, probe.w2,
                                                     cross_entropy))
    model = session.new_model(probe.sizes, probe.w1, probe.w2)
    if model is None:
        return run
    objects = {q: session.get(model, q) for q in FORWARD_QUANTITIES}
    before = objects["o_output"]
    inputs = lab_lists(probe.x)
    given = snapshot(inputs)
    run.outcome = session.call(model, method, inputs)
    run.changed_argument = inputs != given
    if run.outcome.error is not None:  # what it set before raising can still tell why
        for q, old in objects.items():
            now = session.get(model, q)
            if now.ok and not (old.ok and now.value is old.value):
                run.partial[q] = as_array(now.value)[0]
        run.partial = {q: a for q, a in run.partial.items() if a is not None}
    if not run.outcome.ok:
        return run
    after = session.get(model, "o_output")
    run.no_effect = (isinstance(after.error, AttributeError)
                     or (after.ok and before.ok and after.value is before.value))
    for name in FORWARD_QUANTITIES:
        run.got[name], run.problems[name] = session.array(model, name)
    return run


def _forward_reproduced(predicted, run):
    """The mistake's forward pass gives the student's o_output, and every other quantity of
    the same shape the student set."""
    if run.got.get("o_output") is None or not close(run.got["o_output"], predicted["o_output"]):
        return False
    return all(close(run.got[q], predicted[q]) for q in FORWARD_QUANTITIES
               if run.got.get(q) is not None and run.got[q].shape == predicted[q].shape)


# ------------------------------------------------------------------------------------------
# backpropagate
# ------------------------------------------------------------------------------------------

def check_backpropagate(session, cross_entropy=False):
    method = "backpropagate_xe" if cross_entropy else "backpropagate"
    forward = "feedforward_xe" if cross_entropy else "feedforward"
    if not session.has(method):
        return [Finding(method, None, NOT_IMPLEMENTED, session.missing(method))]
    runs = [_backward_run(session, method, forward, probe, cross_entropy)
            for probe in backward_probes(cross_entropy)]

    def predict(steps, run):
        p = run.probe
        fw = LabSteps().feedforward(p.x, p.w1, p.w2, cross_entropy)
        new_w1, new_w2 = steps.backpropagate(fw, p.y, p.rate, p.w1, p.w2, cross_entropy)
        return {"W_input_to_hidden": new_w1 - p.w1, "W_hidden_to_output": new_w2 - p.w2}

    findings = _findings(session, method, runs, [u[0] for u in UPDATES], predict,
                         _backward_reproduced, argument="targets",
                         effect="changing W_input_to_hidden or W_hidden_to_output")
    wrong = [f for f in findings if f.status == WRONG and f.quantity in UPDATE_NAMES]
    if wrong and any(r.returned_value for r in runs if r.completed):
        wrong[0].message += (f" ({method} returns a value; the lab's {method} returns "
                             "nothing: it changes self.W_input_to_hidden and "
                             "self.W_hidden_to_output)")
    if wrong and any(r.forward_wrong for r in runs):
        wrong[0].message += (f" ({forward} is wrong too: fix it first; backpropagate was "
                             "checked from the lab's forward values)")
    return findings


def _backward_run(session, method, forward, probe, cross_entropy):
    fw = LabSteps().feedforward(probe.x, probe.w1, probe.w2, cross_entropy)
    new_w1, new_w2 = LabSteps().backpropagate(fw, probe.y, probe.rate, probe.w1, probe.w2,
                                              cross_entropy)
    run = Run(probe)
    _split_updates(run.expected, {"W_input_to_hidden": new_w1 - probe.w1,
                                  "W_hidden_to_output": new_w2 - probe.w2})
    run.row_offset = {name: (len(probe.w1 if matrix == "W_input_to_hidden" else probe.w2) - 1
                             if rows.start == -1 else 0) for name, matrix, rows in UPDATES}
    model = session.new_model(probe.sizes, probe.w1, probe.w2)
    if model is None:
        return run
    # The student's own forward pass first (it may keep state of its own), then the lab's
    # values in the attributes backpropagate reads.
    if session.has(forward) and forward not in session.stuck:
        own = session.call(model, forward, lab_lists(probe.x))
        out, _ = session.array(model, "o_output")
        run.forward_wrong = not own.ok or out is None or not close(out, fw["o_output"])
    for name, value in fw.items():
        session.set(model, name, value.copy())
    before = {n: session.array(model, n)[0] for n in ("W_input_to_hidden", "W_hidden_to_output")}
    objects = [session.get(model, n).value for n in before]
    targets = lab_lists(probe.y)
    given = snapshot(targets)
    args = (targets,) if probe.learning_rate is None else (targets, probe.learning_rate)
    run.outcome = session.call(model, method, *args)
    run.changed_argument = targets != given
    if run.outcome.error is not None:  # a matrix it updated before raising can tell why
        for name, start in before.items():
            now, _ = session.array(model, name)
            if start is not None and now is not None and now.shape == start.shape:
                if (now != start).any():
                    run.partial[name] = now - start
    if not run.outcome.ok:
        return run
    # train's check needs to know: are the model's arrays the same objects afterwards?
    same = [session.get(model, n).value is o for n, o in zip(before, objects)]
    session.in_place[method] = session.in_place.get(method, False) or all(same)
    updates, reshaped = {}, {}
    for name, start in before.items():
        after, problem = session.array(model, name)
        if after is not None and start is not None and after.shape != start.shape:
            problem = (f"self.{name} has shape {fmt_shape(after.shape)} after {method}, "
                       f"it had {fmt_shape(start.shape)}")
            # ``W = W - rate * gradient`` with a gradient of the wrong shape broadcasts to
            # a new shape: the mistake doing the same explains it (diagnosis only).
            if after.ndim == start.ndim and all(
                    s in (1, a) for a, s in zip(after.shape, start.shape)):
                reshaped[name] = after - start
        if problem or start is None:
            run.problems.update({u[0]: problem for u in UPDATES if u[1] == name})
            updates[name] = None
        else:
            updates[name] = after - start
    run.returned_value = run.outcome.value is not None
    # Nothing changed and nothing returned: a method not written yet (``pass``).
    run.no_effect = not run.returned_value and all(
        u is not None and not u.any() for u in updates.values())
    _split_updates(run.got, updates)
    run.got["_whole"] = {**updates, **reshaped}
    return run


def _split_updates(into, updates):
    """Whole-matrix updates -> the four quantities of ``UPDATES``."""
    for name, matrix, rows in UPDATES:
        u = updates.get(matrix)
        into[name] = None if u is None else u[rows]
    into["_whole"] = updates


def _backward_reproduced(predicted, run):
    whole = run.got.get("_whole", {})
    return all(whole.get(n) is not None and close(whole[n], predicted[n])
               for n in ("W_input_to_hidden", "W_hidden_to_output"))


# ------------------------------------------------------------------------------------------
# shared: runs -> findings, diagnosis
# ------------------------------------------------------------------------------------------

def _findings(session, method, runs, quantities, predict, reproduced, argument, effect):
    ran = [r for r in runs if r.outcome is not None]
    if not ran:
        return []  # no instance could be made: the constructor's findings say why
    if any(r.outcome.not_implemented for r in ran):
        return [Finding(method, None, NOT_IMPLEMENTED,
                        f"{method}: not implemented (it raises NotImplementedError)")]
    if all(r.no_effect for r in ran if r.outcome.ok) and any(r.outcome.ok for r in ran):
        return [Finding(method, None, NOT_IMPLEMENTED,
                        f"{method}: not implemented (it returns without {effect})")]
    findings = []
    failed = [r for r in ran if not r.outcome.ok]
    if failed:
        first = failed[0]
        status = TIMED_OUT if first.outcome.timed_out else ERROR
        more = f" (and on {len(failed) - 1} other network(s))" if len(failed) > 1 else ""
        findings.append(Finding(method, None, status,
                                f"{method} {first.outcome.describe_error(session.timeout)} on "
                                f"{first.probe.name}{more}", probe=first.probe.name))
    changed = next((r for r in ran if r.changed_argument), None)
    if changed is not None:
        findings.append(Finding(method, argument, WRONG,
                                f"{method} changes the {argument} list it is given (on "
                                f"{changed.probe.name}); the notebook reuses its data, so "
                                f"build new lists or arrays instead of changing "
                                f"{argument}", probe=changed.probe.name))
    completed = [r for r in ran if r.completed]
    wrong = []
    for q in quantities:
        finding = _quantity_finding(method, q, completed)
        if finding is not None:
            findings.append(finding)
            if finding.status == WRONG:
                wrong.append(finding)
    raised = [r for r in ran if r.outcome.error is not None]
    if wrong or raised:
        diagnosis = _diagnose(method, ran, predict, reproduced, wrong)
        for f in wrong or findings[:1]:  # the quantities, else the error
            f.diagnosis = list(diagnosis)
        if wrong and not diagnosis:
            wrong[0].message += "; no mistake in the catalogue reproduces your numbers"
    return findings


def _quantity_finding(method, quantity, completed):
    if not completed:
        return None
    for run in completed:
        got, expected = run.got.get(quantity), run.expected[quantity]
        if got is None:
            why = run.problems.get(quantity) or f"{quantity} is missing"
            return Finding(method, quantity, WRONG, f"{method}: {why}", probe=run.probe.name,
                           expected=json_ready(expected), where=why)
        diff = difference(got, expected)
        if diff is not None:
            if diff.index is not None and run.row_offset.get(quantity):
                diff.index = (diff.index[0] + run.row_offset[quantity],) + diff.index[1:]
            return Finding(method, quantity, WRONG, f"{method}: {quantity} {DIFFERS}",
                           probe=run.probe.name, expected=json_ready(expected),
                           got=json_ready(got), where=diff.describe(_display_name(quantity)))
    return Finding(method, quantity, PASSED, probe=f"{len(completed)} network(s)")


def _display_name(quantity):
    """How an entry is named: "o_output", "W_input_to_hidden update"... (the bias row of a
    matrix is shown with the matrix's own row index)."""
    return quantity.replace(" bias-row update", " update")


def _diagnose(method, runs, predict, reproduced, wrong):
    """The catalogue entries (or pairs of them) that explain the student on every network.

    A mistake explains a network the student's method finished on when it gives the same
    numbers.  Where the method raised, a mistake that raises the same error (same exception,
    same shapes once the batch dimension is set aside), or gives what the method had set
    before raising, explains it; one that contradicts what it had set does not.  At least
    one network must differ from the lab's in the way the mistake says.
    """
    lab = {}
    for run in runs:  # the lab's own values, for telling whether a run shows a difference
        try:
            lab[id(run)] = predict(LabSteps(), run)
        except Exception:  # a network the lab's steps cannot run on: not one of the probes
            lab[id(run)] = None

    def matches(mistake):
        """None, or what shows it: "numbers", "error" and/or the quantities a run that
        raised had set."""
        steps, evidence = mistake(), set()
        for run in runs:
            try:
                with np.errstate(all="ignore"):
                    predicted = predict(steps, run)
            except Exception as exc:
                if run.completed:
                    return None  # the mistake cannot even run where the student's code did
                if _same_error(exc, run):
                    evidence.add("error")
                continue
            if run.completed:
                if not reproduced(predicted, run):
                    return None
                if not reproduced(lab[id(run)], run):
                    evidence.add("numbers")
            elif run.outcome.error is not None:
                told = _partly_reproduced(predicted, lab[id(run)], run)
                if told is False:
                    return None
                evidence.update(told or ())
        return evidence or None

    candidates = catalogue.for_method(method, catalogue.StepMistake)
    found = [(m, e) for m in candidates for e in [matches(m)] if e]
    if not found:
        pairs = (catalogue.StepMistake.together(a, b)
                 for a, b in itertools.combinations(candidates, 2))
        found = [(p, e) for p in pairs if p is not None for e in [matches(p)] if e]
    return [Diagnosis(m.name, f"{method}: {m.message}; {_shown_by(method, m, e, wrong)}")
            for m, e in found]


def _and(names):
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _shown_by(method, mistake, evidence, wrong):
    """How the student's code shows the mistake, in words."""
    it = "these two mistakes together" if hasattr(mistake, "parts") else "that mistake"
    if "numbers" in evidence and wrong:
        names = [_display_name(f.quantity) for f in wrong]
        verb = "equals" if len(set(names)) == 1 else "equal"
        return f"your {_and(names)} {verb} what {it} gives"
    set_before = sorted(evidence - {"numbers", "error"})
    if set_before:
        verb = "equals" if len(set_before) == 1 else "equal"
        return (f"the {_and('self.' + q for q in set_before)} your {method} set before "
                f"failing {verb} what {it} gives")
    return f"your {method} fails as {it} does"


_SHAPE = re.compile(r"\((\d+(?:\s*,\s*\d+)*)\s*,?\)")


def _error_signature(exc, batch):
    """An exception's type and the shapes its message names, a leading batch dimension
    dropped (a per-sample loop names (3,) where batch code names (5, 3)), sorted."""
    shapes = []
    for match in _SHAPE.finditer(str(exc)):
        dims = tuple(int(d) for d in match.group(1).split(","))
        shapes.append(dims[1:] if len(dims) == 2 and dims[0] == batch else dims)
    return type(exc).__name__, tuple(sorted(shapes))


def _same_error(exc, run):
    batch = len(run.probe.x)
    mine = _error_signature(exc, batch)
    return bool(mine[1]) and mine == _error_signature(run.outcome.error, batch)


def _partly_reproduced(predicted, lab, run):
    """What a method set before raising, against a mistake's values: False when they
    disagree, else the quantities that agree with the mistake and differ from the lab's
    (empty: nothing to tell)."""
    shared = [q for q, got in run.partial.items()
              if q in predicted and got.shape == np.shape(predicted[q])]
    if not all(close(run.partial[q], predicted[q]) for q in shared):
        return False
    return {q for q in shared if lab is None or q not in lab
            or run.partial[q].shape != np.shape(lab[q]) or not close(run.partial[q], lab[q])}

"""The constructor: the stored layer sizes (bias units counted), the shapes of the weight
matrices (bias row last), and ``weights_init`` setting the matrices it is given."""
import numpy as np

from . import catalogue
from .report import ERROR, NOT_IMPLEMENTED, PASSED, TIMED_OUT, WRONG, Diagnosis, Finding

#: Sizes no two of which are equal (nor one more than another), so that a transposed or
#: bias-less shape cannot pass for the right one.
SIZES = (5, 7, 3)
SIZE_NAMES = ("input_layer_size", "hidden_layer_size", "output_layer_size")
WEIGHT_NAMES = ("W_input_to_hidden", "W_hidden_to_output")


def check_constructor(session):
    """Findings for ``cls(5, 7, 3)``; the first is an ERROR when it cannot be made at all
    (nothing else can be checked then)."""
    n_in, n_hidden, n_out = SIZES
    made = session.construct(SIZES)
    call = f"{session.cls.__name__}({n_in}, {n_hidden}, {n_out})"
    if not made.ok:
        if made.not_implemented:
            return [Finding("constructor", None, NOT_IMPLEMENTED,
                            f"constructor: not implemented ({call} raises "
                            "NotImplementedError)")]
        status = TIMED_OUT if made.timed_out else ERROR
        return [Finding("constructor", None, status,
                        f"constructor: {call} {made.describe_error(session.timeout)}; "
                        "nothing else can be checked without an instance")]
    model = made.value
    return [_sizes(session, model, call), *_shapes(session, model, call),
            _weights_init(session)]


def _sizes(session, model, call):
    expected = catalogue.ShapeMistake.sizes(*SIZES)
    got = []
    for name in SIZE_NAMES:
        value = session.get(model, name)
        got.append(value.value if value.ok else None)
    if tuple(got) == expected:
        return Finding("constructor", "layer sizes", PASSED)
    shown = ", ".join(f"{n} = {g!r}" for n, g in zip(SIZE_NAMES, got))
    diagnosis = [Diagnosis(m.name, f"constructor: {m.message}")
                 for m in catalogue.for_method("constructor", catalogue.ShapeMistake)
                 if m.sizes(*SIZES) == tuple(got) and m.sizes is not
                 catalogue.ShapeMistake.sizes]
    return Finding("constructor", "layer sizes", WRONG,
                   f"constructor: {call} stores {shown}", probe=call,
                   expected=list(expected), got=[_plain(g) for g in got],
                   where="expected " + ", ".join(f"{n} = {e}"
                                                 for n, e in zip(SIZE_NAMES, expected)),
                   diagnosis=diagnosis)


def _shapes(session, model, call):
    expected = catalogue.ShapeMistake.shapes(*SIZES)
    got = []
    findings = []
    for name, shape in zip(WEIGHT_NAMES, expected):
        array, problem = session.array(model, name)
        got.append(None if array is None else array.shape)
        if problem:
            findings.append(Finding("constructor", f"{name} shape", WRONG,
                                    f"constructor: {problem}", probe=call, where=problem))
        elif array.shape != shape:
            findings.append(Finding("constructor", f"{name} shape", WRONG,
                                    f"constructor: {name} has shape {array.shape}, expected "
                                    f"{shape}", probe=call, expected=list(shape),
                                    got=list(array.shape),
                                    where=f"shape {array.shape}, expected {shape}"))
        else:
            findings.append(Finding("constructor", f"{name} shape", PASSED))
    wrong = [f for f in findings if f.status == WRONG]
    if wrong:
        diagnosis = [Diagnosis(m.name, f"constructor: {m.message}")
                     for m in catalogue.for_method("constructor", catalogue.ShapeMistake)
                     if m.shapes is not catalogue.ShapeMistake.shapes
                     and list(m.shapes(*SIZES)) == got]
        for f in wrong:
            f.diagnosis = diagnosis
    return findings


def _weights_init(session):
    """``weights_init(wi, wo)`` sets exactly the given matrices."""
    if not session.has("weights_init"):
        return Finding("constructor", "weights_init", WRONG,
                       "constructor: the class has no weights_init(wi, wo) method; the "
                       "notebook calls it to set given weights")
    made = session.construct(SIZES)
    if not made.ok:
        return Finding("constructor", "weights_init", ERROR,
                       f"constructor: a second instance could not be made: "
                       f"{made.describe_error(session.timeout)}")
    model = made.value
    n_in, n_hidden, n_out = SIZES
    wi = np.arange((n_in + 1) * n_hidden, dtype=np.float64).reshape(n_in + 1, n_hidden) / 10
    wo = -np.arange((n_hidden + 1) * n_out, dtype=np.float64).reshape(n_hidden + 1, n_out) / 10
    outcome = session.call(model, "weights_init", wi.copy(), wo.copy())
    if not outcome.ok:
        status = NOT_IMPLEMENTED if outcome.not_implemented else (
            TIMED_OUT if outcome.timed_out else ERROR)
        return Finding("constructor", "weights_init", status, "constructor: weights_init(wi, "
                       f"wo) {outcome.describe_error(session.timeout)}")
    for name, given in zip(WEIGHT_NAMES, (wi, wo)):
        array, problem = session.array(model, name)
        if problem or array.shape != given.shape or not np.array_equal(array, given):
            return Finding("constructor", "weights_init", WRONG,
                           f"constructor: after weights_init(wi, wo), self.{name} is not the "
                           f"matrix given ({problem or 'other values or shape'})")
    return Finding("constructor", "weights_init", PASSED)


def _plain(value):
    """A value for JSON: numbers as numbers, anything else as its repr."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return None if value is None else repr(value)

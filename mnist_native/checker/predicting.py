"""``predict``: the NUMBER (an int) of samples whose largest output is at the target's 1.

It runs on a network where exactly 3 of 10 samples are right, so a count cannot be
confused with a percentage (30), a fraction (0.3) or the number wrong (7).  When the
student's ``feedforward`` is wrong, ``predict`` is also accepted if it counts right for the
outputs that ``feedforward`` gives: it is then ``feedforward`` that needs the fix.
"""
import numbers

import numpy as np

from . import catalogue
from .probes import predict_probe
from .report import (ERROR, NOT_CHECKED, NOT_IMPLEMENTED, PASSED, TIMED_OUT, WRONG,
                     Diagnosis, Finding)
from .session import lab_lists, snapshot

BROKEN_BECAUSE = {"not implemented": "is not implemented yet", "error": "raises an error",
                  "timed out": "does not finish"}
FEEDFORWARD_BROKEN = tuple(BROKEN_BECAUSE)


def check_predict(session):
    if not session.has("predict"):
        return [Finding("predict", None, NOT_IMPLEMENTED, session.missing("predict"))]
    probe = predict_probe()
    model = session.new_model(probe.sizes, probe.w1, probe.w2)
    if model is None:
        return []
    test_data = (lab_lists(probe.x), [list(t) for t in probe.targets])
    given = snapshot(test_data)
    outcome = session.call(model, "predict", test_data)
    feedforward = session.status.get("feedforward")
    if not outcome.ok:
        if feedforward in FEEDFORWARD_BROKEN:
            return [Finding("predict", None, NOT_CHECKED,
                            f"predict: not checked, as it calls feedforward, which "
                            f"{BROKEN_BECAUSE[feedforward]}")]
        if outcome.not_implemented:
            return [Finding("predict", None, NOT_IMPLEMENTED,
                            "predict: not implemented (it raises NotImplementedError)")]
        status = TIMED_OUT if outcome.timed_out else ERROR
        return [Finding("predict", None, status,
                        f"predict {outcome.describe_error(session.timeout)} on {probe.name}",
                        probe=probe.name)]
    findings = []
    if test_data != given:
        findings.append(Finding("predict", "test_data", WRONG,
                                "predict changes the test_data it is given; the notebook "
                                "reuses it", probe=probe.name))
    value = outcome.value
    if value is None:
        return findings + [Finding("predict", None, NOT_IMPLEMENTED,
                                   "predict: not implemented (it returns None)")]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        return findings + [Finding("predict", "count", WRONG,
                                   f"predict returns a {type(value).__name__}, not the number "
                                   "of right samples", probe=probe.name, expected=probe.right,
                                   got=repr(value)[:200])]
    value = float(value)
    n = len(probe.targets)
    if value == probe.right:
        return findings + [Finding("predict", "count", PASSED)]
    if feedforward in FEEDFORWARD_BROKEN:
        return findings + [Finding("predict", None, NOT_CHECKED,
                                   f"predict: not checked, as it calls feedforward, which "
                            f"{BROKEN_BECAUSE[feedforward]}")]
    own = _count_for_own_feedforward(session, probe)
    if own is not None and value == own:
        return findings + [Finding("predict", "count", PASSED,
                                   f"predict counts right for the outputs of your feedforward "
                                   f"({own}); the lab's outputs give {probe.right}")]
    diagnosis = [Diagnosis(m.name, f"predict: {m.message}")
                 for m in catalogue.for_method("predict", catalogue.ReturnMistake)
                 if any(right is not None and np.isclose(value, m.returns(right, n))
                        for right in (probe.right, own))]
    message = f"predict returns {value:g} for {n} samples of which {probe.right} are right"
    if not diagnosis:
        message += "; no mistake in the catalogue gives that"
    return findings + [Finding("predict", "count", WRONG, message, probe=probe.name,
                               expected=probe.right, got=value,
                               where=f"expected {probe.right}, got {value:g}",
                               diagnosis=diagnosis)]


def _count_for_own_feedforward(session, probe):
    """The right count for the outputs of the student's own ``feedforward`` (None if they
    cannot be had)."""
    if not session.has("feedforward") or "feedforward" in session.stuck:
        return None
    model = session.new_model(probe.sizes, probe.w1, probe.w2)
    if model is None or not session.call(model, "feedforward", lab_lists(probe.x)).ok:
        return None
    out, problem = session.array(model, "o_output")
    if problem or out.shape != (len(probe.targets), probe.w2.shape[1]):
        return None
    labels = np.argmax(np.asarray(probe.targets), axis=1)
    return int(np.count_nonzero(np.argmax(out, axis=1) == labels))

"""``check``: every method of a student's network, in the lab's order, into one Report."""
import math
import numbers

from . import guard
from .constructor import check_constructor
from .numeric import check_backpropagate, check_feedforward
from .predicting import check_predict
from .report import NOT_CHECKED, SEVERITY, Finding, Report
from .session import Session
from .training import check_train

#: Seconds one call of the student's code may take (the checker's own calls take
#: milliseconds).
DEFAULT_TIMEOUT = 5.0

CHECKS = (
    ("feedforward", lambda s: check_feedforward(s, False)),
    ("backpropagate", lambda s: check_backpropagate(s, False)),
    ("feedforward_xe", lambda s: check_feedforward(s, True)),
    ("backpropagate_xe", lambda s: check_backpropagate(s, True)),
    ("train", lambda s: check_train(s, False)),
    ("train_xe", lambda s: check_train(s, True)),
    ("predict", check_predict),
)


class CheckFailed(AssertionError):
    """``check(..., raise_on_failure=True)`` found something wrong; ``.report`` holds the
    Report, and the message is its text."""

    def __init__(self, report):
        super().__init__(str(report))
        self.report = report


def check(network, *, raise_on_failure=False, timeout=DEFAULT_TIMEOUT):
    """Check a student's network against the lab, method by method, and say what is wrong.

    Parameters
    ----------
    network : class or instance
        A class with the lab's interface (``NeuralNetwork(n_in, n_hidden, n_out)``,
        ``weights_init``, ``feedforward``, ``backpropagate``, ``feedforward_xe``,
        ``backpropagate_xe``, ``train``, ``train_xe``, ``predict``), or an instance of one
        (its class is checked, on fresh instances).
    raise_on_failure : bool, keyword-only
        Raise ``AssertionError`` (a ``CheckFailed`` carrying ``.report``, its message the
        report's text) unless everything passes: a grading cell can be this one line.
    timeout : float or None, keyword-only
        Seconds one call of the student's code may take before it is stopped and reported
        (None: no limit).  A method stuck in a Python loop is stopped; one blocked inside
        a single C call can only be stopped by ``mnist-native check``, which runs the
        check in a child process.

    Returns
    -------
    Report
        ``passed``, ``findings`` (one per method and quantity: expected, got, where they
        differ, and the diagnosis: the catalogue mistakes that reproduce the student's
        numbers), ``methods`` (name -> status); ``str(report)`` for the student,
        ``report.to_dict()`` as JSON-ready data.

    Nothing the student's code does (raise, loop, return the wrong thing, change its
    arguments) escapes from ``check`` as an exception; it becomes a finding.
    """
    cls = network_class(network)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or not 0 < timeout < math.inf):
        raise ValueError(f"timeout must be a number of seconds > 0, or None, got {timeout!r}")
    report = run_checks(cls, describe(cls), timeout=timeout)
    if raise_on_failure and not report.passed:
        raise CheckFailed(report)
    return report


def network_class(network):
    """The class to check, given a class or an instance of one."""
    if isinstance(network, type):
        return network
    if type(network).__module__ == "builtins":  # a function, a module, a number...
        raise TypeError("check() takes a class with the lab's interface (or an instance of "
                        f"one), e.g. check(NeuralNetwork); got {network!r}")
    return type(network)


def describe(cls):
    module = getattr(cls, "__module__", "") or ""
    where = "" if module in ("__main__", "builtins") else f" (module {module})"
    return f"{getattr(cls, '__qualname__', cls.__name__)}{where}"


def run_checks(cls, label, timeout=DEFAULT_TIMEOUT, progress=None):
    """The Report for class ``cls``, called ``label`` in it; ``progress(method)`` is told
    which method is being checked (the command line's child process says so when killed)."""
    session = Session(cls, timeout, progress)
    findings = []
    with guard.quiet():
        session.progress("constructor")
        made = check_constructor(session)
        findings += made
        _record(session, "constructor", made)
        if made and made[0].quantity is None:  # no instance: nothing else can run
            findings += [Finding(m, None, NOT_CHECKED, f"{m}: not checked (the constructor "
                                 "fails)") for m, _ in CHECKS]
            return Report(label, findings)
        for method, run in CHECKS:
            session.progress(method)
            found = run(session)
            if not found:
                found = [Finding(method, None, NOT_CHECKED,
                                 f"{method}: not checked (no instance could be made)")]
            findings += found
            _record(session, method, found)
    return Report(label, findings)


def _record(session, method, findings):
    worst = min((SEVERITY.index(f.status) for f in findings), default=len(SEVERITY) - 1)
    session.status[method] = SEVERITY[worst]


__all__ = ["check", "CheckFailed", "run_checks", "DEFAULT_TIMEOUT"]

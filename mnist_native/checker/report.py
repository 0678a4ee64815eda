"""What ``check`` returns: findings per method and quantity, their diagnoses, and a short
friendly text (``str(report)``) or JSON-ready data (``report.to_dict()``)."""
import textwrap
from dataclasses import dataclass, field
from typing import List, Optional

PASSED = "passed"
WRONG = "wrong"
NOT_IMPLEMENTED = "not implemented"
ERROR = "error"            # the student's code raised an exception
TIMED_OUT = "timed out"
NOT_CHECKED = "not checked"  # something it needs failed first

#: Worst first: a method's status is the worst of its findings'.
SEVERITY = (NOT_IMPLEMENTED, TIMED_OUT, ERROR, WRONG, NOT_CHECKED, PASSED)

#: The methods, in the order the report lists them.
METHODS = ("constructor", "feedforward", "backpropagate", "feedforward_xe",
           "backpropagate_xe", "train", "train_xe", "predict")


@dataclass
class Diagnosis:
    """A catalogue mistake that reproduces the student's numbers."""

    name: str
    message: str

    def to_dict(self):
        return {"name": self.name, "message": self.message}


@dataclass
class Finding:
    """One method (``quantity`` None) or one quantity of a method, on the checker's inputs.

    ``expected`` and ``got`` are JSON-ready (nested lists, numbers, strings); ``where`` says
    where and by how much they first differ; ``diagnosis`` lists the catalogue mistakes that
    reproduce the student's numbers (empty: none does, or nothing is wrong).
    """

    method: str
    quantity: Optional[str]
    status: str
    message: str = ""
    probe: str = ""
    expected: object = None
    got: object = None
    where: str = ""
    diagnosis: List[Diagnosis] = field(default_factory=list)

    @property
    def passed(self):
        return self.status == PASSED

    def to_dict(self):
        return {"method": self.method, "quantity": self.quantity, "status": self.status,
                "message": self.message, "probe": self.probe,
                "expected": _jsonable(self.expected), "got": _jsonable(self.got),
                "where": self.where, "diagnosis": [d.to_dict() for d in self.diagnosis]}

    @classmethod
    def from_dict(cls, data):
        fields = dict(data)
        fields["diagnosis"] = [Diagnosis(**d) for d in fields.get("diagnosis") or []]
        return cls(**fields)


class Report:
    """The result of ``mnist_native.check``.

    ``passed``: every method the lab has is there and right.  ``findings``: a list of
    ``Finding``.  ``methods``: method name -> status (``"passed"``, ``"wrong"``,
    ``"not implemented"``, ``"error"``, ``"timed out"``, ``"not checked"``).
    ``diagnoses``: the names of every catalogue mistake found.  ``str(report)`` is the
    text for the student; ``to_dict()`` the same as JSON-ready data.
    """

    def __init__(self, network, findings):
        self.network = network
        self.findings = list(findings)

    @property
    def methods(self):
        statuses = {}
        for finding in self.findings:
            now = statuses.get(finding.method, PASSED)
            if SEVERITY.index(finding.status) < SEVERITY.index(now):
                now = finding.status
            statuses[finding.method] = now
        ordered = [m for m in METHODS if m in statuses] + [m for m in statuses
                                                           if m not in METHODS]
        return {m: statuses[m] for m in ordered}

    @property
    def passed(self):
        return bool(self.findings) and all(s == PASSED for s in self.methods.values())

    @property
    def failures(self):
        return [f for f in self.findings if not f.passed]

    @property
    def diagnoses(self):
        names = []
        for finding in self.findings:
            for d in finding.diagnosis:
                if d.name not in names:
                    names.append(d.name)
        return names

    def for_method(self, method):
        return [f for f in self.findings if f.method == method]

    # -- data ----------------------------------------------------------------------------

    def to_dict(self):
        """JSON-ready: ``network``, ``passed``, ``methods`` (name -> status), ``diagnoses``
        and ``findings`` (each as ``Finding.to_dict``); NaN and infinities as strings."""
        return {"network": self.network, "passed": self.passed, "methods": self.methods,
                "diagnoses": self.diagnoses,
                "findings": [f.to_dict() for f in self.findings]}

    @classmethod
    def from_dict(cls, data):
        return cls(data["network"], [Finding.from_dict(f) for f in data["findings"]])

    # -- text ----------------------------------------------------------------------------

    def __str__(self):
        lines = [f"Checking {self.network}"]
        width = max(len(m) for m in self.methods) if self.findings else 0
        for method, status in self.methods.items():
            shown = "ok" if status == PASSED else status.upper()
            lines.append(f"  {method:<{width}}  {shown}")
            if status != PASSED:
                lines += [_wrap(text, "      ") for text in self._explain(method)]
            else:  # notes: right, but worth knowing
                lines += [_wrap(f"Note: {_unprefixed(f.message, method)}.", "      ")
                          for f in self.for_method(method) if f.message]
        failing = [m for m, s in self.methods.items() if s != PASSED]
        if not self.findings:
            lines.append("Nothing was checked.")
        elif not failing:
            lines.append("Everything passed.")
        else:
            lines.append(f"{len(failing)} of {len(self.methods)} need work: "
                         f"{_and(failing)}. Fix {'it' if len(failing) == 1 else 'the first'}, "
                         "then check again.")
        return "\n".join(lines)

    def _explain(self, method):
        """The lines under a failing method: what went wrong, the diagnosis, then the first
        difference and what else differs."""
        failures = [f for f in self.for_method(method) if not f.passed]
        out = [_unprefixed(f.message, method) for f in failures
               if f.quantity is None and f.message]
        shown = set()
        for f in failures:
            for d in f.diagnosis:
                if d.name not in shown:
                    shown.add(d.name)
                    out.append(f"Diagnosis: {_unprefixed(d.message, method)}.")
        numbers = [f for f in failures if f.quantity is not None and f.where
                   and DIFFERS in f.message]
        others = [f for f in failures if f.quantity is not None and f not in numbers]
        if numbers:
            first = numbers[0]
            out.append(f"First difference: {first.where}"
                       + (f" (on {first.probe})" if first.probe else ""))
            # what the check added after "<method>: <quantity> differs from the lab's"
            extra = first.message[first.message.index(DIFFERS) + len(DIFFERS):].strip(" ;")
            if extra:
                out.append(_unprefixed(extra, method))
            if len(numbers) > 1:
                out.append(f"Also wrong: {_and([f.quantity for f in numbers[1:]])}.")
        for f in others:
            text = _unprefixed(f.message, method)
            if f.where and f.where not in text and not f.diagnosis:
                text += f" ({f.where})"
            out.append(text)
        lines = [line if line.endswith(".") else line + "." for line in out if line.strip(". ")]
        return list(dict.fromkeys(lines))  # the same words twice say nothing new

    def __repr__(self):
        state = "passed" if self.passed else f"{len(self.failures)} problems"
        return f"<mnist_native check report for {self.network}: {state}>"

    def _repr_pretty_(self, printer, cycle):  # IPython / Jupyter show the text
        printer.text(str(self))


def _jsonable(value):
    """``value`` as JSON can hold it: lists, numbers (NaN and infinities as the strings
    "nan", "inf", "-inf"), strings, None; anything else as its repr."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return repr(value)
    if number != number or number in (float("inf"), float("-inf")):
        return str(number)
    return int(value) if float(value).is_integer() and not isinstance(value, float) else number


#: How a quantity finding that holds numbers begins its message after the quantity.
DIFFERS = "differs from the lab's"


def _unprefixed(text, method):
    """``text`` without a leading "method: " (the report shows it under the method)."""
    prefix = f"{method}: "
    text = text[len(prefix):] if text.startswith(prefix) else text
    first_word = text.split(" ", 1)[0]
    if not first_word.isalpha() or first_word in METHODS:  # not "O_output", "Train"
        return text
    return text[:1].upper() + text[1:]


def _and(names):
    """"a", "a and b", "a, b and c"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _wrap(text, indent):
    return textwrap.fill(text, width=96, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False)

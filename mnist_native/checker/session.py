"""One check's dealings with the student's class: making instances, setting weights,
calling methods and reading attributes, every one of them guarded (``guard.call``)."""
import copy
import difflib

import numpy as np

from ..network import NeuralNetwork as NativeNetwork
from . import guard
from .compare import as_array


class Session:
    """The student's class under check, with the time limit per call and what the checks
    have learnt so far (which methods ran out of time, each method's status)."""

    def __init__(self, cls, timeout=None, progress=None):
        self.cls = cls
        self.timeout = timeout
        self.progress = progress or (lambda step: None)
        self.stuck = set()   # methods that ran out of time once: not called again
        self.status = {}     # method -> status, as each check finishes
        self.in_place = {}   # backpropagate(_xe) -> whether it updates the weight arrays in place

    # -- the class --------------------------------------------------------------------------

    def has(self, name):
        """Whether the class has a callable ``name`` (reading it is guarded too)."""
        outcome = guard.call(getattr, self.cls, name, None, timeout=self.timeout)
        return outcome.ok and callable(outcome.value)

    def missing(self, method):
        """What to say when the class has no ``method``: "not implemented", with the name it
        may have been misspelt as."""
        names = guard.call(dir, self.cls).value or []
        close = difflib.get_close_matches(method, [n for n in names if not n.startswith("__")],
                                          n=1, cutoff=0.8)
        hint = f"; is {close[0]} meant to be {method}?" if close else ""
        return f"{method}: not implemented (the class has no {method} method{hint})"

    def construct(self, sizes):
        """``cls(n_in, n_hidden, n_out)`` as an Outcome (its value the instance)."""
        made = guard.call(self.cls, *sizes, timeout=self.timeout)
        if made.ok and isinstance(made.value, NativeNetwork):
            # The checker's networks are tiny: one thread is fastest, and spares a busy machine.
            made.value.num_threads = 1
        return made

    def new_model(self, sizes, w1, w2):
        """A fresh instance holding copies of ``w1`` and ``w2``, or None if the constructor
        fails (the constructor's own check reports that)."""
        outcome = self.construct(sizes)
        if not outcome.ok:
            return None
        model = outcome.value
        self.put_weights(model, w1, w2)
        return model

    def put_weights(self, model, w1, w2):
        """Give ``model`` copies of ``w1``/``w2``: through ``weights_init`` as the notebook
        does, then directly when that did not set them."""
        if self.has("weights_init"):
            self.call(model, "weights_init", w1.copy(), w2.copy())
        for name, w in (("W_input_to_hidden", w1), ("W_hidden_to_output", w2)):
            got, _ = self.array(model, name)
            if got is None or got.shape != w.shape or not np.array_equal(got, w):
                self.set(model, name, w.copy())

    # -- calls and attributes ---------------------------------------------------------------

    def call(self, model, name, *args, **kwargs):
        """``model.name(*args, **kwargs)`` as an Outcome.  A method that ran out of time
        before is not called again (its Outcome says it timed out)."""
        if name in self.stuck:
            return guard.Outcome(timed_out=True)
        method = guard.read(model, name, timeout=self.timeout)
        if not method.ok:
            return method
        outcome = guard.call(method.value, *args, timeout=self.timeout, **kwargs)
        if outcome.timed_out:
            self.stuck.add(name)
        return outcome

    def get(self, model, name):
        """``model.name`` as an Outcome (a missing attribute is an AttributeError)."""
        return guard.read(model, name, timeout=self.timeout)

    def array(self, model, name):
        """``(model.name as a float64 array, None)`` or ``(None, what is wrong with it)``."""
        outcome = self.get(model, name)
        if not outcome.ok:
            if isinstance(outcome.error, AttributeError):
                return None, f"self.{name} is not set"
            return None, f"reading self.{name} {outcome.describe_error(self.timeout)}"
        array, problem = as_array(outcome.value)
        return array, (f"self.{name} {problem}" if problem else None)

    def set(self, model, name, value):
        return guard.call(setattr, model, name, value, timeout=self.timeout).ok


def lab_lists(array):
    """An array as the lab hands data out: a list of lists of Python floats."""
    return np.asarray(array, dtype=np.float64).tolist()


def snapshot(value):
    """A deep copy to tell afterwards whether student code changed ``value`` in place."""
    return copy.deepcopy(value)

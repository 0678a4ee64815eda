"""``mnist_native.check``: tell a student what is wrong in their own network.

``check(NeuralNetwork)`` runs a student's class (or an instance's class) on the lab's
Part 1 network and on small random networks, compares every quantity with the lab's, and
diagnoses what differs by matching it against a catalogue of the mistakes students make
(``catalogue.CATALOGUE``).  ``mnist-native check PATH`` does the same for a ``.py`` file or a
lab folder, in a child process with a time limit.

One job per module: ``steps`` (the lab's computation, step by step), ``catalogue`` (the
mistakes), ``probes`` (the inputs), ``session`` and ``guard`` (calling student code safely),
``compare``, ``constructor``, ``numeric``, ``training``, ``predicting`` (the checks),
``report`` (the result), ``runner`` (``check`` itself), ``loader`` and ``child`` (the
command line's side).
"""
from .catalogue import CATALOGUE
from .report import Diagnosis, Finding, Report
from .runner import DEFAULT_TIMEOUT, CheckFailed, check

__all__ = ["check", "CheckFailed", "Report", "Finding", "Diagnosis", "CATALOGUE",
           "DEFAULT_TIMEOUT"]

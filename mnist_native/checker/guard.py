"""Calling a student's code so that nothing it does escapes as a traceback.

``call`` runs one function and returns an ``Outcome``: its value, or the exception it raised
(with the line of the student's code where it happened), or that it ran out of time; what
it printed is kept, not shown.  ``read`` gets an attribute the same way (a property is code
too).  ``quiet`` is the setting a whole check runs in: NumPy's warnings off, matplotlib
unable to show or block, NumPy's global random state put back afterwards.

The time limit stops a method stuck in a Python loop by raising ``StudentTimeout`` inside
it, from a watchdog thread (CPython's ``PyThreadState_SetAsyncExc``).  A method blocked in
a single C call (``time.sleep(1e9)``) cannot be interrupted that way: the command line's
child process, killed after its own time limit, covers that case.
"""
import contextlib
import ctypes
import io
import os
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

_CHECKER_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


class StudentTimeout(BaseException):
    """Raised inside student code whose time is up.  A BaseException, so that a student's
    ``except Exception:`` does not swallow it."""


@dataclass
class Outcome:
    """What one call of student code did."""

    value: object = None
    error: BaseException = None
    where: str = ""          # "line 12 of NeuralNetwork.py: self.o = ..." for an error
    timed_out: bool = False
    printed: str = ""

    @property
    def ok(self):
        return self.error is None and not self.timed_out

    @property
    def not_implemented(self):
        return isinstance(self.error, NotImplementedError)

    def describe_error(self, timeout=None):
        """One line for a student: the exception and where it happened, or the time-out."""
        if self.timed_out:
            limit = f" within {timeout:g} s" if timeout else ""
            return f"did not finish{limit} (an endless loop?); it was stopped"
        text = f"raised {type(self.error).__name__}"
        message = str(self.error).strip()
        if isinstance(self.error, SystemExit):
            text = "called sys.exit() / exit()"
        elif message:
            text += f": {_shorten(message, 300)}"
        if self.where:
            text += f" ({self.where})"
        return text


def _shorten(text, limit):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _where(exc):
    """The innermost frame of ``exc``'s traceback that is neither the checker's nor
    NumPy's: the student's line (or library code they called)."""
    try:
        frames = traceback.extract_tb(exc.__traceback__)
    except Exception:  # a broken traceback is no reason to fail
        return ""
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename or "")
        if path.startswith(_CHECKER_DIR) or path.startswith(_NUMPY_DIR):
            continue
        line = (frame.line or "").strip()
        name = os.path.basename(frame.filename or "?")
        return f"line {frame.lineno} of {name}" + (f": {_shorten(line, 120)}" if line else "")
    return ""


# -- the watchdog ---------------------------------------------------------------------------

try:
    _set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    _set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
    _set_async_exc.restype = ctypes.c_int
except (AttributeError, OSError):  # not CPython: no time limit inside the process
    _set_async_exc = None

#: Whether ``call`` can stop a method that runs too long.
CAN_STOP_LOOPS = _set_async_exc is not None


class _Watchdog:
    """One daemon thread for every guarded call: while a thread has a deadline (``arm``),
    it raises ``StudentTimeout`` in that thread once the deadline has passed, again every
    50 ms (student code may catch it) until ``disarm``."""

    def __init__(self):
        self.condition = threading.Condition()
        self.deadlines = {}   # thread id -> time.monotonic() deadline
        self.thread = None

    def _watch(self):
        with self.condition:
            while True:
                now = time.monotonic()
                for thread_id, deadline in self.deadlines.items():
                    if deadline <= now:
                        _set_async_exc(thread_id, StudentTimeout)
                waits = [max(d - now, 0.05) for d in self.deadlines.values()]
                self.condition.wait(min(waits) if waits else None)

    def arm(self, timeout):
        with self.condition:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._watch, daemon=True,
                                               name="mnist_native-check-watchdog")
                self.thread.start()
            self.deadlines[threading.get_ident()] = time.monotonic() + timeout
            self.condition.notify()

    def disarm(self):
        """After this no StudentTimeout can be sent to this thread.  One sent just before
        is raised at the latest by the call in the last line, so the caller retries
        ``disarm`` until it returns cleanly.  (Clearing it with a NULL exception instead
        would leave CPython's eval loop signalled for good.)"""
        with self.condition:
            self.deadlines.pop(threading.get_ident(), None)
            self.condition.notify()


_WATCHDOG = _Watchdog()


def call(function, *args, timeout=None, **kwargs):
    """``function(*args, **kwargs)`` as an ``Outcome``; never raises (but KeyboardInterrupt,
    the user's own Ctrl-C, goes through)."""
    printed = io.StringIO()
    result = []

    def attempt():
        try:
            with contextlib.redirect_stdout(printed):
                result.append(Outcome(value=function(*args, **kwargs)))
        except StudentTimeout:
            result.append(Outcome(timed_out=True))
        except KeyboardInterrupt:
            raise
        except (Exception, SystemExit) as exc:
            result.append(Outcome(error=exc, where=_where(exc)))

    if timeout is None or _set_async_exc is None:
        attempt()
    else:
        try:
            _WATCHDOG.arm(timeout)
            attempt()
        except StudentTimeout:  # arrived in this function's own lines: time was up anyway
            pass
        while True:
            try:
                _WATCHDOG.disarm()
                break
            except StudentTimeout:
                continue
    outcome = result[0] if result else Outcome(timed_out=True)
    outcome.printed = printed.getvalue()
    return outcome


def read(obj, name, timeout=None):
    """``getattr(obj, name)`` as an Outcome; a missing attribute gives ``value`` None and
    ``error`` an AttributeError."""
    return call(getattr, obj, name, timeout=timeout)


@contextlib.contextmanager
def quiet():
    """The setting a check runs in: no NumPy warnings or error prints, plots that cannot
    show or block (new figures closed at the end), NumPy's global random state restored."""
    random_state = np.random.get_state()
    pyplot = sys.modules.get("matplotlib.pyplot")
    figures = set(pyplot.get_fignums()) if pyplot is not None else set()
    show = getattr(pyplot, "show", None)
    if pyplot is not None:
        pyplot.show = lambda *args, **kwargs: None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        np.random.set_state(random_state)
        if pyplot is not None:
            pyplot.show = show
            for number in set(pyplot.get_fignums()) - figures:
                pyplot.close(number)

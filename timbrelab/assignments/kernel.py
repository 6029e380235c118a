"""What runs inside a submitted notebook's kernel while :mod:`timbrelab.assignments` grades it.

The grader runs a copy of the notebook with one cell added before the student's cells,
:func:`guard_solutions`, and one after them, :func:`report`:

- :func:`guard_solutions` wraps every reference solution (``chNN.solution_*``) so that a call
  made by the student's code is recorded (a check's own use of them, to recognise a mistake,
  is not). The student's imports run after it, so they import the wrapped functions.
- :func:`report` grades each exercise's function with its check, strictly, on the hidden cases
  of the instructor's seed, and prints the outcome as one JSON line after :data:`MARKER`.

Chapter: book/instructors.md
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import timbrelab.exercises
from timbrelab.exercises import check_hidden

#: Starts the line :func:`report` prints; the grader reads the JSON after it.
MARKER = "timbrelab-grades: "

_EXERCISES_FOLDER = str(Path(timbrelab.exercises.__file__).parent)
#: ``"chNN.solution_<name>"`` of every solution the student's code called.
_solutions_called: set[str] = set()


def guard_solutions(module_name: str) -> None:
    """Replace each ``solution_*`` of ``module_name`` by a wrapper that records student calls.

    Chapter: book/instructors.md
    """
    module = importlib.import_module(module_name)
    chapter = module_name.rsplit(".", 1)[-1]
    for name in dir(module):
        if name.startswith("solution_"):
            setattr(module, name, _recording(f"{chapter}.{name}", getattr(module, name)))


def _recording(label: str, solution: Callable) -> Callable:
    @functools.wraps(solution)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        if _called_by_student(sys._getframe(1)):
            _solutions_called.add(label)
        return solution(*args, **kwargs)

    return recorded


def _called_by_student(frame: FrameType | None) -> bool:
    """Whether the call made in ``frame`` comes from the student's code.

    Walking out from the caller, the first frame in :mod:`timbrelab.exercises` decides: a
    check's own code (a catalogued mistake, a reference) is not the student's, except
    ``call_student``, which calls the student's function (perhaps the solution itself). No
    such frame at all: a notebook cell made the call.
    """
    while frame is not None:
        if frame.f_code.co_filename.startswith(_EXERCISES_FOLDER):
            return frame.f_code.co_name == "call_student"
        frame = frame.f_back
    return True


def report(module_name: str, functions: dict[str, str], seed: int, namespace: dict) -> None:
    """Grade every exercise and print ``MARKER`` + JSON.

    Parameters
    ----------
    module_name : str
        The chapter's checks, e.g. ``"timbrelab.exercises.ch01"``.
    functions : dict
        ``{exercise: the function the student writes}``, e.g. ``{"focal_loss":
        "my_focal_loss"}``.
    seed : int
        Draws the hidden cases (:func:`timbrelab.exercises.check_hidden`).
    namespace : dict
        The notebook's globals, where the student's functions are.

    The JSON holds ``"results"``, ``{exercise: [passed, message]}``, and ``"solutions"``, the
    sorted solutions the student's code called.

    Chapter: book/instructors.md
    """
    module = importlib.import_module(module_name)
    results = {
        exercise: _grade(getattr(module, f"check_{exercise}"), namespace.get(function), function,
                         seed)
        for exercise, function in functions.items()
    }  # fmt: skip
    outcome = {"results": results, "solutions": sorted(_solutions_called)}
    print(MARKER + json.dumps(outcome, ensure_ascii=False))


def _grade(check: Callable, fn: Any, function: str, seed: int) -> tuple[bool, str]:
    """``(passed, message)`` of ``check`` on ``fn`` with the hidden cases of ``seed``."""
    if fn is None:
        return False, f"{function} is not defined: keep its name, and run its cell"
    printed = io.StringIO()  # the check's ✓ line, and whatever the student's function prints
    try:
        with contextlib.redirect_stdout(printed):
            check_hidden(check, fn, seed)
    except (AssertionError, TypeError) as failure:  # TypeError: not a function
        return False, str(failure)
    except Exception as error:  # the student's code broke the check itself
        return False, f"grading stopped: {type(error).__name__}: {error}"
    return True, printed.getvalue().splitlines()[-1]

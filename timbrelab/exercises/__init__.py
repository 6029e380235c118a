"""Checks that grade the book's exercises, one module per chapter (``ch01``, ``ch02``, ...).

A check takes the student's function and calls it on a few cases (:class:`Case`):

- every case gives the reference's answer: it prints one line starting with ``✓``;
- the function still raises ``NotImplementedError`` (the starter code): it prints
  "not implemented yet", so a notebook run top to bottom is not stopped by untouched
  exercises (``strict=True``, for grading, raises ``AssertionError`` instead);
- otherwise it raises ``AssertionError`` that names the call and says what went wrong, in this
  order: the function raised, returned ``None``, changed its input, returned the wrong type or
  shape, or returned wrong values. For wrong values it shows the first entry that differs,
  with enough digits that expected and got read differently.

A message ends with ``Hint: ...`` only when the answers on *every* case (of a stage, see
:meth:`Exercise.grade`) are those of one catalogued mistake (:class:`Mistake`); otherwise it
ends with ``Remember: <the rule>``. So a
hint is never a guess, and the cases are chosen to tell the catalogued mistakes apart: they
include the boundary of every comparison an exercise involves (a value exactly at a
threshold, a plateau, a run of exactly the minimum length, a zero denominator).

Checks return None, so a check cell shows only the message. Each module also holds the
reference solutions (``solution_*``) that the chapter shows behind a toggle. For course
grading (:mod:`timbrelab.assignments`), :func:`check_hidden` runs a check strictly on fresh
cases that its exercise draws from a seed (``Exercise.hidden``).

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class _NotImplementedYet(Exception):
    """The student's function still raises NotImplementedError."""


@dataclass(frozen=True)
class Case:
    """One call of the student's function.

    Attributes
    ----------
    call : str
        The call as messages show it, e.g. ``"cqt_frequencies(27.5, 88, 12)"``.
    args : tuple
        The arguments; every call gets its own copies of the arrays among them.

    Chapter: book/01_cqt_features.md
    """

    call: str
    args: tuple


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer, the hint that fixes it, and how to recognise it.

    Attributes
    ----------
    hint : str
        What to change; shown only when the student's answers show this mistake on every case.
    answer : callable
        A function that makes exactly this mistake (the tests check that the check recognises
        it and gives ``hint``).
    recognise : callable or None
        ``recognise(got, want, case) -> bool``, for a mistake that comes in many forms (e.g.
        "evenly spaced in Hz"): does the answer ``got`` show it on ``case``, whose right answer
        is ``want``? None: it does when ``got`` equals what ``answer`` returns.

    Chapter: book/01_cqt_features.md
    """

    hint: str
    answer: Callable[..., Any]
    recognise: Callable[[Any, Any, Case], bool] | None = None


@dataclass(frozen=True)
class Exercise:
    """What a check needs to grade one exercise.

    Attributes
    ----------
    name : str
        The function the student writes, e.g. ``"cqt_frequencies"``.
    reference : callable
        Computes the right answer from a case's arguments.
    read : callable
        ``read(value, case)``: a returned value as a numpy value (array, mask or number),
        or an ``AssertionError`` naming its wrong type or shape (see :func:`expect_array`).
    explain : callable
        ``explain(case, got, want, index) -> str``: what differs at ``index``, the first entry
        where ``got`` and ``want`` differ (``()`` for a number).
    rule : str
        The rule to apply, shown when no catalogued mistake is recognised.
    mistakes : tuple of Mistake
        The catalogued mistakes, each with its hint.
    rtol, atol : float
        How close a number must be to the reference's to count as equal.
    hidden : callable or None
        ``hidden(rng) -> stages``: fresh cases for grading (see :func:`check_hidden`), drawn
        from the numpy Generator ``rng``, as stages of :meth:`grade`. They keep the
        boundaries the check's own cases test, with other values, so that a student who
        has not seen the grader's seed cannot know them. None: the exercise is not graded.

    Chapter: book/01_cqt_features.md
    """

    name: str
    reference: Callable[..., Any]
    read: Callable[[Any, Case], Any]
    explain: Callable[[Case, Any, Any, tuple[int, ...]], str]
    rule: str
    mistakes: tuple[Mistake, ...] = ()
    rtol: float = 0.0
    atol: float = 0.0
    hidden: Callable[[np.random.Generator], Sequence[Sequence[Case]]] | None = None

    def grade(self, fn: Callable, *stages: Sequence[Case]) -> None:
        """Call ``fn`` on every case; raise ``AssertionError`` at the first wrong answer.

        Each stage is a list of cases. All cases of a stage run before any value is compared,
        so that a hint is confirmed on all of them (see :meth:`diagnose`). A later stage (e.g.
        extreme inputs, or the input type the chapter passes) runs only when the earlier ones
        pass, so a mistake there is told apart from one in the basic cases.

        Chapter: book/01_cqt_features.md
        """
        for cases in stages:
            answers = [self.read(call_student(fn, case), case) for case in cases]
            for case, got in zip(cases, answers, strict=True):
                want = self.expected(case)
                index = first_mismatch(got, want, rtol=self.rtol, atol=self.atol)
                if index is None:
                    continue
                hint = self.diagnose(cases, answers)
                advice = f"Hint: {hint}" if hint else f"Remember: {self.rule}"
                raise AssertionError(
                    f"{case.call}: {self.explain(case, got, want, index)}. {advice}"
                )

    def expected(self, case: Case) -> Any:
        """The reference's answer to ``case``, read like the student's.

        Chapter: book/01_cqt_features.md
        """
        return self.read(self.reference(*_copies(case.args)), case)

    def diagnose(self, cases: Sequence[Case], answers: Sequence[Any]) -> str | None:
        """The hint of the one catalogued mistake that all ``answers`` (to ``cases``) show.

        A mistake that explains only some cases, or two mistakes that explain all of them,
        confirm nothing: then it returns None, and there is no hint.

        Chapter: book/01_cqt_features.md
        """
        shown = [
            mistake
            for mistake in self.mistakes
            if all(self._shows(mistake, c, got) for c, got in zip(cases, answers, strict=True))
        ]
        return shown[0].hint if len(shown) == 1 else None

    def _shows(self, mistake: Mistake, case: Case, got: Any) -> bool:
        if mistake.recognise is not None:
            return bool(mistake.recognise(got, self.expected(case), case))
        with np.errstate(all="ignore"):  # the catalogued answers may divide by 0 on purpose
            theirs = self.read(mistake.answer(*_copies(case.args)), case)
        return first_mismatch(got, theirs, rtol=self.rtol, atol=self.atol) is None


def exercise_check(exercise: Exercise) -> Callable[[Callable[..., str]], Callable[..., None]]:
    """Decorate a check: ``check(fn) -> str`` (a pass detail) becomes ``check(fn, strict=False)``.

    The decorated check validates that ``fn`` is callable and prints ``"✓ <name>: <detail>"``
    on success. When ``fn`` raises ``NotImplementedError`` it prints a not-implemented note, or
    raises ``AssertionError`` if ``strict``. ``AssertionError`` from the check propagates. The
    check keeps its ``exercise`` as an attribute (the tests grade its catalogued mistakes).

    Chapter: book/01_cqt_features.md
    """

    def decorate(check: Callable[..., str]) -> Callable[..., None]:
        @functools.wraps(check)
        def wrapper(fn: Callable, *, strict: bool = False) -> None:
            _report(exercise.name, fn, lambda: check(fn), strict)

        wrapper.exercise = exercise  # type: ignore[attr-defined]
        return wrapper

    return decorate


def check_hidden(check: Callable[..., None], fn: Callable, seed: int) -> None:
    """Grade ``fn`` like ``check(fn, strict=True)``, but on the exercise's hidden cases.

    The cases come from ``check.exercise.hidden`` with ``numpy.random.default_rng(seed)``:
    the same seed gives the same cases, and the messages are those of the check.

    Raises
    ------
    ValueError
        The exercise declares no hidden cases.
    AssertionError
        ``fn`` is wrong or not implemented; the message says what to change.

    Chapter: book/instructors.md
    """
    exercise: Exercise = check.exercise  # type: ignore[attr-defined]
    if exercise.hidden is None:
        raise ValueError(f"{exercise.name}: the exercise declares no hidden cases")
    stages = exercise.hidden(np.random.default_rng(seed))

    def grade() -> str:
        exercise.grade(fn, *stages)
        return f"right on all {sum(map(len, stages))} hidden cases"

    _report(exercise.name, fn, grade, strict=True)


def _report(name: str, fn: Callable, grade: Callable[[], str], strict: bool) -> None:
    """Run ``grade()`` on ``fn`` and print its outcome, as :func:`exercise_check` says."""
    if not callable(fn):
        raise TypeError(
            f"check for {name}: pass your function itself (e.g. {name}, "
            f"not {name}(...)), got {type(fn).__name__}"
        )
    try:
        detail = grade()
    except _NotImplementedYet:
        message = (
            f"{name}: not implemented yet (replace the `raise NotImplementedError` "
            "line with your code, run that cell, then this one)"
        )
        if strict:
            raise AssertionError(message) from None
        print(f"… {message}")
        return
    print(f"✓ {name}: {detail}")


# --- calling the student's function ------------------------------------------------------------


def call_student(fn: Callable, case: Case) -> Any:
    """``fn(*case.args)`` on copies of the arguments, or an ``AssertionError`` naming the call.

    It fails when ``fn`` raises (saying what), returns None or changes an array it was given.

    Chapter: book/01_cqt_features.md
    """
    given = _copies(case.args)
    try:
        value = fn(*given)
    except NotImplementedError as error:
        raise _NotImplementedYet(case.call) from error
    except Exception as error:
        raise AssertionError(f"{case.call} raised {type(error).__name__}: {error}") from error
    if value is None:
        raise AssertionError(f"{case.call} returned None: did you forget `return`?")
    for position, (before, after) in enumerate(zip(case.args, given, strict=True), start=1):
        if _is_array(before) and not np.array_equal(_to_numpy(before), _to_numpy(after)):
            raise AssertionError(
                f"{case.call} changed its input (argument {position}): work on a copy "
                "(x.copy() for numpy, x.clone() for torch) and return that"
            )
    return value


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or hasattr(value, "detach")


def _to_numpy(value: Any) -> Any:
    """Torch tensors as numpy arrays, also inside a list or tuple; anything else unchanged."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if isinstance(value, list | tuple):
        return [_to_numpy(item) for item in value]
    return value


def _copies(args: tuple) -> tuple:
    return tuple(
        a.copy() if isinstance(a, np.ndarray) else a.clone() if hasattr(a, "clone") else a
        for a in args
    )


# --- reading what came back --------------------------------------------------------------------


def describe(value: Any) -> str:
    """What a value is, for a message: its type and its shape or (short) value.

    Chapter: book/01_cqt_features.md
    """
    if value is None:
        return "None"
    if isinstance(value, np.ndarray) or hasattr(value, "detach"):
        kind = "torch tensor" if hasattr(value, "detach") else "numpy array"
        if tuple(value.shape) == ():
            return f"a single-number {kind} ({_short(value.item())})"
        return f"a {kind} of shape {tuple(value.shape)}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} item{'s' * (len(value) != 1)}"
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({_short(value)})"


def _short(value: Any) -> str:
    """A value in at most 40 characters: floats to 6 digits, strings quoted."""
    if isinstance(value, float | np.floating):
        text = f"{value:.6g}"
    else:
        text = repr(value) if isinstance(value, str | bytes) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _numbers(value: Any) -> np.ndarray | None:
    """``value`` as a float64 array, or None when it is not (an array of) real numbers."""
    try:
        array = np.asarray(_to_numpy(value))
    except (TypeError, ValueError):  # e.g. a ragged list
        return None
    return array.astype(np.float64) if array.dtype.kind in "biuf" else None


def expect_array(value: Any, call: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as a float64 array of ``shape``, or an ``AssertionError`` saying what it was.

    Numpy arrays, torch tensors and (nested) lists or tuples of numbers are accepted.

    Parameters
    ----------
    value : object
        What the student's function returned (not None: :func:`call_student` checked that).
    call : str
        The call, for the message.
    shape : tuple of int
        The expected shape.
    what : str
        What the function should return, e.g. ``"one centre frequency per bin"``.

    Chapter: book/01_cqt_features.md
    """
    array = _numbers(value)
    if array is None:
        raise AssertionError(
            f"{call} returned {describe(value)}, not numbers; expected {what}: "
            f"a numpy array (or torch tensor) of shape {tuple(shape)}"
        )
    if array.shape != tuple(shape):
        raise AssertionError(
            f"{call} returned {describe(value)}; expected {what}, shape {tuple(shape)}"
        )
    return array


def expect_mask(value: Any, call: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as a bool array of ``shape``; it may hold True/False or 1/0 only.

    Chapter: book/01_cqt_features.md
    """
    array = expect_array(value, call, shape, what)
    other = array[(array != 0) & (array != 1)]
    if other.size:
        raise AssertionError(
            f"{call} returned values other than 0 and 1 (e.g. {other[0]:.4g}); expected "
            f"{what}: True/False (or 1/0) in every cell"
        )
    return array.astype(bool)


def expect_number(value: Any, call: str, what: str) -> float:
    """``value`` as one float (a number, or an array or tensor holding one number).

    Chapter: book/01_cqt_features.md
    """
    array = _numbers(value)
    if isinstance(value, bool | np.bool_) or array is None or array.size != 1:
        raise AssertionError(f"{call} returned {describe(value)}; expected {what}, one number")
    return float(array.reshape(-1)[0])


# --- comparing and showing numbers -------------------------------------------------------------


def mismatches(got: Any, want: Any, *, rtol: float = 0.0, atol: float = 0.0) -> np.ndarray:
    """Bool array, True where ``got`` and ``want`` differ.

    Masks compare exactly, numbers within the tolerances. NaN equals NaN and inf equals inf,
    so that an answer that makes NaN where a catalogued mistake does is recognised as that one.

    Chapter: book/01_cqt_features.md
    """
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype == bool or want.dtype == bool:
        return got != want
    return ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def first_mismatch(
    got: Any, want: Any, *, rtol: float = 0.0, atol: float = 0.0
) -> tuple[int, ...] | None:
    """The index of the first entry where ``got`` and ``want`` differ (``()`` for two numbers
    that differ), or None where they agree everywhere.

    Chapter: book/01_cqt_features.md
    """
    where = np.argwhere(mismatches(got, want, rtol=rtol, atol=atol))
    return tuple(int(i) for i in where[0]) if len(where) else None


def show_numbers(want: Any, got: Any) -> tuple[str, str]:
    """``want`` and ``got`` (numbers, or equally long lists) as text that tells them apart.

    Both get the same number of significant digits: 4, or more until every pair that differs
    (by more than a part in 10**9) reads differently, e.g. ``0.81717`` against ``0.81720``
    where 4 digits would show ``0.8172`` twice. Lists come back as ``"a, b, c"``.

    Chapter: book/01_cqt_features.md
    """
    want, got = np.atleast_1d(np.asarray(want, float)), np.atleast_1d(np.asarray(got, float))
    differ = mismatches(got, want, rtol=1e-9)
    for digits in range(4, 18):
        shown_want = [f"{w:#.{digits}g}" for w in want]
        shown_got = [f"{g:#.{digits}g}" for g in got]
        if all(w != g for w, g, d in zip(shown_want, shown_got, differ, strict=True) if d):
            break
    return ", ".join(shown_want), ", ".join(shown_got)

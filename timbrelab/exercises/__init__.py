"""Checks that grade the book's exercises, one module per chapter (``ch01``, ``ch02``, ...).

A check takes the student's function and tests it on a few cases against the reference:

- every case passes: it prints one line starting with ``✓``;
- the function still raises ``NotImplementedError`` (the starter code): it prints
  "not implemented yet", so a notebook run top to bottom is not stopped by untouched
  exercises (``strict=True``, for grading, raises ``AssertionError`` instead);
- otherwise it raises ``AssertionError`` saying which case failed, what was expected, what
  came back and, for the usual mistakes, what to change.

Checks return None, so a check cell shows only the message. Each module also holds the
reference solutions (``solution_*``) that the chapter shows behind a toggle.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np


class _NotImplementedYet(Exception):
    """The student's function still raises NotImplementedError."""


def call_student(fn: Callable, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn its errors into messages that name the failing input.

    Torch tensors that come back are converted to numpy arrays.

    Chapter: book/01_cqt_features.md
    """
    try:
        result = fn(*args, **kwargs)
    except NotImplementedError as error:
        raise _NotImplementedYet(name) from error
    except Exception as error:
        shown = ", ".join(
            [*(_short(a) for a in args), *(f"{k}={_short(v)}" for k, v in kwargs.items())]
        )
        raise AssertionError(f"{name}({shown}) raised {type(error).__name__}: {error}") from error
    if hasattr(result, "detach"):
        result = result.detach().cpu().numpy()
    return result


def _short(value: Any) -> str:
    """A one-line description of an argument: arrays by shape, scalars by value."""
    if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
        return f"<array of shape {tuple(value.shape)}>"
    return repr(value)


def exercise_check(name: str) -> Callable[[Callable[..., str]], Callable[..., None]]:
    """Decorate a check: ``check(fn) -> str`` (a pass detail) becomes ``check(fn, strict=False)``.

    The decorated check validates that ``fn`` is callable and prints ``"✓ <name>: <detail>"``
    on success. When ``fn`` raises ``NotImplementedError`` it prints a not-implemented note, or
    raises ``AssertionError`` if ``strict``. ``AssertionError`` from the check propagates.

    Chapter: book/01_cqt_features.md
    """

    def decorate(check: Callable[..., str]) -> Callable[..., None]:
        @functools.wraps(check)
        def wrapper(fn: Callable, *, strict: bool = False) -> None:
            if not callable(fn):
                raise TypeError(
                    f"check for {name}: pass your function itself (e.g. {name}, "
                    f"not {name}(...)), got {type(fn).__name__}"
                )
            try:
                detail = check(fn)
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

        return wrapper

    return decorate


def as_array(value: Any, name: str) -> np.ndarray:
    """The student's return value as a float array, or an AssertionError saying what it was.

    Chapter: book/01_cqt_features.md
    """
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise AssertionError(
            f"{name} should return numbers (an array), got {type(value).__name__}: {error}"
        ) from error

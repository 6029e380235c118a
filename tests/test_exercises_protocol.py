"""The contract every chapter's exercise checks keep (Chapters 1, 2 and any later one).

A module ``timbrelab.exercises.chNN`` pairs each ``check_<name>`` with ``solution_<name>``:
the reference passes with a "✓" line; an untouched starter (raising NotImplementedError)
prints "not implemented yet" without raising, so the rest of the chapter runs, and raises
under ``strict=True`` for grading; passing a value instead of the function is explained.
Each chapter's own test file adds the typical wrong answers and their hints.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import timbrelab.exercises


def _check_pairs() -> list[tuple]:
    pairs = []
    for info in pkgutil.iter_modules(timbrelab.exercises.__path__):
        if not info.name.startswith("ch"):
            continue
        module = importlib.import_module(f"timbrelab.exercises.{info.name}")
        for name in dir(module):
            if name.startswith("check_"):
                check = getattr(module, name)
                solution = getattr(module, "solution_" + name.removeprefix("check_"))
                pairs.append(pytest.param(check, solution, id=f"{info.name}.{name}"))
    return pairs


PAIRS = _check_pairs()


def starter(*args, **kwargs):
    raise NotImplementedError


def test_every_chapter_with_exercises_is_found() -> None:
    chapters = {p.id.split(".")[0] for p in PAIRS}
    assert {"ch01", "ch02"} <= chapters


@pytest.mark.parametrize("check, solution", PAIRS)
def test_reference_solution_passes(check, solution, capsys) -> None:
    assert check(solution, strict=True) is None  # a check cell shows only its message
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("check, solution", PAIRS)
def test_starter_reports_not_implemented_without_raising(check, solution, capsys) -> None:
    check(starter)
    assert "not implemented yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="not implemented yet"):
        check(starter, strict=True)


@pytest.mark.parametrize("check, solution", PAIRS)
def test_passing_a_call_result_instead_of_the_function_is_explained(check, solution) -> None:
    with pytest.raises(TypeError, match="pass your function itself"):
        check(np.zeros(3))

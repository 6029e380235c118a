"""The contract every chapter's exercise checks keep (Chapters 1, 2 and any later one).

A module ``timbrelab.exercises.chNN`` pairs each ``check_<name>`` with ``solution_<name>``:
the reference passes with a "✓" line; an untouched starter (raising NotImplementedError)
prints "not implemented yet" without raising, so the rest of the chapter runs, and raises
under ``strict=True`` for grading; passing a value instead of the function is explained; an
answer of None or of the wrong type is named before any value is compared; and every
catalogued mistake is recognised as itself, and as nothing else, by its own hint.
Each chapter's own test file adds the typical wrong answers and their messages.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

import timbrelab.exercises
from timbrelab.exercises import describe, first_mismatch, show_numbers


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
MISTAKES = [
    pytest.param(pair.values[0], mistake, id=f"{pair.id}-{number}")
    for pair in PAIRS
    for number, mistake in enumerate(pair.values[0].exercise.mistakes)
]


def starter(*args, **kwargs):
    raise NotImplementedError


def test_every_chapter_with_exercises_is_found() -> None:
    chapters = {p.id.split(".")[0] for p in PAIRS}
    assert {"ch01", "ch02", "ch03", "ch04", "ch05"} <= chapters


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


@pytest.mark.parametrize("check, solution", PAIRS)
def test_none_is_named_before_any_comparison(check, solution) -> None:
    with pytest.raises(AssertionError, match="returned None: did you forget `return`\\?"):
        check(lambda *args: None, strict=True)


@pytest.mark.parametrize("check, solution", PAIRS)
def test_a_wrong_type_is_named_with_what_is_expected(check, solution) -> None:
    with pytest.raises(AssertionError, match=r"returned a str \('oops'\).*; expected "):
        check(lambda *args: "oops", strict=True)


@pytest.mark.parametrize("check, mistake", MISTAKES)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # some mistakes divide by zero
def test_every_catalogued_mistake_gets_its_own_hint(check, mistake) -> None:
    with pytest.raises(AssertionError) as failure:
        check(mistake.answer, strict=True)
    assert f"Hint: {mistake.hint}" in str(failure.value)


def test_every_chapter_catalogues_mistakes() -> None:
    assert all(len(p.values[0].exercise.mistakes) >= 3 for p in PAIRS)


def test_numbers_are_shown_with_enough_digits_to_differ() -> None:
    assert show_numbers(0.817174, 0.817197) == ("0.81717", "0.81720")
    assert show_numbers(440.0, 440.0) == ("440.0", "440.0")
    assert show_numbers([0.5, 0.817174], [0.5, 0.817197]) == (
        "0.50000, 0.81717",
        "0.50000, 0.81720",
    )
    assert show_numbers(-np.inf, -93.98) == ("-inf", "-93.98")


def test_first_mismatch_is_the_index_of_the_first_difference() -> None:
    assert first_mismatch(
        np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.5, 4.5]])
    ) == (1, 0)
    assert first_mismatch(2.0, 2.0) is None
    assert first_mismatch(np.array([True, False]), np.array([True, True])) == (1,)
    assert first_mismatch(np.array([np.nan]), np.array([np.nan])) is None  # a mistake's NaN


def test_describe_names_type_and_shape() -> None:
    assert describe(None) == "None"
    assert describe(np.zeros((2, 3))) == "a numpy array of shape (2, 3)"
    assert describe(torch.tensor(0.25)) == "a single-number torch tensor (0.25)"
    assert describe((1, 2)) == "a tuple of 2 items"
    assert describe(np.int64(3)) == "an int64 (3)"
    assert describe("x" * 50).startswith("a str ('xxxx") and describe("x" * 50).endswith("…)")


def _typical_wrong_answers() -> list:
    """Every chapter test module's ``TYPICAL_WRONG_ANSWERS`` table, as pytest params."""
    params = []
    for path in sorted(Path(__file__).parent.glob("test_exercises_ch*.py")):
        table = importlib.import_module(path.stem).TYPICAL_WRONG_ANSWERS
        chapter = path.stem.removeprefix("test_exercises_")
        params += [pytest.param(*row[1:], id=f"{chapter}-{row[0]}") for row in table]
    return params


@pytest.mark.parametrize(("check", "wrong", "phrase"), _typical_wrong_answers())
def test_typical_wrong_answers_fail_with_a_helpful_message(check, wrong, phrase) -> None:
    with pytest.raises(AssertionError) as failure:
        check(wrong, strict=True)
    assert phrase in str(failure.value)

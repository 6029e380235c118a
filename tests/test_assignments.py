"""Course assignments: every chapter with exercises is built and a class of synthetic
submissions graded.

For every chapter (found, as the command finds them, from ``timbrelab.exercises.chNN`` and
``book/NN_*.md``, so a chapter added later is covered here without an edit) one assignment is
built with the CLI, and one SUBMISSIONS folder graded with the CLI: the reference solutions
(full marks), the untouched starter (zero, no crash), typical wrong answers (partial marks,
each with the check's hint), a notebook that raises at import, one that calls the shipped
solutions (zero), one that names them (zero, without running it), one that is not a notebook
and one that is malformed. Sleeping past the per-cell and the per-notebook limit is graded
once, with short limits.

Each grading runs kernels, so the tests share one build and one grading per chapter
(module-scoped fixtures) and give them short time limits.
"""

from __future__ import annotations

import ast
import copy
import csv
import importlib
import inspect
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from timbrelab.assignments import (
    COLUMNS,
    KEY_PATH,
    Limits,
    chapter_numbers,
    grade_submissions,
    read_chapter,
    read_key,
)
from timbrelab.assignments.chapters import exercise_modules
from timbrelab.cli import main
from timbrelab.exercises import check_hidden

CHAPTERS = chapter_numbers()
SEED = 7
LIMITS = ["--cell-timeout", "60", "--timeout", "180"]  # generous: two shared CPU cores


# --- synthetic submissions -----------------------------------------------------------------


def _module(number: int):
    return importlib.import_module(exercise_modules()[number])


def _solution_source(number: int, name: str, function: str) -> str:
    """The reference solution of ``name`` as a student would write it: the chapter module's
    imports, then the function under the student's name (no ``solution_`` in the text)."""
    module = _module(number)
    text = inspect.getsource(module)
    imports = [
        ast.get_source_segment(text, node)
        for node in ast.parse(text).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and getattr(node, "module", "") != "__future__"
    ]
    code = inspect.getsource(getattr(module, f"solution_{name}"))
    return "\n".join(imports) + "\n\n\n" + code.replace(f"def solution_{name}(", f"def {function}(")


def _with_answers(notebook, answers: dict[str, str]):
    """A copy of the student notebook with the starter cell of each function replaced."""
    answered = copy.deepcopy(notebook)
    for cell in answered.cells:
        for function, source in answers.items():
            if cell.cell_type == "code" and f"def {function}(" in cell.source:
                cell.source = source
    return answered


def _save(folder: Path, student: str, notebook, name: str) -> None:
    (folder / student).mkdir(parents=True)
    nbformat.write(notebook, folder / student / name)


def _submissions(number: int, student_notebook, folder: Path) -> dict:
    """Write the class of ``number`` into ``folder``; returns what the tests expect of it."""
    chapter = read_chapter(number)
    short = chapter.module.rsplit(".", 1)[-1]
    name = chapter.notebook_name
    exercises = chapter.exercises
    solutions = {e.function: _solution_source(number, e.name, e.function) for e in exercises}
    _save(folder, "reference", _with_answers(student_notebook, solutions), name)
    _save(folder, "starter", student_notebook, name)
    first, *rest = exercises
    mistakes = {
        e.name: getattr(_module(number), f"check_{e.name}").exercise.mistakes[0] for e in rest
    }
    typical = {first.function: solutions[first.function]} | {
        e.function: f"{e.function} = {short}.check_{e.name}.exercise.mistakes[0].answer"
        for e in rest
    }
    _save(folder, "typical", _with_answers(student_notebook, typical), name)
    broken = _with_answers(student_notebook, {})
    imports = next(
        c for c in broken.cells if c.cell_type == "code" and f"import {short}" in c.source
    )
    imports.source = "import no_such_module_for_grading\n" + imports.source
    _save(folder, "raises-at-import", broken, name)
    # the shipped solutions reached without their name in the text, and with it
    hidden_name = [f"{e.function} = getattr({short}, 'sol' 'ution_{e.name}')" for e in exercises]
    _save(
        folder,
        "calls-solution",
        _cells(f"from timbrelab.exercises import {short}", *hidden_name),
        name,
    )
    named = f"from timbrelab.exercises.{short} import solution_{first.name} as {first.function}"
    _save(folder, "names-solution", _cells(named), name)
    (folder / "not-a-notebook").mkdir()
    (folder / "not-a-notebook" / name).write_text("my answers are in the email\n")
    (folder / "malformed").mkdir()
    (folder / "malformed" / name).write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5}))
    return {"exercises": exercises, "mistakes": mistakes, "first": first}


def _contents(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cells(*sources: str):
    return new_notebook(cells=[new_code_cell(s) for s in sources])


# --- one build, one grading per chapter ----------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assignment") / "built"
    command = ["assignments", "build", *map(str, CHAPTERS), "-o", str(out), "--seed", str(SEED)]
    assert main(command) == 0
    return out


@pytest.fixture(scope="module", params=CHAPTERS, ids=lambda n: f"ch{n:02d}")
def graded(request, built, tmp_path_factory) -> dict:
    number = request.param
    chapter = read_chapter(number)
    student = nbformat.read(built / "student" / chapter.notebook_name, as_version=4)
    folder = tmp_path_factory.mktemp(f"ch{number:02d}") / "submissions"
    expected = _submissions(number, student, folder)
    grades = folder.parent / "grades.csv"
    handed_in = _contents(folder)
    command = ["assignments", "grade", str(folder), "--chapter", str(number),
               "--assignment", str(built), "-o", str(grades), *LIMITS]  # fmt: skip
    assert main(command) == 0
    assert _contents(folder) == handed_in  # grading runs copies: the submissions stay as given
    with grades.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_student: dict[str, list[dict]] = {}
    for row in rows:
        by_student.setdefault(row["student"], []).append(row)
    return {"number": number, "folder": folder, "csv": grades, "rows": rows,
            "by": by_student, "student": student, **expected}  # fmt: skip


def test_every_chapter_with_exercises_is_assignable() -> None:
    assert {1, 2} <= set(CHAPTERS)
    for number in CHAPTERS:  # raises, saying why, for a chapter that cannot be graded
        assert read_chapter(number).exercises


@pytest.mark.parametrize("number", CHAPTERS, ids=lambda n: f"ch{n:02d}")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # some mistakes divide by zero
def test_hidden_cases_grade_as_the_checks_do(number, capsys) -> None:
    """On the hidden cases the reference passes, and every catalogued mistake fails with its
    own hint (the hidden cases keep the boundaries that tell them apart)."""
    for exercise in read_chapter(number).exercises:
        check = getattr(_module(number), f"check_{exercise.name}")
        check_hidden(check, getattr(_module(number), f"solution_{exercise.name}"), SEED)
        assert capsys.readouterr().out.startswith(f"✓ {exercise.name}: right on all ")
        for mistake in check.exercise.mistakes:
            with pytest.raises(AssertionError, match="Hint: ") as failure:
                check_hidden(check, mistake.answer, SEED)
            assert f"Hint: {mistake.hint}" in str(failure.value)


# --- build ---------------------------------------------------------------------------------


def test_the_student_notebook_has_exercises_starters_and_checks_but_no_solution(graded) -> None:
    student = graded["student"]
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in student.cells)
    for exercise in graded["exercises"]:
        assert f"def {exercise.function}(" in code
        assert f"check_{exercise.name}({exercise.function})" in code
    assert "raise NotImplementedError" in code
    assert "solution_" not in code
    assert "reference solution is hidden" not in text  # the chapter's sentence is left out
    assert "{cite" not in text  # MyST roles made plain for Jupyter and Colab
    assert "## Exercises" in text and "pip" in code  # the section, and the Colab install
    nbformat.validate(student)


def test_the_instructor_notebook_has_solutions_and_hidden_grading_cells(built, graded) -> None:
    chapter = read_chapter(graded["number"])
    instructor = nbformat.read(built / "instructor" / chapter.notebook_name, as_version=4)
    code = "\n".join(c.source for c in instructor.cells if c.cell_type == "code")
    key = read_key(built / KEY_PATH)
    assert f"SEED = {key.seed}" in code
    for exercise in graded["exercises"]:
        assert f"solution_{exercise.name}" in code
        assert f"check_hidden({chapter.module.rsplit('.', 1)[-1]}.check_{exercise.name}" in code


def test_points_are_set_in_the_key(built) -> None:
    key = read_key(built / KEY_PATH)
    assert key.seed == SEED
    assert [c.number for c in key.chapters] == CHAPTERS
    assert all(e.points == 1 for c in key.chapters for e in c.exercises)


# --- grade ---------------------------------------------------------------------------------


def _points(rows: list[dict]) -> float:
    return sum(float(r["points"]) for r in rows)


def test_the_grades_have_one_row_per_student_and_exercise(graded) -> None:
    names = [e.name for e in graded["exercises"]]
    assert list(graded["rows"][0]) == list(COLUMNS)
    assert sorted(graded["by"]) == list(graded["by"])  # by student id
    for student, rows in graded["by"].items():
        assert [r["exercise"] for r in rows] == names, student
        assert all(r["max_points"] == "1" and r["feedback"] for r in rows), student


def test_reference_solutions_earn_full_marks(graded) -> None:
    rows = graded["by"]["reference"]
    assert _points(rows) == len(rows), [r["feedback"] for r in rows]
    assert all(r["feedback"].startswith("✓") and "hidden cases" in r["feedback"] for r in rows)


def test_the_untouched_starter_earns_zero_and_says_so(graded) -> None:
    rows = graded["by"]["starter"]
    assert _points(rows) == 0
    assert all("not implemented yet" in r["feedback"] for r in rows)


def test_typical_wrong_answers_earn_partial_marks_with_the_checks_hints(graded) -> None:
    rows = {r["exercise"]: r for r in graded["by"]["typical"]}
    assert rows[graded["first"].name]["points"] == "1"
    for name, mistake in graded["mistakes"].items():
        assert rows[name]["points"] == "0"
        assert f"Hint: {mistake.hint}" in rows[name]["feedback"]
        check = getattr(_module(graded["number"]), f"check_{name}")
        with pytest.raises(AssertionError) as failure:  # the feedback is the check's message
            check_hidden(check, mistake.answer, SEED)
        assert rows[name]["feedback"] == str(failure.value)
    assert 0 < _points(graded["by"]["typical"]) < len(rows)


def test_a_notebook_that_raises_at_import_is_graded_and_says_so(graded) -> None:
    rows = graded["by"]["raises-at-import"]
    assert _points(rows) == 0
    assert all("raised ModuleNotFoundError" in r["feedback"] for r in rows)


@pytest.mark.parametrize(
    ("student", "says"),
    [
        ("calls-solution", "no points: the notebook's code called the reference solution"),
        ("names-solution", "no points: the notebook names the reference solution solution_"),
    ],
)
def test_a_notebook_that_uses_the_shipped_solutions_earns_nothing(graded, student, says) -> None:
    rows = graded["by"][student]
    assert _points(rows) == 0
    assert all(r["feedback"].startswith(says) for r in rows), rows[0]["feedback"]


@pytest.mark.parametrize(
    ("student", "says"),
    [("not-a-notebook", "is not a notebook"), ("malformed", "is a malformed notebook")],
)
def test_a_file_that_is_no_notebook_gets_rows_that_say_so(graded, student, says) -> None:
    rows = graded["by"][student]
    assert _points(rows) == 0
    assert all(r["feedback"].startswith("not graded: ") and says in r["feedback"] for r in rows)


def test_grading_again_gives_the_same_csv(graded, built, tmp_path) -> None:
    if graded["number"] != CHAPTERS[0]:
        pytest.skip("a property of the grader: checked on the first chapter only (time)")
    again = tmp_path / "submissions"
    for student in ("raises-at-import", "names-solution", "not-a-notebook"):  # one runs
        (again / student).mkdir(parents=True)
        for file in (graded["folder"] / student).iterdir():
            (again / student / file.name).write_bytes(file.read_bytes())
    out = tmp_path / "grades.csv"
    command = ["assignments", "grade", str(again), "--chapter", str(graded["number"]),
               "--assignment", str(built), "-o", str(out), *LIMITS]  # fmt: skip
    assert main(command) == 0
    lines = graded["csv"].read_text(encoding="utf-8").splitlines()
    kept = [
        lines[0],
        *(x for x in lines[1:] if x.split(",")[0] in {p.name for p in again.iterdir()}),
    ]
    assert out.read_text(encoding="utf-8").splitlines() == kept


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (
            Limits(cell=2, notebook=60),
            "code cell 2 (`time.sleep(600)`) ran past the per-cell time limit of 2 s",
        ),
        (Limits(cell=60, notebook=2), "the notebook ran past its time limit of 2 s"),
    ],
)
def test_a_notebook_that_sleeps_past_a_limit_is_stopped_and_says_so(
    built, tmp_path, limits, says
) -> None:
    number = CHAPTERS[0]
    chapter = read_chapter(number)
    _save(tmp_path, "sleeper", _cells("import time", "time.sleep(600)"), chapter.notebook_name)
    rows = grade_submissions(tmp_path, number, read_key(built / KEY_PATH), limits)
    assert [r.points for r in rows] == [0] * len(chapter.exercises)
    assert all(r.feedback.startswith(f"not graded: {says}") for r in rows), rows[0].feedback


# --- the command's refusals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["build", "99", "-o", "{tmp}/out"], "chapter 99: has no exercises"),
        (["build", "1", "-o", "{book}"], "is or holds the book's folder"),
        (["build", "1", "-o", "{built}"], "folder exists and is not empty (use --force"),
        (["grade", "{tmp}", "--chapter", "1", "--assignment", "{built}", "-o", "{tmp}/g.txt"],
         "name it .csv"),
        (["grade", "{tmp}", "--chapter", "1", "--assignment", "{built}", "-o", "{tmp}/g.csv"],
         "is inside SUBMISSIONS"),
        (["grade", "{tmp}/none", "--chapter", "1", "--assignment", "{built}", "-o", "{out}"],
         "not a folder"),
        (["grade", "{tmp}", "--chapter", "1", "--assignment", "{tmp}", "-o", "{out}"],
         "cannot read the grading key"),
        (["grade", "{tmp}", "--chapter", "99", "--assignment", "{built}", "-o", "{out}"],
         "chapter 99: not in this assignment"),
        (["grade", "{tmp}", "--chapter", "1", "--assignment", "{built}", "-o", "{out}"],
         "holds no student folders"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_in_one_line(command, says, built, tmp_path, tmp_path_factory,
                                          capsys) -> None:  # fmt: skip
    from timbrelab.assignments import DEFAULT_BOOK

    out = tmp_path_factory.mktemp("grades") / "g.csv"
    fill = {"tmp": tmp_path, "book": DEFAULT_BOOK, "built": built, "out": out}
    before = sorted(tmp_path.rglob("*"))
    assert main(["assignments", *(part.format(**fill) for part in command)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and says in error, error
    assert sorted(tmp_path.rglob("*")) == before and not out.exists()


@pytest.mark.parametrize("action", ["build", "grade"])
def test_every_option_has_help(action, capsys) -> None:
    assert main(["assignments", action, "--help"]) == 0
    assert f"usage: timbrelab assignments {action}" in capsys.readouterr().out

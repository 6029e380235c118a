"""Grade a class's notebooks: run each in a kernel of its own, check its functions, write a CSV.

``SUBMISSIONS`` holds one folder per student, named by the student's id, with the notebook
inside (the layout nbgrader collects into). For every student, in the order of their ids:

1. find the notebook (the handed-out name, or the folder's only ``.ipynb``) and read it; a
   file that is not a notebook, or a malformed one, is not run;
2. look for the reference solutions by name (``solution_...``) in its code: a notebook that
   names one earns no points, and is not run;
3. run a copy of it, in a new kernel, in a temporary copy of the student's folder, with a
   time limit per cell and one for the whole notebook; a cell that raises does not stop it
   (as in nbgrader), but one that runs out of time, or a kernel that dies, does;
4. after the student's cells, grade each exercise's function with its check, strictly, on
   the hidden cases (:mod:`timbrelab.assignments.kernel`); a notebook whose code called a
   reference solution, however it reached it, earns no points.

Each student gets one row per exercise: the points, the most there were, and the check's
message as feedback (or why the notebook could not be graded). The feedback holds no times
or paths of this machine, so grading the same submissions twice gives the same CSV.

Chapter: book/instructors.md
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import tempfile
import time
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbrelab.assignments.chapters import AssignmentError
from timbrelab.assignments.kernel import MARKER
from timbrelab.assignments.key import GradedChapter, GradingKey

COLUMNS = ("student", "exercise", "points", "max_points", "feedback")
_SOLUTION_NAME = re.compile(r"\bsolution_\w+")


@dataclass(frozen=True)
class Limits:
    """Time limits in whole seconds: per cell, and for the whole notebook.

    Chapter: book/instructors.md
    """

    cell: int = 120
    notebook: int = 600


@dataclass(frozen=True)
class Grade:
    """One row of the grades: a student's points for one exercise, and why.

    Chapter: book/instructors.md
    """

    student: str
    exercise: str
    points: float
    max_points: float
    feedback: str


@dataclass
class _Run:
    """What running one notebook gave: each exercise's ``(passed, message)``, the solutions
    its code called, the first error of the student's cells, or why it could not finish."""

    results: dict[str, tuple[bool, str]] = field(default_factory=dict)
    solutions: list[str] = field(default_factory=list)
    first_error: str | None = None
    stopped: str | None = None


class _NotGradable(Exception):
    """A submission that is not run: the message says why."""


def grade_submissions(
    submissions: Path,
    chapter: int,
    key: GradingKey,
    limits: Limits = Limits(),
    on_student: Callable[[str, list[Grade]], None] | None = None,
) -> list[Grade]:
    """Grade every student folder of ``submissions`` for ``chapter`` of ``key``.

    Parameters
    ----------
    submissions : Path
        One folder per student, named by the student's id.
    chapter : int
        The chapter whose notebook the students hand in.
    key : GradingKey
        Points, the students' function names and the hidden cases' seed.
    limits : Limits
        Time limits per cell and per notebook.
    on_student : callable or None
        Called with each student's id and rows as soon as they are graded (progress).

    Returns
    -------
    list of Grade
        By student id, then in the notebook's order of exercises.

    Raises
    ------
    AssignmentError
        ``submissions`` is not a folder, or ``chapter`` is not in ``key``.

    Chapter: book/instructors.md
    """
    assignment = key.chapter(chapter)
    if not submissions.is_dir():
        raise AssignmentError(f"{submissions}: not a folder of student folders")
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and p.name[0] != ".")
    grades = []
    for folder in students:
        rows = _grade_student(folder, assignment, key.seed, limits)
        if on_student is not None:
            on_student(folder.name, rows)
        grades += rows
    return grades


def write_grades(grades: list[Grade], path: Path) -> None:
    """Write ``grades`` as CSV (:data:`COLUMNS`) to ``path``, atomically.

    Chapter: book/instructors.md
    """
    from timbrelab.io import atomic_output

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for g in grades:
        writer.writerow([g.student, g.exercise, f"{g.points:g}", f"{g.max_points:g}", g.feedback])
    with atomic_output(path) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")


# --- one student ---------------------------------------------------------------------------


def _grade_student(folder: Path, assignment: GradedChapter, seed: int, limits: Limits) -> list:
    """The rows of the student whose folder is ``folder``."""

    def rows(feedback: Callable[[str], tuple[bool, str]]) -> list[Grade]:
        graded = []
        for e in assignment.exercises:
            passed, message = feedback(e.name)
            graded.append(Grade(folder.name, e.name, e.points if passed else 0, e.points, message))
        return graded

    try:
        notebook = _read_notebook(_find_notebook(folder, assignment.notebook))
        named = _solutions_named(notebook)
        if named:
            raise _NotGradable(
                f"no points: the notebook names the reference solution {named[0]} (a "
                "notebook that calls or imports the solutions earns nothing)"
            )
    except _NotGradable as reason:
        why = str(reason)
        return rows(lambda name: (False, why))
    run = _run(notebook, folder, assignment, seed, limits)
    if run.stopped is not None:
        return rows(lambda name: (False, f"not graded: {run.stopped}"))
    if run.solutions:
        called = f"solution{'s' * (len(run.solutions) > 1)} {', '.join(run.solutions)}"
        why = f"no points: the notebook's code called the reference {called}"
        return rows(lambda name: (False, why))

    def feedback(name: str) -> tuple[bool, str]:
        passed, message = run.results[name]
        if not passed and run.first_error is not None:
            message += f" (note: {run.first_error})"
        return passed, message

    return rows(feedback)


def _find_notebook(folder: Path, name: str) -> Path:
    """The student's notebook: ``name`` in ``folder`` (or below), or its only ``.ipynb``."""
    found = sorted(
        p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and p.is_file()
    )
    named = [p for p in found if p.name == name]
    if len(named) == 1 or len(found) == 1:
        return (named or found)[0]
    if not found:
        raise _NotGradable(f"not graded: no notebook (.ipynb) in the folder; expected {name}")
    listed = ", ".join(str(p.relative_to(folder)) for p in found)
    raise _NotGradable(f"not graded: several notebooks ({listed}); hand in one, named {name}")


def _read_notebook(path: Path) -> Any:
    """The notebook at ``path`` as nbformat v4, or :class:`_NotGradable` saying what it is."""
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problem = _first_line(err)
        raise _NotGradable(f"not graded: {path.name} is not a notebook ({problem})") from None
    if not isinstance(data, dict):
        raise _NotGradable(f"not graded: {path.name} is not a notebook (JSON, but no notebook)")
    try:
        notebook = nbformat.convert(nbformat.reader.reads(text), 4)
        nbformat.validate(notebook)
    except Exception as err:  # nbformat's many: no or an unknown version, missing fields, ...
        problem = _first_line(err)
        raise _NotGradable(f"not graded: {path.name} is a malformed notebook ({problem})") from None
    return notebook


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _solutions_named(notebook: Any) -> list[str]:
    """The solution names (``solution_...``) the notebook's code uses, comments left out."""
    named = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tokens = tokenize.generate_tokens(io.StringIO(cell.source).readline)
            words = [t.string for t in tokens if t.type in (tokenize.NAME, tokenize.STRING)]
        except (tokenize.TokenError, SyntaxError):  # e.g. an unclosed bracket: use all text
            words = [cell.source]
        named |= {m[0] for word in words for m in _SOLUTION_NAME.finditer(word)}
    return sorted(named)


# --- running a notebook --------------------------------------------------------------------


def _run(notebook: Any, folder: Path, assignment: GradedChapter, seed: int, limits: Limits) -> _Run:
    """Run the student's cells between the guard cell and the grading cell (see
    :mod:`timbrelab.assignments.kernel`) in a new kernel, within ``limits``."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    functions = {e.name: e.function for e in assignment.exercises}
    guard = new_code_cell(
        "from timbrelab.assignments.kernel import guard_solutions\n"
        f"guard_solutions({assignment.module!r})"
    )
    grading = new_code_cell(
        "from timbrelab.assignments.kernel import report\n"
        f"report({assignment.module!r}, {functions!r}, {seed}, globals())"
    )
    student = [c for c in notebook.cells if c.cell_type == "code"]
    for cell in student:  # a fresh run: no outputs or counts from the student's own runs
        cell.outputs, cell.execution_count = [], None
    cells = [guard, *student, grading]
    notebook.cells = cells
    run = _Run()
    with tempfile.TemporaryDirectory(prefix="timbrelab-grade-") as tmp:
        workdir = Path(tmp) / "work"
        shutil.copytree(folder, workdir, symlinks=True)
        client = NotebookClient(
            notebook,
            timeout=limits.cell,
            kernel_name="python3",
            allow_errors=True,  # a cell that raises is reported, and the next ones still run
            shutdown_kernel="immediate",
            resources={"metadata": {"path": str(workdir)}},
        )
        with client.setup_kernel():
            # the guard only imports the package: it belongs to starting the kernel
            started = client.startup_timeout
            run.stopped = _execute(
                client, guard, 0, started, "the set-up", "the kernel did not start"
            )
            deadline = time.monotonic() + limits.notebook
            for index, cell in enumerate(cells[1:], start=1):
                if run.stopped is not None:
                    break
                where = "the grading cell" if cell is grading else _describe(cell, student)
                left = math.ceil(deadline - time.monotonic())
                over = (
                    f"{where} ran past the per-cell time limit of {limits.cell} s"
                    if left > limits.cell
                    else f"the notebook ran past its time limit of {limits.notebook} s (in {where})"
                )
                seconds = min(limits.cell, left)
                run.stopped = (
                    over if left <= 0 else _execute(client, cell, index, seconds, where, over)
                )
    if run.stopped is not None:
        return run
    # the check cells fail for every wrong answer: a note is for the other cells' errors
    checks = tuple(f"check_{e.name}(" for e in assignment.exercises)
    others = [c for c in student if not any(check in c.source for check in checks)]
    run.first_error = next((e for c in others if (e := _error_of(c, student))), None)
    return _read_report(grading, run)


def _execute(client: Any, cell: Any, index: int, seconds: int, where: str, over: str) -> str | None:
    """Run ``cell`` within ``seconds``; None, or why the notebook stops there (``over`` when it
    ran out of time)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client.timeout = seconds
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        return over
    except DeadKernelError:
        return f"the kernel died in {where} (did it exit, or run out of memory?)"
    return None


def _describe(cell: Any, student: list[Any]) -> str:
    """``code cell N (`first line`)``, numbered as the student sees their code cells."""
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    first = first if len(first) <= 50 else first[:49] + "…"
    return f"code cell {student.index(cell) + 1} (`{first}`)" if cell in student else "setup"


def _error_of(cell: Any, student: list[Any]) -> str | None:
    """``<cell> raised <error>: <message>`` for a cell that raised, else None."""
    for output in cell.outputs:
        if output.output_type == "error":
            return f"{_describe(cell, student)} raised {output.ename}: {output.evalue}"
    return None


def _read_report(grading: Any, run: _Run) -> _Run:
    """Fill ``run`` from the line the grading cell printed."""
    printed = "".join(o.text for o in grading.outputs if o.output_type == "stream")
    line = next((x for x in printed.splitlines() if x.startswith(MARKER)), None)
    if line is None:
        error = next((o for o in grading.outputs if o.output_type == "error"), None)
        why = f"{error.ename}: {error.evalue}" if error else "it printed no result"
        run.stopped = f"the grading cell failed ({why})"
        return run
    outcome = json.loads(line.removeprefix(MARKER))
    run.results = {name: (bool(p), str(m)) for name, (p, m) in outcome["results"].items()}
    run.solutions = list(outcome["solutions"])
    return run

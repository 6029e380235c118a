"""Find the chapters that have exercises, and read what an assignment needs from each.

A chapter is assignable when the package has its checks, ``timbrelab.exercises.chNN``, and the
book has its page, ``book/NN_<name>.md`` (a MyST notebook) with a ``## Exercises`` section.
Both are found by name, so a chapter added to the book later is assignable without any change
here. In the section every exercise is a starter cell (the function to write), a check cell
``chNN.check_<exercise>(<function>)`` and a hidden cell with the reference solution; the check
cell names the function the student writes (``my_focal_loss`` for ``check_focal_loss``).

Chapter: book/instructors.md
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timbrelab
import timbrelab.exercises

#: The book's pages beside the package (a source checkout or an editable install).
DEFAULT_BOOK = Path(timbrelab.__file__).resolve().parent.parent / "book"

_MODULE_NAME = re.compile(r"^ch(\d\d)$")
_CHECK_CALL = re.compile(r"\bch\d\d\.check_(\w+)\(\s*(\w+)\s*\)")
_SECTION = re.compile(r"^## ", re.MULTILINE)
_EXERCISES = re.compile(r"## Exercises\s*($|\n)")


class AssignmentError(ValueError):
    """A chapter, an assignment or a grading key that cannot be used; the message says why.

    Chapter: book/instructors.md
    """


@dataclass(frozen=True)
class AssignedExercise:
    """One exercise of an assignment.

    Attributes
    ----------
    name : str
        The exercise, as its check is named: ``check_<name>`` in the chapter's module.
    function : str
        The function the student writes, as the chapter's check cell passes it.

    Chapter: book/instructors.md
    """

    name: str
    function: str


@dataclass(frozen=True)
class Chapter:
    """What an assignment takes from one chapter.

    Attributes
    ----------
    number : int
        The chapter's number (1 for ``book/01_cqt_features.md``).
    module : str
        Its checks, e.g. ``"timbrelab.exercises.ch01"``.
    page : Path
        Its page in the book.
    title : str
        Its title, without the ``#``.
    context : list of dict
        nbformat cells before its first section: the introduction, the Colab install and the
        imports (the context a student needs to run the exercises).
    exercise_cells : list of dict
        nbformat cells of its ``## Exercises`` section, solutions included.
    exercises : tuple of AssignedExercise
        Its exercises, in the order of the section.

    Chapter: book/instructors.md
    """

    number: int
    module: str
    page: Path
    title: str
    context: list[Any]
    exercise_cells: list[Any]
    exercises: tuple[AssignedExercise, ...]

    @property
    def notebook_name(self) -> str:
        """The file name of the assignment's notebooks, e.g. ``"01_cqt_features.ipynb"``."""
        return self.page.with_suffix(".ipynb").name


def exercise_modules() -> dict[int, str]:
    """``{chapter number: module name}`` of every ``timbrelab.exercises.chNN``.

    Chapter: book/instructors.md
    """
    modules = {}
    for info in pkgutil.iter_modules(timbrelab.exercises.__path__):
        match = _MODULE_NAME.match(info.name)
        if match:
            modules[int(match[1])] = f"timbrelab.exercises.{info.name}"
    return dict(sorted(modules.items()))


def chapter_numbers(book: Path = DEFAULT_BOOK) -> list[int]:
    """The chapters that have both checks in the package and a page in ``book``.

    Chapter: book/instructors.md
    """
    return [n for n in exercise_modules() if list(book.glob(f"{n:02d}_*.md"))]


def read_chapter(number: int, book: Path = DEFAULT_BOOK) -> Chapter:
    """Read chapter ``number``'s page and checks.

    Raises
    ------
    AssignmentError
        No checks or no page for that number, no ``## Exercises`` section, a check of the
        module without its check cell in the section (or the other way round), or an exercise
        without hidden cases (it could not be graded).

    Chapter: book/instructors.md
    """
    import jupytext

    module_name = exercise_modules().get(number)
    if module_name is None:
        known = ", ".join(map(str, exercise_modules())) or "none"
        raise AssignmentError(f"chapter {number}: has no exercises (chapters that do: {known})")
    pages = sorted(book.glob(f"{number:02d}_*.md"))
    if len(pages) != 1:
        found = "no page" if not pages else f"{len(pages)} pages"
        raise AssignmentError(f"chapter {number}: {found} {book}/{number:02d}_*.md")
    page = pages[0]
    cells = _sections(jupytext.read(page).cells)
    sections = [i for i, cell in enumerate(cells) if _starts_section(cell)]
    context = cells[: sections[0] if sections else len(cells)]
    start = next((i for i in sections if _EXERCISES.match(cells[i].source)), None)
    if start is None:
        raise AssignmentError(f"{page}: has no '## Exercises' section")
    end = next((i for i in sections if i > start), len(cells))
    exercise_cells = cells[start:end]
    checks = _checks_of(importlib.import_module(module_name))
    exercises = tuple(
        AssignedExercise(match[1], match[2])
        for cell in exercise_cells
        if cell.cell_type == "code" and "hide-cell" not in cell.metadata.get("tags", [])
        for match in _CHECK_CALL.finditer(cell.source)
    )
    if sorted(e.name for e in exercises) != sorted(checks):
        raise AssignmentError(
            f"{page}: the check cells of its exercises ({', '.join(e.name for e in exercises)}) "
            f"are not the checks of {module_name} ({', '.join(checks)})"
        )
    undrawn = [name for name, check in checks.items() if check.exercise.hidden is None]
    if undrawn:
        raise AssignmentError(
            f"chapter {number}: cannot be graded: {', '.join(undrawn)} declare no hidden cases "
            f"(Exercise(hidden=...) in {module_name})"
        )
    title = context[0].source.splitlines()[0].removeprefix("# ").strip()
    return Chapter(number, module_name, page, title, context, exercise_cells, exercises)


def _checks_of(module: Any) -> dict[str, Any]:
    """``{exercise: its check}`` of a chapter's module."""
    return {
        name.removeprefix("check_"): getattr(module, name)
        for name in dir(module)
        if name.startswith("check_")
    }


def _sections(cells: list[Any]) -> list[Any]:
    """``cells`` with every markdown cell split before each ``## `` heading it holds, so that
    every section of the page starts a cell of its own."""
    from nbformat.v4 import new_markdown_cell

    split = []
    for cell in cells:
        if cell.cell_type != "markdown":
            split.append(cell)
            continue
        bounds = [0, *(m.start() for m in _SECTION.finditer(cell.source)), len(cell.source)]
        parts = (cell.source[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False))
        split += [new_markdown_cell(part) for part in parts if part]
    return split


def _starts_section(cell: Any) -> bool:
    return cell.cell_type == "markdown" and cell.source.startswith("## ")

"""Build an assignment: a student notebook and an instructor notebook per chapter, and the key.

The folder ``build`` writes::

    student/01_cqt_features.ipynb       hand this out (Jupyter or Colab)
    instructor/01_cqt_features.ipynb    reference solutions and hidden grading cases
    instructor/grading.json             points per exercise and the hidden cases' seed

A **student notebook** holds the chapter's introduction, the cells that set it up (the Colab
install and the imports), and its exercises section: each exercise's text, starter cell and
check cell, but no reference solution (no cell, and no sentence, names one). The **instructor
notebook** keeps the solutions and adds after each exercise the hidden grading cell: the check
that ``grade`` runs, on the solution, with the seed of the key.

Chapter: book/instructors.md
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from timbrelab.assignments.chapters import Chapter
from timbrelab.assignments.key import KEY_PATH, GradedChapter, GradingKey, key_for

#: A sentence that mentions the reference solution (dropped from the student's text).
_SOLUTION_SENTENCE = re.compile(r"(^|(?<=[.!?]))\s*[^.!?]*\breference solutions?\b[^.!?]*[.!?]")
#: A MyST role, e.g. {cite:p}`key`: Jupyter and Colab would show it as typed.
_ROLE = re.compile(r"\{(?P<role>\w+)(:\w+)?\}`(?P<text>[^`]*)`")


def build_assignment(chapters: list[Chapter], seed: int, folder: Path) -> GradingKey:
    """Write the notebooks of ``chapters`` and their key into the empty ``folder``.

    Returns
    -------
    GradingKey
        The key written to ``folder / KEY_PATH``.

    Chapter: book/instructors.md
    """
    import nbformat

    key = key_for(chapters, seed)
    for role in ("student", "instructor"):
        (folder / role).mkdir()
    for chapter, graded in zip(chapters, key.chapters, strict=True):
        nbformat.write(student_notebook(chapter), folder / "student" / chapter.notebook_name)
        nbformat.write(
            instructor_notebook(chapter, graded, seed),
            folder / "instructor" / chapter.notebook_name,
        )
    (folder / KEY_PATH).write_text(key.to_json(), encoding="utf-8")
    return key


def student_notebook(chapter: Chapter) -> Any:
    """The notebook a student works in: context, exercises, starters and checks.

    Chapter: book/instructors.md
    """
    short = chapter.module.rsplit(".", 1)[-1]
    header = f"""# Assignment: {chapter.title}

Built from Chapter {chapter.number} of the timbrelab book; the chapter explains everything
used here. Write each function where its cell says `raise NotImplementedError`, run that
cell, then run the check below it: ✓ means your function is right on the check's cases. Your
instructor grades every function again on other cases, so make it right in general, not for
these inputs only.

Before you hand it in: keep each function's name, and run the whole notebook from the top
(*Kernel → Restart & Run All*, or *Runtime → Run all* in Colab) to see that it runs. A
notebook that calls or imports the reference solutions (`{short}.solution_...`) gets no
points. A question that uses the chapter's own results (e.g. its example mix) is for the
chapter's notebook, not for this one."""
    cells = [_markdown(header), *_introduction(chapter)]
    for cell in chapter.exercise_cells:
        if cell.cell_type == "markdown":
            cells.append(_markdown(_SOLUTION_SENTENCE.sub("", cell.source)))
        elif "solution_" not in cell.source:
            cells.append(_copy(cell))
    return _notebook(cells)


def instructor_notebook(chapter: Chapter, graded: GradedChapter, seed: int) -> Any:
    """The instructor's notebook: the chapter's exercises with their solutions, each followed
    by its hidden grading cell.

    Chapter: book/instructors.md
    """
    from nbformat.v4 import new_code_cell

    short = chapter.module.rsplit(".", 1)[-1]
    points = "\n".join(f"| {e.name} | `{e.function}` | {e.points:g} |" for e in graded.exercises)
    header = f"""# Assignment: {chapter.title} (instructor version)

Not for students: it shows the reference solutions, and the hidden grading cells below each
exercise run the checks on the cases that `timbrelab assignments grade` draws from the seed in
`grading.json` (with the seed, the hidden cases are no longer hidden). Points are set in
`grading.json`, the one place they live:

| exercise | student's function | points |
| --- | --- | --- |
{points}"""
    cells = [_markdown(header), *_introduction(chapter)]
    cells.append(new_code_cell(f"from timbrelab.exercises import check_hidden\n\nSEED = {seed}"))
    last_cell = {
        e.name: max(i for i, c in enumerate(chapter.exercise_cells)
                    if c.cell_type == "code" and f"check_{e.name}(" in c.source)
        for e in chapter.exercises
    }  # fmt: skip
    for index, cell in enumerate(chapter.exercise_cells):
        cells.append(_copy(cell))
        for name in (name for name, last in last_cell.items() if last == index):
            cells.append(
                new_code_cell(
                    "# Hidden grading cases: what `timbrelab assignments grade` runs\n"
                    f"check_hidden({short}.check_{name}, {short}.solution_{name}, SEED)",
                    metadata={"tags": ["hidden-grading"]},
                )
            )
    return _notebook(cells)


def _introduction(chapter: Chapter) -> list[Any]:
    """The chapter's opening cells, its title line left out (the header has it)."""
    intro, *setup = chapter.context
    text = intro.source.split("\n", 1)[1].strip() if intro.cell_type == "markdown" else ""
    return [_markdown(text), *map(_copy, setup)] if text else list(map(_copy, setup))


def _markdown(text: str) -> Any:
    """A markdown cell of ``text``, its MyST roles made plain: a citation as ``[key]``."""
    from nbformat.v4 import new_markdown_cell

    def plain(role: re.Match) -> str:
        return f"[{role['text']}]" if role["role"] == "cite" else role["text"]

    return new_markdown_cell(_ROLE.sub(plain, text).strip())


def _copy(cell: Any) -> Any:
    """A fresh nbformat v4 cell with the source and tags of ``cell`` (no outputs)."""
    from nbformat.v4 import new_code_cell

    if cell.cell_type == "markdown":
        return _markdown(cell.source)
    tags = cell.get("metadata", {}).get("tags", [])
    return new_code_cell(cell.source, metadata={"tags": list(tags)} if tags else {})


def _notebook(cells: list[Any]) -> Any:
    from nbformat.v4 import new_notebook

    return new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )

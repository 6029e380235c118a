"""The grading key: the one file that says how an assignment is graded.

``timbrelab assignments build`` writes it as ``DIR/instructor/grading.json``, and ``timbrelab
assignments grade`` reads it. It holds, per chapter, the notebook's name and its exercises in
order, each with the function the student writes and its **points** (1 by default: edit them
here, the one place they are set), and the **seed** that draws the hidden grading cases (keep
the file from students: with the seed, the hidden cases are no longer hidden).

Chapter: book/instructors.md
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from timbrelab.assignments.chapters import AssignmentError, Chapter

FORMAT = "timbrelab-grading-key-1"
#: Where ``build`` puts the key, inside its output folder.
KEY_PATH = Path("instructor") / "grading.json"


@dataclass(frozen=True)
class GradedExercise:
    """One exercise as graded: its check's name, the student's function, its points.

    Chapter: book/instructors.md
    """

    name: str
    function: str
    points: float


@dataclass(frozen=True)
class GradedChapter:
    """One chapter's assignment as graded.

    Attributes
    ----------
    number : int
        The chapter's number.
    module : str
        Its checks, e.g. ``"timbrelab.exercises.ch01"``.
    notebook : str
        The file name students hand in, e.g. ``"01_cqt_features.ipynb"``.
    exercises : tuple of GradedExercise
        In the notebook's order.

    Chapter: book/instructors.md
    """

    number: int
    module: str
    notebook: str
    exercises: tuple[GradedExercise, ...]


@dataclass(frozen=True)
class GradingKey:
    """The seed of the hidden cases and every chapter of the assignment.

    Chapter: book/instructors.md
    """

    seed: int
    chapters: tuple[GradedChapter, ...]

    def chapter(self, number: int) -> GradedChapter:
        """The chapter ``number``, or :class:`AssignmentError` naming the ones there are."""
        for chapter in self.chapters:
            if chapter.number == number:
                return chapter
        built = ", ".join(str(c.number) for c in self.chapters)
        raise AssignmentError(f"chapter {number}: not in this assignment (built: {built})")

    def to_json(self) -> str:
        """The key as the text of ``grading.json``."""
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=1) + "\n"


def key_for(chapters: list[Chapter], seed: int) -> GradingKey:
    """A new key for ``chapters``: every exercise worth 1 point.

    Chapter: book/instructors.md
    """
    return GradingKey(
        seed,
        tuple(
            GradedChapter(
                c.number,
                c.module,
                c.notebook_name,
                tuple(GradedExercise(e.name, e.function, 1) for e in c.exercises),
            )
            for c in chapters
        ),
    )


def read_key(path: Path) -> GradingKey:
    """Read a ``grading.json``.

    Raises
    ------
    AssignmentError
        Missing, not a key, or points that are not numbers >= 0; the message says which.

    Chapter: book/instructors.md
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AssignmentError(f"{path}: cannot read the grading key ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AssignmentError(f"{path}: not a grading key written by `assignments build`")
    try:
        key = GradingKey(
            int(data["seed"]),
            tuple(
                GradedChapter(
                    int(c["number"]),
                    str(c["module"]),
                    str(c["notebook"]),
                    tuple(
                        GradedExercise(str(e["name"]), str(e["function"]), e["points"])
                        for e in c["exercises"]
                    ),  # fmt: skip
                )
                for c in data["chapters"]
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        problem = f"{type(err).__name__}: {err}"
        raise AssignmentError(f"{path}: damaged grading key ({problem})") from None
    for chapter in key.chapters:
        for exercise in chapter.exercises:
            points = exercise.points
            if (
                isinstance(points, bool)
                or not isinstance(points, int | float)
                or not (math.isfinite(points) and points >= 0)
            ):
                raise AssignmentError(
                    f"{path}: chapter {chapter.number}, {exercise.name}: points must be a "
                    f"number >= 0, got {points!r}"
                )
    return key

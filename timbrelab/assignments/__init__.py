"""Course assignments from the book's exercises: student notebooks, and a grader.

``timbrelab assignments build`` turns chapters into notebooks to hand out
(:mod:`~timbrelab.assignments.build`), and ``timbrelab assignments grade`` grades the
notebooks students hand back (:mod:`~timbrelab.assignments.grade`). Both work from the
chapters' own checks (:mod:`timbrelab.exercises`): grading runs a check strictly, on hidden
cases, and its message is the student's feedback. The grader is a small layer over nbclient,
which the book's build already installs (book/instructors.md compares it with nbgrader and
otter-grader as measured).

- :mod:`~timbrelab.assignments.chapters`: which chapters have exercises, and what is in them;
- :mod:`~timbrelab.assignments.key`: ``grading.json``, points and the hidden cases' seed;
- :mod:`~timbrelab.assignments.kernel`: what runs inside a student's kernel while grading.

Chapter: book/instructors.md
"""

from timbrelab.assignments.build import build_assignment, instructor_notebook, student_notebook
from timbrelab.assignments.chapters import (
    DEFAULT_BOOK,
    AssignmentError,
    Chapter,
    chapter_numbers,
    read_chapter,
)
from timbrelab.assignments.grade import COLUMNS, Grade, Limits, grade_submissions, write_grades
from timbrelab.assignments.key import KEY_PATH, GradingKey, read_key

__all__ = [
    "COLUMNS",
    "DEFAULT_BOOK",
    "KEY_PATH",
    "AssignmentError",
    "Chapter",
    "Grade",
    "GradingKey",
    "Limits",
    "build_assignment",
    "chapter_numbers",
    "grade_submissions",
    "instructor_notebook",
    "read_chapter",
    "read_key",
    "student_notebook",
    "write_grades",
]

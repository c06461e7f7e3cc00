"""Coursework: release student notebooks, grade submissions in a sandbox.

    python -m gradlab.coursework release labs/ --out dist/student/
    python -m gradlab.coursework grade labs/lab01_causes.ipynb \\
        submissions/*.ipynb --out grades.csv [--jobs N] [--no-sandbox]

*Release* (:mod:`~gradlab.coursework.release`) replaces every solution
block by a stub and keeps the check cells. *Grade*
(:mod:`~gradlab.coursework.grading`) runs each submission in a bubblewrap
sandbox (:mod:`~gradlab.coursework.sandbox`), calls the student's functions
there on inputs the grader made (:mod:`~gradlab.coursework.worker`), and
judges the answers in its own process; an nbval run of the whole notebook
(:mod:`~gradlab.coursework.feedback`) tells the student what failed.

What the grader guarantees and what it does not is stated in the book's
"For instructors" page.
"""

from .grading import (CheckResult, Grade, SandboxUnavailable, check_calls,
                    grade, grade_submission, summary_table)
from .release import (BEGIN, END, STUB, release, release_notebook,
                      strip_solutions)
from .sandbox import Limits, sandbox_available

__all__ = ["BEGIN", "END", "STUB", "strip_solutions", "release_notebook",
           "release", "grade", "grade_submission", "Grade", "CheckResult",
           "summary_table", "SandboxUnavailable", "check_calls", "Limits",
           "sandbox_available"]

"""Coursework with nbval: release student notebooks, grade submissions.

    python -m gradlab.coursework release labs/ --out dist/student/
    python -m gradlab.coursework grade labs/lab01_causes.ipynb \\
        submissions/*.ipynb --out grades.csv

*Release* replaces every block between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` by ``# YOUR CODE HERE`` and ``raise
NotImplementedError()``, clears outputs and keeps the check cells (cells
tagged ``check``) and every cell id. The sources are never written.

*Grade* copies each submission into its own temporary directory, puts back
the source's check cells (matched by cell id; a deleted one is re-inserted
after the cell that preceded it in the source), and runs the copy under
nbval (``--nbval-lax``) in a separate process, with a per-cell and a
per-notebook time limit. Each check is ``pass``, ``fail`` (with the
message) or ``not run``. A submission that is not a notebook, loops, kills
its kernel, raises or writes files is graded, as failing with the reason,
and the batch goes on. Submission files are only read.

Limits, stated plainly: the grader runs student code with the grader's
permissions; it stops edits to the check cells and undoes patches to
``gradlab.checks`` (each check cell reloads it), but it is not a sandbox.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["strip_solutions", "release_notebook", "release", "grade",
           "grade_submission", "Grade", "CheckResult"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# First line of every graded check cell: a fresh gradlab.checks (each lab's
# module first, then the package that re-exports them), so student code that
# patched them earlier cannot make a check pass.
RELOAD = ('checks = [__import__("importlib").reload(m) for m in [__import__('
          '"sys").modules[n] for n in sorted(__import__("sys").modules) if '
          'n.startswith("gradlab.checks.")] + [__import__("gradlab.checks", '
          'fromlist=["checks"])]][-1]\n')
# Colour codes, raw or as the JUnit report escapes them (#x1B[31m).
ANSI = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")


def strip_solutions(source: str, *, where: str = "cell") -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block
    (markers included) by the stub, indented like the BEGIN line.

    Raises:
        ValueError: a BEGIN without END, an END without BEGIN, or nested
            markers; the message names ``where``.
    """
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: nested {BEGIN!r}")
            inside, indent = True, line[:len(line) - len(line.lstrip())]
            out += [indent + stub_line for stub_line in STUB.splitlines()]
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END!r} without "
                                 f"{BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN!r} without {END!r}")
    return "\n".join(out)


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def release_notebook(nb, *, name: str = "notebook"):
    """Return the student version of a notebook (the input is not changed).

    Raises:
        ValueError: a cell tagged ``solution`` has no solution block, or
            markers are unbalanced.
    """
    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        where = f"{name}, cell {index} (id {cell.get('id')})"
        if cell.cell_type == "code":
            has_block = BEGIN in cell.source
            if "solution" in _tags(cell) and not has_block:
                raise ValueError(f"{where} is tagged 'solution' but has no "
                                 f"{BEGIN!r} block")
            cell.source = strip_solutions(cell.source, where=where)
            cell.outputs, cell.execution_count = [], None
    return student


def release(source: Path, out: Path) -> list[Path]:
    """Write the student version of every lab notebook under ``source``
    (a folder or one notebook) into ``out``. Returns the written paths."""
    source, out = Path(source), Path(out)
    paths = [source] if source.is_file() else sorted(source.glob("*.ipynb"))
    if not paths:
        raise ValueError(f"no notebooks found at {source}")
    if out.resolve() in [p.parent.resolve() for p in paths]:
        raise ValueError(f"--out {out} is the source folder; the sources "
                         f"must not be overwritten")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(release_notebook(nb, name=path.name), target)
        written.append(target)
    return written


@dataclass
class CheckResult:
    """One check cell of one submission."""

    check: str    # the check cell's id
    result: str   # "pass", "fail" or "not run"
    message: str = ""


@dataclass
class Grade:
    """A graded submission: its checks and what happened to the run."""

    submission: str
    status: str                      # "ok" or why the run is failing
    results: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(r.result == "pass" for r in self.results)


def _check_cells(nb) -> list:
    return [c for c in nb.cells if "check" in _tags(c)]


def _with_checks_restored(source_nb, submission_nb):
    """The submission with the source's check cells put back, by id."""
    graded = copy.deepcopy(submission_nb)
    ids = [c.get("id") for c in source_nb.cells]
    for check in _check_cells(source_nb):
        restored = copy.deepcopy(check)
        restored.source = RELOAD + check.source
        restored.outputs, restored.execution_count = [], None
        position = next((i for i, c in enumerate(graded.cells)
                         if c.get("id") == check.get("id")), None)
        if position is not None:
            graded.cells[position] = restored
            continue
        # Deleted: re-insert after the cell that came before it in the source.
        before = ids[:ids.index(check.get("id"))]
        anchor = max((i for i, c in enumerate(graded.cells)
                      if c.get("id") in before), default=len(graded.cells) - 1)
        graded.cells.insert(anchor + 1, restored)
    # A cell tagged "check" that the source does not have is the student's.
    check_ids = {c.get("id") for c in _check_cells(source_nb)}
    for cell in graded.cells:
        if "check" in _tags(cell) and cell.get("id") not in check_ids:
            cell.metadata["tags"] = [t for t in _tags(cell) if t != "check"]
    return graded


def _failure_text(case) -> str:
    node = next((n for n in case if n.tag in ("failure", "error")), None)
    if node is None:
        return ""
    text = ANSI.sub("", (node.get("message") or "") + "\n" + (node.text or ""))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    timeout = next((ln for ln in lines if "Timeout of" in ln), None)
    if timeout:  # "Cell 4: Timeout of 15 seconds exceeded ..."
        return re.sub(r"^Cell \d+: ", "", timeout)[:500]
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|"
                                             r"Failed|Exit|Interrupt)\b", ln)]
    return (errors[-1] if errors else lines[-1] if lines else "")[:500]


def _kernel_died(message: str) -> bool:
    # nbval reports a kernel that exited (os._exit, a segfault) as a timeout
    # whose interrupt failed; a Python loop is interrupted and raises.
    text = message.lower()
    return ("failed to interrupt kernel" in text or "kernel died" in text
            or "kernel dead" in text)


def _run_nbval(notebook: Path, report: Path, cell_timeout: int,
               notebook_timeout: int):
    """Run nbval on ``notebook`` in its own process group.

    Returns ``(outcomes, messages, timed_out)``: ``{cell_num: PASSED|FAILED|
    ERROR|SKIPPED}`` from the verbose log (which survives a kill) and
    ``{cell_num: message}`` from the JUnit report.
    """
    home = notebook.parent.parent / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "MPLBACKEND": "Agg",
           "GRADLAB_DEVICE": os.environ.get("GRADLAB_DEVICE", "cpu")}
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
               "-c", os.devnull, "--rootdir", str(notebook.parent),
               "--nbval-lax", "--nbval-current-env",
               f"--nbval-cell-timeout={cell_timeout}",
               f"--junitxml={report}", notebook.name]
    process = subprocess.Popen(command, cwd=notebook.parent, env=env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    timed_out = False
    try:
        log, _ = process.communicate(timeout=notebook_timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)  # pytest and its kernel
        log, _ = process.communicate()
    outcomes = {int(n): r for n, r in re.findall(
        r"::Cell (\d+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL)", log)}
    messages = {}
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            match = re.search(r"Cell (\d+)", case.get("name", ""))
            if match:
                messages[int(match.group(1))] = _failure_text(case)
    return outcomes, messages, timed_out


def grade_submission(source_nb, path: Path, *, cell_timeout: int = 60,
                     notebook_timeout: int = 300) -> Grade:
    """Grade one submission against the source notebook (see module doc)."""
    start = time.perf_counter()
    checks = [c.get("id") for c in _check_cells(source_nb)]
    name = Path(path).name

    def all_checks(result, message):
        return [CheckResult(c, result, message) for c in checks]

    try:
        submission = nbformat.reads(Path(path).read_text(), as_version=4)
    except Exception as exc:  # not JSON, not a notebook, unreadable
        reason = f"not a valid notebook: {type(exc).__name__}: {exc}"[:300]
        return Grade(name, reason, all_checks("not run", reason),
                     time.perf_counter() - start)
    graded = _with_checks_restored(source_nb, submission)
    with tempfile.TemporaryDirectory(prefix="gradlab-grade-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        notebook = work / "submission.ipynb"
        nbformat.write(graded, notebook)
        before = set(work.rglob("*"))
        outcomes, messages, timed_out = _run_nbval(
            notebook, Path(tmp) / "report.xml", cell_timeout, notebook_timeout)
        written = sorted(str(p.relative_to(work)) for p in
                         set(work.rglob("*")) - before)
    code_ids = [c.get("id") for c in graded.cells if c.cell_type == "code"]
    died = min((n for n, m in messages.items() if _kernel_died(m)),
               default=None)
    results = []
    for check in checks:
        n = code_ids.index(check)
        outcome, message = outcomes.get(n), messages.get(n, "")
        if died is not None and n >= died:
            results.append(CheckResult(check, "not run", f"the kernel died "
                                       f"or stopped responding in cell {died}"))
        elif outcome == "PASSED":
            results.append(CheckResult(check, "pass"))
        elif outcome in ("FAILED", "ERROR"):
            results.append(CheckResult(check, "fail", message or outcome))
        elif outcome == "XFAIL":  # nbval: a previous cell timed out
            results.append(CheckResult(check, "not run", "a previous cell "
                                       "timed out"))
        else:
            results.append(CheckResult(check, "not run", "the run stopped "
                                       "before this check" if timed_out
                                       else "not executed"))
    status = "ok"
    if timed_out:
        status = f"timeout: the notebook ran over {notebook_timeout} s"
    elif died is not None:
        status = f"the kernel died or stopped responding in cell {died}"
    elif written:
        status = f"wrote files: {', '.join(written)}"
        results = [CheckResult(r.check, "fail", "submissions must not write "
                               "files") for r in results]
    else:
        errors = [f"cell {n}: {messages.get(n, '')}" for n, o in
                  sorted(outcomes.items()) if o in ("FAILED", "ERROR")]
        if errors:  # the first failing cell, check or not: where to look
            status = f"failed at {errors[0]}"[:300]
    return Grade(name, status, results, time.perf_counter() - start)


def grade(source: Path, submissions: list, out: Path, *,
          cell_timeout: int = 60, notebook_timeout: int = 300,
          progress: bool = True) -> list[Grade]:
    """Grade ``submissions`` against ``source``, write a CSV to ``out``
    (one row per submission and check) and return the grades."""
    source_nb = nbformat.read(source, as_version=4)
    if not _check_cells(source_nb):
        raise ValueError(f"{source} has no cell tagged 'check'")
    grades = []
    for path in submissions:
        if progress:
            print(f"grading {path} ...", file=sys.stderr, flush=True)
        grades.append(grade_submission(source_nb, Path(path),
                                       cell_timeout=cell_timeout,
                                       notebook_timeout=notebook_timeout))
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "check", "result", "message",
                         "status"])
        for g in grades:
            for r in g.results:
                writer.writerow([g.submission, r.check, r.result, r.message,
                                 g.status])
    return grades


def summary_table(grades: list) -> str:
    """A plain-text table: one line per submission."""
    rows = [("submission", "score", "seconds", "status")]
    rows += [(g.submission, f"{g.score}/{len(g.results)}",
              f"{g.seconds:.1f}", g.status) for g in grades]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:3], widths))
                     + "  " + r[3] for r in rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlab.coursework",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="write student versions")
    rel.add_argument("source", type=Path, help="a lab notebook or folder")
    rel.add_argument("--out", type=Path, required=True)
    gr = sub.add_parser("grade", help="grade submissions with nbval")
    gr.add_argument("source", type=Path, help="the instructor's notebook")
    gr.add_argument("submissions", type=Path, nargs="+")
    gr.add_argument("--out", type=Path, required=True, help="CSV to write")
    gr.add_argument("--cell-timeout", type=int, default=60)
    gr.add_argument("--notebook-timeout", type=int, default=300)
    args = parser.parse_args(argv)
    if args.command == "release":
        for path in release(args.source, args.out):
            print(path)
        return 0
    grades = grade(args.source, args.submissions, args.out,
                   cell_timeout=args.cell_timeout,
                   notebook_timeout=args.notebook_timeout)
    print(summary_table(grades))
    return 0


if __name__ == "__main__":
    sys.exit(main())

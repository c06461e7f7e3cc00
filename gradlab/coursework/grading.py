"""Grade submissions so that nothing a submission runs can raise its score.

For each submission, in a private temporary directory:

1. The source's check cells are put back (matched by id; a deleted one is
   re-inserted after the cell that preceded it in the source). Each check
   cell is a call ``checks.check_name(function)``; from it the grader
   knows which :class:`~gradlab.checks.Check` tests which function.
2. The grader makes each check's cases (fresh random inputs, as data) in
   its own process.
3. **Grading run**, in the sandbox (:mod:`~gradlab.coursework.sandbox`):
   :mod:`~gradlab.coursework.worker` executes the submission's code cells
   in order and, where each check cell stands, calls the student's function
   on the cases and writes the results as data.
4. The grader reads those results with ``torch.load(...,
   weights_only=True)`` and judges them in its own process against the
   reference it computes itself. Only this step scores.
5. **Feedback run**, in the sandbox: the whole notebook under nbval, so the
   student learns which cell failed and why. Information only.

A submission that is not a notebook, loops, kills its kernel, raises or
writes files is graded, as failing with the reason, and the batch goes on.
Submission files are only read.
"""

from __future__ import annotations

import copy
import csv
import os
import random
import re
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import torch

from ..checks import CHECKS
from ..checks._protocol import Answer
from .feedback import nbval_command, read_nbval
from .release import tags
from .sandbox import (INSIDE, Limits, run_sandboxed, run_unsandboxed,
                      sandbox_available)

__all__ = ["CheckResult", "Grade", "grade", "grade_submission",
           "summary_table", "SandboxUnavailable", "check_calls"]

CHECK_CALL = re.compile(r"^\s*checks\.(check_\w+)\(\s*(\w+)\s*\)\s*$")
MAX_ANSWER_BYTES = 16 * 1024**2
GRADER = ".grader"   # the grader's files inside the work directory


class SandboxUnavailable(RuntimeError):
    """bwrap cannot run here; grade with ``sandbox=False`` knowingly."""


@dataclass
class CheckResult:
    """One check cell of one submission."""

    check: str    # the check cell's id
    result: str   # "pass", "fail" or "not run"
    message: str = ""


@dataclass
class Grade:
    """A graded submission: its checks and what happened to the runs."""

    submission: str
    status: str                      # "ok" or why the run is failing
    results: list = field(default_factory=list)
    seconds: float = 0.0
    mode: str = "sandbox"            # or "no sandbox"
    feedback: str = ""               # the feedback text for the student

    @property
    def score(self) -> int:
        return sum(r.result == "pass" for r in self.results)


def _check_cells(nb) -> list:
    return [c for c in nb.cells if "check" in tags(c)]


def check_calls(source_nb) -> list[tuple[str, str, str]]:
    """``[(cell id, check name, function name)]`` of the source's check
    cells.

    Raises:
        ValueError: a check cell that is not one call
            ``checks.check_name(function)`` of a known check.
    """
    calls = []
    for cell in _check_cells(source_nb):
        match = CHECK_CALL.match(cell.source)
        if not match or match.group(1) not in CHECKS:
            raise ValueError(
                f"check cell {cell.get('id')} must be one call "
                f"checks.<check>(<function>) of a known check "
                f"({', '.join(CHECKS)}); got {cell.source!r:.120}")
        calls.append((cell.get("id"), match.group(1), match.group(2)))
    return calls


def _with_checks_restored(source_nb, submission_nb):
    """The submission with the source's check cells put back, by id."""
    graded = copy.deepcopy(submission_nb)
    ids = [c.get("id") for c in source_nb.cells]
    for check in _check_cells(source_nb):
        restored = copy.deepcopy(check)
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
        if "check" in tags(cell) and cell.get("id") not in check_ids:
            cell.metadata["tags"] = [t for t in tags(cell) if t != "check"]
    return graded


def _requests(graded, calls, rng, cell_timeout) -> dict:
    """What the worker gets: the code cells with each check's place, and
    each check's cases (data only)."""
    where = {cell_id: i for i, (cell_id, _, _) in enumerate(calls)}
    steps = [{"check": where[c.get("id")]} if c.get("id") in where
             else {"code": c.source}
             for c in graded.cells if c.cell_type == "code"]
    checks = [{"name": name, "function": function,
               "cases": CHECKS[name].cases(rng)}
              for _, name, function in calls]
    return {"steps": steps, "checks": checks, "cell_timeout": cell_timeout}


def _read_answers(path: Path, n_cases: int):
    """The answers the worker wrote, as :class:`Answer` objects, or a
    reason they cannot be used."""
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_ANSWER_BYTES:
        return [Answer(None, "the answer file is too large")] * n_cases
    try:
        with warnings.catch_warnings():  # a forged file may warn first
            warnings.simplefilter("ignore")
            data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - a forged or broken file
        return [Answer(None, f"the answer file is unreadable "
                       f"({type(exc).__name__})")] * n_cases
    if not isinstance(data, list) or len(data) != n_cases:
        return [Answer(None, "the answer file has the wrong number of "
                       "answers")] * n_cases
    return [Answer.from_data(a) for a in data]


def _judge(calls, requests, answers_dir, stopped: str) -> list[CheckResult]:
    results = []
    for index, (cell_id, name, _) in enumerate(calls):
        cases = requests["checks"][index]["cases"]
        answers = _read_answers(answers_dir / f"{index}.pt", len(cases))
        if answers is None:
            results.append(CheckResult(cell_id, "not run", stopped))
            continue
        check = CHECKS[name]
        message = next((m for m in (check.verdict(case, answer) for
                                    case, answer in zip(cases, answers))
                        if m), "")
        results.append(CheckResult(cell_id, "fail" if message else "pass",
                                   message[:1000]))
    return results


def grade_submission(source_nb, path: Path, *, cell_timeout: int = 60,
                     notebook_timeout: int = 300, sandbox: bool = True,
                     limits: Limits = Limits(),
                     seed: int | None = None) -> Grade:
    """Grade one submission against the source notebook (module doc)."""
    start = time.perf_counter()
    calls = check_calls(source_nb)
    name = Path(path).name
    mode = "sandbox" if sandbox else "no sandbox"

    def finish(status, results, feedback=""):
        return Grade(name, status, results, time.perf_counter() - start,
                     mode, feedback)

    try:
        submission = nbformat.reads(Path(path).read_text(), as_version=4)
    except Exception as exc:  # not JSON, not a notebook, unreadable
        reason = f"not a valid notebook: {type(exc).__name__}: {exc}"[:300]
        return finish(reason, [CheckResult(c, "not run", reason)
                               for c, _, _ in calls])
    graded = _with_checks_restored(source_nb, submission)
    rng = random.Random(seed if seed is not None else
                        int.from_bytes(os.urandom(8), "big"))
    requests = _requests(graded, calls, rng, cell_timeout)
    run = run_sandboxed if sandbox else run_unsandboxed
    extra = {"limits": limits} if sandbox else {}
    with tempfile.TemporaryDirectory(prefix="gradlab-grade-") as tmp:
        # One private copy per run: what one run writes, the other never
        # sees. The two runs are independent and go at the same time.
        boxes = {"grading": Path(tmp) / "grading",
                 "feedback": Path(tmp) / "feedback"}
        for box in boxes.values():
            (box / GRADER / "answers").mkdir(parents=True)
            nbformat.write(graded, box / "submission.ipynb")
        torch.save(requests, boxes["grading"] / GRADER / "requests.pt")
        before = {k: set(b.rglob("*")) for k, b in boxes.items()}
        inside = {k: INSIDE if sandbox else str(b) for k, b in boxes.items()}
        commands = {
            "grading": [sys.executable, "-m", "gradlab.coursework.worker",
                        f"{inside['grading']}/{GRADER}/requests.pt",
                        f"{inside['grading']}/{GRADER}/answers"],
            "feedback": nbval_command(
                sys.executable, "submission.ipynb",
                f"{inside['feedback']}/{GRADER}/report.xml", cell_timeout)}
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {k: pool.submit(run, commands[k], boxes[k],
                                      timeout=notebook_timeout, **extra)
                       for k in boxes}
            grading, shown = (futures[k].result() for k in boxes)
        stopped = ("the run stopped at the time limit before this check"
                   if grading.timed_out else
                   f"the run stopped (exit code {grading.returncode}) "
                   f"before this check")
        results = _judge(calls, requests, boxes["grading"] / GRADER /
                         "answers", stopped)
        nbval = read_nbval(shown.output, boxes["feedback"] / GRADER /
                           "report.xml", shown.timed_out)
        written = sorted({str(p.relative_to(box)) for k, box in boxes.items()
                          for p in set(box.rglob("*")) - before[k]
                          if GRADER not in p.relative_to(box).parts})
    died = nbval.died_at()
    status = "ok"
    if grading.timed_out or nbval.timed_out:
        status = f"timeout: the notebook ran over {notebook_timeout} s"
    elif died is not None:
        status = f"the kernel died or stopped responding in cell {died}"
    elif grading.returncode != 0 and all(r.result == "not run"
                                         for r in results):
        last = (grading.output.strip().splitlines() or [""])[-1]
        status = (f"the grading run stopped (exit code "
                  f"{grading.returncode}) before any check: {last}")[:300]
    elif written:
        status = f"wrote files: {', '.join(written)}"
        results = [CheckResult(r.check, "fail", "submissions must not write "
                               "files") for r in results]
    elif nbval.first_failure():
        status = f"failed at {nbval.first_failure()}"[:300]
    feedback = _feedback_text(name, mode, status, calls, results, nbval)
    return finish(status, results, feedback)


def _feedback_text(name, mode, status, calls, results, nbval) -> str:
    lines = [f"submission: {name}", f"graded in: {mode}",
             f"status: {status}", "", "checks (these decide the score):"]
    for (cell_id, check, function), r in zip(calls, results):
        lines.append(f"  {cell_id} {check}({function}): {r.result}"
                     + (f" - {r.message}" if r.message else ""))
    lines += ["", "your notebook under nbval (for information only):"]
    for n, outcome in sorted(nbval.outcomes.items()):
        message = nbval.messages.get(n, "")
        lines.append(f"  cell {n}: {outcome}" + (f" - {message}"
                                                 if message else ""))
    if nbval.timed_out:
        lines.append("  (the run was stopped at the time limit)")
    return "\n".join(lines) + "\n"


def grade(source: Path, submissions: list, out: Path, *,
          cell_timeout: int = 60, notebook_timeout: int = 300,
          jobs: int | None = None, sandbox: bool = True,
          limits: Limits = Limits(), progress: bool = True,
          seed: int | None = None) -> list[Grade]:
    """Grade ``submissions`` against ``source`` on ``jobs`` workers at
    once (default: the number of cores).

    Writes a CSV to ``out`` (one row per submission and check, with the
    mode that graded it) and one feedback file per submission into the
    folder ``<out stem>_feedback`` beside it. Returns the grades in the
    order of ``submissions``.

    Raises:
        ValueError: the source has no or malformed check cells.
        SandboxUnavailable: ``sandbox=True`` where bwrap cannot run.
    """
    source_nb = nbformat.read(source, as_version=4)
    if not check_calls(source_nb):
        raise ValueError(f"{source} has no cell tagged 'check'")
    if sandbox:
        ok, why = sandbox_available()
        if not ok:
            raise SandboxUnavailable(
                f"cannot sandbox the submissions: {why}. Grading without a "
                f"sandbox runs student code with your rights; pass "
                f"--no-sandbox (sandbox=False) only if you accept that.")
    jobs = jobs or os.cpu_count() or 1
    seeds = [None if seed is None else seed + i
             for i in range(len(submissions))]

    def one(item):
        path, case_seed = item
        grade_ = grade_submission(
            source_nb, Path(path), cell_timeout=cell_timeout,
            notebook_timeout=notebook_timeout, sandbox=sandbox,
            limits=limits, seed=case_seed)
        if progress:
            print(f"graded {path}: {grade_.score}/{len(grade_.results)} "
                  f"({grade_.seconds:.0f} s)", file=sys.stderr, flush=True)
        return grade_

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        grades = list(pool.map(one, zip(submissions, seeds)))
    _write(grades, Path(out))
    return grades


def _write(grades, out: Path) -> None:
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "check", "result", "message",
                         "status", "mode"])
        for g in grades:
            for r in g.results:
                writer.writerow([g.submission, r.check, r.result, r.message,
                                 g.status, g.mode])
    folder = out.with_name(f"{out.stem}_feedback")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for g in grades:
        (folder / f"{Path(g.submission).stem}.txt").write_text(g.feedback)


def summary_table(grades: list) -> str:
    """A plain-text table: one line per submission."""
    rows = [("submission", "score", "seconds", "mode", "status")]
    rows += [(g.submission, f"{g.score}/{len(g.results)}",
              f"{g.seconds:.1f}", g.mode, g.status) for g in grades]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths))
                     + "  " + r[4] for r in rows)

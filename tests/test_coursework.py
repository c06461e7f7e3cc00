"""Release and grading of the labs (gradlab.coursework)."""

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gradlab.coursework import (BEGIN, grade, release, release_notebook,
                                strip_solutions, summary_table)

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "labs").glob("*.ipynb"))
LAB01 = ROOT / "labs" / "lab01_causes.ipynb"
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "submissions").glob("*"))
# The tests that share the graded fixture stay on one worker.
_SHARED = pytest.mark.xdist_group("coursework")


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _checks(nb):
    return [c for c in nb.cells if "check" in c.metadata.get("tags", [])]


def test_strip_solutions_keeps_indentation_and_the_rest():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
              "    ### END SOLUTION\n\nprint(f)")
    assert strip_solutions(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
        "\n\nprint(f)")


@pytest.mark.parametrize("source, problem", [
    (f"{BEGIN}\nx = 1", "without"), ("x = 1\n### END SOLUTION", "without"),
    (f"{BEGIN}\n{BEGIN}\n### END SOLUTION", "nested")])
def test_unbalanced_markers_are_named(source, problem):
    with pytest.raises(ValueError, match=problem) as info:
        strip_solutions(source, where="lab.ipynb, cell 3")
    assert "lab.ipynb, cell 3" in str(info.value)


def test_release_writes_student_versions_and_never_the_sources(tmp_path):
    before = {p: _digest(p) for p in LABS}
    run = subprocess.run([sys.executable, "-m", "gradlab.coursework",
                          "release", str(ROOT / "labs"), "--out",
                          str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert {p: _digest(p) for p in LABS} == before
    for lab in LABS:
        source = nbformat.read(lab, as_version=4)
        student = nbformat.read(tmp_path / lab.name, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        assert text.count("raise NotImplementedError()") == sum(
            BEGIN in c.source for c in source.cells) > 0
        assert [c.id for c in student.cells] == [c.id for c in source.cells]
        assert [c.source for c in _checks(student)] == \
            [c.source for c in _checks(source)]
        assert not any(c.get("outputs") for c in student.cells)
    with pytest.raises(ValueError, match="sources must not be overwritten"):
        release(ROOT / "labs", ROOT / "labs")


def test_release_refuses_a_solution_cell_without_markers():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={
        "tags": ["solution"]})]
    with pytest.raises(ValueError, match="tagged 'solution' but has no"):
        release_notebook(nb, name="lab.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the sources, their student versions and every fixture once."""
    tmp = tmp_path_factory.mktemp("grading")
    students = release(ROOT / "labs", tmp / "student")
    # Cells each within the per-cell limit that together exceed the
    # per-notebook limit: only the latter can stop them. The cell limit
    # leaves room for a slow import on a busy machine; the notebook limit
    # for the infinite loop's cell timeout plus nbval's wait for the
    # interrupted kernel.
    runaway = nbformat.read(students[0], as_version=4)
    for _ in range(10):
        runaway.cells.insert(2, nbformat.v4.new_code_cell(
            "import time\ntime.sleep(8)"))
    nbformat.write(runaway, tmp / "runaway.ipynb")
    submissions = [LAB01, *FIXTURES, tmp / "runaway.ipynb"]
    hashes = {p: _digest(p) for p in submissions}
    grades = grade(LAB01, submissions, tmp / "grades.csv", cell_timeout=25,
                   notebook_timeout=75, progress=False)
    print(summary_table(grades))
    return {g.submission: g for g in grades}, tmp / "grades.csv", hashes


def _results(grade_):
    return [r.result for r in grade_.results]


@_SHARED
def test_source_passes_every_check(graded):
    grades, _, _ = graded
    source = grades["lab01_causes.ipynb"]
    assert _results(source) == ["pass", "pass"] and source.status == "ok"


@pytest.mark.parametrize("lab", LABS, ids=[p.name for p in LABS])
def test_every_released_check_fails(lab, tmp_path):
    students = release(lab, tmp_path / "student")
    grades = grade(lab, students, tmp_path / "g.csv", progress=False)
    assert _results(grades[0]) == ["fail"] * len(_checks(
        nbformat.read(lab, as_version=4)))
    assert all("NotImplementedError" in r.message for r in grades[0].results)


@pytest.mark.parametrize("lab", [p for p in LABS if p != LAB01],
                         ids=[p.name for p in LABS if p != LAB01])
def test_every_source_lab_passes_its_checks(lab, tmp_path):
    # (lab 01's source is graded with the fixtures, in `graded`)
    (source,) = grade(lab, [lab], tmp_path / "g.csv", progress=False)
    assert _results(source) == ["pass"] * len(source.results), source
    assert source.status == "ok"


@_SHARED
def test_fixture_submissions_are_graded_as_expected(graded):
    grades, _, _ = graded
    wrong = grades["wrong_answer.ipynb"]
    assert _results(wrong) == ["fail", "fail"]
    assert "check the order" in wrong.results[0].message
    assert "returned 3, expected 8" in wrong.results[1].message
    loop = grades["infinite_loop.ipynb"]
    assert _results(loop) == ["pass", "fail"]
    assert "Timeout" in loop.results[1].message
    tampered = grades["tampered_check.ipynb"]
    assert _results(tampered) == ["fail", "fail"]  # checks restored, unpatched
    crash = grades["kernel_crash.ipynb"]
    assert _results(crash) == ["pass", "not run"]  # a dead kernel never passes
    assert "kernel died" in crash.status
    writes = grades["writes_files.ipynb"]
    assert _results(writes) == ["fail", "fail"]
    assert writes.status == "wrote files: notes.txt"
    imports = grades["import_error.ipynb"]
    assert _results(imports) == ["fail", "fail"]
    assert "ModuleNotFoundError" in imports.status
    broken = grades["broken_json.ipynb"]
    assert _results(broken) == ["not run", "not run"]
    assert broken.status.startswith("not a valid notebook")
    runaway = grades["runaway.ipynb"]
    assert runaway.status.startswith("timeout")
    assert _results(runaway) == ["not run", "not run"]


@_SHARED
def test_submissions_are_never_changed_and_csv_is_complete(graded):
    grades, csv_path, hashes = graded
    assert {p: _digest(p) for p in hashes} == hashes
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 2 * len(hashes)
    assert {r["result"] for r in rows} == {"pass", "fail", "not run"}


def test_grading_refuses_without_a_sandbox_unless_told(tmp_path, monkeypatch):
    import gradlab.coursework.grading as grading
    from gradlab.coursework import SandboxUnavailable
    monkeypatch.setattr(grading, "sandbox_available",
                        lambda: (False, "bwrap is not installed"))
    with pytest.raises(SandboxUnavailable, match="--no-sandbox"):
        grade(LAB01, [LAB01], tmp_path / "g.csv", progress=False)
    assert not (tmp_path / "g.csv").exists()
    # told: graded with the grader's rights, and the CSV says so
    (source,) = grade(LAB01, [LAB01], tmp_path / "g.csv", progress=False,
                      sandbox=False, notebook_timeout=120)
    assert _results(source) == ["pass", "pass"] and source.mode == \
        "no sandbox"
    rows = list(csv.DictReader(open(tmp_path / "g.csv")))
    assert {r["mode"] for r in rows} == {"no sandbox"}


def test_grade_command_reports_the_batch_and_its_wall_time(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "gradlab.coursework", "grade", str(LAB01),
         str(FIXTURES[0]), "--out", str(tmp_path / "g.csv"), "--jobs", "1"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "graded 1 submissions in" in run.stdout
    assert "--jobs 1" in run.stdout and "sandbox limits" in run.stdout
    assert (tmp_path / "g_feedback" / f"{FIXTURES[0].stem}.txt").exists()

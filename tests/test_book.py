"""The book builds with every warning an error and every notebook executed.

``-W -n --keep-going``: a failing cell (``nb_execution_raise_on_error``), a
missing glue key, a broken cross-reference or citation fails the build.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


@pytest.mark.book
def test_book_builds_without_warnings():
    jb = Path(sys.executable).with_name("jupyter-book")
    run = subprocess.run([str(jb), "build", str(ROOT), "-W", "-n",
                          "--keep-going"], cwd=ROOT, capture_output=True,
                         text=True, timeout=1500)
    log = run.stdout[-8000:] + run.stderr[-4000:]
    assert run.returncode == 0, log
    assert (HTML / "index.html").exists(), log
    chapter = (HTML / "book" / "01_causes.html").read_text()
    assert chapter.count("<img") >= 4, "chapter 01 lost its figures"

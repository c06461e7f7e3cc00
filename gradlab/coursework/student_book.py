"""The student edition of the book: the labs as released, no solutions.

    python -m gradlab.coursework student-book --out _build/student

The published book shows each lab with its solutions collapsed, so a course
that grades the labs cannot publish it. This builds the same book from a
copy of its sources in which every lab is replaced by its released version
(:func:`~gradlab.coursework.release.release_notebook`): no solution text
reaches the HTML, the page sources or the downloads. The labs are shown,
not executed (their stubs raise ``NotImplementedError`` by design); the
chapters are executed as for the public book, and reuse its execution
cache when it is there.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from .release import BEGIN, END, release_notebook

__all__ = ["build_student_book", "solution_lines", "leaked_solutions"]

# What the book build reads, relative to the repository root.
_SOURCES = ("_config.yml", "_toc.yml", "book", "labs", "_vendor")


def solution_lines(lab: Path, min_length: int = 12) -> list[str]:
    """The non-trivial lines inside the lab's solution blocks: what must
    not appear anywhere in the student edition."""
    lines = []
    for cell in nbformat.read(lab, as_version=4).cells:
        inside = False
        for line in cell.source.splitlines():
            marker = line.strip()
            if marker in (BEGIN, END):
                inside = marker == BEGIN
            elif inside and len(marker) >= min_length:
                lines.append(marker)
    return lines


def leaked_solutions(labs: list[Path], built: Path,
                     public: list[Path] = ()) -> list[str]:
    """``"file: line"`` for every solution line of ``labs`` found in a text
    file under ``built`` (HTML with its tags removed, page sources,
    downloads, the search index).

    A line that the student version of a lab shows anyway (in its
    instructions, say), or that stands in one of the ``public`` files (the
    chapters), is not a secret of the solution and is not looked for.
    """
    shared = "\n".join(Path(p).read_text(errors="ignore") for p in public)
    for lab in labs:
        student = release_notebook(nbformat.read(lab, as_version=4))
        shared += "\n" + "\n".join(c.source for c in student.cells)
    needles = {line for lab in labs for line in solution_lines(lab)
               if line not in shared}
    leaks = []
    for path in sorted(built.rglob("*")):
        if not path.is_file() or path.stat().st_size > 20 * 1024**2:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if path.suffix == ".ipynb":  # sources are JSON-escaped there
            try:
                text = "\n".join(c.source for c in nbformat.reads(
                    text, as_version=4).cells)
            except Exception:  # noqa: BLE001 - not a notebook: raw text
                pass
        elif path.suffix == ".html":  # code is split into highlighted spans
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
        leaks += [f"{path.relative_to(built)}: {n}" for n in sorted(needles)
                  if n in text]
    return leaks


def build_student_book(root: Path, out: Path, *,
                       extra_args: tuple = ()) -> subprocess.CompletedProcess:
    """Build the student edition of the book at ``root`` into ``out``.

    The staged sources go to ``out / "src"``, the HTML to
    ``out / "_build" / "html"``.

    Returns:
        the finished ``jupyter-book build`` process (check its
        ``returncode``).
    """
    root, out = Path(root).resolve(), Path(out).resolve()
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in _SOURCES:
        path = root / name
        if path.is_dir():
            shutil.copytree(path, src / name,
                            ignore=shutil.ignore_patterns(
                                ".ipynb_checkpoints", "__pycache__"))
        elif path.exists():
            shutil.copy2(path, src / name)
    for lab in sorted((src / "labs").glob("*.ipynb")):
        student = release_notebook(nbformat.read(lab, as_version=4),
                                   name=lab.name)
        nbformat.write(student, lab)
    config = yaml.safe_load((src / "_config.yml").read_text())
    config["title"] = f"{config['title']} (student edition)"
    execute = config.setdefault("execute", {})
    execute["exclude_patterns"] = ["labs/*"]   # shown, not run
    execute["cache"] = str(root / "_build" / ".jupyter_cache")
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    jb = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run(
        [str(jb), "build", str(src), "--path-output", str(out), "--all",
         "-W", "-n", "--keep-going", *extra_args],
        capture_output=True, text=True, timeout=1500)

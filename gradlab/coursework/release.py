"""Release: the student version of a lab notebook.

Every block between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
``# YOUR CODE HERE`` and ``raise NotImplementedError()``; outputs are
cleared; the check cells (tagged ``check``) and every cell id are kept. The
sources are never written.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "STUB", "strip_solutions", "release_notebook",
           "release", "tags"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


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


def tags(cell) -> list:
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
            if "solution" in tags(cell) and not has_block:
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



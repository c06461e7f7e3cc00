"""The claims register (book/claims.md) and the chapters' claim labels agree.

Every ``(claim-NNN-slug)=`` label in a book notebook has exactly one row in
the claims page that links to it, and every link there points at a label;
each row has a verdict from the house list and its link's source number
equals its source column; every source 000-004 has at least one row.
"""

import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SOURCES = ["000", "001", "002", "003", "004"]
VERDICTS = ["true", "false", "half true", "misleading", "untestable"]
LABEL = re.compile(r"^\((claim-[^)]*)\)=\s*$", re.MULTILINE)
LINK = re.compile(r"\{ref\}`(?:[^`<]*<(claim-[^>`]*)>|(claim-[^`]*))`")
VALID = re.compile(r"claim-(000|001|002|003|004)-[a-z0-9-]+")


def markdown_sources(book: Path) -> dict[str, str]:
    """Markdown text of every page under ``book`` except the claims page:
    the markdown cells of each notebook, and each .md page whole."""
    texts = {}
    for path in sorted(book.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts[path.name] = "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list)
            else c["source"] for c in cells if c["cell_type"] == "markdown")
    for path in sorted(book.glob("*.md")):
        if path.name != "claims.md":
            texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def labels(book: Path) -> dict[str, list[str]]:
    """Claim label -> the pages that define it."""
    found: dict[str, list[str]] = {}
    for name, text in markdown_sources(book).items():
        for label in LABEL.findall(text):
            found.setdefault(label, []).append(name)
    return found


def rows(book: Path) -> list[list[str]]:
    """The cells of each row of the claims table (source, claim, verdict,
    tested in); ``|`` escaped as ``\\|`` stays inside a cell."""
    table = []
    text = (book / "claims.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells and re.fullmatch(r"\d{3}", cells[0]):
            table.append(cells)
    return table


def problems(book: Path) -> list[str]:
    """Everything wrong with the register under ``book``; empty when sound."""
    found = labels(book)
    table = rows(book)
    out = [f"label {label} defined {len(pages)} times: {pages}"
           for label, pages in sorted(found.items()) if len(pages) > 1]
    out += [f"label {label} does not match {VALID.pattern}"
            for label in sorted(found) if not VALID.fullmatch(label)]
    linked = []
    for cells in table:
        row = " | ".join(cells)
        if len(cells) != 4:
            out.append(f"row without 4 columns: {row}")
            continue
        source, _, verdict, tested_in = cells
        if source not in SOURCES:
            out.append(f"row with unknown source {source}: {row}")
        if not any(verdict.lower().startswith(v) for v in VERDICTS):
            out.append(f"verdict not one of {VERDICTS}: {row}")
        links = [a or b for a, b in LINK.findall(tested_in)]
        if len(links) != 1:
            out.append(f"row needs exactly one claim link, has {links}: {row}")
        for link in links:
            linked.append(link)
            if not VALID.fullmatch(link):
                out.append(f"link {link} does not match {VALID.pattern}")
            elif link.split("-")[1] != source:
                out.append(f"link {link} sits in a row of source {source}")
    out += [f"label {label} linked by {linked.count(label)} rows"
            for label in sorted(set(linked)) if linked.count(label) > 1]
    missing_rows = sorted(set(found) - set(linked))
    missing_labels = sorted(set(linked) - set(found))
    if missing_rows:
        out.append(f"labels with no row in claims.md: {missing_rows}")
    if missing_labels:
        out.append(f"rows linking to no label in a chapter: {missing_labels}")
    sources = {cells[0] for cells in table}
    out += [f"source {s} has no row" for s in SOURCES if s not in sources]
    return out


def test_register_matches_the_chapters():
    assert labels(BOOK), "no claim labels found in book/*.ipynb"
    assert not problems(BOOK), "\n".join(problems(BOOK))


@pytest.fixture()
def book_copy(tmp_path):
    copy = tmp_path / "book"
    shutil.copytree(BOOK, copy, ignore=shutil.ignore_patterns("_build"))
    return copy


def _first_row(book: Path) -> list[str]:
    return next(r for r in rows(book) if len(r) == 4)


def _edit_claims(book: Path, old: str, new: str):
    path = book / "claims.md"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_catches_a_row_without_label(book_copy):
    _, _, _, link = _first_row(book_copy)
    label = [a or b for a, b in LINK.findall(link)][0]
    _edit_claims(book_copy, f"<{label}>", f"<{label}-typo>")
    found = problems(book_copy)
    unlinked = [p for p in found if p.startswith("labels with no row")]
    assert len(unlinked) == 1 and f"'{label}'" in unlinked[0]
    assert any(p.startswith("rows linking to no label") and f"{label}-typo" in p
               for p in found)


def test_catches_a_bad_verdict(book_copy):
    _, _, verdict, _ = _first_row(book_copy)
    _edit_claims(book_copy, f"| {verdict} |", f"| mostly {verdict} |")
    assert any(p.startswith("verdict not one of")
               for p in problems(book_copy))


def test_catches_a_wrong_source_and_a_missing_source(book_copy):
    for source in SOURCES[1:]:
        path = book_copy / "claims.md"
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(
            line.replace(f"| {source} |", "| 000 |", 1)
            if line.startswith(f"| {source} |") else line for line in lines),
            encoding="utf-8")
    found = "\n".join(problems(book_copy))
    assert "sits in a row of source 000" in found
    assert "source 004 has no row" in found


def test_catches_a_malformed_and_a_duplicate_label(book_copy):
    (book_copy / "extra.md").write_text(
        "(claim-9-Bad)=\ntext\n\n(claim-001-binary-weights)=\nagain\n",
        encoding="utf-8")
    found = "\n".join(problems(book_copy))
    assert "label claim-9-Bad does not match" in found
    assert "label claim-001-binary-weights defined 2 times" in found

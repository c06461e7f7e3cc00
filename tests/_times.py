"""Run times that the notebook and book tests record, for the table that
``make test`` prints at the end (see conftest.py).

Each test writes one small JSON file into ``_build/times/``; with
pytest-xdist the tests run in worker processes, and the controller reads
the files when the session ends.
"""

import json
from pathlib import Path

TIMES = Path(__file__).resolve().parents[1] / "_build" / "times"
BUDGET = 60.0  # seconds per notebook on a 2-core CPU (DESIGN.md)


def record(name: str, **values) -> None:
    """Save ``values`` under ``name`` for the end-of-run table."""
    TIMES.mkdir(parents=True, exist_ok=True)
    (TIMES / f"{name}.json").write_text(json.dumps(values))


def clear() -> None:
    for path in TIMES.glob("*.json") if TIMES.exists() else ():
        path.unlink()


def table() -> list[str]:
    """Lines of the table: one row per notebook, slowest first, with its
    nbval time per device, its execution for the book, and the largest of
    them as a fraction of the budget; then the book build."""
    records = [json.loads(p.read_text()) for p in sorted(TIMES.glob("*.json"))] \
        if TIMES.exists() else []
    rows: dict[str, dict] = {}
    book = None
    for r in records:
        if r["kind"] == "nbval":
            rows.setdefault(r["notebook"], {})[r["device"]] = (
                r["seconds"], r["passed"])
        elif r["kind"] == "book":
            book = r
            for notebook, (seconds, status) in r["notebooks"].items():
                rows.setdefault(notebook, {})["book"] = (seconds, status)
    if not rows and book is None:
        return []
    columns = ["cpu", "cuda", "book"]
    width = max([len(n) for n in rows] + [8])
    lines = [f"{'notebook':<{width}}  {'nbval cpu':>10}  {'nbval cuda':>10}"
             f"  {'book exec':>10}  budget",
             f"{'-' * width}  {'-' * 10}  {'-' * 10}  {'-' * 10}  ------"]

    def cell(entry):
        if entry is None:
            return f"{'-':>10}"
        seconds, state = entry
        mark = "" if state in (True, "executed") else (
            " (cached)" if state == "cached" else " FAIL")
        return f"{f'{seconds:.1f} s' + mark:>10}"

    def slowest(name):
        return max((v[0] for k, v in rows[name].items()
                    if k != "book" or v[1] != "cached"), default=0.0)

    for name in sorted(rows, key=lambda n: -slowest(n)):
        worst = slowest(name)
        flag = "  OVER BUDGET" if worst > BUDGET else ""
        lines.append(f"{name:<{width}}  " + "  ".join(
            cell(rows[name].get(c)) for c in columns)
            + f"  {worst / BUDGET:6.0%}{flag}")
    for name, (index, seconds, outside, where, wait) in sorted(
            (book or {}).get("cells", {}).items()):
        if rows[name]["book"][0] > BUDGET:  # where the time went
            lines.append(f"{name}, book exec: slowest cell #{index} "
                         f"{seconds:.1f} s, outside cells {outside:.1f} s, "
                         f"longest wait {wait:.1f} s {where}")
    if book is not None:
        lines.append(f"book build: {book['seconds']:.1f} s (notebook "
                     f"execution {book['execute_seconds']:.1f} s on "
                     f"{book['jobs']} processes, then jupyter-book "
                     f"{book['sphinx_seconds']:.1f} s)")
    return lines

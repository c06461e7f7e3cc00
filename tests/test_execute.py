"""gradlab.execute: where a notebook's execution time went."""

import json

import nbformat

from gradlab.execute import cell_seconds, execute_notebooks, format_times


def _stamped(busy: str, idle: str) -> dict:
    return {"execution": {"iopub.status.busy": busy,
                          "iopub.status.idle": idle,
                          "shell.execute_reply": idle}}


def test_cell_seconds_reads_and_removes_the_stamps():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("1", metadata=_stamped(
            "2026-11-26T09:00:00.000000Z", "2026-11-26T09:00:01.250000Z")),
        nbformat.v4.new_code_cell("2"),   # not executed: no stamps
        nbformat.v4.new_code_cell("3", metadata=_stamped(
            "2026-11-26T09:00:01.300000Z", "2026-11-26T09:05:01.300000Z"))])
    assert cell_seconds(nb) == [(1, 1.25), (3, 300.0)]
    assert all("execution" not in c.metadata for c in nb.cells)


def test_execution_reports_its_slowest_cell_and_caches_no_stamps(tmp_path):
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("text"),
        # the slow cell: a sum that takes a measurable time, no sleep
        nbformat.v4.new_code_cell("s = sum(range(10_000_000))\ns")]), path)
    [run] = execute_notebooks([path], jobs=1, cache=tmp_path / "cache",
                              progress=False)
    assert run.status == "executed", run.error
    index, seconds = run.slowest_cell
    assert index == 2 and 0 < seconds < run.seconds
    assert 0 < run.outside_cells < run.seconds   # the kernel's start
    assert "slowest cell" in format_times([run])
    cached = [json.loads(p.read_text())
              for p in (tmp_path / "cache").rglob("*.ipynb")]
    assert cached and all("execution" not in c.get("metadata", {})
                          for nb in cached for c in nb["cells"])

"""gradlab.execute: where a notebook's execution time went."""

import json
import types

import nbformat

from gradlab.execute import (_quiet_output_widgets, _timing, cell_times,
                             execute_notebooks, format_times)


def _stamped(busy: str, idle: str) -> dict:
    return {"execution": {"iopub.status.busy": busy,
                          "iopub.status.idle": idle,
                          "shell.execute_reply": idle}}


def test_cell_times_reads_and_removes_the_stamps():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("1", metadata=_stamped(
            "2026-11-26T09:00:00.000000Z", "2026-11-26T09:00:01.250000Z")),
        nbformat.v4.new_code_cell("2"),   # not executed: no stamps
        nbformat.v4.new_code_cell("3", metadata=_stamped(
            "2026-11-26T09:00:01.300000Z", "2026-11-26T09:05:01.300000Z"))])
    t0 = 1795683600.0   # 2026-11-26T09:00:00Z
    assert cell_times(nb) == [(1, t0, t0 + 1.25), (3, t0 + 1.3, t0 + 301.3)]
    assert all("execution" not in c.metadata for c in nb.cells)


def test_timing_finds_the_longest_wait():
    cells = [(1, 10.0, 11.0), (3, 311.0, 313.0), (4, 313.5, 314.0)]
    t = _timing(cells, start=8.0, end=315.0, seconds=307.0)
    assert t["slowest_cell"] == (3, 2.0)
    assert t["outside_cells"] == 307.0 - 3.5
    assert t["longest_wait"] == ("before #3", 300.0)
    quick = [(1, 10.0, 11.0), (3, 11.5, 12.0)]
    assert _timing(quick, 0.0, 12.5, 12.5)["longest_wait"] == (
        "before #1", 10.0)                     # the kernel's start
    assert _timing(quick, 9.5, 40.0, 30.5)["longest_wait"] == (
        "after the last cell", 28.0)           # its shutdown
    assert _timing([], 0.0, 1.0, 1.0) == {}


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
    where, wait = run.longest_wait
    assert where in ("before #0", "before #2", "after the last cell")
    assert 0 < wait <= run.outside_cells + 0.5
    assert "slowest cell" in format_times([run])
    cached = [json.loads(p.read_text())
              for p in (tmp_path / "cache").rglob("*.ipynb")]
    assert cached and all("execution" not in c.get("metadata", {})
                          for nb in cached for c in nb["cells"])


def test_output_widget_stand_in_sends_nothing_back_in_the_workers(monkeypatch):
    """nbclient's stand-in for ipywidgets.Output sends its outputs to the
    kernel on the shell socket while nbclient awaits the cell's reply
    there, and that await then now and then sleeps until the cell timeout
    (jupyter/nbclient#312). The executor's workers turn the send off; the
    outputs still reach the saved widget state."""
    from nbclient.output_widget import OutputWidget
    monkeypatch.setattr(OutputWidget, "send", OutputWidget.send)  # restore
    sent = []
    client = types.SimpleNamespace(
        shell_channel=types.SimpleNamespace(send=sent.append),
        session=types.SimpleNamespace(msg=lambda *a, **k: (a, k)))
    executor = types.SimpleNamespace(widget_state={"c1": {}})
    stream = {"header": {"msg_type": "stream"}, "parent_header": {},
              "content": {"name": "stdout", "text": "hi "}}
    widget = OutputWidget("c1", {"outputs": []}, client, executor)
    widget.output([], stream, None, 0)
    assert len(sent) == 1          # nbclient's own behaviour: one send
    _quiet_output_widgets()
    widget.output([], stream, None, 0)
    assert len(sent) == 1          # none more
    [output] = executor.widget_state["c1"]["outputs"]
    assert output["text"] == "hi hi "

"""Feedback for the student: the whole notebook under nbval, in the sandbox.

The run shows which cell failed and why, including the check cells'
messages, as the student would see them in Jupyter. It decides nothing:
its report is written inside the sandbox, so the submission could forge
it, and the score comes from :mod:`gradlab.coursework.grading` alone.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NotebookRun", "nbval_command", "read_nbval"]

# Colour codes, raw or as the JUnit report escapes them (#x1B[31m).
ANSI = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")
MAX_REPORT_BYTES = 2 * 1024**2


@dataclass
class NotebookRun:
    """What nbval said about each code cell (numbered from 0)."""

    outcomes: dict = field(default_factory=dict)  # n -> PASSED|FAILED|...
    messages: dict = field(default_factory=dict)  # n -> failure message
    timed_out: bool = False

    def first_failure(self) -> str:
        failed = [n for n, o in sorted(self.outcomes.items())
                  if o in ("FAILED", "ERROR")]
        return f"cell {failed[0]}: {self.messages.get(failed[0], '')}" \
            if failed else ""

    def died_at(self) -> int | None:
        """The cell where the kernel died or stopped answering."""
        return min((n for n, m in self.messages.items() if _kernel_died(m)),
                   default=None)


def nbval_command(python: str, notebook: str, report: str,
                  cell_timeout: int) -> list[str]:
    return [python, "-m", "pytest", "-v", "-p", "no:cacheprovider",
            "-c", "/dev/null", "--rootdir", ".", "--nbval-lax",
            "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}",
            f"--junitxml={report}", notebook]


def read_nbval(log: str, report: Path, timed_out: bool) -> NotebookRun:
    """Parse nbval's verbose log (which survives a kill) and its JUnit
    report (when there is one, and not too large)."""
    run = NotebookRun(timed_out=timed_out)
    run.outcomes = {int(n): r for n, r in re.findall(
        r"::Cell (\d+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL)", log)}
    try:
        if report.is_file() and report.stat().st_size <= MAX_REPORT_BYTES:
            for case in ET.parse(report).iter("testcase"):
                match = re.search(r"Cell (\d+)", case.get("name", ""))
                if match:
                    run.messages[int(match.group(1))] = _failure_text(case)
    except (ET.ParseError, OSError, ValueError):
        pass  # feedback only: a broken report loses the messages
    return run


def _failure_text(case) -> str:
    node = next((n for n in case if n.tag in ("failure", "error")), None)
    if node is None:
        return ""
    text = ANSI.sub("", (node.get("message") or "") + "\n" + (node.text or ""))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    timeout = next((ln for ln in lines if "Timeout of" in ln), None)
    if timeout:  # "Cell 4: Timeout of 15 seconds exceeded ..."
        return re.sub(r"^Cell \d+: ", "", timeout)[:500]
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|"
                                             r"Failed|Exit|Interrupt)\b", ln)]
    return (errors[-1] if errors else lines[-1] if lines else "")[:500]


def _kernel_died(message: str) -> bool:
    # nbval reports a kernel that exited (os._exit, a segfault) as a timeout
    # whose interrupt failed; a Python loop is interrupted and raises.
    text = message.lower()
    return ("failed to interrupt kernel" in text or "kernel died" in text
            or "kernel dead" in text)

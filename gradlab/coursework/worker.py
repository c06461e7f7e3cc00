"""The untrusted half of grading: runs inside the sandbox, with the student.

    python -m gradlab.coursework.worker requests.pt answers/

The grader writes ``requests.pt`` (data only, see
:mod:`gradlab.checks._protocol`): the submission's code cells in order, with
the place of each check cell marked, and for each check the cases to run.
The worker executes the code cells in an IPython shell, as a kernel would,
and at each check's place calls the student's function on every case
(:meth:`Check.answer <gradlab.checks._protocol.Check.answer>`), then writes
``answers/<n>.pt`` before it goes on. It decides nothing: the grader reads
the answers as data and judges them in its own process, so whatever the
student's code does here (patch this module, forge an answer file, hide
its errors) can at most change what the grader reads.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import torch

__all__ = ["main"]


class CellTimeout(Exception):
    """A cell or a check call ran over its time limit."""


def _alarm(seconds: int):
    def on_alarm(signum, frame):
        raise CellTimeout(f"ran over the {seconds} s limit")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    requests_path, answers = Path(argv[0]), Path(argv[1])
    requests = torch.load(requests_path, weights_only=True)
    answers.mkdir(exist_ok=True)
    timeout = int(requests["cell_timeout"])

    from IPython.core.interactiveshell import InteractiveShell

    from gradlab.checks import CHECKS
    from gradlab.checks._protocol import Answer

    shell = InteractiveShell.instance()
    for number, step in enumerate(requests["steps"]):
        if "code" in step:
            print(f"--- cell {number}", flush=True)
            try:
                _alarm(timeout)
                shell.run_cell(step["code"], store_history=False)
            except CellTimeout as exc:  # raised outside the cell's code
                print(f"cell {number} {exc}", flush=True)
            finally:
                signal.alarm(0)
            continue
        index = int(step["check"])
        request = requests["checks"][index]
        check = CHECKS[request["name"]]
        function = shell.user_ns.get(request["function"])
        results = []
        for case in request["cases"]:
            if not callable(function):
                results.append(Answer(None, f"NameError: "
                                      f"{request['function']!r} is not "
                                      f"defined when the check runs"))
                continue
            try:
                _alarm(timeout)
                results.append(check.answer(function, case))
            except CellTimeout as exc:  # raised outside the student's code
                results.append(Answer(None, f"CellTimeout: {exc}"))
            finally:
                signal.alarm(0)
            if results[-1].error.startswith("CellTimeout"):
                break  # one case over the limit is enough to fail
        # the cases not tried share the reason of the last one
        results += results[-1:] * (len(request["cases"]) - len(results))
        torch.save([a.as_data() for a in results], answers / f"{index}.pt")
        print(f"--- answered {request['name']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

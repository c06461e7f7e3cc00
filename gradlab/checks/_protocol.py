"""One definition per lab check, run two ways.

A :class:`Check` splits a check into three steps, so that the step that
decides can run where the student's code cannot reach it:

1. ``cases(rng)`` makes fresh inputs, as *data only* (numbers, strings,
   tensors, lists and dicts of them): what a check sends to the student's
   function. A model is described by its constructor's arguments and a
   seed, never sent as an object.
2. ``call(function, case)`` builds the arguments from a case, calls the
   student's function and turns its result into data. This is the only
   step that runs student code.
3. ``judge(case, answer)`` computes the reference for the case itself and
   compares; it raises :class:`~gradlab.checks.CheckFailed` with a message
   that says what is wrong.

In a notebook, ``check_x(function)`` runs all three in the kernel and gives
immediate feedback (:meth:`Check.run_local`). The grader
(:mod:`gradlab.coursework`) runs ``cases`` and ``judge`` in its own
process and only ``call`` inside the sandboxed worker that holds the
student's code; the answers come back as data files read with
``torch.load(..., weights_only=True)``. Nothing the student's code does in
its process can change the reference or the comparison.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import torch

from ._common import CheckFailed

__all__ = ["Check", "Answer", "is_data"]

# Types an answer or a case may be built from: what torch's weights_only
# unpickler accepts, and nothing that can run code when loaded.
_SCALARS = (bool, int, float, str, type(None))


def is_data(value, depth: int = 0) -> bool:
    """True when ``value`` is made only of numbers, strings, ``None``,
    tensors, and lists, tuples or str-keyed dicts of them."""
    if depth > 8:
        return False
    if isinstance(value, _SCALARS) or isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_data(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_data(v, depth + 1)
                   for k, v in value.items())
    return False


@dataclass(frozen=True)
class Answer:
    """What came back from one call of the student's function.

    Attributes:
        value: the result as data (see :func:`is_data`), or ``None``.
        error: ``"ExceptionName: message"`` when the call raised, else
            ``""``.
    """

    value: object = None
    error: str = ""

    def as_data(self) -> dict:
        return {"value": self.value, "error": self.error}

    @classmethod
    def from_data(cls, data) -> "Answer":
        """Rebuild an answer read from an untrusted file; anything that is
        not an answer's shape becomes an error answer."""
        if (not isinstance(data, dict) or set(data) != {"value", "error"}
                or not isinstance(data["error"], str)
                or not is_data(data["value"])):
            return cls(None, "the answer file is not an answer")
        return cls(data["value"], data["error"][:2000])


@dataclass(frozen=True)
class Check:
    """A lab check (see the module docstring).

    Attributes:
        name: the check function's name in ``gradlab.checks``, which the
            lab's check cell calls, e.g. ``"check_grad_norms"``.
        what: the student's function, in messages, e.g. ``"grad_norms"``.
        cases: ``cases(rng) -> list[dict]``, ``rng`` a ``random.Random``.
        call: ``call(function, case) -> data``.
        judge: ``judge(case, value) -> None``, raises ``CheckFailed``.
    """

    name: str
    what: str
    cases: Callable[[random.Random], list]
    call: Callable[[Callable, dict], object]
    judge: Callable[[dict, object], None]

    def answer(self, function, case) -> Answer:
        """Call the student's function on one case (untrusted side)."""
        try:
            value = self.call(function, case)
        except CheckFailed as failure:  # the result had the wrong form
            return Answer(None, f"CheckFailed: {failure}")
        except Exception as exc:  # noqa: BLE001 - the student's error
            return Answer(None, f"{type(exc).__name__}: {exc}"[:2000])
        if not is_data(value):
            return Answer(None, f"{self.what} returned "
                          f"{type(value).__name__}, which is not data")
        return Answer(value)

    def verdict(self, case, answer: Answer) -> str:
        """Judge one answer (trusted side): ``""`` for a pass, else the
        message that says what is wrong."""
        if answer.error:
            return f"{self.what} raised {answer.error}"
        try:
            self.judge(case, answer.value)
        except CheckFailed as failure:
            return str(failure)
        except Exception as exc:  # noqa: BLE001 - a malformed answer
            return (f"{self.what} returned something of the wrong form "
                    f"({type(exc).__name__}: {exc})"[:2000])
        return ""

    def run_local(self, function, *, seed: int | None = None) -> None:
        """Run every step here, for the student's feedback in a notebook.

        Raises:
            CheckFailed: the first failing case, with the reason.
        """
        cases = self.cases(random.Random(seed))
        for case in cases:
            answer = self.answer(function, case)
            if answer.error and not answer.error.startswith("CheckFailed"):
                # Re-run to show the student's own traceback.
                self.call(function, case)
            message = self.verdict(case, answer)
            if message:
                raise CheckFailed(message.removeprefix(
                    f"{self.what} raised CheckFailed: "))
        print(f"{self.name}: passed {len(cases)} cases")

"""Checks that the labs' check cells call, one module per lab.

Each check runs the student's *function* on fresh inputs and compares it with
gradlab's reference implementation. On a mismatch it raises
:class:`CheckFailed` with a message that says what was expected, what came
back and where (which layer, which argument), so the student can act on it.
"""

from ._common import CheckFailed
from .lab01 import (check_grad_norms, check_vanishing_depth,
                    vanishing_depth_reference)

__all__ = ["CheckFailed", "check_grad_norms", "check_vanishing_depth",
           "vanishing_depth_reference"]

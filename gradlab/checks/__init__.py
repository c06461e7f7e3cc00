"""Checks that the labs' check cells call, one module per lab.

Each check runs the student's *function* on fresh inputs and compares it with
gradlab's reference implementation. On a mismatch it raises
:class:`CheckFailed` with a message that says what was expected, what came
back and where (which layer, which argument), so the student can act on it.

Every check is one :class:`~gradlab.checks._protocol.Check`: the grader runs
its cases and its judgement outside the student's process, and only the
call of the student's function inside the sandbox (see
:mod:`gradlab.coursework`). ``CHECKS`` maps each check function's name to
its definition.
"""

from . import lab01
from ._common import CheckFailed
from ._protocol import Answer, Check
from .lab01 import (check_grad_norms, check_vanishing_depth,
                    vanishing_depth_reference)
from .lab02 import (INVERTED_DROPOUT, L2_SGD_STEP, check_inverted_dropout,
                    check_l2_sgd_step)
from .lab03 import (KAIMING_NORMAL, PREDICT_VARIANCES, check_kaiming_normal,
                    check_predict_variances, predict_variances_reference)
from .lab04 import BATCH_NORM, LAYER_NORM, check_batch_norm, check_layer_norm

__all__ = ["CheckFailed", "Check", "Answer", "CHECKS", "check_grad_norms",
           "check_vanishing_depth", "vanishing_depth_reference",
           "check_l2_sgd_step", "check_inverted_dropout",
           "check_batch_norm", "check_layer_norm", "check_kaiming_normal",
           "check_predict_variances", "predict_variances_reference"]

CHECKS = {check.name: check for check in (
    lab01.GRAD_NORMS, lab01.VANISHING_DEPTH,
    L2_SGD_STEP, INVERTED_DROPOUT,
    BATCH_NORM, LAYER_NORM,
    KAIMING_NORMAL, PREDICT_VARIANCES,
)}

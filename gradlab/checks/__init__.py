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
from .lab05 import (PRE_LN_BLOCK, RESIDUAL_BLOCK, RESIDUAL_DEPTH,
                    check_pre_ln_block, check_residual_block,
                    check_residual_depth, residual_depth_reference)
from .lab06 import (GRAD_THROUGH_TIME, GRU_STEP, check_grad_through_time,
                    check_gru_step)
from .lab07 import (ACCUMULATE, ACCUMULATE_UNEVEN, check_accumulate,
                    check_accumulate_uneven)
from .lab08 import (CLIP_GRAD_NORM, MAX_STABLE_LR, check_clip_grad_norm,
                    check_max_stable_lr)

__all__ = ["CheckFailed", "Check", "Answer", "CHECKS", "check_grad_norms",
           "check_vanishing_depth", "vanishing_depth_reference",
           "check_l2_sgd_step", "check_inverted_dropout",
           "check_batch_norm", "check_layer_norm", "check_kaiming_normal",
           "check_predict_variances", "predict_variances_reference",
           "check_residual_block", "check_pre_ln_block",
           "check_residual_depth", "residual_depth_reference",
           "check_clip_grad_norm", "check_max_stable_lr",
           "check_accumulate", "check_accumulate_uneven",
           "check_gru_step", "check_grad_through_time"]

CHECKS = {check.name: check for check in (
    lab01.GRAD_NORMS, lab01.VANISHING_DEPTH,
    L2_SGD_STEP, INVERTED_DROPOUT,
    BATCH_NORM, LAYER_NORM,
    KAIMING_NORMAL, PREDICT_VARIANCES,
    RESIDUAL_BLOCK, PRE_LN_BLOCK, RESIDUAL_DEPTH,
    CLIP_GRAD_NORM, MAX_STABLE_LR,
    ACCUMULATE, ACCUMULATE_UNEVEN,
    GRU_STEP, GRAD_THROUGH_TIME,
)}

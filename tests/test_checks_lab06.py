"""Lab 06's checks: the reference solutions pass, and each typical mistake
fails with a message that names it."""

import random

import pytest
import torch
from torch import nn

from gradlab import checks
from gradlab.checks import GRAD_THROUGH_TIME, GRU_STEP, CheckFailed


def gru_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh, *,
             swap_z=False, reset_before=False, bias_outside=False,
             gate_order="rzn", candidate_only=False):
    """The reference solution, with switches for the usual mistakes."""
    gx = dict(zip(gate_order, (x @ weight_ih.T + bias_ih).chunk(3, dim=1)))
    gh = dict(zip(gate_order, (h @ weight_hh.T + bias_hh).chunk(3, dim=1)))
    W_hn = dict(zip(gate_order, weight_hh.chunk(3)))["n"]
    b_hn = dict(zip(gate_order, bias_hh.chunk(3)))["n"]
    r = (gx["r"] + gh["r"]).sigmoid()
    z = (gx["z"] + gh["z"]).sigmoid()
    if reset_before:
        n = (gx["n"] + (r * h) @ W_hn.T + b_hn).tanh()
    elif bias_outside:
        n = (gx["n"] + r * (gh["n"] - b_hn) + b_hn).tanh()
    else:
        n = (gx["n"] + r * gh["n"]).tanh()
    if candidate_only:
        return n
    if swap_z:
        return z * n + (1 - z) * h
    return (1 - z) * n + z * h


def grad_through_time(model, x, y, *, reduction="mean", reverse=False,
                      squared=False, per_sequence=False, l1=False):
    x = x.detach().clone().requires_grad_(True)
    loss = nn.functional.mse_loss(model(x), y, reduction=reduction)
    (g,) = torch.autograd.grad(loss, x)                     # [B, T, F]
    if per_sequence:
        norms = g.norm(dim=2).mean(dim=0)
    elif l1:
        norms = g.abs().sum(dim=(0, 2))
    else:
        norms = g.pow(2).sum(dim=(0, 2))
        norms = norms if squared else norms.sqrt()
    return norms.flip(0) if reverse else norms


def variant(function, **mistake):
    def student(*args, **kwargs):
        return function(*args, **kwargs, **mistake)
    return student


def test_reference_solutions_pass(capsys):
    checks.check_gru_step(gru_step)
    checks.check_grad_through_time(grad_through_time)
    out = capsys.readouterr().out
    assert "check_gru_step: passed 3 cases" in out
    assert "check_grad_through_time: passed 3 cases" in out


def test_reference_gru_step_is_torchs():
    # the test's own reference agrees with nn.GRU over a whole sequence
    gru = nn.GRU(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        out, _ = gru(x)
        h = torch.zeros(2, 4)
        for t in range(5):
            h = gru_step(x[:, t], h, *gru.parameters())
    torch.testing.assert_close(h, out[:, -1])


def test_checks_are_registered():
    assert checks.CHECKS["check_gru_step"] is GRU_STEP
    assert checks.CHECKS["check_grad_through_time"] is GRAD_THROUGH_TIME


@pytest.mark.parametrize("mistake, words", [
    (dict(swap_z=True), ["gru_step is wrong", "PyTorch keeps z * h"]),
    (dict(reset_before=True), ["reset gate applied before the matrix",
                               "Cho et al."]),
    (dict(bias_outside=True), ["b_hn added outside the reset gate"]),
    (dict(gate_order="zrn"), ["(update, reset, new)",
                              "(reset, update, new)"]),
    (dict(candidate_only=True), ["the candidate n alone"]),
])
def test_gru_step_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_gru_step(variant(gru_step, **mistake))
    for word in words + ["x of shape [4, 3]"]:
        assert word in str(failure.value), str(failure.value)


def test_gru_step_wrong_shape_is_named():
    with pytest.raises(CheckFailed, match=r"should return shape \(4, 5\)"):
        checks.check_gru_step(lambda x, h, *w: x)


@pytest.mark.parametrize("mistake, words", [
    (dict(reduction="sum"), ["summed squared error", "B times"]),
    (dict(reverse=True), ["reverse order"]),
    (dict(squared=True), ["squared norm"]),
    (dict(l1=True), ["L1 norm"]),
])
def test_grad_through_time_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_grad_through_time(variant(grad_through_time, **mistake))
    for word in words + ["a rnn model, 5 sequences of 12 steps"]:
        assert word in str(failure.value), str(failure.value)


def test_per_sequence_norm_is_named():
    # with one sequence per batch the two norms agree; the first case has 5
    with pytest.raises(CheckFailed, match="mean over the batch of each"):
        checks.check_grad_through_time(variant(grad_through_time,
                                               per_sequence=True))


def test_grad_through_time_accepts_a_list():
    checks.check_grad_through_time(
        lambda m, x, y: grad_through_time(m, x, y).tolist())


def test_a_model_changed_by_the_student_does_not_fool_the_judge():
    def cheat(model, x, y):
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return grad_through_time(model, x, y)
    with pytest.raises(CheckFailed):
        checks.check_grad_through_time(cheat)


def test_judge_runs_apart_from_the_call():
    for check, function in ((GRU_STEP, gru_step),
                            (GRAD_THROUGH_TIME, grad_through_time)):
        for case in check.cases(random.Random(3)):
            answer = check.answer(function, case)
            assert check.verdict(case, answer) == ""

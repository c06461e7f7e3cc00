"""Lab 08's checks: the reference solutions pass, and each typical mistake
fails with a message that names it."""

import random

import pytest
import torch

from gradlab import checks
from gradlab.checks import CLIP_GRAD_NORM, MAX_STABLE_LR, CheckFailed


def clip_grad_norm(parameters, max_norm, *, per_param=False, always=False,
                   by_value=False, in_place=True, return_after=False,
                   sum_of_norms=False, eps=1e-6):
    """The reference solution, with switches for the usual mistakes."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if sum_of_norms:
        total = sum(g.norm() for g in grads)
    else:
        total = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    for g in grads:
        if by_value:
            new = g.clamp(-max_norm, max_norm)
        elif per_param:
            new = g * min(1.0, max_norm / (g.norm().item() + eps))
        elif always:
            new = g * max_norm / (total + eps)
        else:
            new = g * min(1.0, max_norm / (total.item() + eps))
        if in_place:
            g.copy_(new)
    if return_after:
        return torch.sqrt(sum(g.pow(2).sum() for g in grads))
    return total


def max_stable_lr(H, *, mistake=None):
    lam = torch.linalg.eigvalsh(H)
    return {None: 2 / lam.max(), "one": 1 / lam.max(),
            "min": 2 / lam[lam > 1e-9].min(), "diag": 2 / H.diagonal().max(),
            "trace": 2 / H.trace()}[mistake].item()


def variant(function, **mistake):
    def student(*args, **kwargs):
        return function(*args, **kwargs, **mistake)
    return student


def test_reference_solutions_pass(capsys):
    checks.check_clip_grad_norm(clip_grad_norm)
    checks.check_max_stable_lr(max_stable_lr)
    out = capsys.readouterr().out
    assert "check_clip_grad_norm: passed 4 cases" in out
    assert "check_max_stable_lr: passed 3 cases" in out


def test_torch_itself_passes():
    checks.check_clip_grad_norm(torch.nn.utils.clip_grad_norm_)


def test_checks_are_registered():
    assert checks.CHECKS["check_clip_grad_norm"] is CLIP_GRAD_NORM
    assert checks.CHECKS["check_max_stable_lr"] is MAX_STABLE_LR


@pytest.mark.parametrize("mistake, words", [
    (dict(per_param=True), ["parameter", "each parameter by its own norm"]),
    (dict(always=True), ["max_norm=10.0", "even when the total norm is "
                         "below it"]),
    (dict(by_value=True), ["clipping by value"]),
    (dict(in_place=False), ["unchanged", "in place"]),
    (dict(return_after=True), ["returned norm", "norm after clipping"]),
    (dict(sum_of_norms=True), ["sum of the parameters' norms"]),
])
def test_clip_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_clip_grad_norm(variant(clip_grad_norm, **mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


def test_clip_that_fails_on_a_missing_gradient_is_reported():
    def naive(parameters, max_norm):
        total = torch.sqrt(sum(p.grad.pow(2).sum() for p in parameters))
        for p in parameters:
            p.grad.mul_(min(1.0, max_norm / total.item()))
        return total
    with pytest.raises(Exception) as failure:
        checks.check_clip_grad_norm(naive)
    assert "NoneType" in str(failure.value) or "None" in str(failure.value)


def test_clip_wrong_return_form():
    with pytest.raises(CheckFailed, match="total norm"):
        checks.check_clip_grad_norm(lambda params, c: [1.0, 2.0])


@pytest.mark.parametrize("mistake, words", [
    ("one", ["1 / lambda_max"]),
    ("min", ["2 / lambda_min"]),
    ("diag", ["diag(H)", "eigvalsh"]),
    ("trace", ["trace"]),
])
def test_max_stable_lr_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_max_stable_lr(variant(max_stable_lr, mistake=mistake))
    for word in ["eigenvalues", *words]:
        assert word in str(failure.value), str(failure.value)


def test_max_stable_lr_wrong_form():
    with pytest.raises(CheckFailed, match="one number"):
        checks.check_max_stable_lr(lambda H: torch.ones(2))


def test_judge_runs_apart_from_the_call():
    # the grader's split: answers as data, judged on the trusted side
    for check, good, bad in (
            (CLIP_GRAD_NORM, clip_grad_norm,
             variant(clip_grad_norm, per_param=True)),
            (MAX_STABLE_LR, max_stable_lr,
             variant(max_stable_lr, mistake="one"))):
        cases = check.cases(random.Random(1))
        for case in cases:
            assert check.verdict(case, check.answer(good, case)) == ""
        verdicts = [check.verdict(case, check.answer(bad, case))
                    for case in cases]
        assert any(verdicts)


def test_a_student_cannot_change_the_reference():
    # the student's function gets the parameters; clipping them harder
    # than asked must not move the judge's reference
    def greedy(parameters, max_norm):
        total = clip_grad_norm(parameters, max_norm)
        for p in parameters:
            if p.grad is not None:
                p.grad.mul_(0.5)
        return total
    with pytest.raises(CheckFailed, match="gradient of parameter 0"):
        checks.check_clip_grad_norm(greedy)

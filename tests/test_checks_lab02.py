"""Lab 02's checks: the reference solutions pass, and each typical mistake
fails with a message that names it."""

import pytest
import torch
from torch.nn import functional as F

from gradlab import checks
from gradlab.checks import INVERTED_DROPOUT, L2_SGD_STEP, CheckFailed


def l2_sgd_step(model, inputs, targets, *, lr, lam, factor=0.5,
                lr_on_decay=True, sign=-1.0, biases=True, in_place=True):
    """The reference solution, with switches for the usual mistakes."""
    params = list(model.parameters())
    penalized = [p for p in params if biases or p.dim() >= 2]
    loss = F.cross_entropy(model(inputs), targets)
    loss = loss + factor * lam * sum(p.pow(2).sum() for p in penalized)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        new = []
        for p, g in zip(params, grads):
            if not lr_on_decay:  # decay lam * p applied outside the lr
                data_g = g - 2 * factor * lam * p
                step = p - lr * data_g - lam * p
            else:
                step = p + sign * lr * g
            new.append(step)
        if in_place:
            for p, s in zip(params, new):
                p.copy_(s)
    return None if in_place else new


def inverted_dropout(x, p, *, training, generator, scale="divide",
                     keep_prob=None, in_eval=False, use_generator=True,
                     detach=False):
    """The reference solution, with switches for the usual mistakes."""
    if not (training or in_eval) or p == 0:
        return x
    noise = (torch.rand(x.shape, generator=generator) if use_generator
             else torch.rand(x.shape))
    keep = noise >= p if keep_prob is None else noise < keep_prob(p)
    factor = {"divide": 1 / (1 - p), "none": 1.0, "multiply": 1 - p}[scale]
    out = x * keep * factor
    return out.detach() if detach else out


def variant(function, **mistake):
    def student(*args, **kwargs):
        return function(*args, **kwargs, **mistake)
    return student


def test_reference_solutions_pass(capsys):
    checks.check_l2_sgd_step(l2_sgd_step)
    checks.check_inverted_dropout(inverted_dropout)
    out = capsys.readouterr().out
    assert "check_l2_sgd_step: passed 3 cases" in out
    assert "check_inverted_dropout: passed 4 cases" in out


def test_checks_are_registered():
    assert checks.CHECKS["check_l2_sgd_step"] is L2_SGD_STEP
    assert checks.CHECKS["check_inverted_dropout"] is INVERTED_DROPOUT


def test_torch_weight_decay_passes():
    # what the lab asks to reproduce by hand is torch's weight_decay
    def with_torch(model, inputs, targets, *, lr, lam):
        opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=lam)
        F.cross_entropy(model(inputs), targets).backward()
        opt.step()
    checks.check_l2_sgd_step(with_torch)


@pytest.mark.parametrize("mistake, words", [
    (dict(factor=0.0), ["penalty lam/2 * ||theta||^2 is missing"]),
    (dict(factor=1.0), ["twice too strong", "2 * lam * theta"]),
    (dict(lr_on_decay=False), ["not multiplied by the learning rate"]),
    (dict(factor=-0.5), ["wrong sign"]),
    (dict(sign=1.0), ["uphill"]),
    (dict(biases=False), ["bias", "undecayed biases"]),
    (dict(in_place=False), ["update them in place"]),
])
def test_l2_step_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_l2_sgd_step(variant(l2_sgd_step, **mistake))
    message = str(failure.value)
    for word in words + ["parameter", "lr=", "lam="]:
        assert word in message, message


def test_l2_step_that_raises_shows_the_error():
    def broken(model, inputs, targets, *, lr, lam):
        raise NotImplementedError()
    with pytest.raises(NotImplementedError):
        checks.check_l2_sgd_step(broken)


@pytest.mark.parametrize("mistake, words", [
    (dict(scale="none"), ["x * 1", "not scaled", "divide them by 1 - p"]),
    (dict(scale="multiply"), ["multiplied by 1 - p"]),
    (dict(keep_prob=lambda p: p), ["1 - p: drop each unit with "
                                   "probability p"]),
    (dict(in_eval=True), ["eval mode", "training=False",
                          "only when training=True"]),
    (dict(use_generator=False), ["generator"]),
    (dict(detach=True), ["not differentiable"]),
])
def test_dropout_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_inverted_dropout(variant(inverted_dropout, **mistake))
    message = str(failure.value)
    for word in words + ["p="]:
        assert word in message, message


def test_dropout_with_a_reused_mask_is_named():
    # one mask drawn once and reused, whatever the generator
    fixed = {}

    def reused(x, p, *, training, generator):
        if not training or p == 0:
            return x
        key = (tuple(x.shape), p)
        if key not in fixed:
            fixed[key] = torch.rand(x.shape, generator=generator) >= p
        return x * fixed[key] / (1 - p)

    with pytest.raises(CheckFailed, match="same mask"):
        checks.check_inverted_dropout(reused)


def test_dropout_whose_average_is_not_the_input_fails():
    # passes every other test, but never drops the first unit of a vector
    def biased(x, p, *, training, generator):
        out = inverted_dropout(x, p, training=training, generator=generator)
        if training and p and x.dim() == 1:
            out = out.clone()
            out[0] = x[0] / (1 - p)
        return out

    with pytest.raises(CheckFailed, match="average of 1000 outputs"):
        checks.check_inverted_dropout(biased)


def test_dropout_wrong_form():
    with pytest.raises(CheckFailed, match="should return a tensor"):
        checks.check_inverted_dropout(lambda x, p, **kw: x.tolist())


def test_judge_runs_apart_from_the_call():
    # the grader's split: the call's answer is data, judged elsewhere
    import random

    from gradlab.checks._protocol import is_data
    for check, function in ((L2_SGD_STEP, l2_sgd_step),
                            (INVERTED_DROPOUT, inverted_dropout)):
        for case in check.cases(random.Random(0)):
            answer = check.answer(function, case)
            assert answer.error == "" and is_data(answer.value)
            assert is_data(case)
            assert check.verdict(case, answer) == ""

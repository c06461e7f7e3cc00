"""Lab 04's checks: the reference solutions pass, and each typical mistake
fails with a message that names it."""

import pytest
import torch

from gradlab import checks
from gradlab.checks import BATCH_NORM, LAYER_NORM, CheckFailed


def batch_norm(x, gamma, beta, running_mean, running_var, *, training,
               momentum=0.1, eps=1e-5, unbiased_norm=False,
               unbiased_running=True, swap_momentum=False, eval_batch=False,
               update_in_eval=False, eps_outside=False):
    """The reference solution, with switches for the usual mistakes."""
    use_batch = training or eval_batch
    if use_batch:
        mean = x.mean(dim=0)
        var = x.var(dim=0, unbiased=unbiased_norm)
    if training or update_in_eval:
        b_var = x.var(dim=0, unbiased=unbiased_running)
        keep, new = ((momentum, 1 - momentum) if swap_momentum
                     else (1 - momentum, momentum))
        running_mean = keep * running_mean + new * x.mean(dim=0)
        running_var = keep * running_var + new * b_var
    if not use_batch:
        mean, var = running_mean, running_var
    denom = (var.sqrt() + eps) if eps_outside else torch.sqrt(var + eps)
    return gamma * (x - mean) / denom + beta, running_mean, running_var


def layer_norm(x, gamma, beta, eps=1e-5, *, dim=1, unbiased=False):
    mean = x.mean(dim=dim, keepdim=True)
    var = x.var(dim=dim, unbiased=unbiased, keepdim=True)
    return gamma * (x - mean) / torch.sqrt(var + eps) + beta


def variant(function, **mistake):
    def student(*args, **kwargs):
        return function(*args, **kwargs, **mistake)
    return student


def test_reference_solutions_pass(capsys):
    checks.check_batch_norm(batch_norm)
    checks.check_layer_norm(layer_norm)
    assert "check_batch_norm: passed" in capsys.readouterr().out


def test_checks_are_registered():
    assert checks.CHECKS["check_batch_norm"] is BATCH_NORM
    assert checks.CHECKS["check_layer_norm"] is LAYER_NORM


@pytest.mark.parametrize("mistake, words", [
    (dict(unbiased_norm=True), ["training=True, step 1", "y is wrong",
                                "unbiased variance"]),
    (dict(unbiased_running=False), ["running_var is wrong",
                                    "biased batch variance",
                                    "B / (B - 1)"]),
    (dict(swap_momentum=True), ["running_mean is wrong",
                                "(1 - momentum) * old + momentum * batch"]),
    (dict(eval_batch=True), ["training=False", "y is wrong",
                             "batch's own statistics"]),
    (dict(update_in_eval=True), ["training=False",
                                 "running statistics changed"]),
    (dict(eps_outside=True), ["y is wrong", "sqrt(var + eps)"]),
])
def test_batch_norm_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_batch_norm(variant(batch_norm, **mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


def test_batch_norm_that_ignores_momentum_fails():
    def fixed(x, gamma, beta, mean, var, *, training, momentum=0.1,
              eps=1e-5):
        return batch_norm(x, gamma, beta, mean, var, training=training)
    with pytest.raises(CheckFailed, match="momentum=0.3"):
        checks.check_batch_norm(fixed)


def test_batch_norm_over_features_is_called_layer_norm():
    def over_features(x, gamma, beta, mean, var, *, training, momentum=0.1,
                      eps=1e-5):
        return layer_norm(x, gamma, beta, eps), mean, var
    with pytest.raises(CheckFailed, match="that is layer norm"):
        checks.check_batch_norm(over_features)


def test_batch_norm_wrong_form():
    with pytest.raises(CheckFailed, match=r"\(y, running_mean, "):
        checks.check_batch_norm(lambda x, *a, **k: x)


@pytest.mark.parametrize("mistake, words", [
    (dict(dim=0), ["that is batch norm"]),
    (dict(unbiased=True), ["unbiased variance", "divide by C"]),
])
def test_layer_norm_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_layer_norm(variant(layer_norm, **mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


def test_layer_norm_without_affine_is_named():
    def bare(x, gamma, beta, eps=1e-5):
        return layer_norm(x, torch.ones_like(gamma), torch.zeros_like(beta),
                          eps)
    with pytest.raises(CheckFailed, match="without gamma and beta"):
        checks.check_layer_norm(bare)


def test_judge_runs_apart_from_the_call():
    # the grader's split: answers as data, judged on the trusted side
    import random
    for check, function in ((BATCH_NORM, batch_norm),
                            (LAYER_NORM, layer_norm)):
        for case in check.cases(random.Random(3)):
            answer = check.answer(function, case)
            assert check.verdict(case, answer) == ""

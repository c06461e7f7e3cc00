"""Lab 05's checks: the reference solutions pass, and each typical mistake
fails with a message that names it."""

import random

import pytest
import torch
from torch.nn import functional as F

import gradlab as gl
from gradlab import checks
from gradlab.checks import (PRE_LN_BLOCK, RESIDUAL_BLOCK, RESIDUAL_DEPTH,
                            CheckFailed)


def residual_block(x, weight, bias, *, mistake=None):
    """The reference solution, with switches for the usual mistakes."""
    z = x @ (weight if mistake == "no_transpose" else weight.T) + bias
    if mistake == "no_skip":
        return torch.relu(z)
    if mistake == "x_plus_x":
        return x + x
    if mistake == "relu_after_sum":
        return torch.relu(x + z)
    if mistake == "no_relu":
        return x + z
    return x + torch.relu(z)


def pre_ln_block(x, gamma, beta, weight, bias, eps=1e-5, *, mistake=None):
    d = x.shape[-1]

    def ln(t):
        if mistake == "no_affine":
            return F.layer_norm(t, (d,), eps=eps)
        if mistake == "unbiased":
            mean = t.mean(-1, keepdim=True)
            var = t.var(-1, keepdim=True)
            return gamma * (t - mean) / torch.sqrt(var + eps) + beta
        mean = t.mean(-1, keepdim=True)
        var = t.var(-1, unbiased=False, keepdim=True)
        return gamma * (t - mean) / torch.sqrt(var + eps) + beta

    def f(t):
        return torch.relu(t @ weight.T + bias)

    if mistake == "post_ln":
        return ln(x + f(x))
    if mistake == "normalized_skip":
        return ln(x) + f(ln(x))
    if mistake == "norm_after":
        return x + ln(f(x))
    if mistake == "no_norm":
        return x + f(x)
    return x + f(ln(x))


def vanishing_depth(threshold, *, residual, width, seed, max_depth=30,
                    mistake=None):
    X, y, _, _ = gl.data.digits(seed=0)
    if mistake == "never_residual":
        residual = False
    for depth in range(1, max_depth + 1):
        norms = list(gl.profile_at_init(
            X[:256], y[:256], out_features=10, depth=depth, width=width,
            activation="tanh", init="default", residual=residual, seed=seed,
            device="cpu").values())
        if mistake == "inverted":
            if norms[-1] < threshold * norms[0]:
                return depth
        elif norms[0] < threshold * norms[-1]:
            return depth + (1 if mistake == "off_by_one" else 0)
    return -1


def variant(function, mistake):
    def student(*args, **kwargs):
        return function(*args, **kwargs, mistake=mistake)
    return student


def test_reference_solutions_pass(capsys):
    checks.check_residual_block(residual_block)
    checks.check_pre_ln_block(pre_ln_block)
    checks.check_residual_depth(vanishing_depth)
    out = capsys.readouterr().out
    for name in ("check_residual_block", "check_pre_ln_block",
                 "check_residual_depth"):
        assert f"{name}: passed" in out


def test_checks_are_registered():
    assert checks.CHECKS["check_residual_block"] is RESIDUAL_BLOCK
    assert checks.CHECKS["check_pre_ln_block"] is PRE_LN_BLOCK
    assert checks.CHECKS["check_residual_depth"] is RESIDUAL_DEPTH


def test_the_residual_network_never_reaches_the_thresholds():
    # the premise of the exercise, for every case the check asks
    for case in RESIDUAL_DEPTH.cases(random.Random(0)):
        depth = checks.residual_depth_reference(**case)
        assert (depth == -1) == case["residual"], (case, depth)


@pytest.mark.parametrize("mistake, words", [
    ("no_skip", ["skip connection (+ x) is missing"]),
    ("x_plus_x", ["x + x", "source"]),
    ("relu_after_sum", ["ReLU after the sum"]),
    ("no_relu", ["ReLU of the branch is missing"]),
    ("no_transpose", ["transpose the weight"]),
])
def test_residual_block_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_residual_block(variant(residual_block, mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


@pytest.mark.parametrize("mistake, words", [
    ("post_ln", ["Post-LN block", "x + f(LN(x))"]),
    ("normalized_skip", ["skip must carry x itself"]),
    ("norm_after", ["before the branch"]),
    ("no_norm", ["layer norm is missing"]),
    ("no_affine", ["without gamma and beta"]),
    ("unbiased", ["unbiased variance"]),
])
def test_pre_ln_block_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_pre_ln_block(variant(pre_ln_block, mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


def test_pre_ln_block_that_ignores_eps_fails():
    def fixed_eps(x, gamma, beta, weight, bias, eps=1e-5):
        return pre_ln_block(x, gamma, beta, weight, bias)
    with pytest.raises(CheckFailed, match="eps=0.01"):
        checks.check_pre_ln_block(fixed_eps)


@pytest.mark.parametrize("mistake, words", [
    ("never_residual", ["expected -1", "residual=True"]),
    ("off_by_one", ["too deep"]),
    ("inverted", ["returned -1, expected 14"]),
])
def test_depth_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_residual_depth(variant(vanishing_depth, mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


def test_wrong_forms_fail():
    with pytest.raises(CheckFailed, match="should return a tensor"):
        checks.check_residual_block(lambda x, w, b: x.tolist())
    with pytest.raises(CheckFailed, match="should return shape"):
        checks.check_pre_ln_block(lambda x, *a, **k: x[..., :1])
    with pytest.raises(CheckFailed, match="should return an int"):
        checks.check_residual_depth(lambda t, **k: 3.0)


def test_judge_runs_apart_from_the_call():
    # the grader's split: answers as data, judged on the trusted side
    for check, function in ((RESIDUAL_BLOCK, residual_block),
                            (PRE_LN_BLOCK, pre_ln_block)):
        for case in check.cases(random.Random(3)):
            answer = check.answer(function, case)
            assert check.verdict(case, answer) == ""
        wrong = check.answer(variant(function, "no_norm" if check is
                                     PRE_LN_BLOCK else "no_skip"),
                             check.cases(random.Random(3))[0])
        assert check.verdict(check.cases(random.Random(3))[0], wrong)

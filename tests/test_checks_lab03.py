"""Lab 03's checks: the reference solutions pass (for any seed of the
check's random cases), and each typical mistake fails with a message that
names it."""

import math

import pytest
import torch

from gradlab import checks
from gradlab.checks import (KAIMING_NORMAL, PREDICT_VARIANCES, CheckFailed,
                            predict_variances_reference)
from gradlab.checks._protocol import is_data


# -- Kaiming-normal: the reference and its usual mistakes ------------------

def kaiming_normal_(weight, *, generator=None):
    """The reference solution."""
    std = math.sqrt(2 / weight.shape[1])  # weight: [fan_out, fan_in]
    with torch.no_grad():
        return weight.normal_(0.0, std, generator=generator)


def fan_out_instead(weight, *, generator=None):
    with torch.no_grad():
        return weight.normal_(0.0, math.sqrt(2 / weight.shape[0]),
                              generator=generator)


def missing_gain(weight, *, generator=None):
    with torch.no_grad():
        return weight.normal_(0.0, math.sqrt(1 / weight.shape[1]),
                              generator=generator)


def variance_as_std(weight, *, generator=None):
    with torch.no_grad():
        return weight.normal_(0.0, 2 / weight.shape[1], generator=generator)


def uniform_wrong_bound(weight, *, generator=None):
    bound = math.sqrt(2 / weight.shape[1])  # variance bound^2 / 3
    with torch.no_grad():
        return weight.uniform_(-bound, bound, generator=generator)


def uniform_right_variance(weight, *, generator=None):
    bound = math.sqrt(6 / weight.shape[1])  # He-uniform: right variance
    with torch.no_grad():
        return weight.uniform_(-bound, bound, generator=generator)


def not_in_place(weight, *, generator=None):
    std = math.sqrt(2 / weight.shape[1])
    return std * torch.randn(weight.shape, generator=generator)


def returns_nothing(weight, *, generator=None):
    kaiming_normal_(weight, generator=generator)


def ignores_generator(weight, *, generator=None):
    with torch.no_grad():
        return weight.normal_(0.0, math.sqrt(2 / weight.shape[1]))


@pytest.mark.parametrize("seed", range(4))
def test_reference_kaiming_passes_for_any_seed(seed, capsys):
    checks.check_kaiming_normal(kaiming_normal_, seed=seed)
    assert "check_kaiming_normal: passed" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", [
    (fan_out_instead, ["variance", "fan_out", "weight.shape[1]"]),
    (missing_gain, ["gain sqrt(2) is missing"]),
    (variance_as_std, ["as the standard deviation", "sqrt(2 / fan_in)"]),
    (uniform_wrong_bound, ["uniform U(-a, a)", "a^2 / 3"]),
    (uniform_right_variance, ["variance is right", "look uniform",
                              "kurtosis"]),
    (not_in_place, ["in place", "NaN"]),
    (returns_nothing, ["should return the tensor it filled"]),
    (ignores_generator, ["`generator` argument"]),
])
def test_kaiming_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_kaiming_normal(mistake, seed=0)
    message = str(failure.value)
    for word in words:
        assert word in message, message
    assert "fan_in=" in message, message  # says where: the shape


# -- the variance recursion ------------------------------------------------

def predict_variances(x2, fan_ins, weight_vars, activation):
    """The reference solution, written independently of the checks'."""
    keep = {"identity": 1.0, "relu": 0.5}[activation]
    q, h2 = [], x2
    for fan_in, var in zip(fan_ins, weight_vars):
        q.append(fan_in * var * h2)
        h2 = keep * q[-1]
    return q


def forgets_activation(x2, fan_ins, weight_vars, activation):
    return predict_variances(x2, fan_ins, weight_vars, "identity")


def activates_input(x2, fan_ins, weight_vars, activation):
    keep = {"identity": 1.0, "relu": 0.5}[activation]
    return predict_variances(keep * x2, fan_ins, weight_vars, activation)


def uses_std(x2, fan_ins, weight_vars, activation):
    return predict_variances(x2, fan_ins, [math.sqrt(v) for v in weight_vars],
                             activation)


def includes_input(x2, fan_ins, weight_vars, activation):
    return [x2] + predict_variances(x2, fan_ins, weight_vars, activation)


def slightly_off(x2, fan_ins, weight_vars, activation):
    # within the measurement's tolerance, not the recursion's
    return [1.01 * q for q in predict_variances(x2, fan_ins, weight_vars,
                                                activation)]


@pytest.mark.parametrize("seed", range(4))
def test_reference_recursion_passes_for_any_seed(seed, capsys):
    checks.check_predict_variances(predict_variances, seed=seed)
    assert "check_predict_variances: passed" in capsys.readouterr().out


def test_reference_recursion_matches_the_checks_reference():
    args = (1.3, [64, 128, 256], [2 / 64, 1 / 128, 3 / 256], "relu")
    assert predict_variances(*args) == pytest.approx(
        predict_variances_reference(*args), rel=1e-12)


@pytest.mark.parametrize("mistake, words", [
    (forgets_activation, ["measured", "without the activation", "q / 2"]),
    (activates_input, ["layer 1", "applied to the input"]),
    (uses_std, ["standard deviations instead of variances"]),
    (includes_input, ["returned", "leave out the input's"]),
    (slightly_off, ["the recursion gives"]),
])
def test_recursion_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_predict_variances(mistake, seed=0)
    message = str(failure.value)
    for word in words:
        assert word in message, message


# -- the grader's path -----------------------------------------------------

def test_checks_are_registered():
    assert checks.CHECKS["check_kaiming_normal"] is KAIMING_NORMAL
    assert checks.CHECKS["check_predict_variances"] is PREDICT_VARIANCES


@pytest.mark.parametrize("check, solution", [
    (KAIMING_NORMAL, kaiming_normal_),
    (PREDICT_VARIANCES, predict_variances)])
def test_cases_and_answers_are_data_and_judged_apart(check, solution):
    import random
    for case in check.cases(random.Random(1)):
        assert is_data(case)
        answer = check.answer(solution, case)
        assert answer.error == "" and is_data(answer.value)
        assert check.verdict(case, answer) == ""

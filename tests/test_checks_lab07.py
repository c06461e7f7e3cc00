"""Lab 07's checks: the reference solutions pass, and each typical mistake
fails with a message that names it."""

import pytest
import torch
from torch.nn import functional as F

from gradlab import checks
from gradlab.checks import ACCUMULATE, ACCUMULATE_UNEVEN, CheckFailed


def accumulate_uneven(model, inputs, targets, sizes, *, weights="size",
                      zero_first=True, zero_inside=False, twice=False):
    """The reference solution, with switches for the usual mistakes."""
    n, k = sum(sizes), len(sizes)
    if zero_first:
        model.zero_grad()
    start = 0
    for b in sizes:
        if zero_inside:
            model.zero_grad()
        xs, ys = inputs[start:start + b], targets[start:start + b]
        w = {"size": b / n, "mean": 1 / k, "sum": 1.0}[weights]
        if twice:
            w = w / k
        (w * F.cross_entropy(model(xs), ys)).backward()
        start += b


def accumulate(model, inputs, targets, k, **mistake):
    b = inputs.shape[0] // k
    return accumulate_uneven(model, inputs, targets, [b] * k, **mistake)


def variant(function, **mistake):
    def student(*args):
        return function(*args, **mistake)
    return student


def test_reference_solutions_pass(capsys):
    checks.check_accumulate(accumulate)
    checks.check_accumulate_uneven(accumulate_uneven)
    out = capsys.readouterr().out
    assert "check_accumulate: passed 3 cases" in out
    assert "check_accumulate_uneven: passed 3 cases" in out


def test_a_mean_weighted_solution_passes_the_equal_check():
    # with equal micro-batches 1/k is right
    checks.check_accumulate(variant(accumulate, weights="mean"))


def test_checks_are_registered():
    assert checks.CHECKS["check_accumulate"] is ACCUMULATE
    assert checks.CHECKS["check_accumulate_uneven"] is ACCUMULATE_UNEVEN


@pytest.mark.parametrize("mistake, words", [
    (dict(weights="sum"), ["k = 4 micro-batches of 6 samples",
                           "divide each micro-batch's loss by k"]),
    (dict(zero_first=False), ["k = 1", "zero them before the first"]),
    (dict(zero_inside=True), ["k = 4", "zeroed inside the loop"]),
    (dict(twice=True), ["k = 4", "divided by k twice"]),
])
def test_accumulate_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_accumulate(variant(accumulate, **mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


@pytest.mark.parametrize("mistake, words", [
    (dict(weights="mean"), ["sizes [5, 3, 8]", "weighted 1/k",
                            "b_j / B"]),
    (dict(weights="sum"), ["sizes [5, 3, 8]", "k = 3 times"]),
    (dict(zero_first=False), ["zero them before the first"]),
    (dict(zero_inside=True), ["zeroed inside the loop"]),
])
def test_uneven_mistakes_are_named(mistake, words):
    with pytest.raises(CheckFailed) as failure:
        checks.check_accumulate_uneven(variant(accumulate_uneven, **mistake))
    for word in words:
        assert word in str(failure.value), str(failure.value)


def test_no_gradient_left_is_reported():
    def forgets(model, inputs, targets, k):
        model.zero_grad(set_to_none=True)
    with pytest.raises(CheckFailed, match="grad is None"):
        checks.check_accumulate(forgets)


def test_unrecognized_error_names_the_parameter():
    def noisy(model, inputs, targets, k):
        accumulate(model, inputs, targets, k)
        with torch.no_grad():
            model.head.bias.grad += 0.5
    with pytest.raises(CheckFailed) as failure:
        checks.check_accumulate(noisy)
    assert "head.bias.grad is off by up to 0.5" in str(failure.value)
    assert "It matches" not in str(failure.value)


def test_a_raising_student_function_is_reported():
    def broken(model, inputs, targets, k):
        raise NotImplementedError()
    with pytest.raises(NotImplementedError):
        checks.check_accumulate(broken)

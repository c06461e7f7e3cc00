"""The init schemes give the variance their formulas predict.

The sample variance s^2 of n i.i.d. draws with variance v and kurtosis k
has standard error v * sqrt((k - 1) / n). We allow 5 standard errors: a
correct implementation fails with probability below 1e-6, while a wrong
fan (fan_out for fan_in here differs by 4x) or a wrong gain misses by far
more than the ~2% tolerance of a 256 x 1024 matrix.
"""

import math

import pytest
import torch
from torch import nn

from gradlab.init import init_linear_

FAN_OUT, FAN_IN = 256, 1024   # non-square, so fan_in/fan_out mix-ups show
N = FAN_OUT * FAN_IN
NORMAL_KURTOSIS, UNIFORM_KURTOSIS = 3.0, 9.0 / 5.0


def _assert_variance(w, expected, kurtosis):
    tol = 5 * expected * math.sqrt((kurtosis - 1) / N)
    got = w.var().item()
    assert abs(got - expected) <= tol, (got, expected, tol)


@pytest.mark.parametrize("activation, gain2", [
    ("relu", 2.0), ("tanh", (5 / 3) ** 2), ("sigmoid", 1.0),
    ("identity", 1.0), ("leaky_relu", 2.0 / (1 + 0.01 ** 2))])
def test_kaiming_variance_is_gain_squared_over_fan_in(activation, gain2):
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_linear_(layer, "kaiming", activation=activation,
                 generator=torch.Generator().manual_seed(1))
    _assert_variance(layer.weight, gain2 / FAN_IN, NORMAL_KURTOSIS)
    assert torch.all(layer.bias == 0)


def test_xavier_variance_is_two_over_fan_sum():
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_linear_(layer, "xavier", generator=torch.Generator().manual_seed(2))
    _assert_variance(layer.weight, 2.0 / (FAN_IN + FAN_OUT), NORMAL_KURTOSIS)


def test_default_is_torch_uniform_with_variance_one_third_over_fan_in():
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_linear_(layer, "default", generator=torch.Generator().manual_seed(3))
    bound = 1 / math.sqrt(FAN_IN)
    assert layer.weight.abs().max() <= bound
    _assert_variance(layer.weight, 1.0 / (3 * FAN_IN), UNIFORM_KURTOSIS)


def test_normal_uses_init_std():
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_linear_(layer, "normal", init_std=0.05,
                 generator=torch.Generator().manual_seed(4))
    _assert_variance(layer.weight, 0.05 ** 2, NORMAL_KURTOSIS)


def test_orthogonal_rows_are_orthonormal_times_gain():
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_linear_(layer, "orthogonal", activation="relu",
                 generator=torch.Generator().manual_seed(5))
    w = layer.weight.double()
    assert torch.allclose(w @ w.T, 2.0 * torch.eye(FAN_OUT, dtype=w.dtype),
                          atol=1e-5)


def test_generator_makes_init_repeatable():
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    init_linear_(a, "kaiming", generator=torch.Generator().manual_seed(7))
    init_linear_(b, "kaiming", generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.weight, b.weight)

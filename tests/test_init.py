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


def _pre_activation_variances(model, inputs):
    out, handles = [], []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            handles.append(module.register_forward_hook(
                lambda m, a, o: out.append(o.var().item())))
    with torch.no_grad():
        model(inputs)
    for h in handles:
        h.remove()
    return out


def test_lsuv_gives_every_layer_unit_output_variance():
    from gradlab.init import lsuv_
    from gradlab.models import MLP
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 64, generator=g) * 3.0  # not unit scale on purpose
    model = MLP(64, 10, depth=12, width=48, activation="tanh",
                init="default", generator=g)
    before = _pre_activation_variances(model, x)
    assert before[-2] < 0.1  # default init: the deep signal has shrunk
    lsuv_(model, x, tol=0.02, generator=g)
    after = _pre_activation_variances(model, x)
    assert len(after) == 13
    assert all(abs(v - 1) < 0.02 for v in after), after
    w = model.layers[5].linear.weight
    # orthogonal then scaled: rows stay orthogonal, with one common norm
    gram = w @ w.T
    assert torch.allclose(gram, gram[0, 0] * torch.eye(48), atol=1e-4)


def test_lsuv_follows_forward_order_not_registration_order():
    from gradlab.init import lsuv_

    class Reversed(nn.Module):  # registers the last layer first
        def __init__(self):
            super().__init__()
            self.second = nn.Conv2d(4, 4, 3, padding=1)
            self.first = nn.Conv2d(1, 4, 3, padding=1)

        def forward(self, x):
            return self.second(torch.relu(self.first(x)))

    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model = lsuv_(Reversed(), x, tol=0.01,
                  generator=torch.Generator().manual_seed(1))
    # Had `second` been scaled first, rescaling `first` afterwards would
    # have moved its variance away from 1.
    with torch.no_grad():
        first = model.first(x)
        second = model.second(torch.relu(first))
    assert abs(first.var().item() - 1) < 0.01
    assert abs(second.var().item() - 1) < 0.01


@pytest.mark.parametrize("kw, match", [(dict(tol=0), "tol"),
                                       (dict(max_iter=0), "max_iter")])
def test_lsuv_rejects_bad_arguments(kw, match):
    from gradlab.init import lsuv_
    with pytest.raises(ValueError, match=match):
        lsuv_(nn.Sequential(nn.Linear(4, 4)), torch.randn(8, 4), **kw)


def test_lsuv_needs_a_layer_and_a_varying_output():
    from gradlab.init import lsuv_
    with pytest.raises(ValueError, match="no Linear"):
        lsuv_(nn.Sequential(nn.ReLU()), torch.randn(8, 4))
    with pytest.raises(ValueError, match="constant"):
        lsuv_(nn.Sequential(nn.Linear(4, 4)), torch.zeros(8, 4))

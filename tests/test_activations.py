import pytest
import torch

import gradlab as gl
from gradlab.activations import (dead_fraction, record_activations,
                                 saturated_fraction)


def test_dead_fraction_counts_units_zero_on_every_sample():
    h = torch.tensor([[0.0, 1.0, 0.0, 0.0],
                      [0.0, 0.0, 2.0, 0.0]])   # units 0 and 3 are dead
    assert dead_fraction(h).item() == 0.5


def test_saturated_fraction_uses_the_flat_tails():
    h = torch.tensor([-0.99, -0.5, 0.0, 0.98])
    assert saturated_fraction(h, "tanh").item() == 0.5
    s = torch.tensor([0.01, 0.5, 0.96, 0.99])
    assert saturated_fraction(s, "sigmoid").item() == 0.5
    assert saturated_fraction(h, "relu").item() == 0.0


def test_record_activations_sees_every_activation_and_cleans_up():
    model = gl.models.MLP(4, 2, depth=3, width=8, activation="relu")
    x = torch.randn(5, 4)
    with record_activations(model) as acts:
        model(x)
    assert list(acts) == ["layers.0.act", "layers.1.act", "layers.2.act"]
    assert all(h.shape == (5, 8) and (h >= 0).all() for h in acts.values())
    with pytest.raises(RuntimeError):
        with record_activations(model):
            model(torch.randn(5, 3))
    assert all(not m._forward_hooks for m in model.modules())

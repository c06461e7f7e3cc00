"""Chapter 3's initialization explorer: every control reaches the model."""

import pytest
import torch

import gradlab as gl


def test_init_explorer_wires_every_control(digits, monkeypatch):
    X, _, _, _ = digits
    models = []
    real = gl.widgets.activation_histograms
    monkeypatch.setattr(gl.widgets, "activation_histograms",
                        lambda model, inputs, **kw: models.append(model)
                        or real(model, inputs, **kw))
    box = gl.widgets.init_explorer(X[:64], device="cpu")
    controls = {c.description: c for column in box.children[0].children
                for c in column.children}
    assert sorted(controls) == ["activation", "depth", "gain", "init"]
    start = gl.widgets.INIT_EXPLORER_DEFAULTS
    assert len(models[-1].layers) == start["depth"]
    assert isinstance(models[-1].layers[0].act, torch.nn.Tanh)
    std = models[-1].layers[1].linear.weight.std().item()
    controls["gain"].value = 2.0      # same seed, every weight doubled
    assert models[-1].layers[1].linear.weight.std().item() == pytest.approx(
        2 * std, rel=1e-6)
    controls["depth"].value = 5
    controls["activation"].value = "relu"
    controls["init"].value = "kaiming"
    assert len(models[-1].layers) == 5
    assert isinstance(models[-1].layers[0].act, torch.nn.ReLU)
    assert models[-1].layers[1].linear.weight.std().item() == pytest.approx(
        2 * (2 / 64) ** 0.5, rel=0.1)  # gain 2 on Kaiming's sqrt(2 / 64)

"""Chapter 7's explorer: both controls reach the computation."""

import torch

import gradlab as gl
from gradlab.widgets import accumulation as module


def test_accumulation_explorer_wires_every_control(digits, monkeypatch):
    X, y, _, _ = digits
    calls = []
    real = module.accumulation_errors
    monkeypatch.setattr(module, "accumulation_errors",
                        lambda model, *a, **kw: calls.append((model, kw))
                        or real(model, *a, **kw))
    box = gl.widgets.accumulation_explorer(X[:48], y[:48], device="cpu")
    controls = {c.description: c for c in box.children[0].children}
    assert sorted(controls) == ["k", "norm"]
    start = gl.widgets.ACCUMULATION_DEFAULTS
    model, kw = calls[-1]
    assert kw["accumulate"] == [start["accumulate"]]
    assert isinstance(model.layers[0].norm, torch.nn.BatchNorm1d)
    controls["norm"].value = "layer"
    assert isinstance(calls[-1][0].layers[0].norm, torch.nn.LayerNorm)
    controls["k"].value = 2
    assert calls[-1][1]["accumulate"] == [2]
    # only the k that divide the 48 samples
    assert list(controls["k"].options) == [1, 2, 4, 8, 16]

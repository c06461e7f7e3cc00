import pytest
import torch
from torch import nn

import gradlab as gl


def test_norms_match_backward_by_hand(digits):
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=5, width=32, activation="sigmoid",
                          generator=torch.Generator().manual_seed(0))
    norms = gl.layer_grad_norms(model, X[:128], y[:128], "cross_entropy")
    assert all(p.grad is None for p in model.parameters())  # .grad untouched
    nn.functional.cross_entropy(model(X[:128]), y[:128]).backward()
    by_hand = {f"layers.{i}.linear.weight": b.linear.weight.grad.norm().item()
               for i, b in enumerate(model.layers)}
    by_hand["head.weight"] = model.head.weight.grad.norm().item()
    assert list(norms) == list(by_hand)
    for name in by_hand:
        assert norms[name] == pytest.approx(by_hand[name], rel=1e-6)


class _Shuffled(nn.Module):
    """Registers its layers in an order different from the call order."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(8, 2)
        self.conv = nn.Conv1d(1, 2, 3, padding=1)
        self.unused = nn.Linear(3, 3)
        self.mid = nn.Linear(8, 8)

    def forward(self, x):                          # x: [B, 4]
        h = self.conv(x.unsqueeze(1)).flatten(1)   # [B, 8]
        return self.out(torch.tanh(self.mid(h)))   # [B, 2]


def test_any_module_in_forward_order():
    model = _Shuffled()
    norms = gl.layer_grad_norms(model, torch.randn(6, 4),
                                torch.randint(0, 2, (6,)), "cross_entropy")
    assert list(norms) == ["conv.weight", "mid.weight", "out.weight"]
    assert all(v > 0 for v in norms.values())


def test_recurrent_weights_are_layers(generator):
    x, y = gl.data.adding_problem(16, 10, generator=generator)
    model = gl.models.SequenceModel("gru", 2, 8, 1)
    norms = gl.layer_grad_norms(model, x, y, "mse")
    assert list(norms) == ["rnn.weight_ih_l0", "rnn.weight_hh_l0",
                           "head.weight"]


def test_model_without_weights_is_an_error():
    with pytest.raises(ValueError, match="no weight matrix"):
        gl.layer_grad_norms(nn.ReLU(), torch.randn(2, 3), torch.randn(2, 3),
                            "mse")


def test_hooks_are_removed_even_when_forward_fails():
    model = gl.models.MLP(4, 2, depth=2, width=8)
    with pytest.raises(RuntimeError):
        gl.layer_grad_norms(model, torch.randn(3, 5),  # wrong width
                            torch.zeros(3, dtype=torch.long), "cross_entropy")
    assert all(not m._forward_pre_hooks for m in model.modules())

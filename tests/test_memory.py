"""gradlab.memory: bytes autograd saves for backward, against hand counts."""

import pytest
import torch
from torch import nn

import gradlab as gl
from gradlab.memory import SavedTensors, saved_tensor_bytes


def test_linear_relu_saves_its_input_and_its_output():
    # Linear saves x (for dW; x needs no grad so W is not saved), ReLU
    # saves its output: 4 bytes * B * (10 + 20).
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU())
    with SavedTensors(exclude=model.parameters()) as saved:
        model(torch.randn(8, 10)).sum().backward()
    assert saved.bytes == 4 * 8 * (10 + 20)


def test_a_tensor_saved_twice_counts_once_and_parameters_are_excluded():
    # the ReLU output is saved by ReLU and by the second Linear (as its
    # input); the second weight is saved too but is a parameter
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    x = torch.randn(8, 10)
    with SavedTensors(exclude=model.parameters()) as saved:
        model(x)
    assert saved.count >= 3
    assert saved.bytes == 4 * 8 * (10 + 20)
    with SavedTensors() as everything:
        model(x)
    assert everything.bytes == saved.bytes + 4 * 20 * 5   # + W_2


def test_mlp_bytes_by_hand_and_linear_in_the_batch(digits):
    X, y, _, _ = digits
    depth, width = 4, 32
    model = gl.models.MLP(64, 10, depth=depth, width=width)
    got = {b: saved_tensor_bytes(model, X[:b], y[:b]) for b in (1, 8, 64)}
    # per sample: the input (64 floats), each ReLU output (width floats),
    # log-softmax output (10 floats), the int64 target; plus the loss's
    # scalar total weight (4 bytes)
    per_sample = 4 * (64 + depth * width + 10) + 8
    for b, value in got.items():
        assert value == 4 + b * per_sample
    assert all(p.grad is None for p in model.parameters())


def test_float64_doubles_the_floats():
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU()).double()
    with SavedTensors(exclude=model.parameters()) as saved:
        model(torch.randn(8, 10, dtype=torch.float64))
    assert saved.bytes == 8 * 8 * (10 + 20)


def test_hooks_are_removed_also_on_error():
    with pytest.raises(RuntimeError, match="boom"):
        with SavedTensors() as saved:
            raise RuntimeError("boom")
    x = torch.randn(3, requires_grad=True)
    (x * x).sum()
    assert saved.count == 0

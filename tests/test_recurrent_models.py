"""SequenceModel's initialization knobs: the spectral radius of the
recurrent weights and the LSTM forget-gate bias."""

import math

import pytest
import torch
from torch import nn

import gradlab as gl
from gradlab.models.sequence import (set_forget_bias_, set_spectral_radius_,
                                     spectral_radius)


def test_spectral_radius_of_known_matrices():
    assert spectral_radius(torch.diag(torch.tensor([0.5, -2.0]))) == \
        pytest.approx(2.0)
    c, s = math.cos(0.3), math.sin(0.3)
    rotation = torch.tensor([[c, -s], [s, c]])        # eigenvalues e^{+-0.3i}
    assert spectral_radius(0.7 * rotation) == pytest.approx(0.7, rel=1e-6)
    # nilpotent: all eigenvalues 0 although the norm is 1
    assert spectral_radius(torch.tensor([[0.0, 1.0], [0.0, 0.0]])) == 0.0


@pytest.mark.parametrize("cell, gates", [("rnn", 1), ("lstm", 4),
                                         ("gru", 3)])
def test_every_recurrent_block_gets_the_radius(cell, gates):
    torch.manual_seed(0)
    model = gl.models.SequenceModel(cell, 2, 8, 1, num_layers=2,
                                    spectral_radius=0.8)
    for k in range(2):
        weight = getattr(model.rnn, f"weight_hh_l{k}")
        assert weight.shape == (gates * 8, 8)
        for block in weight.chunk(gates, dim=0):
            assert spectral_radius(block) == pytest.approx(0.8, rel=1e-5)


def test_spectral_radius_only_rescales():
    torch.manual_seed(0)
    plain = gl.models.SequenceModel("rnn", 2, 8, 1)
    torch.manual_seed(0)
    scaled = gl.models.SequenceModel("rnn", 2, 8, 1, spectral_radius=1.5)
    w0, w1 = plain.rnn.weight_hh_l0, scaled.rnn.weight_hh_l0
    factor = 1.5 / spectral_radius(w0)
    torch.testing.assert_close(w1, w0 * factor)
    torch.testing.assert_close(scaled.rnn.weight_ih_l0, plain.rnn.weight_ih_l0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_defaults_keep_torchs_initialization(cell):
    torch.manual_seed(3)
    model = gl.models.SequenceModel(cell, 2, 8, 1)
    torch.manual_seed(3)
    reference = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](
        2, 8, batch_first=True)
    for (name, p), q in zip(model.rnn.named_parameters(),
                            reference.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5])
def test_forget_bias_sets_the_gate(value):
    torch.manual_seed(0)
    model = gl.models.SequenceModel("lstm", 3, 5, 1, num_layers=2,
                                    forget_bias=value)
    for k in range(2):
        b_ih = getattr(model.rnn, f"bias_ih_l{k}")
        b_hh = getattr(model.rnn, f"bias_hh_l{k}")
        total = b_ih + b_hh                              # [4 * H]
        assert torch.equal(total[5:10], torch.full((5,), value))
        assert not torch.equal(total[:5], torch.full((5,), value))
    # with zero input and state, the forget gate is exactly sigmoid(value):
    # c_1 = f * c_0 + i * g, so feed a known c_0 and zero out i
    lstm = nn.LSTM(3, 5, batch_first=True)
    set_forget_bias_(lstm, value)
    with torch.no_grad():
        lstm.bias_ih_l0[:5] = -1e4                       # input gate = 0
    c0 = torch.ones(1, 1, 5)
    _, (_, c1) = lstm(torch.zeros(1, 1, 3), (torch.zeros(1, 1, 5), c0))
    torch.testing.assert_close(c1, torch.sigmoid(torch.tensor(value))
                               .expand_as(c1))


@pytest.mark.parametrize("make, words", [
    (lambda: gl.models.SequenceModel("gru", 2, 8, 1, forget_bias=1.0),
     "forget_bias needs cell='lstm'"),
    (lambda: gl.models.SequenceModel("rnn", 2, 8, 1, spectral_radius=0.0),
     "spectral_radius must be a finite number > 0, got 0.0"),
    (lambda: gl.models.SequenceModel("rnn", 2, 8, 1,
                                     spectral_radius=float("nan")),
     "got nan"),
    (lambda: gl.models.SequenceModel("lstm", 2, 8, 1, forget_bias="1"),
     "forget_bias must be a finite number"),
    (lambda: set_spectral_radius_(nn.Linear(2, 2), 1.0), "got Linear"),
    (lambda: set_forget_bias_(nn.GRU(2, 2), 1.0), "needs an nn.LSTM"),
    (lambda: spectral_radius(torch.ones(2, 3)), "square matrix"),
])
def test_bad_values_are_named(make, words):
    with pytest.raises(ValueError, match=words):
        make()

"""A recurrent network read out at its last time step."""

from __future__ import annotations

import torch
from torch import nn

from .._validate import check_choice, check_positive_int

__all__ = ["SequenceModel", "CELLS"]

CELLS = ("rnn", "lstm", "gru")


class SequenceModel(nn.Module):
    """A recurrent network read out at its last time step.

    ``cell`` picks torch's own ``nn.RNN`` (tanh), ``nn.LSTM``
    (Hochreiter & Schmidhuber 1997) or ``nn.GRU`` (Cho et al. 2014). Unlike
    the LSTM, ``nn.GRU`` returns ``(output, h_n)`` with no cell state; the
    code reads ``output`` alone, which is right for all three.

    Args:
        cell: ``rnn | lstm | gru``.
        input_size: features per time step.
        hidden_size: units of the recurrent state.
        output_size: size of the prediction.
        num_layers: stacked recurrent layers.

    Shape:
        input ``[B, T, input_size]`` (batch first), output
        ``[B, output_size]``.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int,
                 output_size: int, *, num_layers: int = 1):
        super().__init__()
        check_choice("cell", cell, CELLS)
        for name, value in (("input_size", input_size),
                            ("hidden_size", hidden_size),
                            ("output_size", output_size),
                            ("num_layers", num_layers)):
            check_positive_int(name, value)
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.cell = cell
        self.rnn = rnn(input_size, hidden_size, num_layers=num_layers,
                       batch_first=True)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, input]
        if x.dim() != 3:
            raise ValueError(f"SequenceModel expects [batch, time, features], "
                             f"got shape {tuple(x.shape)}")
        output, _ = self.rnn(x)          # [B, T, hidden]; state unused
        return self.head(output[:, -1])  # [B, output_size]

"""A recurrent network read out at its last time step."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_choice, check_positive_int

__all__ = ["SequenceModel", "CELLS", "GATES", "spectral_radius",
           "set_spectral_radius_", "set_forget_bias_"]

CELLS = ("rnn", "lstm", "gru")

# Number of H x H blocks stacked in ``weight_hh_l*``, in torch's order:
# LSTM (input, forget, cell, output), GRU (reset, update, new).
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class SequenceModel(nn.Module):
    """A recurrent network read out at its last time step.

    ``cell`` picks torch's own ``nn.RNN`` (tanh), ``nn.LSTM``
    (Hochreiter & Schmidhuber 1997) or ``nn.GRU`` (Cho et al. 2014). Unlike
    the LSTM, ``nn.GRU`` returns ``(output, h_n)`` with no cell state; the
    code reads ``output`` alone, which is right for all three.

    Two optional knobs change torch's default initialization
    (``U(-1/sqrt(H), 1/sqrt(H))`` for every weight and bias):

    - ``spectral_radius=rho`` rescales every ``H x H`` block of each
      layer's recurrent weight ``W_hh`` so that its largest eigenvalue
      modulus is ``rho`` (see
      :func:`~gradlab.models.sequence.set_spectral_radius_`);
    - ``forget_bias=b`` (LSTM only) sets the forget gate's total bias
      ``b_if + b_hf`` to ``b``, so that the gate starts near
      ``sigmoid(b)`` (Gers et al. 2000; Jozefowicz et al. 2015 recommend
      ``b = 1``; see :func:`~gradlab.models.sequence.set_forget_bias_`).

    Args:
        cell: ``rnn | lstm | gru``.
        input_size: features per time step.
        hidden_size: units of the recurrent state.
        output_size: size of the prediction.
        num_layers: stacked recurrent layers.
        spectral_radius: ``None`` keeps torch's ``W_hh``; else a float > 0.
        forget_bias: ``None`` keeps torch's biases; else a float (LSTM).

    Shape:
        input ``[B, T, input_size]`` (batch first), output
        ``[B, output_size]``.

    Raises:
        ValueError: an unknown cell, a size that is not a positive int,
            ``spectral_radius <= 0``, or ``forget_bias`` with a cell other
            than ``"lstm"``.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int,
                 output_size: int, *, num_layers: int = 1,
                 spectral_radius: float | None = None,
                 forget_bias: float | None = None):
        super().__init__()
        check_choice("cell", cell, CELLS)
        for name, value in (("input_size", input_size),
                            ("hidden_size", hidden_size),
                            ("output_size", output_size),
                            ("num_layers", num_layers)):
            check_positive_int(name, value)
        if forget_bias is not None and cell != "lstm":
            raise ValueError(f"forget_bias needs cell='lstm' (only the LSTM "
                             f"has a forget gate), got cell={cell!r}")
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.cell = cell
        self.rnn = rnn(input_size, hidden_size, num_layers=num_layers,
                       batch_first=True)
        self.head = nn.Linear(hidden_size, output_size)
        if spectral_radius is not None:
            set_spectral_radius_(self.rnn, spectral_radius)
        if forget_bias is not None:
            set_forget_bias_(self.rnn, forget_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, input]
        if x.dim() != 3:
            raise ValueError(f"SequenceModel expects [batch, time, features], "
                             f"got shape {tuple(x.shape)}")
        output, _ = self.rnn(x)          # [B, T, hidden]; state unused
        return self.head(output[:, -1])  # [B, output_size]


def _cell_of(rnn: nn.Module) -> str:
    for cell, kind in (("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn", nn.RNN)):
        if isinstance(rnn, kind):
            return cell
    raise ValueError(f"expected an nn.RNN, nn.LSTM or nn.GRU, got "
                     f"{type(rnn).__name__}")


def _recurrent_weights(rnn: nn.Module):
    return [getattr(rnn, f"weight_hh_l{k}") for k in range(rnn.num_layers)]


def spectral_radius(weight: torch.Tensor) -> float:
    """Return ``max |lambda_i(W)|``, the spectral radius of a square matrix.

    For a linear recurrence ``h_t = W h_{t-1}``, ``||W^k v||`` shrinks or
    grows like ``rho^k`` for large ``k`` (Gelfand's formula), which is why
    ``rho`` sets the rate at which gradients vanish or explode through
    time (Pascanu et al. 2013).

    Args:
        weight: ``[H, H]`` matrix.
    """
    if weight.dim() != 2 or weight.shape[0] != weight.shape[1]:
        raise ValueError(f"spectral_radius needs a square matrix, got shape "
                         f"{tuple(weight.shape)}")
    w = weight.detach().double().cpu()   # eigvals: float64 on the CPU
    return torch.linalg.eigvals(w).abs().max().item()


@torch.no_grad()
def set_spectral_radius_(rnn: nn.Module, rho: float) -> nn.Module:
    """Rescale the recurrent weights of ``rnn`` to spectral radius ``rho``.

    Each ``H x H`` block of every ``weight_hh_l{k}`` (one block for
    ``nn.RNN``, one per gate for ``nn.LSTM`` and ``nn.GRU``) is multiplied
    by ``rho / rho(W)``; its eigenvectors are kept.

    Args:
        rnn: an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``.
        rho: the target spectral radius, a float > 0.

    Returns:
        ``rnn``, changed in place.
    """
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not (
            math.isfinite(rho) and rho > 0):
        raise ValueError(f"spectral_radius must be a finite number > 0, got "
                         f"{rho!r}")
    gates = GATES[_cell_of(rnn)]
    for weight in _recurrent_weights(rnn):        # [gates * H, H]
        for block in weight.chunk(gates, dim=0):  # views: [H, H]
            block.mul_(rho / spectral_radius(block))
    return rnn


@torch.no_grad()
def set_forget_bias_(lstm: nn.LSTM, value: float) -> nn.LSTM:
    """Set the forget gate's total bias of every layer of ``lstm``.

    torch's LSTM has two biases per gate, ``b_i*`` and ``b_h*``, which only
    appear as a sum; this sets ``b_if = value`` and ``b_hf = 0``. At
    initialization the forget gate is then about ``sigmoid(value)``:
    0.5 for 0, 0.73 for 1 (Jozefowicz et al. 2015).

    Args:
        lstm: an ``nn.LSTM``; its gates are ordered (input, forget, cell,
            output), so the forget bias is the second quarter.
        value: the bias, a finite float.

    Returns:
        ``lstm``, changed in place.
    """
    if not isinstance(lstm, nn.LSTM):
        raise ValueError(f"set_forget_bias_ needs an nn.LSTM, got "
                         f"{type(lstm).__name__}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            not math.isfinite(value)):
        raise ValueError(f"forget_bias must be a finite number, got "
                         f"{value!r}")
    h = lstm.hidden_size
    for k in range(lstm.num_layers):
        getattr(lstm, f"bias_ih_l{k}")[h:2 * h] = value
        getattr(lstm, f"bias_hh_l{k}")[h:2 * h] = 0.0
    return lstm

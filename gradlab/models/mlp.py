"""The book's multi-layer perceptron, every gradient-relevant choice a knob."""

from __future__ import annotations

import torch
from torch import nn

from .._validate import check_choice, check_positive_int
from ..init import INITS, init_linear_

__all__ = ["MLP", "Block", "ACTIVATIONS", "NORMS"]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "identity")
NORMS = (None, "batch", "layer")


def _activation(name: str) -> nn.Module:
    layers = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
              "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
              "identity": nn.Identity}
    return layers[name]()


class Block(nn.Module):
    """One hidden layer: ``h = act(norm(W x + b))``, optionally ``x + h``.

    The normalization sits between the affine map and the nonlinearity, as in
    Ioffe & Szegedy (2015). With a norm layer the linear bias is dropped:
    the norm's own shift makes it redundant. With ``rezero=True`` a residual
    block computes ``x + alpha * h`` with a learned scalar ``alpha``
    initialized at 0 (Bachlechner et al. 2020, "ReZero is all you need").
    """

    def __init__(self, in_features: int, out_features: int, *, activation: str,
                 norm: str | None, residual: bool, dropout: float,
                 rezero: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=norm is None)
        if norm == "batch":
            self.norm = nn.BatchNorm1d(out_features)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_features)
        else:
            self.norm = nn.Identity()
        self.act = _activation(activation)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual
        # ReZero: the block starts as the identity; alpha is learned.
        self.alpha = (nn.Parameter(torch.zeros(()))
                      if residual and rezero else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, in]
        h = self.drop(self.act(self.norm(self.linear(x))))  # [B, out]
        if self.alpha is not None:
            return x + self.alpha * h
        return x + h if self.residual else h

    def extra_repr(self) -> str:
        rezero = ", rezero=True" if self.alpha is not None else ""
        return f"residual={self.residual}{rezero}"


class MLP(nn.Module):
    """A multi-layer perceptron whose every gradient-relevant choice is a knob.

    ``depth`` hidden layers of ``width`` units, then a linear head:

    .. math::
        h_0 = x, \\quad h_l = \\phi(\\mathrm{norm}(W_l h_{l-1} + b_l))
        \\;[+\\, h_{l-1}], \\quad \\hat y = W_{\\text{out}} h_L + b_{\\text{out}}.

    With ``residual=True`` every hidden layer whose input and output widths
    agree (all but the first) computes ``h_{l-1} + f(h_{l-1})``, as in He et
    al. (2016); the first layer changes the width and stays plain. With
    ``rezero=True`` as well, each of them computes ``h_{l-1} + \alpha_l
    f(h_{l-1})`` with a learned scalar ``\alpha_l`` initialized at 0
    (Bachlechner et al. 2020, "ReZero is all you need: fast convergence at
    large depth"): at initialization the residual part of the network is
    the identity, whatever its depth.

    Args:
        in_features: size of each input sample.
        out_features: size of each output (e.g. number of classes).
        depth: number of hidden layers, at least 1.
        width: units per hidden layer.
        activation: ``sigmoid | tanh | relu | leaky_relu | gelu | identity``.
        init: ``default | normal | xavier | kaiming | orthogonal``, applied to
            every hidden layer (see ``gradlab.init``). The head gets the
            same scheme with the identity's gain.
        init_std: standard deviation for ``init="normal"``.
        norm: ``None``, ``"batch"`` or ``"layer"``.
        residual: add skip connections around hidden layers 2..depth.
        rezero: scale each residual branch by a learned ``alpha``
            initialized at 0; needs ``residual=True``.
        dropout: dropout probability after each activation, in [0, 1).
        generator: optional source of randomness for the weights.

    Attributes:
        layers: ``nn.ModuleList`` of ``Block`` modules, in forward order.
        head: the output ``nn.Linear``.

    Example:
        >>> model = MLP(64, 10, depth=20, width=128, activation="tanh",
        ...             init="xavier")
        >>> model(torch.randn(32, 64)).shape
        torch.Size([32, 10])
    """

    def __init__(self, in_features: int, out_features: int, *, depth: int,
                 width: int, activation: str = "relu", init: str = "kaiming",
                 init_std: float | None = None, norm: str | None = None,
                 residual: bool = False, dropout: float = 0.0,
                 generator: torch.Generator | None = None,
                 rezero: bool = False):
        super().__init__()
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("init", init, INITS)
        check_choice("norm", norm, NORMS)
        for name, value in (("in_features", in_features),
                            ("out_features", out_features),
                            ("depth", depth), ("width", width)):
            check_positive_int(name, value)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if rezero and not residual:
            raise ValueError("rezero=True scales residual branches and needs "
                             "residual=True, got residual=False")
        self.layers = nn.ModuleList(
            Block(in_features if i == 0 else width, width,
                  activation=activation, norm=norm,
                  residual=residual and i > 0, dropout=dropout,
                  rezero=rezero)
            for i in range(depth))
        self.head = nn.Linear(width, out_features)
        for block in self.layers:
            init_linear_(block.linear, init, activation=activation,
                         init_std=init_std, generator=generator)
        init_linear_(self.head, init, activation="identity",
                     init_std=init_std, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, in_features]
        for block in self.layers:
            x = block(x)                                   # [B, width]
        return self.head(x)                                # [B, out_features]

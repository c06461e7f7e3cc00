"""Weight initialization schemes, named as in the book.

Each scheme fills the weight of an ``nn.Linear`` in place and zeroes its
bias (``default`` draws the bias as torch does). Variances for a weight ``W`` of shape ``[fan_out, fan_in]``:

==========  ==========================================  =====================
scheme      distribution                                paper
==========  ==========================================  =====================
default     U(-1/sqrt(fan_in), 1/sqrt(fan_in)),         PyTorch's nn.Linear
            Var = 1 / (3 fan_in); bias from the same    (LeCun et al. 1998
            distribution                                style bound)
normal      N(0, init_std^2)                            --
xavier      N(0, 2 / (fan_in + fan_out))                Glorot & Bengio 2010
kaiming     N(0, gain^2 / fan_in), gain from the        He et al. 2015
            activation (sqrt(2) for ReLU)
orthogonal  gain * a random orthogonal matrix           Saxe et al. 2014
==========  ==========================================  =====================

The work is done by :mod:`torch.nn.init`; this module only names the
schemes and picks each one's gain.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["INITS", "gain", "init_linear_"]

INITS = ("default", "normal", "xavier", "kaiming", "orthogonal")

# torch.nn.init.calculate_gain knows no GELU; GELU is ReLU-like for x >> 0
# and ~x/2 near 0, and the ReLU gain is the common choice for it.
_GAIN_NAME = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu",
              "leaky_relu": "leaky_relu", "gelu": "relu",
              "identity": "linear"}


def gain(activation: str) -> float:
    """Return the gain that keeps the activation's output variance.

    The factor ``g`` such that ``Var(W) = g^2 / fan_in`` keeps the forward
    signal's second moment constant through the activation: 1 for identity
    and sigmoid (torch's convention), 5/3 for tanh, sqrt(2) for ReLU and
    GELU, sqrt(2 / (1 + 0.01^2)) for leaky ReLU with slope 0.01.

    Raises:
        ValueError: unknown activation.
    """
    if activation not in _GAIN_NAME:
        raise ValueError(f"unknown activation {activation!r}; valid: "
                         f"{', '.join(_GAIN_NAME)}")
    return nn.init.calculate_gain(_GAIN_NAME[activation], 0.01)


@torch.no_grad()
def init_linear_(layer: nn.Linear, scheme: str, *, activation: str = "relu",
                 init_std: float | None = None,
                 generator: torch.Generator | None = None) -> nn.Linear:
    """Fill ``layer.weight`` by ``scheme`` and set ``layer.bias`` to zero.

    Args:
        layer: the ``nn.Linear`` to initialize, in place.
        scheme: one of ``default | normal | xavier | kaiming | orthogonal``.
        activation: the activation that follows the layer; sets the gain of
            ``kaiming`` and ``orthogonal``.
        init_std: standard deviation for ``normal`` (required there, and
            only there).
        generator: optional source of randomness.

    Returns:
        ``layer``.

    Raises:
        ValueError: unknown scheme or activation, or a missing/negative
            ``init_std`` for ``normal``.

    Example:
        >>> layer = init_linear_(nn.Linear(256, 256), "kaiming")
        >>> layer.weight.var()  # ~ 2 / 256
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; valid: {', '.join(INITS)}")
    g = gain(activation)
    if scheme == "normal":
        if init_std is None or not init_std >= 0:
            raise ValueError(f"init='normal' needs init_std >= 0, got "
                             f"{init_std!r}")
    elif init_std is not None:
        raise ValueError(f"init_std is only used by init='normal', not "
                         f"init={scheme!r}; got init_std={init_std!r}")
    w = layer.weight  # [fan_out, fan_in]
    if scheme == "default":
        # Re-draw torch's own default, but with our generator.
        bound = 1.0 / math.sqrt(w.shape[1])
        nn.init.uniform_(w, -bound, bound, generator=generator)
        if layer.bias is not None:
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        return layer
    if scheme == "normal":
        nn.init.normal_(w, 0.0, init_std, generator=generator)
    elif scheme == "xavier":
        nn.init.xavier_normal_(w, gain=1.0, generator=generator)
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(w, a=0.01 if activation == "leaky_relu" else 0,
                                nonlinearity=_GAIN_NAME[activation],
                                generator=generator)
    else:
        nn.init.orthogonal_(w, gain=g, generator=generator)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer

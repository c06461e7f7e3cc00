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
schemes and picks each one's gain, and adds one data-dependent scheme,
:func:`lsuv_`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["INITS", "gain", "init_linear_", "lsuv_"]

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


# Layers whose output LSUV normalizes: the affine maps of a network.
_LSUV_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@torch.no_grad()
def lsuv_(model: nn.Module, inputs: torch.Tensor, *, tol: float = 0.05,
          max_iter: int = 10,
          generator: torch.Generator | None = None) -> nn.Module:
    """Layer-sequential unit-variance initialization, in place.

    First every ``Linear``/``Conv`` weight is filled with a random
    orthogonal matrix (gain 1) and its bias set to zero. Then, layer by
    layer in the order the forward pass calls them, the weight is rescaled

    .. math:: W_l \\leftarrow W_l / \\sqrt{\\operatorname{Var}(z_l)}

    where ``z_l`` is the layer's output (the pre-activation) on ``inputs``,
    with every earlier layer already rescaled, until
    ``|Var(z_l) - 1| < tol`` or ``max_iter`` rescalings. One rescaling is
    exact for a linear layer; the loop is for what follows it (a layer
    called twice, or a norm inside the layer).

    From Mishkin, D. and Matas, J. (2016), "All you need is a good init",
    ICLR. It needs no knowledge of the activation: the data sets the scale.

    Args:
        model: any ``nn.Module``; its mode (train/eval) is kept.
        inputs: a batch the model accepts (a few hundred samples are
            enough); on the model's device.
        tol: tolerance on the output variance.
        max_iter: most rescalings per layer.
        generator: optional source of randomness for the orthogonal draw.

    Returns:
        ``model``.

    Raises:
        ValueError: the model has no ``Linear``/``Conv`` layer, a bad
            ``tol``/``max_iter``, or a layer whose output is constant on
            ``inputs`` (zero variance cannot be rescaled to one).

    Example:
        >>> net = MLP(64, 10, depth=30, width=64, activation="tanh",
        ...           init="default")
        >>> lsuv_(net, X[:256])
    """
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) \
            or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    layers = _forward_order(model, inputs)
    if not layers:
        raise ValueError(f"lsuv_ found no Linear or Conv layer in "
                         f"{type(model).__name__}")
    for _, layer in layers:
        # Drawn on the CPU (where a torch.Generator lives), then copied to
        # the layer's device.
        w = torch.empty(layer.weight.shape)
        layer.weight.copy_(nn.init.orthogonal_(w, generator=generator))
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    for name, layer in layers:
        for _ in range(max_iter):
            variance = _output_variance(model, layer, inputs)
            if not variance > 0:
                raise ValueError(f"lsuv_: the output of layer {name!r} is "
                                 f"constant on these inputs (variance "
                                 f"{variance}); it cannot be scaled to 1")
            if abs(variance - 1.0) < tol:
                break
            layer.weight.div_(math.sqrt(variance))
    return model


def _forward_order(model: nn.Module, inputs: torch.Tensor):
    """``[(name, layer)]`` of the model's Linear/Conv layers in the order
    one forward pass on ``inputs`` first calls them."""
    order, handles = {}, []  # name -> layer; dicts keep insertion order

    def make_hook(name):
        def hook(module, args):
            order.setdefault(name, module)
        return hook

    try:
        for name, module in model.named_modules():
            if isinstance(module, _LSUV_TYPES):
                handles.append(module.register_forward_pre_hook(
                    make_hook(name)))
        model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return list(order.items())


def _output_variance(model: nn.Module, layer: nn.Module,
                     inputs: torch.Tensor) -> float:
    """Variance of ``layer``'s output (over all its elements) when the
    model runs on ``inputs``; the first call of the layer counts."""
    captured = []

    def hook(module, args, output):
        if not captured:
            captured.append(output.var().item())

    handle = layer.register_forward_hook(hook)
    try:
        model(inputs)
    finally:
        handle.remove()
    return captured[0]

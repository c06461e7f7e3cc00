"""Statistics of hidden activations: how many units are saturated or dead.

A unit whose activation sits where the nonlinearity is flat passes almost no
gradient back: ``sigma'(z) < 0.03`` once ``sigma(z)`` leaves [0.03, 0.97],
and ``tanh'(z) < 0.06`` once ``|tanh(z)| > 0.97``. A ReLU unit that outputs
zero on every input of a batch passes exactly none: it is *dead* for that
batch (Lu et al. 2020 study how often this happens at init).

The fractions below are computed from activations ``h`` of shape
``[batch, units]`` (extra dimensions are flattened into units).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .device import device_of

__all__ = ["ACTIVATION_TYPES", "activation_name", "dead_count",
           "dead_fraction", "saturated_count", "saturated_fraction",
           "activation_histograms",
           "record_activations"]

ACTIVATION_TYPES = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.LeakyReLU, nn.GELU,
                    nn.ELU, nn.SiLU, nn.ReLU6, nn.Softplus)
SATURATION = 0.97


def dead_count(h: torch.Tensor) -> torch.Tensor:
    """Number of units (columns of ``h.flatten(1)``) that are ``<= 0`` on
    every sample of the batch, as a 0-d tensor on ``h``'s device."""
    # max over the batch <= 0  <=>  <= 0 on every sample (3x faster than all)
    return (h.flatten(1).amax(dim=0) <= 0).sum()


def saturated_count(h: torch.Tensor, activation: str) -> torch.Tensor:
    """Number of entries of ``h`` in a flat tail of ``activation``.

    ``tanh``: ``|h| > 0.97``; ``sigmoid``: ``h < 0.03`` or ``h > 0.97``.

    Raises:
        ValueError: ``activation`` is neither ``tanh`` nor ``sigmoid``.
    """
    if activation == "tanh":
        return (h.abs() > SATURATION).sum()
    if activation == "sigmoid":
        return ((h - 0.5).abs() > SATURATION - 0.5).sum()
    raise ValueError(f"only 'tanh' and 'sigmoid' saturate, got "
                     f"{activation!r}")


def dead_fraction(h: torch.Tensor) -> torch.Tensor:
    """Fraction of units that are ``<= 0`` on every sample of the batch.

    Args:
        h: ``[batch, units, ...]`` activations of a ReLU-family layer.

    Returns:
        A 0-d tensor in [0, 1], on ``h``'s device (no host sync).
    """
    return dead_count(h) / h.flatten(1).shape[1]


def saturated_fraction(h: torch.Tensor, activation: str) -> torch.Tensor:
    """Fraction of activations in the flat tails of a squashing function.

    ``tanh``: ``|h| > 0.97``; ``sigmoid``: ``h < 0.03`` or ``h > 0.97``.
    Any other activation has no flat tail in this sense and gives 0.

    Args:
        h: activations of any shape.
        activation: ``"tanh"``, ``"sigmoid"`` or another name.

    Returns:
        A 0-d tensor in [0, 1], on ``h``'s device.
    """
    if activation not in ("tanh", "sigmoid"):
        return h.new_zeros(())
    return saturated_count(h, activation) / h.numel()


def activation_name(module: nn.Module) -> str:
    """``nn.Tanh()`` -> ``"tanh"``, ``nn.LeakyReLU()`` -> ``"leaky_relu"``."""
    names = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu",
             nn.LeakyReLU: "leaky_relu", nn.GELU: "gelu"}
    return names.get(type(module), type(module).__name__.lower())


@contextmanager
def record_activations(model: nn.Module):
    """Keep the outputs of every activation module during the ``with``.

    Yields a dict ``{module name: last output}`` (detached), filled by
    forward hooks on the model's activation modules (``ACTIVATION_TYPES``,
    in forward order of registration). Activations applied as functions
    (``torch.relu(x)``) have no module and are not seen. The hooks are
    removed on exit, also when the body raises.

    Example:
        >>> with record_activations(model) as acts:
        ...     model(X)
        >>> {name: dead_fraction(h) for name, h in acts.items()}
    """
    outputs: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name):
        def hook(module, args, output):
            outputs[name] = output.detach()
        return hook

    try:
        for name, module in model.named_modules():
            if isinstance(module, ACTIVATION_TYPES):
                handles.append(module.register_forward_hook(make_hook(name)))
        yield outputs
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def activation_histograms(model: nn.Module, inputs: torch.Tensor, *,
                          bins: int = 60, value_range=None) -> dict:
    """Histogram every activation module's output on one batch.

    The picture of Glorot & Bengio (2010, figs. 6-7): one histogram per
    layer shows where the activations sit (the linear middle of tanh, its
    flat tails, ReLU's zero).

    Args:
        model: any ``nn.Module`` with activation modules.
        inputs: one batch, moved to the model's device.
        bins: number of equal-width bins.
        value_range: ``(low, high)``; default: the range of all activations.

    Returns:
        ``{"edges": [bins + 1] tensor, "counts": {name: [bins] tensor}}``,
        counts as fractions of each layer's activations, on the CPU.
    """
    device = device_of(model)
    with record_activations(model) as acts:
        model(inputs.to(device))
    if not acts:
        raise ValueError(f"{type(model).__name__} has no activation module "
                         f"({', '.join(t.__name__ for t in ACTIVATION_TYPES)})")
    values = {name: h.float().flatten().cpu() for name, h in acts.items()}
    if value_range is None:
        value_range = (min(v.min().item() for v in values.values()),
                       max(v.max().item() for v in values.values()))
    low, high = value_range
    edges = torch.linspace(low, high, bins + 1)
    counts = {name: torch.histc(v, bins=bins, min=low, max=high) / v.numel()
              for name, v in values.items()}
    return {"edges": edges, "counts": counts}

"""What a :class:`~gradlab.GradientMonitor` hands back."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["METRICS", "MonitorRecord"]

METRICS = ("grad_norm", "out_grad_norm", "act_mean", "act_std", "saturated",
           "dead", "update_ratio")


@dataclass
class MonitorRecord:
    """What a :class:`GradientMonitor` recorded, on the CPU.

    Attributes:
        layers: layer names (:mod:`gradlab.layers`) in forward order.
        activations: the activation that produced each layer's input
            (``""`` when none is known, e.g. for the first layer).
        steps: ``[T]`` indices (from 0) of the recorded steps.
        grad_norm, out_grad_norm, act_mean, act_std, saturated, dead,
        update_ratio: ``[T, L]`` float tensors, one row per recorded step,
            one column per layer.
    """

    layers: list
    activations: list
    steps: torch.Tensor
    grad_norm: torch.Tensor
    out_grad_norm: torch.Tensor
    act_mean: torch.Tensor
    act_std: torch.Tensor
    saturated: torch.Tensor
    dead: torch.Tensor
    update_ratio: torch.Tensor

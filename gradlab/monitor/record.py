"""What a :class:`~gradlab.GradientMonitor` hands back, and the helpers that
gather per-layer 0-d results into its rows."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["METRICS", "MonitorRecord", "scatter_rows", "as_float"]

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


def scatter_rows(target: torch.Tensor, entries) -> None:
    """Write ``(row, 0-d tensor)`` entries into ``target[row]`` with one
    stack and one put."""
    entries = list(entries)
    if not entries:
        return
    rows, values = zip(*entries)
    if rows == tuple(range(len(target))) and all(
            v.dtype == target.dtype for v in values):
        torch.stack(values, out=target)   # every row, in order: no put
    else:
        target[list(rows)] = torch.stack(values).to(target.dtype)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself in float32/float64; else a float32 copy (half-precision
    sums of squares overflow)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()

"""The monitor's table: one row of sums and counts per recorded step and
layer, on the model's device, turned into statistics once, when read."""

from __future__ import annotations

import math

import torch

__all__ = ["RAW", "Table"]

# What a step stores per layer. Means, standard deviations and fractions
# are computed in Table.metrics, over all steps at once, instead of in a
# dozen small calls per step.
RAW = ("grad_norm", "out_grad_norm", "sum", "sum_sq", "saturated", "alive",
       "update_ratio", "samples", "units")
GRAD, OUT, SUM, SQ, SAT, ALIVE, UPDATE, SAMPLES, UNITS = range(len(RAW))


class Table:
    """``[len(RAW), steps, rows]`` float32, NaN where nothing was stored.

    Args:
        rows: the most layers a step can have.
        capacity: steps to preallocate; grows by doubling.
        device: where the table lives (the model's device: no host sync).
    """

    def __init__(self, rows: int, capacity: int, device: torch.device):
        self.data = torch.full((len(RAW), capacity, rows), math.nan,
                               device=device)
        self._indices: dict = {}
        self._counts: tuple = (None, None)   # (list, its tensor)

    def to(self, device: torch.device) -> None:
        """Follow the model to ``device``; cached indices are rebuilt."""
        self.data = self.data.to(device)
        self._indices, self._counts = {}, (None, None)

    def row(self, step: int) -> torch.Tensor:
        """The ``[len(RAW), rows]`` view that recorded step ``step`` fills."""
        if step == self.data.shape[1]:  # full: double the capacity
            self.data = torch.cat([self.data, torch.full_like(
                self.data, math.nan)], dim=1)
        return self.data[:, step]

    def index(self, rows: tuple) -> torch.Tensor:
        """``rows`` as a long tensor on the table's device (cached)."""
        index = self._indices.get(rows)
        if index is None:
            index = self._indices[rows] = torch.tensor(
                rows, dtype=torch.long, device=self.data.device)
        return index

    def cells(self, channels: list, rows: list) -> tuple:
        """``(channels, rows)`` as a pair of long tensors on the table's
        device, to index a step's ``[RAW, rows]`` row (cached)."""
        return self.index(tuple(channels)), self.index(tuple(rows))

    def counts(self, counts: list) -> torch.Tensor:
        """``[2, n]``: ``(samples, units)`` per row as a tensor (cached:
        they change only with the batch's shape)."""
        if counts != self._counts[0]:
            self._counts = (counts, torch.tensor(
                counts, dtype=torch.float32, device=self.data.device).T)
        return self._counts[1]

    def metrics(self, steps: int, rows: int) -> tuple:
        """The :data:`~gradlab.monitor.record.METRICS` of the first
        ``steps`` steps and ``rows`` layers, ``[steps, rows]`` each, on the
        CPU (the one host sync)::

            mean = sum / n,   std = sqrt((sum_sq - sum * mean) / (n - 1))
        """
        (grad, out, total, total_sq, sat, alive, update, samples,
         units) = self.data[:, :steps, :rows].cpu()
        mean = total / samples
        std = ((total_sq - total * mean) / (samples - 1)).clamp_min(0).sqrt()
        return (grad, out, mean, std, sat / samples, (units - alive) / units,
                update)

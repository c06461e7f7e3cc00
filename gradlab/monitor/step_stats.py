"""What one recorded step saw of each layer, reduced to 0-d tensors.

Each torch call costs ~5-25 us on a CPU whatever its size, so the inputs
of a pass are reduced at its end, where one call can serve all layers, and
each output gradient once, when backward reaches it. The 0-d results stay
on the device in lists until :meth:`StepStats.write` stacks them into the
step's row of the :class:`~.table.Table`.
"""

from __future__ import annotations

import math

import torch

from ..activations import saturated_count
from .table import ALIVE, GRAD, OUT, SAMPLES, SAT, SQ, SUM, Table

__all__ = ["StepStats", "ACT_SAMPLE_ROWS", "as_float", "norm_dtype"]

DEAD_TYPES = ("relu", "relu6")
SATURATING = ("sigmoid", "tanh")
ACT_SAMPLE_ROWS = 64


def norm_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """What a norm of values of ``dtypes`` is computed in: float64 if any
    is float64 (asking torch for float32 there is an error), else float32
    (a half-precision norm overflows past 65504)."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def as_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself in float32/float64; else a float32 copy (half-precision
    sums of squares overflow)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class StepStats:
    """The per-layer reductions of one step (all its micro-batches).

    Args:
        rows: the most layers a step can have.
    """

    def __init__(self, rows: int):
        self.seen = [False] * rows        # rows whose input was reduced
        self.counts = [(math.nan, math.nan)] * rows  # (samples, units)
        self.moment_rows: list = []       # rows whose input was summed,
        self.sums: list = []              # the sum of that input
        self.squares: list = []           # and its sum of squares
        self.saturated: list = []         # (row, saturated count)
        self.alive: list = []             # (row, units alive on the batch)
        self.out_norms: list = []         # (row, ||dL/dh||), one per call
        self.tied: dict = {}              # row -> summed gradient of its use
        self._inputs: list = []           # (row, input, activation)

    def input(self, row: int, h: torch.Tensor, activation: str) -> None:
        """A layer's input ``h`` (detached), kept for :meth:`end_pass`;
        autograd holds it until backward anyway, so this costs no memory."""
        self._inputs.append((row, h, activation))

    @torch.no_grad()
    def end_pass(self) -> None:
        """Reduce the pass's inputs: the sum and sum of squares of each
        one's first ``ACT_SAMPLE_ROWS`` samples and, for a ReLU output, how
        many units are alive (nonzero somewhere in the batch).

        At the end of the pass rather than as each input arrives: between
        the layers' matrix products every reduction took 2-4 times as long
        as alone (on a 20-layer MLP, a sum and a batch max per layer added
        1.1-1.4 ms in between, 0.9 ms at the end), and here one call
        serves all layers for the sums of squares and the live units.
        (With p=1, ``_foreach_powsum`` and ``_foreach_norm`` were 3-30x
        slower than one sum per layer.)"""
        if not self._inputs:
            return
        rows, inputs, acts = zip(*self._inputs)
        self._inputs = []
        xs = [as_float(h[:ACT_SAMPLE_ROWS]) for h in inputs]
        self.moment_rows += rows
        self.sums += [x.sum() for x in xs]
        self.squares += torch._foreach_powsum(xs, 2)
        dead = []
        for row, h, x, a in zip(rows, inputs, xs, acts):
            units = h.numel() // h.shape[0] if h.dim() > 1 and len(h) else 1
            self.counts[row] = (x.numel(), units)
            if a in SATURATING:
                self.saturated.append((row, saturated_count(x, a)))
            elif a in DEAD_TYPES and h.dim() > 1:
                dead.append((row, h))
        if dead:
            # a ReLU output is >= 0: a unit lives iff its batch max is > 0,
            # and the 0-"norm" counts the nonzero maxima
            alive = torch._foreach_norm(
                [as_float(h).amax(dim=0) for _, h in dead], 0)
            self.alive += zip((row for row, _ in dead), alive)

    def out_grad(self, row: int, grad: torch.Tensor) -> None:
        """``dL/dh`` of a call of ``row``: reduced now, while it is hot
        (keeping the gradients for one ``_foreach_norm`` was no faster and
        held every layer's output gradient per micro-batch)."""
        norm = torch.linalg.vector_norm(grad, dtype=norm_dtype(grad.dtype))
        self.out_norms.append((row, norm))

    def tied_grad(self, row: int, grad: torch.Tensor) -> None:
        """The gradient of one module's use of a tied matrix."""
        g = grad.detach()
        self.tied[row] = g if row not in self.tied else self.tied[row] + g

    @torch.no_grad()
    def write(self, table: Table, d: torch.Tensor, n: int,
              grads: list | None = None) -> None:
        """Put the step's 0-d results for its ``n`` layers into ``d``, its
        ``[RAW, rows]`` row of ``table``: one stack and one indexed copy
        for all channels (a stack and a copy per channel took 0.27 ms a
        step on the overhead benchmark's 20-layer MLP).

        Args:
            grads: the weight-gradient norms of rows ``0..n-1``, if they
                go in with the rest."""
        channels: list = []
        rows: list = []
        values: list = []

        def add(channel: int, at, entries) -> None:
            channels.extend([channel] * len(at))
            rows.extend(at)
            values.extend(entries)

        if grads is not None:
            add(GRAD, range(n), grads)
        if self.out_norms:
            at, norms = zip(*self.out_norms)
            if len(set(at)) == len(at):
                add(OUT, at, norms)
            else:  # a matrix used by several calls: add their squares
                calls = torch.stack(norms).square()
                squares = calls.new_zeros(n).index_add_(
                    0, table.index(at), calls)
                used = table.index(tuple(sorted(set(at))))
                d[OUT].index_copy_(0, used, squares[used].sqrt().to(d.dtype))
        add(SUM, self.moment_rows, self.sums)
        add(SQ, self.moment_rows, self.squares)
        for channel, entries in ((SAT, self.saturated), (ALIVE, self.alive)):
            if entries:
                at, counts = zip(*entries)
                add(channel, at, counts)
        if values:
            d.index_put_(table.cells(channels, rows),
                         torch.stack(values).to(d.dtype))
        d[SAMPLES:, :n] = table.counts(self.counts[:n])

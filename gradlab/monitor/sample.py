"""A fixed sample of every weight matrix, for the update ratio.

The update ratio ``||W_after - W_before|| / ||W_before||`` needs ``W`` from
before the optimizer step. Copying every weight at every step would add the
parameters' size to the step's memory traffic, so the monitor keeps a
sample of at most ``size`` entries per matrix (all of them for a smaller
one) and computes both norms on it.

What a sample costs is the cache lines it touches, not its entries: one
entry in every cache line reads the whole matrix from memory. So the sample
is made of blocks of ``BLOCK`` consecutive entries (one 64-byte line of
float32), spread over the matrix as a lattice: every ``s``-th block, with
``s`` coprime to the row length, so that successive blocks step across the
columns as they go down the rows rather than down the same few columns.
``benchmarks/update_sample.py`` compares it with the exact ratio, with a
lattice of single entries and with a uniform random sample.
"""

from __future__ import annotations

import math

import torch

__all__ = ["BLOCK", "UpdateSample", "block_lattice"]

BLOCK = 16


def block_lattice(numel: int, row: int, size: int) -> tuple[int, int, int]:
    """``(stride, blocks, block)`` of a sample of at most ``size`` of
    ``numel`` entries laid out in rows of ``row``: ``blocks`` runs of
    ``block`` consecutive entries, ``stride * block`` entries apart. A
    matrix of at most ``size`` entries is taken whole: ``(1, numel, 1)``."""
    if numel <= size:
        return 1, numel, 1
    total = numel // BLOCK
    stride = -(-total // (size // BLOCK))
    while math.gcd(stride, row) != 1:
        stride += 1
    return stride, -(-total // stride), BLOCK


class UpdateSample:
    """Update ratios of a list of weight matrices, from their samples.

    The samples live in two zero-padded ``[matrices, size]`` buffers that
    take turns: one holds the weights from before the step, the other
    receives them after it (padding adds nothing to a norm). Reading all
    samples is one ``_foreach_copy_``; the ratios of all matrices are four
    calls.

    Args:
        weights: the matrices (any shapes; each gets its own lattice).
        size: at most this many entries per matrix.
    """

    def __init__(self, weights: list, size: int):
        self.weights = weights
        self.size = size
        self.layout = [block_lattice(w.numel(), w.numel() // max(len(w), 1),
                                     size) for w in weights]
        self._before: torch.Tensor | None = None
        self.to(weights[0].device)

    def to(self, device: torch.device) -> None:
        """Keep the buffers on ``device`` (the weights moved there); the
        'before' sample moves with them."""
        before = self._before
        self._buffers = [torch.zeros(len(self.weights), self.size,
                                     device=device) for _ in range(2)]
        self._targets = [
            [row[:blocks * block].view(blocks, block)
             for row, (_, blocks, block) in zip(buffer, self.layout)]
            for buffer in self._buffers]
        self._views: list = []
        self._ptrs: tuple = ()
        self._turn = 0
        self._before: torch.Tensor | None = None
        if before is not None:
            self._before = self._buffers[0].copy_(before)
            self._turn = 1

    def _sources(self) -> list:
        """Views of the sampled blocks of every weight (rebuilt when a
        weight's storage changed, e.g. ``p.data = ...``)."""
        ptrs = tuple(w.data_ptr() for w in self.weights)
        if ptrs != self._ptrs:
            self._ptrs = ptrs
            self._views = []
            for w, (stride, blocks, block) in zip(self.weights, self.layout):
                w = w.detach()
                if not w.is_contiguous():
                    w = w.contiguous()   # a copy: rebuilt on every read
                    self._ptrs = ()
                self._views.append(w.as_strided(
                    (blocks, block), (stride * block, 1), w.storage_offset()))
        return self._views

    @torch.no_grad()
    def _take(self) -> torch.Tensor:
        turn, self._turn = self._turn, 1 - self._turn
        torch._foreach_copy_(self._targets[turn], self._sources())
        return self._buffers[turn]

    def reset(self) -> None:
        """Sample the weights now, as the 'before' of the next ratio."""
        self._before = self._take()

    @torch.no_grad()
    def advance(self) -> torch.Tensor:
        """``[matrices]``: ``||W_now - W_before|| / ||W_before||`` per
        matrix on the samples; the weights now become the next 'before'."""
        now = self._take()
        moved = torch.linalg.vector_norm(now - self._before, dim=1)
        ratio = moved / torch.linalg.vector_norm(self._before, dim=1)
        self._before = now
        return ratio

"""Record what happens to every layer's gradients and activations in training.

``GradientMonitor`` is a context manager in the spirit of fastai's hooks: it
registers its hooks when the ``with`` starts and removes them when it ends,
also when the body raises. A layer is a weight matrix, in the order the
forward pass uses it (:mod:`gradlab.layers`): each recorded forward pass
runs under a :class:`~gradlab.layers.ForwardTrace`, so attention
projections, tied weights and ``F.linear`` calls are layers like any
``nn.Linear``. Per recorded step and per layer it keeps

* ``grad_norm``: ``||dL/dW||`` (``W.grad`` after backward; for a tied
  matrix, the gradient of this module's use of it);
* ``out_grad_norm``: ``||dL/dh||`` of the output ``h`` of the call that
  used ``W``, the backward signal the chain rule multiplies by each
  Jacobian (a call that uses several matrices, like ``nn.LSTM`` or
  ``nn.MultiheadAttention``, gives it to its last one; NaN for the others);
* ``act_mean``, ``act_std``: of the layer's *input*, i.e. the previous
  activation, whatever computed it (module, ``torch.relu``, ``x.tanh()``);
* ``saturated``: fraction of the input in a flat tail (|tanh| > 0.97,
  sigmoid outside [0.03, 0.97]); NaN unless the input is a tanh/sigmoid
  output;
* ``dead``: fraction of input units that are zero on the whole batch, when
  the input is a ReLU output; NaN otherwise;
* ``update_ratio``: ``||W_after - W_before|| / ||W_before||`` across the
  optimizer step. Karpathy's rule of thumb: around 1e-3 is healthy, far
  below learns slowly, far above is unstable.

The first layer's input is the data, so its activation columns describe the
data. A matrix used several times in one pass (a recurrent cell run in a
Python loop) gets the input statistics of its first use. With gradient
accumulation, activation statistics come from the first micro-batch.

Two estimates keep the cost within 15% of a CPU training step (measured by
``benchmarks/monitor_overhead.py``; exact versions cost ~35%): mean, std and
saturation use the first 64 samples of the batch, and the update ratio uses
a fixed random sample of 4,096 entries of each larger weight (relative error
~2%). Gradient norms and dead fractions are exact. Everything stays on the
model's device in preallocated tensors; a step costs no host sync, reading
the record costs one. The monitor's work per layer is a fixed amount of
Python, so on a small model whose step takes a millisecond or two it can
double the step's time: record ``every=10`` steps or more there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._validate import check_positive_int
from .activations import saturated_count
from .device import device_of
from .layers import ForwardTrace, Use, weight_matrices

__all__ = ["GradientMonitor", "MonitorRecord"]

METRICS = ("grad_norm", "out_grad_norm", "act_mean", "act_std", "saturated",
           "dead", "update_ratio")
DEAD_TYPES = ("relu", "relu6")
SATURATING = ("sigmoid", "tanh")
ACT_SAMPLE_ROWS = 64
UPDATE_SAMPLE = 4096


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


class GradientMonitor:
    """Per-layer gradient and activation statistics of any ``nn.Module``.

    Call :meth:`step` once after each ``optimizer.step()`` (``gl.fit`` does
    it when given ``monitor=``); gradients are read from ``.grad``, so call
    it before the next ``zero_grad``. The monitor traces the calls of
    ``model`` itself: run the forward pass through it.

    Args:
        model: any ``nn.Module`` with at least one weight matrix.
        every: record one step in ``every``; on the others the monitor does
            no work beyond two Python calls per forward pass.
        capacity: recorded steps to preallocate; grows by doubling.

    Example:
        >>> with gl.GradientMonitor(model) as monitor:
        ...     for x, y in batches:
        ...         opt.zero_grad(); loss_fn(model(x), y).backward()
        ...         opt.step(); monitor.step()
        >>> record = monitor.record()   # MonitorRecord, [steps, layers]
    """

    def __init__(self, model: nn.Module, every: int = 1, capacity: int = 256):
        check_positive_int("every", every)
        check_positive_int("capacity", capacity)
        matrices = weight_matrices(model)
        if not matrices:
            raise ValueError(f"{type(model).__name__} has no weight matrix "
                             f"(a parameter with >= 2 dims that requires "
                             f"grad) for the monitor to track")
        self.model, self.every = model, every
        self._flat = [p for p, _ in matrices]
        self._matrix_of = {id(p): i for i, p in enumerate(self._flat)}
        dev = self._device = device_of(model)
        g = torch.Generator().manual_seed(0)
        self._sample = [torch.randperm(w.numel(), generator=g)[:UPDATE_SAMPLE]
                        .sort().values.to(dev) for w in self._flat]
        self._nan = torch.tensor(math.nan, device=dev)
        # at most one row per name a matrix goes by (tied matrices: several)
        self._max_rows = sum(len(names) for _, names in matrices)
        self._data = torch.full((len(METRICS), capacity, self._max_rows),
                                math.nan, device=dev)
        self._steps: list[int] = []
        self._step = 0
        self._handles: list = []
        self._trace: ForwardTrace | None = None
        self._owner: torch.Tensor | None = None
        self._tracing = False
        self._paired: list[str] = [""] * self._max_rows
        self._before: list = []  # sampled weights, taken when `with` starts
        self._reset_step_buffers()

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> "GradientMonitor":
        if self._handles:
            raise RuntimeError("this GradientMonitor is already active")
        self._trace = ForwardTrace(self.model, on_use=self._on_use,
                                   on_view=self._on_view)
        self._handles = [
            self.model.register_forward_pre_hook(self._start_pass),
            self.model.register_forward_hook(self._end_pass,
                                             always_call=True)]
        self._before = self._sampled()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook; safe to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._trace is not None:
            if self._tracing:  # a forward pass raised past its end hook
                self._trace.__exit__(None, None, None)
                self._tracing = False
            self._trace.remove_hooks()

    @property
    def active(self) -> bool:
        """Whether the hooks are registered (inside the ``with``)."""
        return bool(self._handles)

    # -- hooks ---------------------------------------------------------------
    def _recording(self) -> bool:
        return self._step % self.every == 0 and torch.is_grad_enabled()

    def _start_pass(self, module, args) -> None:
        if self._recording() and not self._tracing:
            self._tracing = True
            self._trace.__enter__()

    def _end_pass(self, module, args, output) -> None:
        if self._tracing:
            self._tracing = False
            self._trace.__exit__(None, None, None)

    def _on_use(self, use: Use) -> None:
        out = use.output
        if out is not None and out.device != self._device:
            self._move_to(out.device)  # e.g. gl.fit moved the model
        if out is not None and out.requires_grad:
            last = use.rows[-1]
            out.register_hook(lambda grad: self._add_out_grad(last, grad))
        first = use.rows[0]
        # Sums now, while the input is hot in cache (a pass over all
        # activations after backward cost 3x more); first use in a step.
        if use.input is not None and self._sums[first] is None:
            if use.activation:
                self._paired[first] = use.activation
            self._sums[first] = self._act_sums(use.input, use.activation)

    def _on_view(self, row: int, view: torch.Tensor) -> None:
        view.register_hook(lambda grad: self._add_tied_grad(row, grad))

    def _add_out_grad(self, i: int, grad: torch.Tensor) -> None:
        flat = grad.detach().reshape(-1)
        sq = torch.dot(flat, flat)
        self._out_sq[i] = sq if self._out_sq[i] is None else self._out_sq[i] + sq

    def _add_tied_grad(self, i: int, grad: torch.Tensor) -> None:
        g = grad.detach()
        self._tied[i] = g if i not in self._tied else self._tied[i] + g

    def _act_sums(self, h: torch.Tensor, activation: str):
        """``(sum, sum of squares, saturated count, dead count)`` as 0-d
        tensors and ``(samples, units)`` counts: turned into statistics for
        all layers at once in :meth:`_record_row`."""
        rows = h[:ACT_SAMPLE_ROWS].reshape(-1)   # a view when contiguous
        if rows.dtype != torch.float32:
            rows = rows.float()
        nan = self._nan
        sat = saturated_count(rows, activation) \
            if activation in SATURATING else nan
        # a ReLU output is >= 0, so a unit is dead iff its batch max is 0:
        # counting the nonzero maxima is one op fewer than dead_count
        dead = (h.flatten(1).shape[1] - torch.count_nonzero(
            h.flatten(1).amax(dim=0))) if activation in DEAD_TYPES else nan
        units = h.flatten(1).shape[1] if h.dim() > 1 else 1
        return ((rows.sum(), torch.dot(rows, rows), sat, dead),
                (rows.numel(), units))

    def _owner_index(self, n: int) -> torch.Tensor:
        """``[n]`` index of the matrix behind each row (cached: rows only
        ever get appended)."""
        if self._owner is None or len(self._owner) != n \
                or self._owner.device != self._device:
            self._owner = torch.tensor(
                [self._matrix_of[id(p)] for p in self._trace.params],
                dtype=torch.long, device=self._device)
        return self._owner

    def _reset_step_buffers(self) -> None:
        n = self._max_rows
        self._sums: list = [None] * n
        self._out_sq: list = [None] * n
        self._tied: dict = {}             # row -> summed gradient of its use

    # -- recording -------------------------------------------------------------
    def _move_to(self, device: torch.device) -> None:
        """Follow the model to another device (buffers are small)."""
        self._device = device
        self._sample = [idx.to(device) for idx in self._sample]
        self._before = [b.to(device) for b in self._before]
        self._nan = self._nan.to(device)
        self._data = self._data.to(device)

    def _sampled(self) -> list:
        """The sampled entries of every weight, detached copies."""
        return [torch.index_select(w.detach().reshape(-1), 0, idx)
                for w, idx in zip(self._flat, self._sample)]

    def step(self) -> None:
        """Record this step (if it is one in ``every``) and move on."""
        if not self.active:
            raise RuntimeError("GradientMonitor.step() called outside its "
                               "`with` block: the hooks are not registered")
        if self._flat[0].device != self._device:
            self._move_to(self._flat[0].device)
        now = None
        if self._step % self.every == 0:
            now = self._record_row()
        self._step += 1
        self._reset_step_buffers()
        if self._step % self.every == 0:
            self._before = now if now is not None else self._sampled()

    def _record_row(self) -> list:
        row = len(self._steps)
        if row == self._data.shape[1]:  # full: double the capacity
            self._data = torch.cat([self._data, torch.full_like(
                self._data, math.nan)], dim=1)
        n, nan = len(self._trace.layers), self._nan
        now = self._sampled()
        self._steps.append(self._step)
        if n == 0:  # no forward pass through the model in this step
            return now
        m = len(self._flat)
        grads = [w.grad if w.grad is not None else torch.zeros_like(w)
                 for w in self._flat]
        delta = torch._foreach_sub(now, self._before)
        per_matrix = torch.stack(torch._foreach_norm(
            grads + self._before + list(delta))).view(3, m)
        owner = self._owner_index(n)
        grad_norm = per_matrix[0, owner]                          # [n]
        for i, g in self._tied.items():   # tied rows: their own use's grad
            grad_norm[i] = g.norm()
        update = per_matrix[2, owner] / per_matrix[1, owner]
        empty = ((nan,) * 4, (math.nan, math.nan))
        sums, counts = zip(*[s if s is not None else empty
                             for s in self._sums[:n]])
        total, total_sq, sat, dead = torch.stack(
            [x for s in sums for x in s]).view(n, 4).T           # 4 x [n]
        samples, units = torch.tensor(counts, device=self._device).T
        mean = total / samples
        std = ((total_sq - total * mean) / (samples - 1)).clamp_min(0).sqrt()
        out = torch.stack([sq if sq is not None else nan
                           for sq in self._out_sq[:n]]).sqrt()
        self._data[:, row, :n] = torch.stack(
            [grad_norm, out, mean, std, sat / samples, dead / units, update])
        return now

    def record(self) -> MonitorRecord:
        """Return the recorded steps as a :class:`MonitorRecord` (one sync).

        Layers are those the recorded forward passes used; a matrix no pass
        used has no column."""
        t = len(self._steps)
        n = len(self._trace.layers) if self._trace is not None else 0
        data = self._data[:, :t, :n].cpu()
        return MonitorRecord(
            layers=list(self._trace.layers) if n else [],
            activations=self._paired[:n],
            steps=torch.tensor(self._steps, dtype=torch.long),
            **dict(zip(METRICS, data)))

"""Record what happens to every layer's gradients and activations in training.

``GradientMonitor`` is a context manager in the spirit of fastai's hooks: it
registers forward hooks (and a tensor hook on each layer's output, for the
backward pass) when the ``with`` starts and removes them when it ends, also
when the body raises. Per recorded step and per layer it keeps

* ``grad_norm``: ``||dL/dW||`` of the layer's weights (all ``weight*``
  parameters together);
* ``out_grad_norm``: ``||dL/dh||`` of the layer's output ``h``, the backward
  signal that the chain rule multiplies by each Jacobian;
* ``act_mean``, ``act_std``: of the activation that follows the layer (the
  first activation module called after it), or of the layer's own output if
  none follows;
* ``saturated``: fraction in a flat tail (|tanh| > 0.97, sigmoid outside
  [0.03, 0.97]); NaN for other activations;
* ``dead``: fraction of ReLU units that are zero on the whole batch; NaN for
  other activations;
* ``update_ratio``: ``||W_after - W_before|| / ||W_before||`` across the
  optimizer step. Karpathy's rule of thumb: around 1e-3 is healthy, far
  below learns slowly, far above is unstable.

Two estimates keep the cost within 15% of a CPU training step (measured by
``benchmarks/monitor_overhead.py``; exact versions cost ~35%): mean, std and
saturation use the first 64 samples of the batch, and the update ratio uses
a fixed random sample of 4,096 entries of each larger weight (relative error
~2%). Gradient norms and dead fractions are exact. Everything stays on the
model's device in preallocated tensors; a step costs no host sync, reading
the record costs one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._validate import check_positive_int
from .activations import (ACTIVATION_TYPES, activation_name, dead_count,
                          saturated_count)
from .device import device_of

__all__ = ["GradientMonitor", "MonitorRecord", "TRACKED_TYPES"]

TRACKED_TYPES = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase,
                 nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
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
        layers: layer names in forward order.
        activations: name of the activation paired with each layer
            (``""`` when none follows it).
        has_matrix: whether each layer owns a weight matrix (``Linear``,
            ``Conv``, ``RNN``); norm layers' 1-D gains do not count.
        steps: ``[T]`` indices (from 0) of the recorded steps.
        grad_norm, out_grad_norm, act_mean, act_std, saturated, dead,
        update_ratio: ``[T, L]`` float tensors, one row per recorded step,
            one column per layer.
    """

    layers: list
    activations: list
    has_matrix: list
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
    it before the next ``zero_grad``. With gradient accumulation, activation
    statistics come from the last micro-batch.

    Args:
        model: any ``nn.Module``. Layers are its ``Linear``, ``Conv*``,
            ``RNN``/``LSTM``/``GRU`` and norm modules.
        every: record one step in ``every``; hooks do no work on the others.
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
        named = [(n, m) for n, m in model.named_modules()
                 if isinstance(m, TRACKED_TYPES)]
        if not named:
            raise ValueError(f"{type(model).__name__} has no layer the monitor "
                             f"tracks (Linear, Conv, RNN/LSTM/GRU, norm)")
        self.model, self.every = model, every
        self._names = [n for n, _ in named]
        self._modules = [m for _, m in named]
        self._weights = [[p for name, p in m.named_parameters(recurse=False)
                          if name.startswith("weight")] for m in self._modules]
        self._flat = [p for ws in self._weights for p in ws]
        dev = self._device = device_of(model)
        # Which layer each weight belongs to, to sum squared norms per layer.
        self._owner = torch.tensor([i for i, ws in enumerate(self._weights)
                                    for _ in ws], dtype=torch.long, device=dev)
        g = torch.Generator().manual_seed(0)
        self._sample = [torch.randperm(w.numel(), generator=g)[:UPDATE_SAMPLE]
                        .sort().values.to(dev) for w in self._flat]
        self._nan = torch.tensor(math.nan, device=dev)
        self._data = torch.full((len(METRICS), capacity, len(named)),
                                math.nan, device=dev)
        self._steps: list[int] = []
        self._step = 0
        self._handles: list = []
        self._order: list[int] = []       # forward order, from the 1st pass
        self._ordered: set[int] = set()
        self._paired: list[str] = [""] * len(named)
        self._before: list = []  # sampled weights, taken when `with` starts
        self._reset_step_buffers()

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> "GradientMonitor":
        if self._handles:
            raise RuntimeError("this GradientMonitor is already active")
        for i, module in enumerate(self._modules):
            self._handles.append(module.register_forward_hook(
                self._make_layer_hook(i)))
        for module in self.model.modules():
            if isinstance(module, ACTIVATION_TYPES):
                self._handles.append(module.register_forward_hook(
                    self._activation_hook))
        self._before = self._sampled()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook; safe to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def active(self) -> bool:
        """Whether the hooks are registered (inside the ``with``)."""
        return bool(self._handles)

    # -- hooks ---------------------------------------------------------------
    def _recording(self) -> bool:
        return self._step % self.every == 0 and torch.is_grad_enabled()

    def _make_layer_hook(self, i: int):
        def hook(module, args, output):
            if not self._recording():
                return
            out = output[0] if isinstance(output, tuple) else output
            if out.device != self._device:  # e.g. gl.fit moved the model
                self._move_to(out.device)
            if i not in self._ordered:  # first call ever: forward order
                self._ordered.add(i)
                self._order.append(i)
            self._last = i
            # Sums now, while the output is hot in cache (a pass over all
            # activations after backward cost 3x more), and only when no
            # activation module is known to follow this layer.
            if not self._paired[i]:
                self._sums[i] = self._act_sums(out.detach(), "")
            if out.requires_grad:
                out.register_hook(lambda grad: self._add_out_grad(i, grad))
        return hook

    def _activation_hook(self, module, args, output):
        # Pair the activation with the layer that ran just before it.
        i = self._last
        if i is None or i in self._claimed or not self._recording():
            return
        self._claimed.add(i)
        self._paired[i] = activation_name(module)
        self._sums[i] = self._act_sums(output.detach(), self._paired[i])

    def _add_out_grad(self, i: int, grad: torch.Tensor) -> None:
        flat = grad.detach().reshape(-1)
        sq = torch.dot(flat, flat)
        self._out_sq[i] = sq if self._out_sq[i] is None else self._out_sq[i] + sq

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
        dead = dead_count(h) if activation in DEAD_TYPES else nan
        units = h.flatten(1).shape[1] if h.dim() > 1 else 1
        return ((rows.sum(), torch.dot(rows, rows), sat, dead),
                (rows.numel(), units))

    def _reset_step_buffers(self) -> None:
        n = len(self._modules)
        self._sums: list = [None] * n
        self._claimed: set = set()        # layers paired in this step
        self._out_sq: list = [None] * n
        self._last = None

    # -- recording -------------------------------------------------------------
    def _move_to(self, device: torch.device) -> None:
        """Follow the model to another device (buffers are small)."""
        self._device = device
        self._owner = self._owner.to(device)
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
        if self._flat and self._flat[0].device != self._device:
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
        n, nan = len(self._modules), self._nan
        now = self._sampled()
        if self._flat:
            grads = [w.grad if w.grad is not None else torch.zeros_like(w)
                     for w in self._flat]
            delta = torch._foreach_sub(now, self._before)
            sq = torch.stack(torch._foreach_norm(
                grads + self._before + list(delta))).pow(2)
            per_layer = torch.zeros(3, n, device=self._device).index_add_(
                1, self._owner, sq.view(3, -1)).sqrt()
            grad_norm, update = per_layer[0], per_layer[2] / per_layer[1]
        else:
            grad_norm = update = nan.expand(n)
        empty = ((nan,) * 4, (math.nan, math.nan))
        sums, counts = zip(*[s if s is not None else empty
                             for s in self._sums])
        total, total_sq, sat, dead = torch.stack(
            [x for s in sums for x in s]).view(n, 4).T           # 4 x [L]
        samples, units = torch.tensor(counts, device=self._device).T
        mean = total / samples
        std = ((total_sq - total * mean) / (samples - 1)).clamp_min(0).sqrt()
        out = torch.stack([sq if sq is not None else nan
                           for sq in self._out_sq]).sqrt()
        self._data[:, row] = torch.stack(
            [grad_norm, out, mean, std, sat / samples, dead / units, update])
        self._steps.append(self._step)
        return now

    def record(self) -> MonitorRecord:
        """Return the recorded steps as a :class:`MonitorRecord` (one sync)."""
        t = len(self._steps)
        order = self._order + [i for i in range(len(self._modules))
                               if i not in self._ordered]
        data = self._data[:, :t][:, :, order].cpu()
        return MonitorRecord(
            layers=[self._names[i] for i in order],
            activations=[self._paired[i] for i in order],
            has_matrix=[any(w.dim() >= 2 for w in self._weights[i])
                        for i in order],
            steps=torch.tensor(self._steps, dtype=torch.long),
            **dict(zip(METRICS, data)))

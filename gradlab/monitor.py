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

Everything stays on the model's device in preallocated tensors; a step
costs no host sync (reading the record costs one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .activations import (ACTIVATION_TYPES, activation_name, dead_fraction,
                          saturated_fraction)

__all__ = ["GradientMonitor", "MonitorRecord", "TRACKED_TYPES"]

TRACKED_TYPES = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase,
                 nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
METRICS = ("grad_norm", "out_grad_norm", "act_mean", "act_std", "saturated",
           "dead", "update_ratio")
DEAD_TYPES = ("relu", "relu6")
SATURATING = ("sigmoid", "tanh")


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
    it before the next ``zero_grad``.

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
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self.model, self.every = model, every
        named = [(n, m) for n, m in model.named_modules()
                 if isinstance(m, TRACKED_TYPES)]
        if not named:
            raise ValueError(f"{type(model).__name__} has no layer the monitor "
                             f"tracks (Linear, Conv, RNN/LSTM/GRU, norm)")
        self._names = [n for n, _ in named]
        self._modules = [m for _, m in named]
        self._weights = [[p for name, p in m.named_parameters(recurse=False)
                          if name.startswith("weight")] for m in self._modules]
        self._flat = [p for ws in self._weights for p in ws]
        # Which layer each weight belongs to, to sum squared norms per layer.
        self._owner = torch.tensor([i for i, ws in enumerate(self._weights)
                                    for _ in ws], dtype=torch.long)
        self._device = self._flat[0].device if self._flat else torch.device(
            "cpu")
        n = len(named)
        self._data = torch.full((len(METRICS), capacity, n), math.nan,
                                device=self._device)
        self._steps: list[int] = []
        self._step = 0
        self._handles: list = []
        self._order: list[int] = []       # forward order, from the 1st pass
        self._ordered: set[int] = set()
        self._paired: list[str] = [""] * n
        self._reset_step_buffers()

    # -- context manager -------------------------------------------------
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
        self._snapshot()
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

    # -- hooks ------------------------------------------------------------
    def _recording(self) -> bool:
        return self._step % self.every == 0 and torch.is_grad_enabled()

    def _make_layer_hook(self, i: int):
        def hook(module, args, output):
            if not self._recording():
                return
            out = output[0] if isinstance(output, tuple) else output
            if i not in self._ordered:  # first call ever: forward order
                self._ordered.add(i)
                self._order.append(i)
            self._last = i
            self._acts[i] = (out.detach(), "")
            if out.requires_grad:
                out.register_hook(lambda g: self._add_out_grad(i, g))
        return hook

    def _activation_hook(self, module, args, output):
        # Pair the activation with the layer that ran just before it.
        i = self._last
        if i is None or not self._recording() or self._acts[i][1]:
            return
        self._paired[i] = activation_name(module)
        self._acts[i] = (output.detach(), self._paired[i])

    def _add_out_grad(self, i: int, grad: torch.Tensor) -> None:
        sq = grad.detach().pow(2).sum()
        self._out_sq[i] = sq if self._out_sq[i] is None else self._out_sq[i] + sq

    def _reset_step_buffers(self) -> None:
        n = len(self._modules)
        self._acts: list = [(None, "")] * n
        self._out_sq: list = [None] * n
        self._last = None

    # -- recording ----------------------------------------------------------
    def _snapshot(self) -> None:
        self._before = [w.detach().clone() for w in self._flat]

    def _layer_norms(self, tensors) -> torch.Tensor:
        """Per-layer L2 norm of a list aligned with ``self._flat``."""
        sq = torch.stack(torch._foreach_norm(tensors)).pow(2)     # [W]
        per_layer = torch.zeros(len(self._modules), device=sq.device)
        return per_layer.index_add_(0, self._owner.to(sq.device), sq).sqrt()

    def step(self) -> None:
        """Record this step (if it is one in ``every``) and move on."""
        if not self.active:
            raise RuntimeError("GradientMonitor.step() called outside its "
                               "`with` block: the hooks are not registered")
        if self._step % self.every == 0:
            self._record_row()
        self._step += 1
        self._reset_step_buffers()
        if self._step % self.every == 0:
            self._snapshot()

    def _record_row(self) -> None:
        row = len(self._steps)
        if row == self._data.shape[1]:  # full: double the capacity
            self._data = torch.cat([self._data, torch.full_like(
                self._data, math.nan)], dim=1)
        n, dev = len(self._modules), self._device
        nan = torch.tensor(math.nan, device=dev)
        grads = [w.grad if w.grad is not None else torch.zeros_like(w)
                 for w in self._flat]
        now = [w.detach() for w in self._flat]
        if self._flat:
            grad_norm = self._layer_norms(grads)
            delta = torch._foreach_sub(now, self._before)
            update = self._layer_norms(delta) / self._layer_norms(self._before)
        else:
            grad_norm = update = torch.full((n,), math.nan, device=dev)
        out_grad = torch.stack([sq.sqrt() if sq is not None else nan
                                for sq in self._out_sq])
        stats = torch.stack([self._act_stats(h, act, nan)
                             for h, act in self._acts])           # [n, 4]
        values = torch.stack([grad_norm, out_grad, *stats.T, update])
        self._data[:, row] = values
        self._steps.append(self._step)

    @staticmethod
    def _act_stats(h, activation: str, nan) -> torch.Tensor:
        if h is None:
            return nan.expand(4)
        h = h.float()
        std, mean = torch.std_mean(h) if h.numel() > 1 else (nan, h.mean())
        sat = saturated_fraction(h, activation) \
            if activation in SATURATING else nan
        dead = dead_fraction(h) if activation in DEAD_TYPES else nan
        return torch.stack([mean, std, sat, dead])

    def record(self) -> MonitorRecord:
        """Return the recorded steps as a :class:`MonitorRecord` (one sync)."""
        t = len(self._steps)
        order = self._order + [i for i in range(len(self._modules))
                               if i not in self._order]
        data = self._data[:, :t][:, :, order].cpu()
        columns = dict(zip(METRICS, data))
        return MonitorRecord(
            layers=[self._names[i] for i in order],
            activations=[self._paired[i] for i in order],
            has_matrix=[any(w.dim() >= 2 for w in self._weights[i])
                        for i in order],
            steps=torch.tensor(self._steps, dtype=torch.long), **columns)

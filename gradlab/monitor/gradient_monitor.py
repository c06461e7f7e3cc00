"""The monitor itself: hooks that run in the forward and backward passes,
and the reduction of what they saw into one row per step."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_positive_int
from ..activations import saturated_count
from ..device import device_of
from ..layers import ForwardTrace, Use, weight_matrices
from .follow import owners, replay_map
from .record import METRICS, MonitorRecord, as_float
from .sample import UpdateSample

__all__ = ["GradientMonitor"]

DEAD_TYPES = ("relu", "relu6")
SATURATING = ("sigmoid", "tanh")
ACT_SAMPLE_ROWS = 64
UPDATE_SAMPLE = 4096
# What a step stores, per layer: sums and counts, turned into METRICS once,
# in record(), instead of a dozen small calls per step.
RAW = ("grad_norm", "out_grad_norm", "sum", "sum_sq", "saturated", "alive",
       "update_ratio", "samples", "units")
_GRAD, _OUT, _SUM, _SQ, _SAT, _ALIVE, _UPDATE, _SAMPLES, _UNITS = range(9)


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
        self._device = device_of(model)
        self._sample = UpdateSample(self._flat, UPDATE_SAMPLE)
        # at most one row per name a matrix goes by (tied matrices: several)
        self._max_rows = sum(len(names) for _, names in matrices)
        self._data = torch.full((len(RAW), capacity, self._max_rows),
                                math.nan, device=self._device)
        self._steps: list[int] = []
        self._step = 0
        self._handles: list = []
        self._trace: ForwardTrace | None = None
        self._tracing = False
        # per row, the activation the trace found for its input ("" none)
        self._labels: list[str] = [""] * self._max_rows
        # replay: None = not known yet, False = keep tracing, else a list of
        # (module, rows) to follow with forward hooks (see follow.py)
        self._replay = None
        self._replay_ok = True   # False: never replay (tests compare both)
        self._probe: list | None = None    # module calls seen in a traced pass
        self._uses: list | None = None     # uses seen in that pass
        self._pass_handles: list = []      # the probe's hooks, one pass
        self._replay_handles: list = []    # the replay's, kept while it lasts
        self._replaying = False            # inside a replayed pass
        self._calls = 0
        self._grad_hooks: dict = {}        # (row, output_nr) -> hook
        self._indices: dict = {}           # rows -> index tensor
        self._owner = self._counts_key = self._counts_tensor = None
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
        self._sample.reset()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook; safe to call twice."""
        self._drop_replay_hooks()
        for handle in self._handles + self._pass_handles:
            handle.remove()
        self._handles, self._pass_handles = [], []
        if self._trace is not None:
            if self._tracing:  # a forward pass raised past its end hook
                self._trace.__exit__(None, None, None)
                self._tracing = False
            self._trace.remove_hooks()
            # the trace calls back into the monitor: break the cycle so the
            # model is freed as soon as the caller drops it
            self._trace.on_use = self._trace.on_view = None
        self._grad_hooks = {}   # they call back into the monitor, too
        self._replaying = False

    @property
    def active(self) -> bool:
        """Whether the hooks are registered (inside the ``with``)."""
        return bool(self._handles)

    # -- hooks ---------------------------------------------------------------
    def _recording_step(self) -> bool:
        return self._step % self.every == 0

    def _recording(self) -> bool:
        return self._recording_step() and torch.is_grad_enabled()

    def _start_pass(self, module, args) -> None:
        if not self._recording():
            # an unrecorded pass: no hooks below the model's own two
            self._drop_replay_hooks()
            return
        if self._tracing or self._pass_handles or self._replaying:
            return  # the model called itself inside a recorded pass
        if self._replay:
            if not self._replay_handles:
                self._replay_handles = [
                    m.register_forward_hook(self._replayed_call(rows))
                    for m, rows in self._replay]
            self._calls, self._replaying = 0, True
            return
        if self._replay is None and self._replay_ok:
            self._probe, self._uses = [], []
            self._pass_handles = [
                m.register_forward_hook(self._probe_call)
                for m in owners(self.model, self._matrix_of)]
        self._tracing = True
        self._trace.__enter__()

    def _end_pass(self, module, args, output) -> None:
        for handle in self._pass_handles:
            handle.remove()
        self._pass_handles = []
        self._flush_pending()
        if self._tracing:
            self._tracing = False
            self._trace.__exit__(None, None, None)
            if self._probe is not None:
                self._replay = replay_map(self._probe, self._uses,
                                          self._trace)
                self._probe = self._uses = None
        elif self._replaying:
            self._replaying = False
            if self._calls != len(self._replay):
                # the model changed its calls: trace the next pass again
                self._replay = None
                self._drop_replay_hooks()

    def _drop_replay_hooks(self) -> None:
        for handle in self._replay_handles:
            handle.remove()
        self._replay_handles = []

    def _probe_call(self, module, args, output) -> None:
        first = output[0] if isinstance(output, (tuple, list)) else output
        self._probe.append((module, args[0] if args else None, first))

    def _replayed_call(self, rows: list):
        label = self._labels[rows[0]]

        def hook(module, args, output):
            if not self._replaying:
                return
            self._calls += 1
            first = output[0] if isinstance(output, (tuple, list)) else output
            x = args[0] if args else None
            self._observe(rows, x if isinstance(x, torch.Tensor)
                          and x.is_floating_point() else None, label,
                          first if isinstance(first, torch.Tensor) else None)
        return hook

    def _on_use(self, use: Use) -> None:
        if self._uses is not None:
            self._uses.append(use)
        self._observe(use.rows, use.input, use.activation, use.output)

    def _observe(self, rows: list, x, activation: str, out) -> None:
        """One call that used the matrices of ``rows``: hook its output's
        gradient and, on the first call of the step, keep its input for
        the statistics at the end of the pass."""
        if out is not None and out.requires_grad:
            if out.device != self._device:
                self._move_to(out.device)  # e.g. gl.fit moved the model
            self._hook_out_grad(rows[-1], out)
        first = rows[0]
        # Sums at the end of this forward pass, while autograd still holds
        # the input (no memory of ours), where one call can serve all
        # layers (a pass over all activations after backward cost 3x more).
        if x is not None and not self._seen[first]:
            self._seen[first] = True
            if activation:
                self._labels[first] = activation
            self._pending.append((first, x, activation))

    def _hook_out_grad(self, row: int, out: torch.Tensor) -> None:
        """Reduce ``dL/d out`` when backward reaches the node that made
        ``out``: a pre-hook on that node costs a third of a hook on the
        tensor (which wraps one around the node itself)."""
        node = out.grad_fn
        if node is None:  # a leaf that requires grad
            out.register_hook(lambda grad: self._add_out_grad(row, grad))
            return
        key = (row, out.output_nr)
        hook = self._grad_hooks.get(key)
        if hook is None:
            def hook(grads, row=row, nr=out.output_nr):
                if grads[nr] is not None:
                    self._add_out_grad(row, grads[nr])
            self._grad_hooks[key] = hook
        node.register_prehook(hook)

    def _on_view(self, row: int, view: torch.Tensor) -> None:
        view.register_hook(lambda grad: self._add_tied_grad(row, grad))

    def _add_out_grad(self, i: int, grad: torch.Tensor) -> None:
        # reduced now, while the gradient is hot in cache: keeping the
        # gradients for one _foreach_norm in step() was no faster and held
        # a copy of every layer's output gradient per micro-batch
        self._out_norms.append(
            (i, torch.linalg.vector_norm(grad, dtype=torch.float32)))

    def _add_tied_grad(self, i: int, grad: torch.Tensor) -> None:
        g = grad.detach()
        self._tied[i] = g if i not in self._tied else self._tied[i] + g

    @torch.no_grad()
    def _flush_pending(self) -> None:
        """Input statistics of the pass's layers, with as few torch calls
        as possible (each costs ~5-25 us on a CPU, whatever its size): one
        sum per input, one call for all sums of squares; for ReLU inputs
        one batch max per layer and one count for all. (``_foreach_powsum``
        with p=1 and ``_foreach_norm`` with ord=1 were 3-30x slower than the
        sums.) The 0-d results wait in lists until :meth:`_record_row`
        stacks them."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        rows, inputs, acts = zip(*pending)
        xs = [as_float(h[:ACT_SAMPLE_ROWS]) for h in inputs]
        self._moment_rows += rows
        self._sums += [x.sum() for x in xs]
        self._squares += torch._foreach_powsum(xs, 2)
        dead = []
        for row, h, x, a in zip(rows, inputs, xs, acts):
            units = h.numel() // h.shape[0] if h.dim() > 1 and len(h) else 1
            self._counts[row] = (x.numel(), units)
            if a in SATURATING:
                self._saturated.append((row, saturated_count(x, a)))
            elif a in DEAD_TYPES and h.dim() > 1:
                dead.append((row, h))
        if dead:
            # a ReLU output is >= 0, so a unit lives iff its batch max is
            # > 0; the 0-"norm" counts the nonzero maxima
            alive = torch._foreach_norm(
                [as_float(h).amax(dim=0) for _, h in dead], 0)
            self._alive += zip((row for row, _ in dead), alive)

    def _reset_step_buffers(self) -> None:
        n = self._max_rows
        self._seen = [False] * n
        self._pending: list = []          # (row, input, activation) of a pass
        self._counts: list = [(math.nan, math.nan)] * n  # (samples, units)
        self._moment_rows: list = []      # rows whose input was summed,
        self._sums: list = []             # the sum of that input
        self._squares: list = []          # and its sum of squares
        self._saturated: list = []        # (row, saturated count)
        self._alive: list = []            # (row, units alive on the batch)
        self._out_norms: list = []        # (row, ||dL/dh||), one per call
        self._tied: dict = {}             # row -> summed gradient of its use

    # -- recording -------------------------------------------------------------
    def _move_to(self, device: torch.device) -> None:
        """Follow the model to another device (buffers are small)."""
        self._device = device
        self._sample.to(device)
        self._data = self._data.to(device)
        self._indices, self._owner, self._counts_key = {}, None, None

    def step(self) -> None:
        """Record this step (if it is one in ``every``) and move on."""
        if not self.active:
            raise RuntimeError("GradientMonitor.step() called outside its "
                               "`with` block: the hooks are not registered")
        if self._flat[0].device != self._device:
            self._move_to(self._flat[0].device)
        recorded = self._step % self.every == 0
        if recorded:
            self._record_row()
        self._step += 1
        self._reset_step_buffers()
        if not recorded and self._step % self.every == 0:
            self._sample.reset()   # the 'before' of the next recorded step

    def _index(self, rows: tuple) -> torch.Tensor:
        index = self._indices.get(rows)
        if index is None:
            index = self._indices[rows] = torch.tensor(
                rows, dtype=torch.long, device=self._device)
        return index

    def _put(self, target: torch.Tensor, rows: tuple, values) -> None:
        """``target[rows] = values`` (0-d tensors) in one stack and at most
        one copy: a run of consecutive rows in order is stacked in place."""
        if not rows:
            return
        start = rows[0]
        if rows == tuple(range(start, start + len(rows))) and all(
                v.dtype == target.dtype for v in values):
            torch.stack(values, out=target[start:start + len(rows)])
        else:
            target.index_copy_(0, self._index(rows),
                               torch.stack(values).to(target.dtype))

    def _owner_index(self, n: int) -> torch.Tensor | None:
        """``[n]`` index of the matrix behind each row; None when row i is
        matrix i (cached: rows only ever get appended)."""
        if self._owner is None or self._owner[0] != n:
            owner = tuple(self._matrix_of[id(p)] for p in self._trace.params)
            self._owner = (n, None if owner == tuple(range(len(self._flat)))
                           else self._index(owner))
        return self._owner[1]

    def _counts_of(self, n: int) -> torch.Tensor:
        """``[2, n]`` samples and units per row (cached while unchanged)."""
        counts = self._counts[:n]
        if counts != self._counts_key:
            self._counts_key = counts
            self._counts_tensor = torch.tensor(
                counts, dtype=torch.float32, device=self._device).T
        return self._counts_tensor

    @torch.no_grad()
    def _record_row(self) -> None:
        row = len(self._steps)
        if row == self._data.shape[1]:  # full: double the capacity
            self._data = torch.cat([self._data, torch.full_like(
                self._data, math.nan)], dim=1)
        ratio = self._sample.advance()                             # [m]
        self._steps.append(self._step)
        n = len(self._trace.layers)
        if n == 0:  # no forward pass through the model in this step
            return
        d = self._data[:, row]                               # [RAW, rows]
        grads = [w.grad if w.grad is not None else torch.zeros_like(w)
                 for w in self._flat]
        norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
        owner = self._owner_index(n)
        if owner is None:
            torch.stack(norms, out=d[_GRAD, :n])
            d[_UPDATE, :n] = ratio
        else:
            torch.index_select(torch.stack(norms), 0, owner,
                               out=d[_GRAD, :n])
            torch.index_select(ratio, 0, owner, out=d[_UPDATE, :n])
        for i, g in self._tied.items():   # tied rows: their own use's grad
            d[_GRAD, i] = g.norm()
        if self._out_norms:
            rows, values = zip(*self._out_norms)
            if len(set(rows)) == len(rows):
                self._put(d[_OUT], rows, values)
            else:  # a matrix used by several calls: add their squares
                squares = torch.zeros(n, device=self._device).index_add_(
                    0, self._index(rows), torch.stack(values).square())
                used = self._index(tuple(sorted(set(rows))))
                d[_OUT].index_copy_(0, used, squares[used].sqrt())
        moments = tuple(self._moment_rows)
        self._put(d[_SUM], moments, self._sums)
        self._put(d[_SQ], moments, self._squares)
        for channel, entries in ((_SAT, self._saturated),
                                 (_ALIVE, self._alive)):
            if entries:
                rows, values = zip(*entries)
                self._put(d[channel], rows, values)
        d[_SAMPLES:, :n] = self._counts_of(n)

    def record(self) -> MonitorRecord:
        """Return the recorded steps as a :class:`MonitorRecord` (one sync).

        Layers are those the recorded forward passes used; a matrix no pass
        used has no column."""
        t = len(self._steps)
        n = len(self._trace.layers) if self._trace is not None else 0
        (grad, out, total, total_sq, sat, alive, update, samples,
         units) = self._data[:, :t, :n].cpu()
        mean = total / samples
        std = ((total_sq - total * mean) / (samples - 1)).clamp_min(0).sqrt()
        metrics = (grad, out, mean, std, sat / samples,
                   (units - alive) / units, update)
        return MonitorRecord(
            layers=list(self._trace.layers) if n else [],
            activations=self._labels[:n],
            steps=torch.tensor(self._steps, dtype=torch.long),
            **dict(zip(METRICS, metrics)))

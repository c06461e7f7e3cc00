"""The monitor itself: hooks that run in the forward and backward passes,
and the reduction of what they saw into one row per step."""

from __future__ import annotations

import torch
from torch import nn

from .._validate import check_positive_int
from ..device import device_of
from ..layers import ForwardTrace, Use, weight_matrices
from .follow import owners, replay_map
from .record import METRICS, MonitorRecord
from .sample import UpdateSample
from .step_stats import StepStats, norm_dtype
from .table import GRAD, UPDATE, Table

__all__ = ["GradientMonitor"]

UPDATE_SAMPLE = 4096


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
        self._table = Table(self._max_rows, capacity, self._device)
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
        self._owner = None                 # (rows, their matrices' index)
        self._stats = StepStats(self._max_rows)

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
        if self._tracing or self._pass_handles or self._replaying:
            return  # the model called itself inside a recorded pass
        if not self._recording():
            # an unrecorded pass: no hooks below the model's own two
            self._drop_replay_hooks()
            return
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
        if self._tracing:
            self._tracing = False
            self._trace.__exit__(None, None, None)
            if self._probe is not None:
                self._replay = replay_map(self._probe, self._uses,
                                          self._trace)
                self._probe = self._uses = None
        self._stats.end_pass()
        if self._replaying:
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
        gradient and, on the first call of the step, reduce its input."""
        if out is not None and out.requires_grad:
            if out.device != self._device:
                self._move_to(out.device)  # e.g. gl.fit moved the model
            self._hook_out_grad(rows[-1], out)
        first = rows[0]
        if x is not None and not self._stats.seen[first]:
            self._stats.seen[first] = True
            if activation:
                self._labels[first] = activation
            self._stats.input(first, x.detach(), activation)

    def _hook_out_grad(self, row: int, out: torch.Tensor) -> None:
        """Reduce ``dL/d out`` when backward reaches the node that made
        ``out``. Registering a pre-hook on that node took half as long as
        a hook on the tensor (4.9 against 9.8 us), and the monitor makes
        one per layer and pass."""
        node = out.grad_fn
        if node is None:  # a leaf that requires grad
            out.register_hook(lambda grad: self._stats.out_grad(row, grad))
            return
        key = (row, out.output_nr)
        hook = self._grad_hooks.get(key)
        if hook is None:
            def hook(grads, row=row, nr=out.output_nr):
                if grads[nr] is not None:
                    self._stats.out_grad(row, grads[nr])
            self._grad_hooks[key] = hook
        node.register_prehook(hook)

    def _on_view(self, row: int, view: torch.Tensor) -> None:
        view.register_hook(lambda grad: self._stats.tied_grad(row, grad))

    # -- recording -------------------------------------------------------------
    def _move_to(self, device: torch.device) -> None:
        """Follow the model to another device (buffers are small)."""
        self._device = device
        self._sample.to(device)
        self._table.to(device)
        self._owner = None

    def step(self) -> None:
        """Record this step (if it is one in ``every``) and move on."""
        if not self.active:
            raise RuntimeError("GradientMonitor.step() called outside its "
                               "`with` block: the hooks are not registered")
        if self._flat[0].device != self._device:
            self._move_to(self._flat[0].device)
        recorded = self._recording_step()
        if recorded:
            self._record_row()
        self._step += 1
        self._stats = StepStats(self._max_rows)
        if not recorded and self._recording_step():
            self._sample.reset()   # the 'before' of the next recorded step

    def _owner_index(self, n: int) -> torch.Tensor | None:
        """``[n]`` index of the matrix behind each row; None when row i is
        matrix i (cached: rows only ever get appended)."""
        if self._owner is None or self._owner[0] != n:
            owner = tuple(self._matrix_of[id(p)] for p in self._trace.params)
            self._owner = (n, None if owner == tuple(range(len(self._flat)))
                           else self._table.index(owner))
        return self._owner[1]

    @torch.no_grad()
    def _record_row(self) -> None:
        d = self._table.row(len(self._steps))                # [RAW, rows]
        ratio = self._sample.advance()                             # [m]
        self._steps.append(self._step)
        n = len(self._trace.layers)
        if n == 0:  # no forward pass through the model in this step
            return
        grads = [w.grad if w.grad is not None else torch.zeros_like(w)
                 for w in self._flat]
        norms = torch._foreach_norm(
            grads, 2, dtype=norm_dtype(*(g.dtype for g in grads)))
        owner = self._owner_index(n)
        if owner is None:
            d[UPDATE, :n] = ratio
        else:
            torch.index_select(torch.stack(norms), 0, owner,
                               out=d[GRAD, :n])
            torch.index_select(ratio, 0, owner, out=d[UPDATE, :n])
        self._stats.write(self._table, d, n,
                          grads=norms if owner is None else None)
        for i, g in self._stats.tied.items():  # tied rows: their own use's
            d[GRAD, i] = g.norm()

    def record(self) -> MonitorRecord:
        """Return the recorded steps as a :class:`MonitorRecord` (one sync).

        Layers are those the recorded forward passes used; a matrix no pass
        used has no column."""
        n = len(self._trace.layers) if self._trace is not None else 0
        metrics = self._table.metrics(len(self._steps), n)
        return MonitorRecord(
            layers=list(self._trace.layers) if n else [],
            activations=self._labels[:n],
            steps=torch.tensor(self._steps, dtype=torch.long),
            **dict(zip(METRICS, metrics)))

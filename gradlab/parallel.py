"""Data-parallel training in two processes, on one CPU.

``DistributedDataParallel`` (DDP) gives every process a replica of the model
and a shard of the batch. After each backward pass it all-reduces (averages)
the gradients over the processes, so every replica holds the gradient of
the mean loss over the whole batch: gradient accumulation across machines.
Inside ``no_sync()`` the all-reduce is skipped and gradients accumulate
locally; the first backward pass outside it averages the sum. With ``k``
micro-batches per process that is one all-reduce per step instead of ``k``.

:func:`ddp_gradients` runs this with the ``gloo`` backend in two processes
started by ``torch.multiprocessing`` (the worker lives here, because the
``spawn`` start method pickles it by reference), counts the all-reduces with
a DDP communication hook, and returns the gradients as data.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import tempfile
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from .models import MLP

__all__ = ["ddp_gradients", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks
    it); the rendezvous binds it right after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Counter:
    """State of the communication hook: how many buckets it all-reduced."""

    def __init__(self):
        self.calls = 0


def _counting_allreduce(state: _Counter, bucket):
    # DDP calls the hook once per gradient bucket that is ready; the
    # default hook averages the bucket over the processes (sum / world).
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    state.calls += 1
    return default_hooks.allreduce_hook(None, bucket)


def _flat_grad(model) -> list[float]:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]
                     ).tolist()


def _worker(rank, world, port, spec, seed, inputs, targets, accumulate,
            out_dir, timeout_s):
    """One process: build the replica, run both accumulation modes on this
    rank's shard, write the gradients and all-reduce counts to a file."""
    torch.set_num_threads(1)      # two processes share the cores
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    result = {}
    try:
        dist.init_process_group(
            "gloo", rank=rank, world_size=world,
            timeout=datetime.timedelta(seconds=timeout_s))
        # Same seed on every rank (DDP also broadcasts rank 0's weights).
        model = MLP(**spec, generator=torch.Generator().manual_seed(seed))
        ddp = DistributedDataParallel(model)
        counter = _Counter()
        ddp.register_comm_hook(counter, _counting_allreduce)
        shard = slice(rank, None, world)             # every world-th sample
        x, y = inputs[shard], targets[shard]          # [B / world, ...]
        micro = x.shape[0] // accumulate
        for mode in ("sync", "no_sync"):
            ddp.zero_grad(set_to_none=True)
            before = counter.calls
            for j in range(accumulate):
                idx = slice(j * micro, (j + 1) * micro)
                last = j == accumulate - 1
                # no_sync(): accumulate locally; the last micro-batch syncs
                ctx = (ddp.no_sync() if mode == "no_sync" and not last
                       else contextlib.nullcontext())
                with ctx:
                    loss = F.cross_entropy(ddp(x[idx]), y[idx]) / accumulate
                    loss.backward()
            result[mode] = dict(grad=_flat_grad(model),
                                allreduces=counter.calls - before)
    except Exception:  # noqa: BLE001 - reported to the parent as data
        result = {"error": traceback.format_exc()}
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))


def ddp_gradients(spec: dict, inputs: torch.Tensor, targets: torch.Tensor,
                  *, accumulate: int = 4, seed: int = 0, world_size: int = 2,
                  timeout: float = 120.0) -> dict:
    """Train-step gradients of an MLP under DistributedDataParallel.

    Starts ``world_size`` CPU processes (``gloo``). Rank ``r`` takes the
    samples ``r, r + world_size, ...`` of the batch and splits them into
    ``accumulate`` equal micro-batches, each backpropagated with loss
    ``L_j / accumulate``. This runs twice: ``"sync"`` all-reduces after
    every micro-batch; ``"no_sync"`` wraps all but the last in
    ``ddp.no_sync()``. Both end with the gradient of the mean loss over the
    whole batch,

    .. math::
        g = \\frac1W \\sum_{r=1}^W \\frac1k \\sum_{j=1}^k \\nabla L_{r,j}
          = \\nabla \\frac1B \\sum_{i=1}^B \\ell_i ,

    (Li et al. 2020, "PyTorch Distributed").

    Args:
        spec: keyword arguments of :class:`~gradlab.models.MLP`, e.g.
            ``dict(in_features=64, out_features=10, depth=3, width=32)``;
            every rank builds it with ``torch.Generator().manual_seed(seed)``.
        inputs: ``[B, in_features]`` float CPU tensor.
        targets: ``[B]`` class labels.
        accumulate: micro-batches per process; ``B`` must be divisible by
            ``world_size * accumulate``.
        seed: seed of the weights.
        world_size: number of processes.
        timeout: seconds before the processes are killed and
            ``TimeoutError`` is raised.

    Returns:
        ``{"sync": ..., "no_sync": ...}``, each ``{"grad": [W, P] tensor of
        every rank's flattened gradient, "allreduces": [W] list of
        all-reduce calls (buckets) per rank}``, and ``"seconds"``: the wall
        time including starting the processes.

    Raises:
        ValueError: a batch that does not split evenly.
        RuntimeError: a worker failed (its traceback is in the message).
        TimeoutError: the workers did not finish within ``timeout``.
    """
    batch = inputs.shape[0]
    if world_size < 1 or accumulate < 1 or batch % (world_size
                                                     * accumulate):
        raise ValueError(f"the batch of {batch} must split into "
                         f"world_size={world_size} shards of "
                         f"accumulate={accumulate} equal micro-batches")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        args = (world_size, free_port(), dict(spec), seed,
                inputs.detach().cpu(), targets.detach().cpu(), accumulate,
                out_dir, max(1, int(timeout)))
        context = mp.start_processes(_worker, args=args, nprocs=world_size,
                                     join=False, start_method="spawn")
        try:
            deadline = start + timeout
            # join() returns True once all have exited; it raises (and
            # terminates the others) when one of them fails.
            while not context.join(timeout=1.0):
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"DDP workers did not finish in "
                                       f"{timeout:g} s")
        finally:
            for p in context.processes:        # no-op for exited ones
                if p.is_alive():
                    p.kill()
                p.join(5)
        results = [torch.load(os.path.join(out_dir, f"rank{r}.pt"),
                              weights_only=True) for r in range(world_size)]
    for r, res in enumerate(results):
        if "error" in res:
            raise RuntimeError(f"DDP worker {r} failed:\n{res['error']}")
    out = {mode: dict(grad=torch.tensor([res[mode]["grad"]
                                         for res in results]),
                      allreduces=[res[mode]["allreduces"]
                                  for res in results])
           for mode in ("sync", "no_sync")}
    out["seconds"] = time.perf_counter() - start
    return out

"""Gradient accumulation: the full batch's gradient from micro-batches.

The mean loss over a batch of ``B`` samples splits into the means of its
micro-batches, each weighted by its share of the batch:

.. math::
    L = \\frac1B \\sum_{i=1}^B \\ell_i
      = \\sum_{j=1}^k \\frac{b_j}{B} L_j, \\qquad
    L_j = \\frac1{b_j} \\sum_{i \\in j} \\ell_i ,

so ``k`` backward passes of ``(b_j / B) L_j`` (``L_j / k`` when the
micro-batches are equal) add up, in ``.grad``, to the full batch's gradient.
The functions here compute both gradients and how far apart they are; the
comparison is exact in real arithmetic and breaks only when a layer mixes
samples of a batch (batch norm in training mode).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .plots import _axes
from .train import loss_function

__all__ = ["full_batch_grads", "accumulated_grads", "grad_error",
           "accumulation_errors", "plot_accumulation_error"]


def _sizes(batch: int, accumulate: int | None, sizes) -> list[int]:
    """The micro-batch sizes, validated: ``accumulate`` equal parts of
    ``batch``, or the explicit ``sizes``."""
    if sizes is not None:
        sizes = [int(s) for s in sizes]
        if any(s < 1 for s in sizes) or sum(sizes) != batch:
            raise ValueError(f"sizes must be positive and add up to the "
                             f"batch size {batch}, got sizes={sizes}")
        return sizes
    if (not isinstance(accumulate, int) or accumulate < 1
            or batch % accumulate):
        valid = [d for d in range(1, batch + 1) if batch % d == 0]
        raise ValueError(f"accumulate must divide the batch size {batch}, "
                         f"got accumulate={accumulate!r}; valid values: "
                         f"{valid}")
    return [batch // accumulate] * accumulate


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: (p.grad.detach().clone() if p.grad is not None
                   else torch.zeros_like(p))
            for name, p in model.named_parameters() if p.requires_grad}


def full_batch_grads(model: nn.Module, inputs: torch.Tensor,
                     targets: torch.Tensor, loss="cross_entropy"
                     ) -> dict[str, torch.Tensor]:
    """Gradient of the mean loss over the whole batch, one backward pass.

    Args:
        model: any module; its ``.grad`` fields are overwritten (zeroed
            first), and a norm layer in training mode updates its running
            statistics once.
        inputs: ``[B, ...]`` on the model's device.
        targets: ``[B, ...]``.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable averaging over
            the batch.

    Returns:
        ``{parameter name: gradient}``, clones of each ``.grad``.
    """
    loss_fn = loss_function(loss)
    model.zero_grad(set_to_none=True)
    loss_fn(model(inputs), targets).backward()
    return _grads(model)


def accumulated_grads(model: nn.Module, inputs: torch.Tensor,
                      targets: torch.Tensor, loss="cross_entropy", *,
                      accumulate: int | None = 1, sizes=None,
                      weights: str = "size") -> dict[str, torch.Tensor]:
    """Gradient accumulated over micro-batches, one backward pass each.

    The batch is cut, in order, into ``accumulate`` equal micro-batches or
    into micro-batches of the given ``sizes``. Micro-batch ``j`` (``b_j``
    samples of ``B``) is backpropagated with the weight ``w_j``:

    .. math::
        g = \\sum_j w_j \\nabla L_j, \\qquad
        w_j = b_j / B \\;(\\text{"size"}), \\; 1/k \\;(\\text{"mean"}),
        \\; 1 \\;(\\text{"sum"}).

    Only ``"size"`` gives the full batch's gradient for every split;
    ``"mean"`` gives it for equal micro-batches; ``"sum"`` (no division)
    is ``k`` times too large. The last two are here to show the mistakes.

    Args:
        model, inputs, targets, loss: as in :func:`full_batch_grads`.
        accumulate: number of equal micro-batches; must divide ``B``.
        sizes: explicit micro-batch sizes adding up to ``B`` (overrides
            ``accumulate``).
        weights: ``"size"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``{parameter name: accumulated gradient}``.
    """
    if weights not in ("size", "mean", "sum"):
        raise ValueError(f"weights must be 'size', 'mean' or 'sum', got "
                         f"{weights!r}")
    loss_fn = loss_function(loss)
    batch = inputs.shape[0]
    parts = _sizes(batch, accumulate, sizes)
    model.zero_grad(set_to_none=True)
    start = 0
    for b in parts:
        w = {"size": b / batch, "mean": 1 / len(parts), "sum": 1.0}[weights]
        idx = slice(start, start + b)
        # backward() adds into .grad: that sum is the accumulation
        (w * loss_fn(model(inputs[idx]), targets[idx])).backward()
        start += b
    return _grads(model)


def grad_error(grads: dict[str, torch.Tensor],
               reference: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative error of each gradient, ``||g - g_ref|| / ||g_ref||``, and
    of all of them together under the key ``"total"``.

    A reference of norm 0 gives ``inf`` (or ``0`` when ``g`` is 0 too).
    """
    def rel(diff: float, ref: float) -> float:
        if ref == 0.0:
            return 0.0 if diff == 0.0 else float("inf")
        return diff / ref

    errors, diff2, ref2 = {}, 0.0, 0.0
    for name, ref in reference.items():
        d = (grads[name] - ref).double().norm().item()
        r = ref.double().norm().item()
        errors[name] = rel(d, r)
        diff2, ref2 = diff2 + d * d, ref2 + r * r
    errors["total"] = rel(diff2 ** 0.5, ref2 ** 0.5)
    return errors


def accumulation_errors(model: nn.Module, inputs: torch.Tensor,
                        targets: torch.Tensor, loss="cross_entropy", *,
                        accumulate: list[int] | tuple[int, ...] = (1, 2, 4),
                        weights: str = "size") -> dict[int, dict[str, float]]:
    """Relative error of the accumulated gradient against the full batch's,
    for several numbers of micro-batches.

    Each measurement runs on a fresh copy of ``model`` (in its current
    mode), so running statistics of norm layers start from the same state
    and ``model`` itself is never changed.

    Args:
        model, inputs, targets, loss: as in :func:`full_batch_grads`.
        accumulate: the numbers of equal micro-batches ``k`` to try.
        weights: see :func:`accumulated_grads`.

    Returns:
        ``{k: grad_error(...)}``: per-parameter and ``"total"`` errors.
    """
    reference = full_batch_grads(copy.deepcopy(model), inputs, targets, loss)
    return {k: grad_error(accumulated_grads(copy.deepcopy(model), inputs,
                                            targets, loss, accumulate=k,
                                            weights=weights), reference)
            for k in accumulate}


def plot_accumulation_error(errors: dict[str, float], ax=None, *,
                            label=None, color=None, floor: float = 1e-17):
    """Draw each weight matrix's relative gradient error as bars, log scale.

    Args:
        errors: one entry of :func:`accumulation_errors`
            (``{parameter name: error}``); the weights (names ending in
            ``weight``, norm layers' gains left out) are drawn in order.
        ax: Axes to draw on; a new figure when ``None``.
        label, color: passed to ``ax.bar``.
        floor: errors below it (exact zeros) are drawn at it, so a log axis
            can show them.

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    names = [n for n in errors
             if n.endswith("weight") and "norm" not in n]
    values = [max(errors[n], floor) for n in names]
    ax.bar(range(1, len(names) + 1), values, label=label, color=color)
    ax.set_yscale("log")
    ax.set_xlabel("weight matrix (1 = nearest the input)")
    ax.set_ylabel("relative gradient error")
    return ax

"""Per-layer gradient norms of any ``nn.Module`` from one backward pass.

A vanishing gradient shows as a profile of per-layer norms
``||dL/dW_l||`` that shrinks geometrically from the last layer to the first.
The functions here measure that profile for *any* model. A layer is a
weight matrix, listed in the order the forward pass uses it
(:mod:`gradlab.layers` defines both, for this module, the monitor and
``diagnose`` alike).
"""

from __future__ import annotations

import torch
from torch import nn

from .device import device_of, get_device
from .layers import ForwardTrace, forward_order
from .models import MLP
from .train import loss_function

__all__ = ["layer_grad_norms", "forward_order", "profile_at_init",
           "time_grad_norms"]


def layer_grad_norms(model: nn.Module, inputs: torch.Tensor,
                     targets: torch.Tensor, loss) -> dict[str, float]:
    """Return ``||dL/dW||_2`` for every weight matrix, in forward order.

    Runs one forward and one backward pass on ``(inputs, targets)`` with
    :func:`torch.autograd.grad`, so the model's ``.grad`` fields are left as
    they were. The model stays in its current mode (train or eval), which
    matters for batch norm and dropout.

    Args:
        model: any ``nn.Module``.
        inputs: a batch the model accepts; moved to the model's device.
        targets: the matching targets.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable
            ``loss(outputs, targets) -> scalar``.

    Returns:
        ``{name: norm}`` for the layers of :mod:`gradlab.layers`, e.g.
        ``{"layers.0.linear.weight": 0.31, ..., "head.weight": 1.7}``; the
        first key is the layer the forward pass uses first. A tied matrix
        has one key per module using it, each with the gradient of that
        use. A weight with no path to the loss gets ``0.0``; weights the
        forward pass never uses are left out.

    Raises:
        ValueError: the forward pass uses no weight matrix, or an unknown
            loss.

    Example:
        >>> norms = layer_grad_norms(model, X[:256], y[:256], "cross_entropy")
        >>> first, *_, last = norms.values()
        >>> first / last  # << 1 when gradients vanish
    """
    loss_fn = loss_function(loss)
    device = device_of(model)
    inputs, targets = inputs.to(device), targets.to(device)
    trace = ForwardTrace(model)
    try:
        with trace:
            outputs = model(inputs)
    finally:
        trace.remove_hooks()
    value = loss_fn(outputs, targets)
    names, tensors = trace.layers, trace.grad_tensors()
    if not names:
        raise ValueError(f"{type(model).__name__}'s forward pass uses no "
                         f"weight matrix (a parameter with >= 2 dims that "
                         f"requires grad)")
    grads = torch.autograd.grad(value, tensors, allow_unused=True)
    norms = torch.stack([g.norm() if g is not None else value.new_zeros(())
                         for g in grads])
    return dict(zip(names, norms.tolist()))  # one host sync


def profile_at_init(inputs: torch.Tensor, targets: torch.Tensor, *,
                    out_features: int, loss="cross_entropy", seed: int = 0,
                    device=None, **mlp_kwargs) -> dict[str, float]:
    """Build a freshly initialized :class:`~gradlab.models.MLP` and return
    its :func:`layer_grad_norms`.

    The weights come from a generator seeded with ``seed``, so the same
    arguments give the same profile.

    Args:
        inputs: ``[n, in_features]`` batch.
        targets: matching targets.
        out_features: outputs of the MLP (classes, for cross-entropy).
        loss: as in :func:`layer_grad_norms`.
        seed: seed of the initial weights.
        device: where to compute; ``None`` means :func:`get_device`.
        **mlp_kwargs: ``depth``, ``width``, ``activation``, ``init``, ...

    Returns:
        ``{layer: ||dL/dW||}`` in forward order.
    """
    model = MLP(inputs.shape[1], out_features,
                generator=torch.Generator().manual_seed(seed), **mlp_kwargs)
    model.to(get_device(device))
    return layer_grad_norms(model, inputs, targets, loss)


def time_grad_norms(model: nn.Module, inputs: torch.Tensor,
                    targets: torch.Tensor, loss) -> torch.Tensor:
    """Return ``||dL/dx_t||`` for every time step ``t`` of a sequence batch.

    How much gradient reaches each step of the input: for a recurrent
    network read out at the last step, ``dL/dx_t`` passes through the
    ``T - t`` recurrent Jacobians after ``t``,

    .. math:: \\frac{\\partial L}{\\partial x_t}
        = \\frac{\\partial L}{\\partial h_T}
          \\prod_{s=t+1}^{T} \\frac{\\partial h_s}{\\partial h_{s-1}}
          \\frac{\\partial h_t}{\\partial x_t},

    so it vanishes with ``T - t`` when those Jacobians are contractive
    (Bengio et al. 1994; Hochreiter & Schmidhuber 1997).

    Args:
        model: any ``nn.Module`` taking ``[B, T, F]`` float inputs.
        inputs: ``[B, T, F]``; moved to the model's device.
        targets: the matching targets.
        loss: as in :func:`layer_grad_norms`.

    Returns:
        ``[T]`` tensor on the CPU: the norm over batch and features of the
        gradient with respect to each step, ``sqrt(sum_{b,f} g_{b,t,f}^2)``.
        The model's ``.grad`` fields are left as they were.

    Raises:
        ValueError: ``inputs`` is not a 3-d floating-point tensor.
    """
    if inputs.dim() != 3 or not inputs.is_floating_point():
        raise ValueError(f"time_grad_norms needs float inputs [batch, time, "
                         f"features], got {tuple(inputs.shape)} "
                         f"{inputs.dtype}")
    loss_fn = loss_function(loss)
    device = device_of(model)
    x = inputs.to(device).detach().requires_grad_(True)   # [B, T, F]
    value = loss_fn(model(x), targets.to(device))
    (grad,) = torch.autograd.grad(value, x)               # [B, T, F]
    return grad.pow(2).sum(dim=(0, 2)).sqrt().cpu()       # [T]

"""Per-layer gradient norms of any ``nn.Module`` from one backward pass.

A vanishing gradient shows as a profile of per-layer norms
``||dL/dW_l||`` that shrinks geometrically from the last layer to the first.
The functions here measure that profile for *any* model: the layers are
the modules that own a weight matrix (``Linear``, ``Conv*``, ``RNN``/
``LSTM``/``GRU``, ``Embedding``, ...), listed in the order the forward pass
calls them.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .device import device_of, get_device
from .models import MLP
from .train import loss_function

__all__ = ["layer_grad_norms", "weight_parameters", "forward_order",
           "profile_at_init", "time_grad_norms"]


def weight_parameters(module: nn.Module):
    """Yield ``(name, parameter)`` for the module's own weight matrices.

    A weight matrix is a parameter with at least two dimensions whose name
    starts with ``weight`` (``weight``, ``weight_ih_l0``, ``weight_hh_l0``,
    ...). Biases and the 1-D gains of norm layers are left out: they do not
    take part in the product of Jacobians that makes gradients vanish.
    """
    for name, p in module.named_parameters(recurse=False):
        if name.startswith("weight") and p.dim() >= 2 and p.requires_grad:
            yield name, p


@contextmanager
def forward_order(model: nn.Module):
    """Record the names of weight-owning modules as the forward pass calls them.

    Yields a list that fills during the forward passes run inside the
    ``with``; each module appears once, at its first call. The hooks are
    removed on exit, also when the body raises.
    """
    order: list[str] = []
    handles = []

    def make_hook(name):
        def hook(module, args):
            if name not in seen:
                seen.add(name)
                order.append(name)
        return hook

    seen: set[str] = set()
    try:
        for name, module in model.named_modules():
            if any(True for _ in weight_parameters(module)):
                handles.append(module.register_forward_pre_hook(make_hook(name)))
        yield order
    finally:
        for h in handles:
            h.remove()


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
        ``{"<module>.<weight>": norm}``, e.g. ``{"layers.0.linear.weight":
        0.31, ..., "head.weight": 1.7}``; the first key is the layer nearest
        the input. A weight with no path to the loss gets ``0.0``.

    Raises:
        ValueError: the model has no weight matrix, or an unknown loss.

    Example:
        >>> norms = layer_grad_norms(model, X[:256], y[:256], "cross_entropy")
        >>> first, *_, last = norms.values()
        >>> first / last  # << 1 when gradients vanish
    """
    loss_fn = loss_function(loss)
    device = device_of(model)
    inputs, targets = inputs.to(device), targets.to(device)
    with forward_order(model) as order:
        value = loss_fn(model(inputs), targets)
    modules = dict(model.named_modules())
    names, weights = [], []
    for module_name in order:
        for name, p in weight_parameters(modules[module_name]):
            names.append(f"{module_name}.{name}" if module_name else name)
            weights.append(p)
    if not weights:
        raise ValueError(f"{type(model).__name__} has no weight matrix "
                         f"(a parameter named weight* with >= 2 dims) used "
                         f"in its forward pass")
    grads = torch.autograd.grad(value, weights, allow_unused=True)
    norms = torch.stack([g.norm() if g is not None else w.new_zeros(())
                         for g, w in zip(grads, weights)])
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

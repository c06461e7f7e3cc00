"""Choosing a learning rate: the stability limit of gradient descent on a
quadratic, and the learning-rate range test.

Gradient descent on ``f(x) = 1/2 x^T H x`` multiplies the component of
``x`` along each eigenvector of ``H`` by ``1 - lr * lambda`` per step, so it
converges iff ``lr < 2 / lambda_max`` (LeCun et al. 1998, "Efficient
BackProp"). A network's loss is not a quadratic, but near a minimum it is
close to one, with ``H`` its Hessian. The range test (Smith 2017, "Cyclical
learning rates for training neural networks") finds the region empirically:
raise the rate step by step and watch where the loss stops falling.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ._validate import check_choice, check_positive_int
from .device import get_device
from .train import loss_function

__all__ = ["max_stable_lr", "gd_on_quadratic", "lr_range_test",
           "RangeTest", "plot_range_test"]


def _check_hessian(hessian: torch.Tensor) -> None:
    if (not isinstance(hessian, torch.Tensor) or hessian.dim() != 2
            or hessian.shape[0] != hessian.shape[1]):
        shape = tuple(getattr(hessian, "shape", ()))
        raise ValueError(f"hessian must be a square [n, n] tensor, got "
                         f"{type(hessian).__name__} of shape {shape}")
    if not torch.allclose(hessian, hessian.T, rtol=1e-5, atol=1e-8):
        raise ValueError("hessian must be symmetric (a Hessian is); got "
                         f"max |H - H^T| = {(hessian - hessian.T).abs().max():.3g}")


def max_stable_lr(hessian: torch.Tensor) -> float:
    """Return the largest learning rate at which gradient descent on the
    quadratic ``f(x) = 1/2 x^T H x`` does not diverge: ``2 / lambda_max(H)``.

    On the eigenvector ``u`` of ``lambda``, one step maps ``x`` to
    ``(1 - lr * lambda) x``; the iteration contracts every component iff
    ``|1 - lr * lambda| < 1`` for every eigenvalue, i.e.
    ``0 < lr < 2 / lambda_max`` (LeCun et al. 1998). At exactly
    ``2 / lambda_max`` the top component oscillates with constant size.

    Args:
        hessian: ``[n, n]`` symmetric matrix with a positive top eigenvalue.

    Returns:
        ``2 / lambda_max`` as a float.

    Raises:
        ValueError: not square, not symmetric, or ``lambda_max <= 0`` (then
            no positive rate converges on the top direction).
    """
    _check_hessian(hessian)
    top = torch.linalg.eigvalsh(hessian.double()).max().item()
    if top <= 0:
        raise ValueError(f"the largest eigenvalue is {top:.3g} <= 0: the "
                         f"quadratic has no minimum and no rate converges")
    return 2.0 / top


def gd_on_quadratic(hessian: torch.Tensor, x0: torch.Tensor, lr: float,
                    steps: int) -> torch.Tensor:
    """Run gradient descent ``x <- x - lr * H x`` on ``f(x) = 1/2 x^T H x``.

    Args:
        hessian: ``[n, n]`` symmetric matrix.
        x0: ``[n]`` starting point.
        lr: learning rate (> 0).
        steps: iterations.

    Returns:
        ``[steps + 1]`` tensor of ``||x_k||``, ``k = 0..steps``.

    Raises:
        ValueError: a bad ``hessian``, ``lr`` or ``steps``.
    """
    _check_hessian(hessian)
    check_positive_int("steps", steps)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    x, norms = x0.clone(), [x0.norm()]
    for _ in range(steps):
        x = x - lr * (hessian @ x)                  # the gradient is H x
        norms.append(x.norm())
    return torch.stack(norms)


@dataclass
class RangeTest:
    """What :func:`lr_range_test` measured, one entry per step taken.

    Attributes:
        lrs: the learning rate of each step.
        losses: the smoothed training loss of each step (an exponential
            moving average with bias correction).
        diverged: whether the test stopped because the loss blew up.
    """

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    diverged: bool = False

    @property
    def best_lr(self) -> float:
        """The rate at which the smoothed loss was lowest. Smith's advice
        is to train somewhat below it (a tenth to a third of it)."""
        return self.lrs[min(range(len(self.losses)),
                            key=self.losses.__getitem__)]


def lr_range_test(model: nn.Module, train, *, loss, batch_size: int,
                  lr_min: float = 1e-5, lr_max: float = 10.0,
                  steps: int = 100, optimizer: str = "sgd",
                  smoothing: float = 0.8, diverge: float = 4.0,
                  generator: torch.Generator | None = None,
                  device=None) -> RangeTest:
    """Learning-rate range test: train with an exponentially increasing
    rate and record the loss, until it diverges.

    Step ``k`` (from 0) uses

    .. math:: \\text{lr}_k = \\text{lr}_{\\min}
        \\Big(\\frac{\\text{lr}_{\\max}}{\\text{lr}_{\\min}}\\Big)^{k/(K-1)},

    evenly spaced on a log axis (Smith 2017 ramps linearly; the
    exponential ramp covers several decades in few steps). The test stops
    when the loss is not finite or the smoothed loss exceeds ``diverge``
    times its lowest value. The model's weights are restored afterwards, so
    the test does not train it.

    Args:
        model: any ``nn.Module``.
        train: ``(inputs, targets)``.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable (as in ``fit``).
        batch_size: samples per step.
        lr_min, lr_max: the first and the last rate, ``0 < lr_min <
            lr_max``.
        steps: ``K``, the most steps taken (>= 2).
        optimizer: ``"sgd"`` or ``"adam"``.
        smoothing: ``beta`` of the moving average of the loss, in [0, 1).
        diverge: the stopping factor (> 1).
        generator: source of the batch order.
        device: where to run; ``None`` means :func:`~gradlab.get_device`.

    Returns:
        :class:`RangeTest`.

    Raises:
        ValueError: a bad argument, naming it and the valid values.
    """
    inputs, targets = train
    loss_fn = loss_function(loss)
    check_positive_int("steps", steps, minimum=2)
    check_positive_int("batch_size", batch_size)
    check_choice("optimizer", optimizer, ("sgd", "adam"))
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got lr_min={lr_min!r}, "
                         f"lr_max={lr_max!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if not diverge > 1:
        raise ValueError(f"diverge must be > 1, got {diverge!r}")
    if batch_size > len(inputs):
        raise ValueError(f"batch_size={batch_size} is larger than the "
                         f"training set ({len(inputs)} samples)")
    device = get_device(device)
    model.to(device)
    inputs, targets = inputs.to(device), targets.to(device)
    saved = copy.deepcopy(model.state_dict())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=lr_min) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr_min))
    if generator is None:
        generator = torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, (1,)).item()))
    per_epoch = len(inputs) // batch_size
    result, average, best = RangeTest(), 0.0, math.inf
    was_training = model.training
    model.train()
    try:
        for k in range(steps):
            lr = lr_min * (lr_max / lr_min) ** (k / (steps - 1))
            if k % per_epoch == 0:
                order = torch.randperm(len(inputs), generator=generator)
            start = (k % per_epoch) * batch_size
            idx = order[start:start + batch_size].to(device)  # [batch_size]
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            value = loss_fn(model(inputs[idx]), targets[idx])
            raw = value.item()
            if not math.isfinite(raw):
                result.diverged = True
                break
            value.backward()
            opt.step()
            # bias-corrected moving average, as Adam corrects its moments
            average = smoothing * average + (1 - smoothing) * raw
            smooth = average / (1 - smoothing ** (k + 1))
            result.lrs.append(lr)
            result.losses.append(smooth)
            best = min(best, smooth)
            if smooth > diverge * best:
                result.diverged = True
                break
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    return result


def plot_range_test(result: RangeTest, ax=None):
    """Draw a :class:`RangeTest`: smoothed loss against the rate (log
    axis), with the best rate marked.

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.grid(True, alpha=0.3)
    ax.plot(result.lrs, result.losses, color="#1f77b4")
    ax.axvline(result.best_lr, color="k", ls=":", lw=1)
    # the diverging tail would flatten the rest: cap at 1.5x the start
    top = 1.5 * max(result.losses[0], min(result.losses))
    if max(result.losses) > top:
        ax.set_ylim(0, top)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    return ax

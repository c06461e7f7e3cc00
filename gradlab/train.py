"""One training loop for the whole book.

``fit`` is a plain PyTorch loop (sample a batch, forward, backward, step)
with the knobs the chapters turn: gradient accumulation, norm clipping,
weight decay, an L1 penalty, momentum, Adam or AdamW, a linear learning-rate
warm-up, and a monitor. It stops with
:class:`NonFiniteLossError` the first time the loss is not finite, before
that step touches the weights.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import check_choice, check_positive_int
from .device import device_of, get_device

__all__ = ["fit", "History", "NonFiniteLossError", "accuracy", "LOSSES",
           "OPTIMIZERS", "loss_function"]



def _tensor_output(name: str, output) -> None:
    """A named loss needs the model's output to be one tensor; say what to
    do for a model that returns a dict or a tuple (as many do)."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"the model returned a {type(output).__name__}, and loss "
            f"{name!r} needs one tensor of outputs; pass a callable loss "
            f"that picks it, e.g. loss=lambda out, y: "
            f"F.cross_entropy(out['logits'], y)")


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor):
    """Cross-entropy that also takes sequence logits ``[B, T, C]`` with
    targets ``[B, T]``: the mean over every position of every sequence."""
    _tensor_output("cross_entropy", logits)
    if logits.dim() == 3:
        return nn.functional.cross_entropy(logits.flatten(0, 1),
                                           targets.flatten())
    return nn.functional.cross_entropy(logits, targets)


def _mse(outputs: torch.Tensor, targets: torch.Tensor):
    """Mean squared error over every entry."""
    _tensor_output("mse", outputs)
    return nn.functional.mse_loss(outputs, targets)


LOSSES = {"cross_entropy": _cross_entropy, "mse": _mse}
OPTIMIZERS = ("sgd", "adam", "adamw")
# Normalization layers whose train-mode output depends on the whole batch.
_BATCH_NORMS = nn.modules.batchnorm._BatchNorm


@dataclass
class History:
    """What :func:`fit` recorded, one entry per optimizer step.

    Attributes:
        loss: training loss of the step's batch (mean over the full batch,
            also when it was accumulated from micro-batches), without the
            ``l1`` penalty.
        grad_norm: total L2 norm of all gradients *before* clipping,
            ``sqrt(sum_p ||g_p||^2)``.
        config: the arguments ``fit`` ran with.
    """

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.loss)


class NonFiniteLossError(FloatingPointError):
    """The loss became ``inf`` or ``nan``: the optimization diverged.

    Attributes:
        step: index (from 0) of the step whose loss was not finite. That
            step made no update, so the model holds the weights that
            produced the bad loss.
        loss: the non-finite value.
        history: :class:`History` of the steps before ``step``.
    """

    def __init__(self, step: int, loss: float, history: History):
        self.step, self.loss, self.history = step, loss, history
        n = len(history)
        super().__init__(
            f"loss became {loss} at step {step} (lr={history.config.get('lr')});"
            f" the {n} finite step{'' if n == 1 else 's'} before it "
            f"{'is' if n == 1 else 'are'} in .history. Lower the learning "
            f"rate or clip the gradient norm.")


def fit(model: nn.Module, train, *, loss, steps: int, batch_size: int,
        lr: float, optimizer: str = "sgd", momentum: float = 0.0,
        weight_decay: float = 0.0, l1: float = 0.0, warmup: int = 0,
        accumulate: int = 1, clip_norm: float | None = None, monitor=None,
        generator: torch.Generator | None = None, device=None,
        progress: bool = True) -> History:
    """Train ``model`` in place for ``steps`` optimizer steps.

    Batches are drawn without replacement from a fresh random order of the
    training set at every epoch (the last partial batch is dropped).

    With ``accumulate=k`` each batch is split into ``k`` micro-batches of
    ``batch_size // k`` samples and each micro-batch loss is scaled by
    ``1/k`` before ``backward``. Because the loss is a *mean*,

    .. math:: \\nabla \\frac{1}{B}\\sum_{i=1}^{B} \\ell_i
        = \\sum_{j=1}^{k} \\frac{1}{k}\\, \\nabla \\frac{1}{B/k}
          \\sum_{i \\in \\text{micro}_j} \\ell_i ,

    so the step is exactly the full batch's (up to float rounding; batch
    norm breaks this, as it normalizes over each micro-batch).

    ``clip_norm=c`` rescales all gradients together when their total norm
    ``||g||`` exceeds ``c``: ``g <- g * c / ||g||`` (Pascanu et al. 2013),
    via :func:`torch.nn.utils.clip_grad_norm_`.

    ``weight_decay=lam`` is handed to the optimizer. For SGD that is exactly
    an L2 term ``lam/2 * ||w||^2`` in the loss (its gradient is ``lam * w``);
    for Adam it is the same L2 gradient, rescaled by Adam's per-weight step
    sizes; ``"adamw"`` instead shrinks the weights directly,
    ``w <- w - lr * lam * w``, outside the adaptive step (Loshchilov &
    Hutter 2019). All of them also decay biases and norm gains.

    ``l1=lam`` adds ``lam * sum_W |W|`` over the weight matrices (parameters
    with >= 2 dims; biases and norm gains are not penalized) to the loss,
    once per step. Its gradient is ``lam * sign(W)``, and it is part of
    ``.grad``: clipping, ``History.grad_norm`` and a monitor see the
    penalty's gradient together with the data loss's. (``weight_decay``
    acts inside the optimizer step and is in none of them.)

    ``warmup=k``: step ``s`` (from 0) uses ``lr * min(1, (s + 1) / k)``, a
    linear warm-up (Goyal et al. 2017).

    With ``accumulate > 1``, batch norm in train mode normalizes each
    micro-batch alone, so the step is not the full batch's; ``fit`` warns
    then, naming the layers. LayerNorm and GroupNorm are per-sample and
    do not warn.

    Args:
        model: any ``nn.Module``; moved to ``device``.
        train: ``(inputs, targets)`` tensors with the same first dimension.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable
            ``loss(outputs, targets) -> scalar`` that returns a mean.
        steps: optimizer steps.
        batch_size: samples per step (before splitting for accumulation).
        lr: learning rate.
        optimizer: ``"sgd"`` (with ``momentum``), ``"adam"`` or
            ``"adamw"``.
        momentum: SGD momentum in [0, 1).
        weight_decay: decay coefficient handed to the optimizer (see above).
        l1: L1 penalty coefficient on the weight matrices.
        warmup: steps of linear learning-rate warm-up; 0 for none.
        accumulate: micro-batches per step; must divide ``batch_size``.
        clip_norm: maximum total gradient norm, or ``None``.
        monitor: a ``gradlab.GradientMonitor`` (or anything with a
            ``step()`` method), called after every optimizer step.
        generator: source of the batch order; ``None`` draws a seed from
            torch's global generator, so ``seed_everything`` fixes it.
        device: where to train; ``None`` means :func:`get_device`.
        progress: show a progress bar.

    Returns:
        :class:`History`.

    Raises:
        ValueError: a bad argument (the message names it and the valid
            values).
        NonFiniteLossError: the loss became ``inf`` or ``nan``.

    Warns:
        UserWarning: ``accumulate > 1`` on a model with batch norm.
    """
    inputs, targets = _check_train(train)
    loss_fn = loss_function(loss)
    _check_fit_args(steps=steps, batch_size=batch_size, lr=lr,
                    optimizer=optimizer, momentum=momentum,
                    weight_decay=weight_decay, l1=l1, warmup=warmup,
                    accumulate=accumulate, clip_norm=clip_norm,
                    n=len(inputs))
    if accumulate > 1:
        _warn_batch_norm(model, accumulate)
    device = get_device(device)
    model.to(device)
    inputs, targets = inputs.to(device), targets.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    # Matrices only: biases and norm gains are vectors and are not penalized.
    penalized = [p for p in params if p.dim() >= 2] if l1 else []
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum,
                              weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator().manual_seed(seed)

    history = History(config=dict(
        steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer,
        momentum=momentum, weight_decay=weight_decay, l1=l1, warmup=warmup,
        accumulate=accumulate, clip_norm=clip_norm, device=str(device)))
    micro = batch_size // accumulate
    per_epoch = len(inputs) // batch_size
    was_training = model.training
    model.train()
    bar = tqdm(total=steps, disable=not progress, leave=False, desc="fit")
    try:
        for step in range(steps):
            if step % per_epoch == 0:  # a new epoch: a new order, on device
                order = torch.randperm(len(inputs), generator=generator)
                order = order.to(device)
            start = (step % per_epoch) * batch_size
            batch = order[start:start + batch_size]          # [batch_size]
            opt.zero_grad(set_to_none=True)
            if warmup:
                for group in opt.param_groups:
                    group["lr"] = lr * min(1.0, (step + 1) / warmup)
            if penalized:  # once per step, not once per micro-batch
                (l1 * sum(p.abs().sum() for p in penalized)).backward()
            step_loss = 0.0
            for j in range(accumulate):
                idx = batch[j * micro:(j + 1) * micro]       # [micro]
                part = loss_fn(model(inputs[idx]), targets[idx]) / accumulate
                part.backward()
                step_loss = step_loss + part.detach()
            if clip_norm is not None:
                norm = nn.utils.clip_grad_norm_(params, clip_norm)
            else:
                norm = nn.utils.get_total_norm(
                    [p.grad for p in params if p.grad is not None])
            # The step's single host sync: the loss and the norm together.
            loss_value, norm_value = torch.stack([step_loss, norm]).tolist()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(step, loss_value, history)
            opt.step()
            history.loss.append(loss_value)
            history.grad_norm.append(norm_value)
            if monitor is not None:
                monitor.step()
            bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
            bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return history


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor,
             targets: torch.Tensor) -> float:
    """Return the fraction of ``inputs`` whose arg-max class is ``targets``.

    Runs in eval mode (dropout off, batch norm on running statistics) and
    restores the model's mode afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        device = device_of(model)
        logits = model(inputs.to(device))                  # [n, classes]
        return (logits.argmax(dim=1) == targets.to(device)).float().mean().item()
    finally:
        model.train(was_training)


def _check_train(train):
    if (not isinstance(train, (tuple, list)) or len(train) != 2
            or not all(isinstance(t, torch.Tensor) for t in train)):
        raise ValueError("train must be an (inputs, targets) pair of tensors, "
                         f"got {type(train).__name__}")
    inputs, targets = train
    if len(inputs) != len(targets):
        raise ValueError(f"inputs and targets differ in length: "
                         f"{len(inputs)} vs {len(targets)}")
    return inputs, targets


def loss_function(loss):
    """Resolve ``"cross_entropy"``, ``"mse"`` or a callable to a loss
    function that averages over the batch.

    Raises:
        ValueError: an unknown name, a non-callable, or a loss whose
            ``reduction`` is not ``"mean"``.
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid: "
                             f"{', '.join(LOSSES)} or a callable")
        return LOSSES[loss]
    if not callable(loss):
        raise ValueError(f"loss must be one of {', '.join(LOSSES)} or a "
                         f"callable, got {loss!r}")
    reduction = getattr(loss, "reduction", "mean")
    if reduction != "mean":
        raise ValueError(f"loss must average over the batch (reduction="
                         f"'mean'), got reduction={reduction!r}; accumulation "
                         f"and learning rates assume a mean")
    return loss


def _warn_batch_norm(model: nn.Module, accumulate: int) -> None:
    names = [name for name, m in model.named_modules()
             if isinstance(m, _BATCH_NORMS)]
    if names:
        warnings.warn(
            f"accumulate={accumulate} with batch norm ({', '.join(names)}): "
            f"in train mode each micro-batch is normalized with its own "
            f"statistics, so the accumulated step is not the full batch's. "
            f"LayerNorm or GroupNorm would make it exact.", UserWarning,
            stacklevel=3)


def _check_fit_args(*, steps, batch_size, lr, optimizer, momentum,
                    weight_decay, l1, warmup, accumulate, clip_norm, n):
    for name, value in (("steps", steps), ("batch_size", batch_size),
                        ("accumulate", accumulate)):
        check_positive_int(name, value)
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the "
                         f"training set ({n} samples)")
    if batch_size % accumulate != 0:
        divisors = [d for d in range(1, batch_size + 1) if batch_size % d == 0]
        raise ValueError(f"batch_size={batch_size} is not divisible by "
                         f"accumulate={accumulate}; valid accumulate values "
                         f"for this batch size: {divisors}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if momentum and optimizer != "sgd":
        raise ValueError(f"momentum={momentum!r} applies to optimizer='sgd' "
                         f"only; {optimizer!r} keeps its own moment estimates")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not (isinstance(l1, (int, float)) and l1 >= 0):
        raise ValueError(f"l1 must be a number >= 0, got {l1!r}")
    check_positive_int("warmup", warmup, minimum=0)
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm!r}")

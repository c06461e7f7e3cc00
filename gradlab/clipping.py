"""Exploding gradients in a recurrence, and the two ways to clip them.

Chapter 8's measurements: in a *linear* recurrence ``h_t = W h_{t-1} + x_t``
with ``W = rho * Q`` (``Q`` orthogonal) the gradient that reaches ``h_{T-k}``
is exactly ``rho^k`` times the one at ``h_T``; and clipping a gradient by its
norm keeps its direction while clipping each entry by value does not.
Compute functions return data; the ``plot_*`` functions only draw.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._validate import check_positive_int

__all__ = ["orthogonal_recurrence", "rho_power_profile", "rho_power_sweep",
           "clip_comparison", "plot_rho_power", "plot_clipping"]


def orthogonal_recurrence(rho: float, hidden: int, *,
                          generator: torch.Generator,
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Return ``W = rho * Q`` with ``Q`` a random orthogonal matrix.

    ``Q`` is the ``Q`` factor of the QR decomposition of a standard normal
    matrix, its columns' signs fixed by ``R``'s diagonal (Mezzadri 2007), so
    it is uniform over the orthogonal group. Every singular value of ``W``
    is ``rho``: ``||W^k v|| = rho^k ||v||`` for every vector ``v``.

    Args:
        rho: the scale, the spectral norm of ``W``; must be > 0.
        hidden: the size of ``W``.
        generator: source of randomness.
        dtype: of the result.

    Returns:
        ``[hidden, hidden]`` tensor.

    Raises:
        ValueError: ``rho <= 0`` or ``hidden < 1``.
    """
    if not (isinstance(rho, (int, float)) and rho > 0):
        raise ValueError(f"rho must be a number > 0, got {rho!r}")
    check_positive_int("hidden", hidden)
    a = torch.randn(hidden, hidden, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))          # [hidden, hidden]
    return (rho * q).to(dtype)


def rho_power_profile(rho: float, T: int, *, hidden: int = 16,
                      batch: int = 4, seed: int = 0) -> dict:
    """Backpropagate through ``T`` steps of a linear recurrence and measure
    how the gradient grows or shrinks with the distance ``k`` from the end.

    The recurrence is ``h_t = W h_{t-1} + x_t`` for ``t = 1..T`` with
    ``W = rho * Q`` (:func:`orthogonal_recurrence`), random inputs ``x_t``
    and ``h_0``, and the loss ``L = mean_b <v_b, h_T>``. By the chain rule

    .. math:: \\frac{\\partial L}{\\partial h_{T-k}}
        = (W^\\top)^k \\frac{\\partial L}{\\partial h_T},
        \\qquad \\Big\\|\\frac{\\partial L}{\\partial h_{T-k}}\\Big\\|
        = \\rho^k \\Big\\|\\frac{\\partial L}{\\partial h_T}\\Big\\| ,

    exactly, since ``Q`` preserves norms: the linear case of Pascanu et al.
    (2013), "On the difficulty of training recurrent neural networks".
    Computed in float64.

    Args:
        rho: scale of the recurrent matrix (> 0).
        T: time steps (>= 1).
        hidden: state size.
        batch: sequences.
        seed: seed of ``W``, the inputs and ``v``.

    Returns:
        ``dict(k=[0..T], measured=[T + 1], predicted=[T + 1], grad=...)``:
        ``measured[k] = ||dL/dh_{T-k}|| / ||dL/dh_T||`` from autograd,
        ``predicted[k] = rho**k``, and ``grad`` the ``[hidden, hidden]``
        gradient ``dL/dW`` (float64), the sum of every step's contribution.

    Raises:
        ValueError: a bad ``rho``, ``T``, ``hidden`` or ``batch``.
    """
    check_positive_int("T", T)
    check_positive_int("batch", batch)
    g = torch.Generator().manual_seed(seed)
    W = orthogonal_recurrence(rho, hidden, generator=g).requires_grad_(True)
    x = torch.randn(T, batch, hidden, generator=g, dtype=torch.float64)
    v = torch.randn(batch, hidden, generator=g, dtype=torch.float64)
    h = torch.randn(batch, hidden, generator=g, dtype=torch.float64)
    states = [h.requires_grad_(True)]               # h_0 .. h_T, [B, H] each
    for t in range(T):
        h = h @ W.T + x[t]                          # [B, H]
        h.retain_grad()
        states.append(h)
    loss = (v * h).sum(dim=1).mean()
    loss.backward()
    norms = [s.grad.norm().item() for s in reversed(states)]  # k = 0..T
    return dict(k=list(range(T + 1)),
                measured=[n / norms[0] for n in norms],
                predicted=[float(rho) ** k for k in range(T + 1)],
                grad=W.grad.detach())


def rho_power_sweep(rhos, lengths, **kwargs) -> dict:
    """:func:`rho_power_profile` over a grid: the measured and predicted
    ``||dL/dh_0|| / ||dL/dh_T||`` for every ``rho`` and every ``T``.

    Args:
        rhos: scales, e.g. ``[0.9, 1.0, 1.1]``.
        lengths: sequence lengths ``T``.
        **kwargs: ``hidden``, ``batch``, ``seed``.

    Returns:
        ``dict(measured=..., predicted=...)``, each ``[len(rhos),
        len(lengths)]`` float64 tensors.
    """
    measured = torch.tensor([[rho_power_profile(r, t, **kwargs)["measured"][-1]
                              for t in lengths] for r in rhos],
                            dtype=torch.float64)
    predicted = torch.tensor([[float(r) ** t for t in lengths] for r in rhos],
                             dtype=torch.float64)
    return dict(measured=measured, predicted=predicted)


def clip_comparison(grad: torch.Tensor, max_norm: float,
                    clip_value: float | None = None) -> dict:
    """Clip one gradient by norm and by value; compare with the raw one.

    By norm (Pascanu et al. 2013; :func:`torch.nn.utils.clip_grad_norm_`):
    ``g <- g * min(1, c / ||g||)``, one factor for every entry, so the
    direction is kept. By value (:func:`torch.nn.utils.clip_grad_value_`):
    ``g_i <- clamp(g_i, -a, a)`` entry by entry, which changes the
    direction as soon as some entries are clamped and others are not.

    Args:
        grad: the gradient, any shape (not changed).
        max_norm: ``c``, the norm threshold (> 0).
        clip_value: ``a``, the per-entry threshold (> 0); by default
            ``c / sqrt(numel)``, the threshold at which a gradient whose
            entries all get clamped ends with norm ``c``.

    Returns:
        ``dict(raw_norm, norm_clipped_norm, value_clipped_norm, cos_norm,
        cos_value, clip_value)`` as floats; ``cos_*`` is the cosine between
        the clipped and the raw gradient.

    Raises:
        ValueError: a threshold that is not > 0.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    if clip_value is None:
        clip_value = max_norm / math.sqrt(grad.numel())
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value!r}")
    clipped = {}
    for how in ("norm", "value"):
        p = nn.Parameter(torch.zeros_like(grad))
        p.grad = grad.detach().clone()
        if how == "norm":
            nn.utils.clip_grad_norm_([p], max_norm)
        else:
            nn.utils.clip_grad_value_([p], clip_value)
        clipped[how] = p.grad.flatten()
    raw = grad.detach().flatten()

    def cosine(a):
        return nn.functional.cosine_similarity(a, raw, dim=0).item()

    return dict(raw_norm=raw.norm().item(),
                norm_clipped_norm=clipped["norm"].norm().item(),
                value_clipped_norm=clipped["value"].norm().item(),
                cos_norm=cosine(clipped["norm"]),
                cos_value=cosine(clipped["value"]),
                clip_value=float(clip_value))


def plot_rho_power(profile: dict, ax=None):
    """Draw a :func:`rho_power_profile`: measured ratio per ``k`` (dots)
    and ``rho^k`` (line), on a log scale.

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    ax.grid(True, alpha=0.3)
    ax.plot(profile["k"], profile["predicted"], color="k", lw=1,
            label=r"$\rho^k$")
    ax.plot(profile["k"], profile["measured"], "o", ms=3, color="#1f77b4",
            label="autograd")
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the end, $k$")
    ax.set_ylabel(r"$\|\partial L/\partial h_{T-k}\| \,/\, "
                  r"\|\partial L/\partial h_T\|$")
    ax.legend(frameon=False)
    return ax


def plot_clipping(comparison: dict, ax=None, *, max_norm=None):
    """Draw a :func:`clip_comparison`: the gradient norm raw, clipped by
    norm and clipped by value (bars), each with its cosine to the raw
    gradient; a dotted line at ``max_norm`` when given.

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    ax.grid(True, axis="y", alpha=0.3)
    labels = ["raw", f"by norm\ncos {comparison['cos_norm']:.3f}",
              f"by value\ncos {comparison['cos_value']:.3f}"]
    values = [comparison["raw_norm"], comparison["norm_clipped_norm"],
              comparison["value_clipped_norm"]]
    ax.bar(labels, values, color=["#7f7f7f", "#1f77b4", "#ff7f0e"])
    if max_norm is not None:
        ax.axhline(max_norm, color="k", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel(r"$\|\partial L / \partial W\|$")
    return ax

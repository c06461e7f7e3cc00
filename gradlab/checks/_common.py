"""What every lab's checks share: the failure type and result coercion."""

from __future__ import annotations

import torch

from ..data import digits
from ..grads import profile_at_init

__all__ = ["CheckFailed", "fail", "as_floats", "as_tensor", "close",
           "mistake_hint", "TOLERANCE", "first_vanishing_depth"]

# Tensors a student computes in float32 agree with the reference to this.
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


class CheckFailed(AssertionError):
    """A lab check did not pass; the message says why."""


def fail(message: str):
    """Raise :class:`CheckFailed` with ``message``."""
    raise CheckFailed(message)


def as_floats(result, what: str) -> list[float]:
    """``result`` (a list, tuple, dict of values or tensor) as floats."""
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, torch.Tensor):
        result = result.tolist()
    if not isinstance(result, (list, tuple)):
        fail(f"{what} should return a list of floats, got "
             f"{type(result).__name__}")
    try:
        return [float(v) for v in result]
    except (TypeError, ValueError):
        fail(f"{what} should return a list of floats, got {result!r:.200}")


def as_tensor(result, what: str, shape) -> torch.Tensor:
    """``result`` as a tensor of ``shape``, or a :class:`CheckFailed` that
    says what came back instead."""
    if not isinstance(result, torch.Tensor):
        fail(f"{what} should return a tensor, got {type(result).__name__}")
    if tuple(result.shape) != tuple(shape):
        fail(f"{what} should return shape {tuple(shape)}, got "
             f"{tuple(result.shape)}")
    if not torch.isfinite(result).all():
        fail(f"{what} returned non-finite values")
    return result


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and equal within :data:`TOLERANCE`."""
    return a.shape == b.shape and torch.allclose(a, b, **TOLERANCE)


def mistake_hint(got: torch.Tensor, candidates: dict) -> str:
    """The explanation of the first known mistake that ``got`` matches.

    Args:
        got: what the student's function returned.
        candidates: ``{"explanation": what that mistake returns}``.

    Returns:
        ``" It matches <explanation>."`` or ``""``.
    """
    for why, value in candidates.items():
        if close(got, value):
            return f" It matches {why}."
    return ""


def first_vanishing_depth(threshold: float, *, max_depth: int, width: int,
                          seed: int, **mlp_kwargs) -> int:
    """The smallest depth of a freshly initialized MLP (PyTorch's default
    init, on the first 256 training digits) whose first/last gradient-norm
    ratio is below ``threshold``; ``-1`` when none up to ``max_depth`` is.

    ``mlp_kwargs`` (``activation``, ``residual``) pick the lab's network.
    """
    X, y, _, _ = digits(seed=0)
    for depth in range(1, max_depth + 1):
        norms = list(profile_at_init(X[:256], y[:256], out_features=10,
                                     depth=depth, width=width,
                                     init="default", seed=seed,
                                     device="cpu", **mlp_kwargs).values())
        if norms[0] < threshold * norms[-1]:
            return depth
    return -1

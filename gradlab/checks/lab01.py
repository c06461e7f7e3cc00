"""Lab 01 checks: per-layer gradient norms and the depth of vanishing."""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from ..grads import layer_grad_norms
from ..models import MLP
from ._common import first_vanishing_depth, as_floats, fail
from ._protocol import Check

__all__ = ["check_grad_norms", "check_vanishing_depth",
           "vanishing_depth_reference", "GRAD_NORMS", "VANISHING_DEPTH"]


# -- check_grad_norms ------------------------------------------------------

def _grad_norm_cases(rng, trials: int = 3) -> list[dict]:
    return [dict(depth=rng.randint(2, 6),
                 activation=rng.choice(["sigmoid", "tanh", "relu"]),
                 seed=rng.randrange(2**31)) for _ in range(trials)]


def _grad_norm_setup(case):
    """The model and batch a case describes; the same on both sides."""
    g = torch.Generator().manual_seed(case["seed"])
    model = MLP(8, 3, depth=case["depth"], width=16,
                activation=case["activation"], generator=g)
    inputs = torch.randn(32, 8, generator=g)
    targets = torch.randint(0, 3, (32,), generator=g)
    return model, inputs, targets


def _call_grad_norms(grad_norms, case):
    return as_floats(grad_norms(*_grad_norm_setup(case)), "grad_norms")


def _judge_grad_norms(case, got):
    expected = layer_grad_norms(*_grad_norm_setup(case), "cross_entropy")
    got = as_floats(got, "grad_norms")
    depth, activation = case["depth"], case["activation"]
    setup = (f"(MLP with depth={depth}, activation={activation!r}: "
             f"{depth} hidden layers + the head)")
    if len(got) != len(expected):
        fail(f"grad_norms returned {len(got)} norms, expected "
             f"{len(expected)}, one per weight matrix {setup}")
    for i, (name, want) in enumerate(expected.items()):
        if not math.isclose(got[i], want, rel_tol=1e-4, abs_tol=1e-10):
            hint = ""
            if any(math.isclose(got[i], w, rel_tol=1e-4)
                   for w in expected.values()):
                hint = " (that is another layer's norm: check the order)"
            fail(f"layer {i + 1} ({name}) {setup}: expected norm "
                 f"{want:.6g}, got {got[i]:.6g}{hint}")


GRAD_NORMS = Check("check_grad_norms", "grad_norms", _grad_norm_cases,
                   _call_grad_norms, _judge_grad_norms)


def check_grad_norms(grad_norms, *, seed: int | None = None):
    """Check ``grad_norms(model, inputs, targets) -> list[float]``.

    The function must return ``||dL/dW||`` for every weight matrix of a
    :class:`~gradlab.models.MLP` (hidden layers, then the head), in forward
    order, with cross-entropy loss. It is run on 3 random networks
    (depth 2-6, sigmoid, tanh or ReLU) and random inputs.

    Raises:
        CheckFailed: wrong type, wrong number of layers or wrong values.
    """
    GRAD_NORMS.run_local(grad_norms, seed=seed)


# -- check_vanishing_depth -------------------------------------------------

@lru_cache(maxsize=32)  # a grader judges the same cases for every student
def vanishing_depth_reference(threshold: float = 1e-6, *, width: int = 32,
                              seed: int = 0, max_depth: int = 60) -> int:
    """The smallest depth whose first/last gradient-norm ratio is below
    ``threshold``, for the lab's sigmoid MLP (see lab 01).

    Returns ``-1`` when no depth up to ``max_depth`` is enough.
    """
    return first_vanishing_depth(threshold, max_depth=max_depth, width=width,
                                 seed=seed, activation="sigmoid")


def _depth_cases(rng) -> list[dict]:
    # Fixed cases: the reference costs a profile per depth, so three cases
    # of different threshold, width and seed keep the check quick.
    return [dict(threshold=1e-6, width=32, seed=0),
            dict(threshold=1e-3, width=32, seed=1),
            dict(threshold=1e-9, width=16, seed=2)]


def _call_depth(vanishing_depth, case):
    got = vanishing_depth(case["threshold"], width=case["width"],
                          seed=case["seed"])
    if isinstance(got, bool) or not isinstance(got, int):
        fail(f"vanishing_depth({_args(case)}) should return an int, got "
             f"{got!r:.100}")
    return got


def _judge_depth(case, got):
    want = vanishing_depth_reference(**case)
    if isinstance(got, bool) or not isinstance(got, int):
        fail(f"vanishing_depth({_args(case)}) should return an int, got "
             f"{got!r:.100}")
    if got != want:
        direction = "too deep" if got > want else "too shallow"
        fail(f"vanishing_depth({_args(case)}) returned {got}, expected "
             f"{want} ({direction}): at depth {want} the first layer's "
             f"gradient is the first to fall below {case['threshold']:g} "
             f"times the last layer's")


def _args(case) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in case.items())


VANISHING_DEPTH = Check("check_vanishing_depth", "vanishing_depth",
                        _depth_cases, _call_depth, _judge_depth)


def check_vanishing_depth(vanishing_depth):
    """Check ``vanishing_depth(threshold, *, width, seed) -> int`` against
    :func:`vanishing_depth_reference` for several thresholds and seeds.

    Raises:
        CheckFailed: a wrong type or a wrong depth, with the case.
    """
    VANISHING_DEPTH.run_local(vanishing_depth)

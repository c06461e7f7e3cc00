"""Lab 01 checks: per-layer gradient norms and the depth of vanishing."""

from __future__ import annotations

import math
import random

import torch

from ..data import digits
from ..grads import layer_grad_norms, profile_at_init
from ..models import MLP
from ._common import as_floats as _as_floats
from ._common import fail as _fail

__all__ = ["check_grad_norms", "check_vanishing_depth",
           "vanishing_depth_reference"]


def check_grad_norms(grad_norms, *, trials: int = 3, seed: int | None = None):
    """Check ``grad_norms(model, inputs, targets) -> list[float]``.

    The function must return ``||dL/dW||`` for every weight matrix of a
    :class:`~gradlab.models.MLP` (hidden layers, then the head), in forward
    order, with cross-entropy loss. It is run on ``trials`` random networks
    (depth 2-6, sigmoid, tanh or ReLU) and random inputs.

    Raises:
        CheckFailed: wrong type, wrong number of layers or wrong values.
    """
    rng = random.Random(seed)
    for _ in range(trials):
        depth = rng.randint(2, 6)
        activation = rng.choice(["sigmoid", "tanh", "relu"])
        g = torch.Generator().manual_seed(rng.randrange(2**31))
        model = MLP(8, 3, depth=depth, width=16, activation=activation,
                    generator=g)
        inputs = torch.randn(32, 8, generator=g)
        targets = torch.randint(0, 3, (32,), generator=g)
        expected = layer_grad_norms(model, inputs, targets, "cross_entropy")
        for p in model.parameters():
            p.grad = None
        got = _as_floats(grad_norms(model, inputs, targets), "grad_norms")
        setup = (f"(MLP with depth={depth}, activation={activation!r}: "
                 f"{depth} hidden layers + the head)")
        if len(got) != len(expected):
            _fail(f"grad_norms returned {len(got)} norms, expected "
                  f"{len(expected)}, one per weight matrix {setup}")
        for i, (name, want) in enumerate(expected.items()):
            if not math.isclose(got[i], want, rel_tol=1e-4, abs_tol=1e-10):
                hint = ""
                if any(math.isclose(got[i], w, rel_tol=1e-4)
                       for w in expected.values()):
                    hint = " (that is another layer's norm: check the order)"
                _fail(f"layer {i + 1} ({name}) {setup}: expected norm "
                      f"{want:.6g}, got {got[i]:.6g}{hint}")
    print(f"check_grad_norms: passed on {trials} random networks")


def vanishing_depth_reference(threshold: float = 1e-6, *, width: int = 32,
                              seed: int = 0, max_depth: int = 60) -> int:
    """The smallest depth whose first/last gradient-norm ratio is below
    ``threshold``, for the lab's sigmoid MLP (see lab 01).

    Returns ``-1`` when no depth up to ``max_depth`` is enough.
    """
    X, y, _, _ = digits(seed=0)
    for depth in range(1, max_depth + 1):
        norms = list(profile_at_init(X[:256], y[:256], out_features=10,
                                     depth=depth, width=width,
                                     activation="sigmoid", init="default",
                                     seed=seed, device="cpu").values())
        if norms[0] < threshold * norms[-1]:
            return depth
    return -1


def check_vanishing_depth(vanishing_depth):
    """Check ``vanishing_depth(threshold, *, width, seed) -> int`` against
    :func:`vanishing_depth_reference` for several thresholds and seeds.

    Raises:
        CheckFailed: a wrong type or a wrong depth, with the case.
    """
    cases = [dict(threshold=1e-6, width=32, seed=0),
             dict(threshold=1e-3, width=32, seed=1),
             dict(threshold=1e-9, width=16, seed=2)]
    for case in cases:
        want = vanishing_depth_reference(**case)
        got = vanishing_depth(case["threshold"], width=case["width"],
                              seed=case["seed"])
        args = ", ".join(f"{k}={v!r}" for k, v in case.items())
        if isinstance(got, bool) or not isinstance(got, int):
            _fail(f"vanishing_depth({args}) should return an int, got "
                  f"{got!r}")
        if got != want:
            direction = "too deep" if got > want else "too shallow"
            _fail(f"vanishing_depth({args}) returned {got}, expected {want} "
                  f"({direction}): at depth {want} the first layer's "
                  f"gradient is the first to fall below {case['threshold']:g}"
                  f" times the last layer's")
    print(f"check_vanishing_depth: passed {len(cases)} cases")

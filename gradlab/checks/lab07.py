"""Lab 07 checks: gradient accumulation written by hand, with equal and
with uneven micro-batches, compared with the full batch's gradient."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..models import MLP
from ._common import fail
from ._protocol import Check

__all__ = ["check_accumulate", "check_accumulate_uneven", "ACCUMULATE",
           "ACCUMULATE_UNEVEN"]

# float64 throughout: rounding is ~1e-16, every mistake is >= 1e-2 off
_TOL = dict(rtol=1e-8, atol=1e-12)
_IN, _CLASSES = 6, 4


def _setup(case):
    """The model, its stale gradients and the batch a case describes:
    the same on both sides (built from the seed, never sent)."""
    g = torch.Generator().manual_seed(case["seed"])
    model = MLP(_IN, _CLASSES, depth=case["depth"], width=case["width"],
                activation="tanh", init="xavier", generator=g).double()
    n = sum(case["sizes"])
    x = torch.randn(n, _IN, generator=g, dtype=torch.float64)   # [B, 6]
    y = torch.randint(0, _CLASSES, (n,), generator=g)            # [B]
    # gradients left over from an earlier step
    stale = [torch.randn(p.shape, generator=g, dtype=torch.float64)
             for p in model.parameters()]
    return model, x, y, stale


def _grads_of(model, x, y, weights, sizes):
    """sum_j w_j * grad(L_j) over consecutive micro-batches of ``sizes``."""
    model.zero_grad(set_to_none=True)
    start = 0
    for w, b in zip(weights, sizes):
        part = slice(start, start + b)
        (w * F.cross_entropy(model(x[part]), y[part])).backward()
        start += b
    return [p.grad.detach().clone() for p in model.parameters()]


def _call(function, case, *, uneven):
    model, x, y, stale = _setup(case)
    for p, s in zip(model.parameters(), stale):
        p.grad = s.clone()
    if uneven:
        function(model, x.clone(), y.clone(), list(case["sizes"]))
    else:
        function(model, x.clone(), y.clone(), len(case["sizes"]))
    grads = []
    for name, p in model.named_parameters():
        if p.grad is None:
            fail(f"{name}.grad is None after the call: the function must "
                 f"leave the accumulated gradient in each parameter's "
                 f".grad")
        grads.append(p.grad.detach().clone())
    return grads


def _match(got, want) -> bool:
    return all(g.shape == w.shape and torch.allclose(g, w, **_TOL)
               for g, w in zip(got, want))


def _judge(case, got, *, what, uneven):
    model, x, y, stale = _setup(case)
    sizes = case["sizes"]
    n, k = sum(sizes), len(sizes)
    if not isinstance(got, list) or len(got) != len(stale):
        fail(f"{what} left gradients of the wrong form")
    for g, s in zip(got, stale):
        if not isinstance(g, torch.Tensor) or g.shape != s.shape:
            fail(f"{what} left gradients of the wrong shape")
    want = _grads_of(model, x, y, [b / n for b in sizes], sizes)
    if _match(got, want):
        return
    where = (f"micro-batches of sizes {sizes} (B = {n})" if uneven
             else f"k = {k} micro-batches of {sizes[0]} samples (B = {n})")
    # the last micro-batch alone, unweighted
    last = _grads_of(model, x[n - sizes[-1]:], y[n - sizes[-1]:], [1.0],
                     sizes[-1:])
    mistakes = {
        "the gradients already in .grad were kept: zero them before the "
        "first micro-batch (model.zero_grad())":
            [w + s for w, s in zip(want, stale)],
        f"the sum of the micro-batch gradients, k = {k} times the full "
        f"batch's: divide each micro-batch's loss by k":
            _grads_of(model, x, y, [1.0] * k, sizes),
        "the last micro-batch's gradient only: .grad was zeroed inside the "
        "loop, so nothing was accumulated":
            [g * (sizes[-1] / n) for g in last],
        "the last micro-batch's gradient only, at full weight: .grad was "
        "zeroed inside the loop": last,
        "the full batch's gradient divided by k: the loss was divided by "
        "k twice": [w / k for w in want],
    }
    if uneven:
        mistakes = {
            "each micro-batch weighted 1/k: with uneven micro-batches the "
            "weight is b_j / B, its share of the batch":
                _grads_of(model, x, y, [1 / k] * k, sizes),
            **mistakes,
        }
    hint = ""
    for why, value in mistakes.items():
        if _match(got, value):
            hint = f" It matches {why}."
            break
    worst = max(((g - w).abs().max().item(), name) for g, w, (name, _)
                in zip(got, want, model.named_parameters()))
    fail(f"the accumulated gradient is not the full batch's ({where}): "
         f"{worst[1]}.grad is off by up to {worst[0]:.3g}.{hint}")


# -- check_accumulate ------------------------------------------------------

def _cases(rng) -> list[dict]:
    # k = 1 (no accumulation), a usual k, and one sample per micro-batch
    return [dict(depth=2, width=8, sizes=[24], seed=rng.randrange(2**31)),
            dict(depth=2, width=8, sizes=[6] * 4, seed=rng.randrange(2**31)),
            dict(depth=3, width=5, sizes=[1] * 10,
                 seed=rng.randrange(2**31))]


ACCUMULATE = Check(
    "check_accumulate", "accumulate", _cases,
    lambda function, case: _call(function, case, uneven=False),
    lambda case, got: _judge(case, got, what="accumulate", uneven=False))


def check_accumulate(accumulate, *, seed: int | None = None):
    """Check ``accumulate(model, inputs, targets, k)``.

    The function splits ``inputs [B, 6]`` and ``targets [B]`` into ``k``
    equal consecutive micro-batches and backpropagates their cross-entropy
    losses so that each parameter's ``.grad`` ends with the gradient of the
    mean loss over the whole batch. The model arrives with stale gradients
    in ``.grad``. Cases: ``k = 1``, ``k = 4``, and one sample per
    micro-batch, on float64 tanh MLPs.

    Raises:
        CheckFailed: naming the case, the parameter that is off and the
            likely mistake (no 1/k, stale gradients kept, zeroing inside the
            loop, dividing twice).
    """
    ACCUMULATE.run_local(accumulate, seed=seed)


# -- check_accumulate_uneven -----------------------------------------------

def _uneven_cases(rng) -> list[dict]:
    return [dict(depth=2, width=8, sizes=[5, 3, 8],
                 seed=rng.randrange(2**31)),
            dict(depth=1, width=6, sizes=[10, 2], seed=rng.randrange(2**31)),
            dict(depth=2, width=5, sizes=[1, 6, 3, 2],
                 seed=rng.randrange(2**31))]


ACCUMULATE_UNEVEN = Check(
    "check_accumulate_uneven", "accumulate_uneven", _uneven_cases,
    lambda function, case: _call(function, case, uneven=True),
    lambda case, got: _judge(case, got, what="accumulate_uneven",
                             uneven=True))


def check_accumulate_uneven(accumulate_uneven, *, seed: int | None = None):
    """Check ``accumulate_uneven(model, inputs, targets, sizes)``.

    As :func:`check_accumulate`, but the consecutive micro-batches have the
    given ``sizes`` (a list adding up to ``B``), so each one's mean loss
    must be weighted by its share ``b_j / B``. Cases: sizes ``[5, 3, 8]``,
    ``[10, 2]`` and ``[1, 6, 3, 2]``.

    Raises:
        CheckFailed: naming the sizes, the parameter that is off and the
            likely mistake (weights 1/k instead of b_j / B, and those of
            :func:`check_accumulate`).
    """
    ACCUMULATE_UNEVEN.run_local(accumulate_uneven, seed=seed)

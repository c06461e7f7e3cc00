"""Lab 05 checks: a residual block, a Pre-LN block, and the depth at which a
plain network's first-layer gradient vanishes while a residual one's does
not."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch.nn import functional as F

from ._common import first_vanishing_depth, as_tensor, close, fail, mistake_hint
from ._protocol import Check

__all__ = ["check_residual_block", "check_pre_ln_block",
           "check_residual_depth", "residual_depth_reference",
           "RESIDUAL_BLOCK", "PRE_LN_BLOCK", "RESIDUAL_DEPTH"]



def _row(t: torch.Tensor) -> str:
    values = t.reshape(-1, t.shape[-1])[0]
    return "[" + ", ".join(f"{v:.4g}" for v in values[:3].tolist()) + ", ...]"


def _weights(case, g):
    """A square layer ``[d, d]`` with Kaiming-like scale and a bias ``[d]``:
    the branch and the skip are of the same size, as they must be."""
    d = case["d"]
    weight = torch.randn(d, d, generator=g) * (2 / d) ** 0.5
    bias = 0.5 * torch.randn(d, generator=g)
    return weight, bias


# -- check_residual_block --------------------------------------------------

def _block_cases(rng) -> list[dict]:
    return [dict(shape=[6, 8], d=8, seed=rng.randrange(2**31)),
            dict(shape=[3, 5, 4], d=4, seed=rng.randrange(2**31))]


def _block_setup(case):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(*case["shape"], generator=g)              # [..., d]
    return (x, *_weights(case, g))


def _where(case) -> str:
    return f"x of shape {tuple(case['shape'])}"


def _call_residual_block(residual_block, case):
    x, weight, bias = _block_setup(case)
    out = residual_block(x.clone(), weight.clone(), bias.clone())
    return as_tensor(out, f"residual_block's output ({_where(case)})",
                     x.shape).detach().clone()


def _judge_residual_block(case, got):
    x, weight, bias = _block_setup(case)
    got = as_tensor(got, f"residual_block's output ({_where(case)})",
                    x.shape)
    z = x @ weight.T + bias                                   # [..., d]
    want = x + torch.relu(z)
    if close(got, want):
        return
    hint = mistake_hint(got, {
        "relu(x W^T + b) alone: the skip connection (+ x) is missing":
            torch.relu(z),
        "x + x, the source's 'residual connection': the block must add "
        "its input to f(x), not to itself": x + x,
        "relu(x + x W^T + b), the ReLU after the sum (the first ResNet); "
        "here the identity path stays untouched: x + relu(x W^T + b)":
            torch.relu(x + z),
        "x + x W^T + b: the ReLU of the branch is missing": x + z,
        "x + relu(x W + b): nn.Linear computes x W^T + b, transpose the "
        "weight": x + torch.relu(x @ weight + bias),
    })
    fail(f"residual_block is wrong ({_where(case)}): expected "
         f"{_row(want)} in row 0, got {_row(got)}.{hint}")


RESIDUAL_BLOCK = Check("check_residual_block", "residual_block",
                       _block_cases, _call_residual_block,
                       _judge_residual_block)


def check_residual_block(residual_block, *, seed: int | None = None):
    """Check ``residual_block(x, weight, bias) -> x + relu(x W^T + b)``.

    ``x`` is ``[..., d]`` (a batch of vectors or of sequences), ``weight``
    ``[d, d]`` and ``bias`` ``[d]``.

    Raises:
        CheckFailed: naming the case and the likely mistake (no skip,
            ``x + x``, ReLU after the sum, no ReLU, untransposed weight).
    """
    RESIDUAL_BLOCK.run_local(residual_block, seed=seed)


# -- check_pre_ln_block ----------------------------------------------------

def _pre_ln_cases(rng) -> list[dict]:
    return [dict(shape=[2, 5, 8], d=8, eps=1e-5, seed=rng.randrange(2**31)),
            dict(shape=[4, 6], d=6, eps=1e-2, seed=rng.randrange(2**31))]


def _pre_ln_setup(case):
    g = torch.Generator().manual_seed(case["seed"])
    # an offset and a scale, so that normalizing changes x
    x = 3 * torch.randn(*case["shape"], generator=g) + 1      # [..., d]
    gamma = 0.5 + torch.rand(case["d"], generator=g)
    beta = torch.randn(case["d"], generator=g)
    return (x, gamma, beta, *_weights(case, g))


def _pre_ln_where(case) -> str:
    return f"x of shape {tuple(case['shape'])}, eps={case['eps']}"


def _call_pre_ln_block(pre_ln_block, case):
    x, gamma, beta, weight, bias = _pre_ln_setup(case)
    out = pre_ln_block(x.clone(), gamma.clone(), beta.clone(),
                       weight.clone(), bias.clone(), eps=case["eps"])
    return as_tensor(out, f"pre_ln_block's output ({_pre_ln_where(case)})",
                     x.shape).detach().clone()


def _judge_pre_ln_block(case, got):
    x, gamma, beta, weight, bias = _pre_ln_setup(case)
    where, eps, d = _pre_ln_where(case), case["eps"], case["d"]
    got = as_tensor(got, f"pre_ln_block's output ({where})", x.shape)

    def ln(t, g=gamma, b=beta):
        return F.layer_norm(t, (d,), g, b, eps)

    def f(t):
        return torch.relu(t @ weight.T + bias)

    want = x + f(ln(x))
    if close(got, want):
        return
    mean = x.mean(-1, keepdim=True)
    unbiased = (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps)
    hint = mistake_hint(got, {
        "LN(x + f(x)), a Post-LN block (Vaswani et al. 2017); Pre-LN "
        "normalizes the branch's input only: x + f(LN(x))": ln(x + f(x)),
        "LN(x) + f(LN(x)): the skip must carry x itself, not its "
        "normalized copy, or there is no identity path": ln(x) + f(ln(x)),
        "x + LN(f(x)): the layer norm goes before the branch, on its "
        "input": x + ln(f(x)),
        "x + f(x): the layer norm is missing": x + f(x),
        "a layer norm without gamma and beta":
            x + f(F.layer_norm(x, (d,), eps=eps)),
        "a layer norm with the unbiased variance (divide by d - 1); layer "
        "norm uses the biased one": x + f(gamma * unbiased + beta),
    })
    fail(f"pre_ln_block is wrong ({where}): expected {_row(want)} in row "
         f"0, got {_row(got)}.{hint}")


PRE_LN_BLOCK = Check("check_pre_ln_block", "pre_ln_block", _pre_ln_cases,
                     _call_pre_ln_block, _judge_pre_ln_block)


def check_pre_ln_block(pre_ln_block, *, seed: int | None = None):
    """Check ``pre_ln_block(x, gamma, beta, weight, bias, eps=1e-5) ->
    x + relu(LN(x) W^T + b)``, the layer norm over the last dimension
    with gain ``gamma`` and shift ``beta``, as
    :func:`torch.nn.functional.layer_norm` computes it.

    ``x`` is ``[..., d]``; ``gamma``, ``beta``, ``bias`` are ``[d]`` and
    ``weight`` ``[d, d]``.

    Raises:
        CheckFailed: naming the case and the likely mistake (a Post-LN
            block, a normalized skip, the norm after the branch, no norm).
    """
    PRE_LN_BLOCK.run_local(pre_ln_block, seed=seed)


# -- check_residual_depth --------------------------------------------------

@lru_cache(maxsize=32)  # a grader judges the same cases for every student
def residual_depth_reference(threshold: float, *, residual: bool,
                             width: int = 32, seed: int = 0,
                             max_depth: int = 30) -> int:
    """The smallest depth whose first/last gradient-norm ratio is below
    ``threshold`` for the lab's tanh MLP (PyTorch's default init, on the
    first 256 training digits), plain or residual.

    Returns ``-1`` when no depth up to ``max_depth`` is enough.
    """
    return first_vanishing_depth(threshold, max_depth=max_depth, width=width,
                                 seed=seed, activation="tanh", residual=residual)


def _depth_cases(rng) -> list[dict]:
    # Fixed cases: the reference costs a profile per depth. Each threshold
    # is asked of the plain network and of the residual one.
    return [dict(threshold=t, residual=r, width=w, seed=s, max_depth=30)
            for t, w, s in ((1e-2, 32, 0), (1e-4, 16, 1))
            for r in (False, True)]


def _args(case) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in case.items())


def _as_depth(got, case):
    if isinstance(got, bool) or not isinstance(got, int):
        fail(f"vanishing_depth({_args(case)}) should return an int, got "
             f"{got!r:.100}")
    return got


def _call_depth(vanishing_depth, case):
    args = {k: v for k, v in case.items() if k != "threshold"}
    return _as_depth(vanishing_depth(case["threshold"], **args), case)


def _judge_depth(case, got):
    got = _as_depth(got, case)
    want = residual_depth_reference(**case)
    if got == want:
        return
    if want == -1:
        fail(f"vanishing_depth({_args(case)}) returned {got}, expected -1: "
             f"the residual network's first/last ratio never falls below "
             f"{case['threshold']:g} up to depth {case['max_depth']}. Did "
             f"you build the network with residual=True?")
    if got == -1:
        fail(f"vanishing_depth({_args(case)}) returned -1, expected {want}:"
             f" the plain network's ratio falls below "
             f"{case['threshold']:g} at depth {want}")
    direction = "too deep" if got > want else "too shallow"
    fail(f"vanishing_depth({_args(case)}) returned {got}, expected {want} "
         f"({direction}): at depth {want} the first layer's gradient is the "
         f"first to fall below {case['threshold']:g} times the last "
         f"layer's")


RESIDUAL_DEPTH = Check("check_residual_depth", "vanishing_depth",
                       _depth_cases, _call_depth, _judge_depth)


def check_residual_depth(vanishing_depth):
    """Check ``vanishing_depth(threshold, *, residual, width, seed,
    max_depth) -> int`` against :func:`residual_depth_reference`: for two
    thresholds, the plain network's depth and ``-1`` for the residual one.

    Raises:
        CheckFailed: a wrong type or a wrong depth, with the case.
    """
    RESIDUAL_DEPTH.run_local(vanishing_depth)

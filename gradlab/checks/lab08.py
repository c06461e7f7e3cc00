"""Lab 08 checks: clipping the gradient norm by hand (compared with
:func:`torch.nn.utils.clip_grad_norm_`) and the largest stable learning
rate of a quadratic (``2 / lambda_max`` of its Hessian)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import fail
from ._protocol import Check

__all__ = ["check_clip_grad_norm", "check_max_stable_lr", "CLIP_GRAD_NORM",
           "MAX_STABLE_LR"]

_RTOL, _ATOL = 1e-4, 1e-6


# -- check_clip_grad_norm --------------------------------------------------

def _clip_cases(rng) -> list[dict]:
    # above the threshold, below it, a parameter without a gradient, and a
    # single parameter; shapes differ so a per-parameter clip shows
    return [dict(shapes=[[4, 3], [3], [2, 5]], scale=3.0, max_norm=1.0,
                 no_grad=[], seed=rng.randrange(2**31)),
            dict(shapes=[[5, 2], [2]], scale=0.1, max_norm=10.0,
                 no_grad=[], seed=rng.randrange(2**31)),
            dict(shapes=[[3, 3], [3], [6]], scale=2.0, max_norm=2.5,
                 no_grad=[1], seed=rng.randrange(2**31)),
            dict(shapes=[[8]], scale=1.0, max_norm=0.5, no_grad=[],
                 seed=rng.randrange(2**31))]


def _clip_params(case) -> list[nn.Parameter]:
    """The parameters a case describes, with their gradients; the same on
    both sides."""
    g = torch.Generator().manual_seed(case["seed"])
    params = []
    for i, shape in enumerate(case["shapes"]):
        p = nn.Parameter(torch.randn(*shape, generator=g))
        grad = case["scale"] * torch.randn(*shape, generator=g)
        p.grad = None if i in case["no_grad"] else grad
        params.append(p)
    return params


def _clip_where(case) -> str:
    shapes = ", ".join("x".join(map(str, s)) for s in case["shapes"])
    extra = (f", parameter {case['no_grad'][0]} has no gradient"
             if case["no_grad"] else "")
    return f"parameters of shapes {shapes}, max_norm={case['max_norm']}{extra}"


def _call_clip_grad_norm(clip_grad_norm, case):
    params = _clip_params(case)
    total = clip_grad_norm(params, case["max_norm"])
    if isinstance(total, torch.Tensor):
        if total.numel() != 1:
            fail(f"clip_grad_norm should return the total norm, one number; "
                 f"got a tensor of shape {tuple(total.shape)} "
                 f"({_clip_where(case)})")
        total = total.item()
    if not isinstance(total, (int, float)):
        fail(f"clip_grad_norm should return the total norm (a number or a "
             f"0-d tensor), got {type(total).__name__} ({_clip_where(case)})")
    return dict(norm=float(total),
                grads=[None if p.grad is None else p.grad.detach().clone()
                       for p in params])


def _close(a, b) -> bool:
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a, b, rtol=_RTOL, atol=_ATOL))


def _clip_hint(case, grads) -> str:
    """The first known mistake that ``grads`` matches."""
    raw = [p.grad for p in _clip_params(case)]
    present = [g for g in raw if g is not None]
    c = case["max_norm"]
    total = math.sqrt(sum(g.pow(2).sum().item() for g in present))
    candidates = {
        "the gradients unchanged: clip them in place (p.grad.mul_(...)), "
        "the caller reads p.grad": raw,
        "clipping each parameter by its own norm; clip_grad_norm_ scales "
        "all gradients by one factor, from their total norm":
            [None if g is None else g * min(1.0, c / g.norm().item())
             for g in raw],
        "rescaling to norm max_norm even when the total norm is below it; "
        "only clip when ||g|| > max_norm":
            [None if g is None else g * c / total for g in raw],
        "clamping each entry to [-max_norm, max_norm]: that is clipping "
        "by value, which changes the gradient's direction":
            [None if g is None else g.clamp(-c, c) for g in raw],
        "a total norm computed as the sum of the parameters' norms; it is "
        "sqrt(sum of all squared entries)":
            [None if g is None
             else g * min(1.0, c / sum(h.norm().item() for h in present))
             for g in raw],
    }
    for why, want in candidates.items():
        if all((a is None and b is None) or (b is not None and _close(a, b))
               for a, b in zip(grads, want)):
            return f" It matches {why}."
    return ""


def _judge_clip_grad_norm(case, got):
    where = _clip_where(case)
    if not isinstance(got, dict) or set(got) != {"norm", "grads"}:
        fail("clip_grad_norm's answer has the wrong form")
    params = _clip_params(case)
    raw_total = nn.utils.get_total_norm(
        [p.grad for p in params if p.grad is not None]).item()
    want_total = nn.utils.clip_grad_norm_(params, case["max_norm"]).item()
    grads = got["grads"]
    if len(grads) != len(params):
        fail(f"clip_grad_norm changed the number of parameters ({where})")
    for i, (g, p) in enumerate(zip(grads, params)):
        if p.grad is None:
            if g is not None:
                fail(f"parameter {i} had no gradient (p.grad is None) and "
                     f"should keep none; skip it ({where})")
            continue
        if not _close(g, p.grad):
            want = p.grad.flatten()[:3].tolist()
            have = (g.flatten()[:3].tolist() if isinstance(g, torch.Tensor)
                    else g)
            fail(f"the gradient of parameter {i} is wrong ({where}): "
                 f"expected {[round(v, 4) for v in want]}..., got "
                 f"{have if have is None else [round(v, 4) for v in have]}"
                 f"....{_clip_hint(case, grads)}")
    if not math.isclose(got["norm"], want_total, rel_tol=_RTOL):
        clipped_total = math.sqrt(sum(float(g.pow(2).sum()) for g in grads
                                      if g is not None))
        hint = ""
        if (math.isclose(got["norm"], clipped_total, rel_tol=_RTOL)
                and not math.isclose(clipped_total, raw_total,
                                     rel_tol=_RTOL)):
            hint = (" That is the norm after clipping; return the total "
                    "norm before clipping, as clip_grad_norm_ does.")
        fail(f"the returned norm is wrong ({where}): expected "
             f"{want_total:.6g}, got {got['norm']:.6g}.{hint}")


CLIP_GRAD_NORM = Check("check_clip_grad_norm", "clip_grad_norm",
                       _clip_cases, _call_clip_grad_norm,
                       _judge_clip_grad_norm)


def check_clip_grad_norm(clip_grad_norm, *, seed: int | None = None):
    """Check ``clip_grad_norm(parameters, max_norm) -> total_norm`` against
    :func:`torch.nn.utils.clip_grad_norm_`.

    The function must rescale the ``.grad`` of every parameter in place by
    one common factor ``min(1, max_norm / ||g||)``, with ``||g||`` the norm
    of all gradients together, skip parameters whose ``.grad`` is ``None``,
    and return ``||g||`` before clipping.

    Raises:
        CheckFailed: naming the case and the likely mistake (per-parameter
            norms, clipping below the threshold, clipping by value, not in
            place, the norm after clipping).
    """
    CLIP_GRAD_NORM.run_local(clip_grad_norm, seed=seed)


# -- check_max_stable_lr ---------------------------------------------------

def _lr_cases(rng) -> list[dict]:
    # rotated, so the diagonal is not the spectrum; one case with a zero
    # eigenvalue (a flat direction) and one with a wide spread
    return [dict(eigenvalues=[0.5, 2.0, 8.0], seed=rng.randrange(2**31)),
            dict(eigenvalues=[0.0, 1.0, 3.0, 3.5], seed=rng.randrange(2**31)),
            dict(eigenvalues=[1e-3, 0.2, 40.0, 7.0, 11.0],
                 seed=rng.randrange(2**31))]


def _hessian(case) -> torch.Tensor:
    g = torch.Generator().manual_seed(case["seed"])
    n = len(case["eigenvalues"])
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g,
                                       dtype=torch.float64))
    lam = torch.tensor(case["eigenvalues"], dtype=torch.float64)
    h = q @ torch.diag(lam) @ q.T                       # [n, n]
    return (h + h.T) / 2                                # exactly symmetric


def _call_max_stable_lr(max_stable_lr, case):
    out = max_stable_lr(_hessian(case))
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            fail(f"max_stable_lr should return one number, got a tensor of "
                 f"shape {tuple(out.shape)}")
        out = out.item()
    if not isinstance(out, (int, float)):
        fail(f"max_stable_lr should return a number, got "
             f"{type(out).__name__}")
    return float(out)


def _judge_max_stable_lr(case, got):
    h = _hessian(case)
    lam = torch.linalg.eigvalsh(h)
    top = lam.max().item()
    want = 2.0 / top
    if math.isclose(got, want, rel_tol=1e-6):
        return
    positive = lam[lam > 1e-9]
    candidates = {
        "1 / lambda_max; gradient descent still converges up to twice that,"
        " where |1 - lr * lambda_max| reaches 1": 1.0 / top,
        "2 / lambda_min: the smallest eigenvalue limits the speed, the "
        "largest one the stability": 2.0 / positive.min().item(),
        "2 / max(diag(H)): the diagonal entries are not the eigenvalues "
        "unless H is diagonal; use torch.linalg.eigvalsh":
            2.0 / h.diagonal().max().item(),
        "2 / trace(H): the trace is the sum of the eigenvalues, not the "
        "largest": 2.0 / h.trace().item(),
        "2 / ||H|| with the Frobenius norm; the spectral norm (the largest "
        "eigenvalue here) is meant": 2.0 / torch.linalg.norm(h).item(),
    }
    hint = next((f" It matches {why}." for why, value in candidates.items()
                 if math.isclose(got, value, rel_tol=1e-6)), "")
    fail(f"max_stable_lr is wrong for a Hessian with eigenvalues "
         f"{case['eigenvalues']}: expected {want:.6g}, got {got:.6g}.{hint}")


MAX_STABLE_LR = Check("check_max_stable_lr", "max_stable_lr", _lr_cases,
                      _call_max_stable_lr, _judge_max_stable_lr)


def check_max_stable_lr(max_stable_lr, *, seed: int | None = None):
    """Check ``max_stable_lr(H) -> float``: the largest learning rate at
    which gradient descent on ``f(x) = 1/2 x^T H x`` does not diverge,
    ``2 / lambda_max(H)``, for rotated (non-diagonal) symmetric Hessians.

    Raises:
        CheckFailed: naming the eigenvalues and the likely mistake
            (``1 / lambda_max``, ``lambda_min``, the diagonal, the trace).
    """
    MAX_STABLE_LR.run_local(max_stable_lr, seed=seed)

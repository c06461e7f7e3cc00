"""Lab 02 checks: an SGD step with an L2 penalty, and inverted dropout,
written by hand and compared with PyTorch."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ..models import MLP
from ._common import as_tensor, fail
from ._protocol import Check

__all__ = ["check_l2_sgd_step", "check_inverted_dropout", "L2_SGD_STEP",
           "INVERTED_DROPOUT"]

_TOL = dict(rtol=1e-5, atol=1e-6)


def _close_all(got: list, want: list) -> bool:
    return all(g.shape == w.shape and torch.allclose(g, w, **_TOL)
               for g, w in zip(got, want))


def _row(t: torch.Tensor) -> str:
    values = t.flatten()[:3].tolist()
    return "[" + ", ".join(f"{v:.6g}" for v in values) + ", ...]"


# -- check_l2_sgd_step -----------------------------------------------------

def _l2_cases(rng) -> list[dict]:
    # Three (lr, lam) pairs: the usual mistakes (no penalty, a doubled one,
    # a decay not scaled by lr) give steps that differ by >= 1e-3 here.
    return [dict(depth=depth, width=width, lr=lr, lam=lam,
                 seed=rng.randrange(2**31))
            for depth, width, lr, lam in ((2, 16, 0.1, 0.05),
                                          (3, 8, 0.5, 0.01),
                                          (1, 12, 0.05, 0.2))]


def _l2_setup(case):
    """The model and batch a case describes; the same on both sides."""
    g = torch.Generator().manual_seed(case["seed"])
    model = MLP(8, 3, depth=case["depth"], width=case["width"],
                activation="tanh", generator=g)
    with torch.no_grad():  # non-zero biases: forgetting to decay them shows
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 0.5, generator=g)
    inputs = torch.randn(16, 8, generator=g)                 # [16, 8]
    targets = torch.randint(0, 3, (16,), generator=g)        # [16]
    return model, inputs, targets


def _l2_where(case) -> str:
    return (f"MLP(depth={case['depth']}, width={case['width']}), "
            f"lr={case['lr']}, lam={case['lam']}")


def _call_l2_step(l2_sgd_step, case):
    model, inputs, targets = _l2_setup(case)
    l2_sgd_step(model, inputs, targets, lr=case["lr"], lam=case["lam"])
    return [p.detach().clone() for p in model.parameters()]


def _l2_steps(case) -> dict:
    """Torch's step and the steps of the usual mistakes, by name."""
    model, inputs, targets = _l2_setup(case)
    lr, lam = case["lr"], case["lam"]
    params = [p.detach().clone() for p in model.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(model(inputs), targets),
                                list(model.parameters()))
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=lam)
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    opt.step()

    def step(decay, sign=-1.0, bias_decay=None):
        out = []
        for p, g in zip(params, grads):
            d = decay if (p.dim() >= 2 or bias_decay is None) else bias_decay
            out.append(p + sign * (lr * g + d * p))
        return out

    return {
        "torch": [p.detach().clone() for p in model.parameters()],
        "the step of plain SGD: the penalty lam/2 * ||theta||^2 is missing "
        "(its gradient lam * theta should be added to every gradient)":
            step(0.0),
        "a penalty twice too strong: the gradient of lam/2 * ||theta||^2 "
        "is lam * theta (a penalty lam * ||theta||^2 gives 2 * lam * theta)":
            step(2 * lr * lam),
        "a decay not multiplied by the learning rate: the step is "
        "theta - lr * (grad + lam * theta)":
            step(lam),
        "a penalty with the wrong sign: it must pull every parameter "
        "towards zero, theta - lr * (grad + lam * theta)":
            step(-lr * lam),
        "a step uphill: subtract lr * (grad + lam * theta), do not add it":
            step(lr * lam, sign=1.0),
        "undecayed biases: SGD's weight_decay decays every parameter, the "
        "biases too, so put all of them in the penalty":
            step(lr * lam, bias_decay=0.0),
        "the parameters as they were: update them in place (inside "
        "torch.no_grad(), p -= ...), the model is not returned":
            params,
    }


def _judge_l2_step(case, got):
    steps = _l2_steps(case)
    want = steps.pop("torch")
    names = [n for n, _ in _l2_setup(case)[0].named_parameters()]
    where = _l2_where(case)
    if not isinstance(got, list) or len(got) != len(want):
        fail(f"l2_sgd_step's answer has the wrong form ({where})")
    got = [as_tensor(g, f"parameter {n} after l2_sgd_step ({where})",
                     w.shape) for g, n, w in zip(got, names, want)]
    if _close_all(got, want):
        return
    i = next(i for i, (g, w) in enumerate(zip(got, want))
             if not torch.allclose(g, w, **_TOL))
    hint = next((f" It matches {why}." for why, step in steps.items()
                 if _close_all(got, step)), "")
    fail(f"parameter {names[i]} is wrong after one step ({where}): "
         f"expected {_row(want[i])}, got {_row(got[i])}.{hint}")


L2_SGD_STEP = Check("check_l2_sgd_step", "l2_sgd_step", _l2_cases,
                    _call_l2_step, _judge_l2_step)


def check_l2_sgd_step(l2_sgd_step, *, seed: int | None = None):
    """Check ``l2_sgd_step(model, inputs, targets, *, lr, lam)``.

    The function must make one SGD step, in place, on the cross-entropy
    loss plus ``lam / 2 * sum_p ||p||^2`` over *every* parameter, which is
    exactly ``torch.optim.SGD(..., lr=lr, weight_decay=lam)``. It is run on
    three random MLPs (with non-zero biases) and batches.

    Raises:
        CheckFailed: naming the parameter and the case, and the likely
            mistake when it recognizes one (no penalty, a doubled one, a
            decay not scaled by lr, a wrong sign, undecayed biases, no
            in-place update).
    """
    L2_SGD_STEP.run_local(l2_sgd_step, seed=seed)


# -- check_inverted_dropout ------------------------------------------------

_SHAPE = (64, 128)   # 8192 units: the share dropped is known to ~0.5 %
_DRAWS = 1000        # masks averaged for the expectation
_SMALL = 16          # units whose average is checked


def _drop_cases(rng) -> list[dict]:
    return [dict(p=p, training=training, seed=rng.randrange(2**31))
            for p, training in ((0.3, True), (0.6, True), (0.3, False),
                                (0.0, True))]


def _drop_setup(case):
    """Input (no zeros, both signs) and an upstream gradient."""
    g = torch.Generator().manual_seed(case["seed"])
    size = torch.rand(_SHAPE, generator=g) + 0.5               # [64, 128]
    sign = torch.where(torch.rand(_SHAPE, generator=g) < 0.5, -1.0, 1.0)
    upstream = torch.randn(_SHAPE, generator=g)                # dL/dout
    return size * sign, upstream


def _drop_where(case) -> str:
    return f"p={case['p']}, training={case['training']}"


def _call_dropout(inverted_dropout, case):
    x, upstream = _drop_setup(case)
    p, training, seed = case["p"], case["training"], case["seed"]
    where = _drop_where(case)

    def run(inputs, generator):
        out = inverted_dropout(inputs, p, training=training,
                               generator=generator)
        return as_tensor(out, f"inverted_dropout's output ({where})",
                         inputs.shape)

    x_grad = x.clone().requires_grad_(True)
    out = run(x_grad, torch.Generator().manual_seed(seed + 1))
    grad = torch.empty(0)
    if out.requires_grad:
        (g,) = torch.autograd.grad(out, x_grad, upstream, allow_unused=True)
        grad = g.detach().clone() if g is not None else grad
    again = run(x.clone(), torch.Generator().manual_seed(seed + 1))
    other = run(x.clone(), torch.Generator().manual_seed(seed + 2))
    small = x[0, :_SMALL]
    mean = small.clone()   # nothing to average where dropout is identity
    if training and p > 0:
        shared = torch.Generator().manual_seed(seed + 3)
        mean = torch.stack([run(small.clone(), shared).detach()
                            for _ in range(_DRAWS)]).mean(0)   # [16]
    return dict(out=out.detach().clone(), again=again.detach().clone(),
                other=other.detach().clone(), grad=grad, mean=mean)


def _judge_identity(case, x, upstream, got, where):
    out = got["out"]
    if not torch.allclose(out, x, **_TOL):
        zeros = (out == 0).float().mean().item()
        if not case["training"] and zeros > 0:
            fail(f"in eval mode ({where}) dropout must return x unchanged, "
                 f"but {zeros:.0%} of the output is zero: drop units only "
                 f"when training=True")
        if torch.allclose(out, x * (1 - case["p"]), **_TOL):
            fail(f"the output is x * (1 - p) ({where}): inverted dropout "
                 f"does all its scaling while training; in eval mode it "
                 f"returns x as it is")
        fail(f"the output should be x unchanged ({where}): expected "
             f"{_row(x)}, got {_row(out)}")
    grad = got["grad"]
    if grad.numel() and not torch.allclose(grad, upstream, **_TOL):
        fail(f"the gradient should pass unchanged ({where}): expected "
             f"{_row(upstream)}, got {_row(grad)}")


def _judge_dropout(case, got):
    x, upstream = _drop_setup(case)
    p, where = case["p"], _drop_where(case)
    if not isinstance(got, dict) or set(got) != {"out", "again", "other",
                                                 "grad", "mean"}:
        fail(f"inverted_dropout's answers have the wrong form ({where})")
    out = as_tensor(got["out"], f"inverted_dropout's output ({where})",
                    x.shape)
    if not case["training"] or p == 0:
        _judge_identity(case, x, upstream, got, where)
        return
    dropped = out == 0
    share = dropped.float().mean().item()
    sigma = math.sqrt(p * (1 - p) / out.numel())
    if abs(share - p) > 6 * sigma:
        if abs(share - (1 - p)) < 6 * sigma:
            fail(f"{share:.1%} of the units were zeroed ({where}), about "
                 f"1 - p: drop each unit with probability p, keep it with "
                 f"probability 1 - p")
        fail(f"{share:.1%} of the units were zeroed ({where}), expected "
             f"about p = {p:.0%}")
    scale = out[~dropped] / x[~dropped]          # kept units: out / x
    want = 1 / (1 - p)
    if not torch.allclose(scale, torch.full_like(scale, want), rtol=1e-4):
        median = scale.median().item()
        hint = ""
        if math.isclose(median, 1.0, rel_tol=1e-3):
            hint = (" The kept values are not scaled: divide them by 1 - p,"
                    " so that the expected output equals x.")
        elif math.isclose(median, 1 - p, rel_tol=1e-3):
            hint = " You multiplied by 1 - p: divide by it instead."
        fail(f"a kept unit should be x / (1 - p) = x * {want:.4g} "
             f"({where}), got x * {median:.4g} (median).{hint}")
    if not torch.equal(got["again"], out):
        fail(f"two calls with generators seeded alike gave different "
             f"outputs ({where}): draw the mask from `generator`, e.g. "
             f"torch.rand(x.shape, generator=generator)")
    if torch.equal(got["other"], out):
        fail(f"two differently seeded generators gave the same mask "
             f"({where}): draw the mask from the `generator` argument")
    grad = got["grad"]
    if grad.numel() == 0:
        fail(f"the output is not differentiable with respect to x "
             f"({where}): build it from x with tensor operations (no "
             f".detach(), .data, numpy or in-place changes of x)")
    want_grad = upstream * (~dropped) / (1 - p)
    if not torch.allclose(grad, want_grad, **_TOL):
        fail(f"the backward pass is wrong ({where}): dL/dx should be "
             f"dL/dout times the same mask, divided by 1 - p; expected "
             f"{_row(want_grad)}, got {_row(grad)}")
    small = x[0, :_SMALL]
    mean = as_tensor(got["mean"], "the average output", small.shape)
    spread = small.abs() * math.sqrt(p / (1 - p) / _DRAWS)
    off = (mean - small).abs() / spread                  # in std units
    if (off > 6).any():
        i = int(off.argmax())
        fail(f"the average of {_DRAWS} outputs should equal the input "
             f"({where}): for x = {small[i].item():.4g} it is "
             f"{mean[i].item():.4g}; use a fresh mask at every call")


INVERTED_DROPOUT = Check("check_inverted_dropout", "inverted_dropout",
                         _drop_cases, _call_dropout, _judge_dropout)


def check_inverted_dropout(inverted_dropout, *, seed: int | None = None):
    """Check ``inverted_dropout(x, p, *, training, generator) -> tensor``.

    In training mode each unit must be zeroed with probability ``p`` (mask
    drawn from ``generator``) and the others divided by ``1 - p``, so that
    the expected output is ``x``; the gradient must flow through the same
    mask and scale. In eval mode (``training=False``) and for ``p = 0`` the
    output is ``x``. Cases: ``p`` = 0.3 and 0.6 in training, 0.3 in eval,
    0 in training, on ``[64, 128]`` inputs; the average of 1000 outputs is
    compared with the input.

    Raises:
        CheckFailed: naming the case and the likely mistake (no scaling,
            scaling by 1 - p, dropping with probability 1 - p, dropout in
            eval mode, a mask not drawn from ``generator``, no gradient).
    """
    INVERTED_DROPOUT.run_local(inverted_dropout, seed=seed)

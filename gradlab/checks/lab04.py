"""Lab 04 checks: batch norm (train and eval mode, running statistics) and
layer norm, written by hand and compared with PyTorch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._common import as_tensor, close, fail, mistake_hint
from ._protocol import Check

__all__ = ["check_batch_norm", "check_layer_norm", "BATCH_NORM",
           "LAYER_NORM"]

_CHANNELS = 6


def _normalize(x, mean, var, eps, gamma, beta):
    return gamma * (x - mean) / torch.sqrt(var + eps) + beta


def _row(t: torch.Tensor) -> str:
    values = t[0] if t.dim() == 2 else t
    return "[" + ", ".join(f"{v:.4g}" for v in values[:3].tolist()) + ", ...]"


# -- check_batch_norm ------------------------------------------------------

def _bn_cases(rng) -> list[dict]:
    # Small batches make the biased and unbiased variances differ by
    # 15-50 %; two settings catch a hard-coded momentum or eps.
    return [dict(momentum=0.1, eps=1e-5, sizes=[5, 3, 8],
                 seed=rng.randrange(2**31)),
            dict(momentum=0.3, eps=1e-2, sizes=[4, 2, 6],
                 seed=rng.randrange(2**31))]


def _bn_setup(case) -> list[dict]:
    """The calls a case describes: three training steps, then one eval
    call, each with its inputs and torch's answer. The same on both
    sides."""
    g = torch.Generator().manual_seed(case["seed"])
    momentum, eps = case["momentum"], case["eps"]
    bn = nn.BatchNorm1d(_CHANNELS, momentum=momentum, eps=eps)
    with torch.no_grad():
        bn.weight.copy_(0.5 + torch.rand(_CHANNELS, generator=g))
        bn.bias.copy_(torch.randn(_CHANNELS, generator=g))
        # non-trivial running statistics to start from
        bn.running_mean.copy_(torch.randn(_CHANNELS, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(_CHANNELS, generator=g))
    calls = []
    for training, n in [(True, s) for s in case["sizes"]] + [(False, 4)]:
        x = 3 * torch.randn(n, _CHANNELS, generator=g) + 2     # [n, C]
        call = dict(x=x, gamma=bn.weight.detach().clone(),
                    beta=bn.bias.detach().clone(),
                    running_mean=bn.running_mean.clone(),
                    running_var=bn.running_var.clone(), training=training,
                    momentum=momentum, eps=eps)
        bn.train(training)
        with torch.no_grad():
            call["want"] = [bn(x), bn.running_mean.clone(),
                            bn.running_var.clone()]
        calls.append(call)
    return calls


def _bn_where(i, call) -> str:
    n = call["x"].shape[0]
    mode = (f"training=True, step {i + 1}" if call["training"]
            else "training=False")
    return (f"{mode}, a batch of {n}, momentum={call['momentum']}, "
            f"eps={call['eps']}")


def _call_batch_norm(batch_norm, case):
    answers = []
    for i, call in enumerate(_bn_setup(case)):
        where = _bn_where(i, call)
        out = batch_norm(call["x"].clone(), call["gamma"].clone(),
                         call["beta"].clone(), call["running_mean"].clone(),
                         call["running_var"].clone(),
                         training=call["training"],
                         momentum=call["momentum"], eps=call["eps"])
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            fail(f"batch_norm should return (y, running_mean, running_var),"
                 f" got {type(out).__name__} ({where})")
        shapes = (call["x"].shape, (_CHANNELS,), (_CHANNELS,))
        names = ("y", "running_mean", "running_var")
        answers.append([as_tensor(o, f"batch_norm's {name} ({where})",
                                  shape).detach().clone()
                        for o, name, shape in zip(out, names, shapes)])
    return answers


def _train_y_hint(c, y):
    x, gamma, beta, eps = c["x"], c["gamma"], c["beta"], c["eps"]
    mean, var = x.mean(0), x.var(0, unbiased=False)
    return mistake_hint(y, {
        "normalizing with the unbiased variance (divide by B - 1); the "
        "batch is normalized with the biased one (divide by B)":
            _normalize(x, mean, x.var(0), eps, gamma, beta),
        "normalizing each sample over its features (dim 1): that is layer "
        "norm; batch norm normalizes each feature over the batch (dim 0)":
            _normalize(x, x.mean(1, keepdim=True),
                       x.var(1, unbiased=False, keepdim=True), eps, gamma,
                       beta),
        "normalizing with the running statistics: in training mode batch "
        "norm uses the current batch's mean and variance":
            _normalize(x, c["running_mean"], c["running_var"], eps, gamma,
                       beta),
        "adding eps outside the square root: use sqrt(var + eps)":
            gamma * (x - mean) / (var.sqrt() + eps) + beta,
        "the normalized x without gamma and beta":
            _normalize(x, mean, var, eps, 1.0, 0.0),
    })


def _eval_y_hint(c, y):
    x, gamma, beta, eps = c["x"], c["gamma"], c["beta"], c["eps"]
    return mistake_hint(y, {
        "normalizing with the batch's own statistics: in eval mode batch "
        "norm uses the running mean and variance":
            _normalize(x, x.mean(0), x.var(0, unbiased=False), eps, gamma,
                       beta),
        "adding eps outside the square root: use sqrt(var + eps)":
            gamma * (x - c["running_mean"]) / (c["running_var"].sqrt() + eps)
            + beta,
    })


def _running_hint(c, got, which):
    x, m = c["x"], c["momentum"]
    old = c[f"running_{which}"]
    batch = x.mean(0) if which == "mean" else x.var(0)
    candidates = {
        "the old running value: in training mode update it": old,
        "momentum * old + (1 - momentum) * batch; PyTorch's convention is "
        "(1 - momentum) * old + momentum * batch":
            m * old + (1 - m) * batch,
        f"the batch's {which} alone; average it into the running {which}":
            batch,
    }
    if which == "var":
        candidates = {
            "an update with the biased batch variance; the running "
            "variance uses the unbiased one, var * B / (B - 1)":
                (1 - m) * old + m * x.var(0, unbiased=False),
            **candidates,
            "an update with the batch standard deviation instead of the "
            "variance": (1 - m) * old + m * x.var(0).sqrt(),
        }
    return mistake_hint(got, candidates)


def _judge_batch_norm(case, got):
    calls = _bn_setup(case)
    if not isinstance(got, list) or len(got) != len(calls):
        fail("batch_norm's answers have the wrong form")
    for i, (c, answer) in enumerate(zip(calls, got)):
        where = _bn_where(i, c)
        want_y, want_mean, want_var = c["want"]
        y, mean, var = (as_tensor(a, f"batch_norm's {name} ({where})",
                                  w.shape)
                        for a, name, w in zip(answer, ("y", "running_mean",
                                                       "running_var"),
                                              c["want"]))
        # eval mode: a changed running statistic is the root cause
        if not c["training"] and not (close(mean, want_mean)
                                      and close(var, want_var)):
            fail(f"the running statistics changed ({where}): eval mode "
                 f"must use them as they are and return them unchanged")
        if not close(y, want_y):
            hint = (_train_y_hint(c, y) if c["training"]
                    else _eval_y_hint(c, y))
            fail(f"y is wrong ({where}): expected {_row(want_y)} in row 0, "
                 f"got {_row(y)}.{hint}")
        if not c["training"]:
            continue
        for which, value, want in (("mean", mean, want_mean),
                                   ("var", var, want_var)):
            if not close(value, want):
                fail(f"running_{which} is wrong ({where}): expected "
                     f"{_row(want)}, got {_row(value)}."
                     f"{_running_hint(c, value, which)}")


BATCH_NORM = Check("check_batch_norm", "batch_norm", _bn_cases,
                   _call_batch_norm, _judge_batch_norm)


def check_batch_norm(batch_norm, *, seed: int | None = None):
    """Check ``batch_norm(x, gamma, beta, running_mean, running_var, *,
    training, momentum=0.1, eps=1e-5) -> (y, running_mean, running_var)``.

    ``x`` is ``[B, C]``; the other tensors are ``[C]``. For two settings of
    ``momentum`` and ``eps``, the function gets three training steps on
    fresh random batches (as few as 2 samples) and one eval-mode call, each
    with the running statistics ``nn.BatchNorm1d`` holds at that point, and
    must give torch's ``y`` and updated running statistics.

    Raises:
        CheckFailed: naming the mode, the step and the wrong quantity, and
            the likely mistake when it recognizes one (biased vs unbiased
            variance, momentum convention, batch vs running statistics).
    """
    BATCH_NORM.run_local(batch_norm, seed=seed)


# -- check_layer_norm ------------------------------------------------------

def _ln_cases(rng) -> list[dict]:
    # a batch of one sample: layer norm handles it, batch norm cannot
    return [dict(n=n, c=c, eps=eps, seed=rng.randrange(2**31))
            for n, c, eps in ((5, 8, 1e-5), (1, 8, 1e-5), (7, 3, 1e-2))]


def _ln_setup(case):
    g = torch.Generator().manual_seed(case["seed"])
    x = 3 * torch.randn(case["n"], case["c"], generator=g) + 2   # [n, C]
    gamma = 0.5 + torch.rand(case["c"], generator=g)
    beta = torch.randn(case["c"], generator=g)
    return x, gamma, beta


def _ln_where(case) -> str:
    return (f"a batch of {case['n']} samples with {case['c']} features, "
            f"eps={case['eps']}")


def _call_layer_norm(layer_norm, case):
    x, gamma, beta = _ln_setup(case)
    out = layer_norm(x.clone(), gamma.clone(), beta.clone(), eps=case["eps"])
    return as_tensor(out, f"layer_norm's output ({_ln_where(case)})",
                     x.shape).detach().clone()


def _judge_layer_norm(case, got):
    x, gamma, beta = _ln_setup(case)
    eps, where = case["eps"], _ln_where(case)
    got = as_tensor(got, f"layer_norm's output ({where})", x.shape)
    want = F.layer_norm(x, (case["c"],), gamma, beta, eps)
    if close(got, want):
        return
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    hint = mistake_hint(got, {
        "normalizing each feature over the batch (dim 0): that is batch "
        "norm; layer norm normalizes each sample over its features (the "
        "last dim)":
            _normalize(x, x.mean(0), x.var(0, unbiased=False), eps, gamma,
                       beta),
        "normalizing with the unbiased variance (divide by C - 1); layer "
        "norm uses the biased one (divide by C)":
            _normalize(x, mean, x.var(1, keepdim=True), eps, gamma, beta),
        "adding eps outside the square root: use sqrt(var + eps)":
            gamma * (x - mean) / (var.sqrt() + eps) + beta,
        "the normalized x without gamma and beta":
            F.layer_norm(x, (case["c"],), eps=eps),
    })
    fail(f"layer_norm is wrong ({where}): expected {_row(want)} in row 0, "
         f"got {_row(got)}.{hint}")


LAYER_NORM = Check("check_layer_norm", "layer_norm", _ln_cases,
                   _call_layer_norm, _judge_layer_norm)


def check_layer_norm(layer_norm, *, seed: int | None = None):
    """Check ``layer_norm(x, gamma, beta, eps=1e-5) -> y`` against
    :func:`torch.nn.functional.layer_norm` over the last dimension.

    ``x`` is ``[B, C]``; ``gamma`` and ``beta`` are ``[C]``. The cases
    include a batch of one sample, which layer norm handles and batch norm
    cannot.

    Raises:
        CheckFailed: naming the case and the likely mistake.
    """
    LAYER_NORM.run_local(layer_norm, seed=seed)

"""Lab 03 checks: Kaiming-normal initialization by hand, and the variance
recursion that predicts each layer's pre-activation variance.

Both checks are statistical where the answer is random, with tolerances
from the sampling error (as in ``tests/test_init.py``): five standard
errors for the statistics of 262,144 drawn weights, and for the measured
variances a 25 % band, over four standard errors of the mean of 24
networks. A correct answer fails with a probability far below 1e-4, while
the usual mistakes (fan-out for fan-in, a missing gain, a uniform
distribution, a recursion that forgets the activation) miss by a factor of
two or more.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import as_floats, fail
from ._protocol import Check

__all__ = ["check_kaiming_normal", "check_predict_variances",
           "predict_variances_reference", "KAIMING_NORMAL",
           "PREDICT_VARIANCES"]


# -- check_kaiming_normal --------------------------------------------------

# Two-sample Kolmogorov-Smirnov: P(D > c * sqrt((n + m) / (n m))) is about
# 2 exp(-2 c^2); c = 2.69 gives 1e-6 for two samples of the same law. A
# uniform of the right variance is 0.057 away from a normal in sup-CDF
# distance, 8x the threshold for 262,144 draws.
_KS_C = math.sqrt(-math.log(1e-6 / 2) / 2)


def _kaiming_cases(rng) -> list[dict]:
    # Non-square shapes: fan_in and fan_out differ by 4x, in both orders.
    return [dict(shape=[256, 1024], seed=rng.randrange(2**31)),
            dict(shape=[1024, 256], seed=rng.randrange(2**31))]


def _call_kaiming(kaiming_normal_, case):
    shape = tuple(case["shape"])
    weight = torch.full(shape, float("nan"))
    out = kaiming_normal_(weight,
                          generator=torch.Generator().manual_seed(
                              case["seed"]))
    again = torch.full(shape, float("nan"))
    kaiming_normal_(again,
                    generator=torch.Generator().manual_seed(case["seed"]))
    return {"weight": weight.detach().clone(),
            "returned_weight": out is weight,
            "repeatable": bool(torch.equal(weight, again))}


def _ks_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest gap between the empirical CDFs of two samples."""
    a = a.flatten().double().sort().values
    b = b.flatten().double().sort().values
    grid = torch.cat([a, b])
    fa = torch.searchsorted(a, grid, right=True) / len(a)
    fb = torch.searchsorted(b, grid, right=True) / len(b)
    return (fa - fb).abs().max().item()


def _variance_hint(var: float, fan_in: int, fan_out: int, tol: float):
    """The known mistake whose variance ``var`` matches, or ``""``."""
    candidates = {
        "2 / fan_out: you used fan_out = weight.shape[0]; a Linear weight "
        "is [fan_out, fan_in], so fan_in is weight.shape[1]": 2 / fan_out,
        "1 / fan_in: the ReLU gain sqrt(2) is missing (std = "
        "sqrt(2 / fan_in), not 1 / sqrt(fan_in))": 1 / fan_in,
        "Xavier's 2 / (fan_in + fan_out); Kaiming uses fan_in alone":
            2 / (fan_in + fan_out),
        "(2 / fan_in)^2: you used 2 / fan_in as the standard deviation; "
        "it is the variance, so std = sqrt(2 / fan_in)": (2 / fan_in) ** 2,
        "a uniform U(-a, a) with a = sqrt(2 / fan_in); its variance is "
        "a^2 / 3, and Kaiming-normal draws from a normal": 2 / (3 * fan_in),
        "PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance "
        "1 / (3 fan_in)": 1 / (3 * fan_in),
        "4 / fan_in: a gain of 2 instead of sqrt(2)": 4 / fan_in,
        "1: unscaled standard normal draws; multiply by sqrt(2 / fan_in)":
            1.0,
    }
    for why, value in candidates.items():
        if abs(var - value) <= tol * value / (2 / fan_in):
            return f" That matches {why}."
    return ""


def _judge_kaiming(case, got):
    shape = tuple(case["shape"])
    fan_out, fan_in = shape
    where = f"(weight of shape {list(shape)}: fan_out={fan_out}, " \
            f"fan_in={fan_in})"
    if not isinstance(got, dict) or not isinstance(
            got.get("weight"), torch.Tensor):
        fail("kaiming_normal_'s answer has the wrong form")
    w = got["weight"].double()
    if w.isnan().any():
        fail(f"kaiming_normal_ did not fill `weight` in place {where}: it "
             f"still holds the NaNs it was given. Fill it inside the "
             f"function, e.g. with weight.normal_(...) or weight.copy_(...)"
             f" under torch.no_grad(), like torch.nn.init does")
    if not got["returned_weight"]:
        fail(f"kaiming_normal_ should return the tensor it filled, "
             f"`weight` itself, like torch.nn.init.kaiming_normal_ {where}")
    if not torch.isfinite(w).all():
        fail(f"kaiming_normal_ filled `weight` with non-finite values "
             f"{where}")
    n, want = w.numel(), 2 / fan_in
    # standard error of a normal sample variance: want * sqrt(2 / n)
    tol = 5 * want * math.sqrt(2 / n)
    var, mean = w.var().item(), w.mean().item()
    if abs(var - want) > tol:
        fail(f"the variance of the weights is {var:.4g}, expected "
             f"2 / fan_in = {want:.4g} (within {tol:.2g}) {where}."
             f"{_variance_hint(var, fan_in, fan_out, tol)}")
    if abs(mean) > 5 * math.sqrt(want / n):
        fail(f"the mean of the weights is {mean:.3g}, expected 0 (within "
             f"{5 * math.sqrt(want / n):.2g}) {where}")
    reference = nn.init.kaiming_normal_(
        torch.empty(shape), nonlinearity="relu",
        generator=torch.Generator().manual_seed(case["seed"] + 1))
    distance = _ks_distance(w, reference)
    limit = _KS_C * math.sqrt(2 / n)
    if distance > limit:
        z = (w - mean) / math.sqrt(var)
        kurtosis = z.pow(4).mean().item()
        shape_hint = (" The values look uniform (kurtosis "
                      f"{kurtosis:.2f}; a normal has 3, a uniform 1.8): "
                      "draw from a normal, e.g. torch.randn."
                      if abs(kurtosis - 1.8) < 0.3 else "")
        fail(f"the variance is right but the values are not distributed "
             f"like torch.nn.init.kaiming_normal_'s: their CDFs differ by "
             f"up to {distance:.3f} (two normal samples of this size differ"
             f" by less than {limit:.3f}) {where}.{shape_hint}")
    if not got["repeatable"]:
        fail(f"two calls with generators seeded alike gave different "
             f"weights {where}: draw from the `generator` argument (pass "
             f"generator=generator to torch.randn or weight.normal_)")


KAIMING_NORMAL = Check("check_kaiming_normal", "kaiming_normal_",
                       _kaiming_cases, _call_kaiming, _judge_kaiming)


def check_kaiming_normal(kaiming_normal_, *, seed: int | None = None):
    """Check ``kaiming_normal_(weight, *, generator=None) -> weight``.

    The function must fill the ``[fan_out, fan_in]`` tensor ``weight`` in
    place with draws from ``N(0, 2 / fan_in)`` taken from ``generator`` and
    return it. It is run on two non-square shapes (262,144 draws each);
    the sample variance must be within 5 standard errors of ``2 /
    fan_in``, the mean within 5 standard errors of 0, and the values must
    pass a two-sample Kolmogorov-Smirnov test against
    :func:`torch.nn.init.kaiming_normal_` at level 1e-6.

    Raises:
        CheckFailed: not in place, a wrong variance (naming the likely
            mistake: fan_out, a missing gain, a uniform bound), a wrong
            distribution, or draws that ignore ``generator``.
    """
    KAIMING_NORMAL.run_local(kaiming_normal_, seed=seed)


# -- check_predict_variances -----------------------------------------------

_ACTIVATIONS = {"identity": lambda z: z, "relu": torch.relu}
# E[phi(z)^2] for z ~ N(0, q): the identity keeps q, ReLU keeps half of it.
_SECOND_MOMENT = {"identity": 1.0, "relu": 0.5}


def predict_variances_reference(x2: float, fan_ins, weight_vars,
                                activation: str) -> list[float]:
    """The variance recursion for a plain MLP with zero biases.

    .. math:: q_1 = n_0 \\operatorname{Var}(W_1)\\, \\mathbb E[x^2], \\quad
        q_l = n_{l-1} \\operatorname{Var}(W_l)\\,
        \\mathbb E[\\phi(z_{l-1})^2]

    with ``E[phi(z)^2] = q`` for the identity and ``q / 2`` for ReLU
    (He et al. 2015).

    Args:
        x2: the input's second moment ``E[x^2]``.
        fan_ins: ``[n_0, ..., n_{L-1}]``, each layer's fan-in.
        weight_vars: ``[Var(W_1), ..., Var(W_L)]``.
        activation: ``"identity"`` or ``"relu"``.

    Returns:
        ``[q_1, ..., q_L]``, the pre-activation second moments.
    """
    if activation not in _SECOND_MOMENT:
        raise ValueError(f"unknown activation {activation!r}; valid: "
                         f"{', '.join(_SECOND_MOMENT)}")
    q, h2 = [], x2
    for fan_in, var in zip(fan_ins, weight_vars):
        q.append(fan_in * var * h2)
        h2 = _SECOND_MOMENT[activation] * q[-1]
    return q


def _recursion_cases(rng) -> list[dict]:
    # Wide and shallow, so that _NETS networks measure the mean closely:
    # each ReLU layer multiplies q by a random factor of relative variance
    # at most ~5 / n, so Var(log q_L) grows like 5 * sum(1 / n_l) (Hanin &
    # Rolnick 2018). Here that is <= 0.08: one network's q_L is within
    # ~30 % of the mean, the mean of 24 within ~6 % (1 standard error).
    def case(activation):
        depth = rng.randint(3, 4)
        fan_ins = [rng.choice([256, 384, 512]) for _ in range(depth)]
        weight_vars = [rng.uniform(0.8, 1.6) ** 2 / n for n in fan_ins]
        return dict(x2=rng.uniform(0.5, 2.0), fan_ins=fan_ins,
                    weight_vars=weight_vars, activation=activation,
                    seed=rng.randrange(2**31))
    return [case("relu"), case("identity"), case("relu")]


def _call_recursion(predict_variances, case):
    out = predict_variances(case["x2"], list(case["fan_ins"]),
                            list(case["weight_vars"]), case["activation"])
    return as_floats(out, "predict_variances")


# Networks a measurement averages over, and the relative tolerance of the
# comparison: 25 % is over 4 standard errors of the mean of 24 networks,
# while every mistake the hints name is off by a factor of 2 or more.
_NETS, _MEASURED_TOL = 24, 0.25


def _measure(case, *, nets: int = _NETS, batch: int = 64):
    """Mean and standard error, over ``nets`` random networks, of each
    layer's measured ``E[z_l^2]``: Gaussian weights of the case's
    variances, zero biases, Gaussian inputs with ``E[x^2] = x2``."""
    fan_ins = case["fan_ins"]
    fan_outs = fan_ins[1:] + [256]  # the last layer's fan-out is free
    phi = _ACTIVATIONS[case["activation"]]
    g = torch.Generator().manual_seed(case["seed"])
    runs = []
    for _ in range(nets):
        h = math.sqrt(case["x2"]) * torch.randn(batch, fan_ins[0],
                                                generator=g)
        run = []
        for fan_in, fan_out, var in zip(fan_ins, fan_outs,
                                        case["weight_vars"]):
            w = math.sqrt(var) * torch.randn(fan_out, fan_in, generator=g)
            z = h @ w.T                                   # [batch, fan_out]
            run.append(z.pow(2).mean().item())
            h = phi(z)
        runs.append(run)
    runs = torch.tensor(runs, dtype=torch.float64)        # [nets, L]
    return runs.mean(0).tolist(), (runs.std(0) / math.sqrt(nets)).tolist()


def _recursion_hint(case, got) -> str:
    x2, fans, wv = case["x2"], case["fan_ins"], case["weight_vars"]
    act = case["activation"]

    def close(values):
        return len(values) == len(got) and all(
            math.isclose(a, b, rel_tol=1e-4) for a, b in zip(got, values))

    candidates = {
        "a recursion without the activation (E[phi(z)^2] = q); after a "
        "ReLU it is q / 2":
            predict_variances_reference(x2, fans, wv, "identity"),
        "the activation applied to the input as well; the first layer "
        "sees x itself, q_1 = n_0 Var(W_1) E[x^2]":
            [v * _SECOND_MOMENT[act] for v in
             predict_variances_reference(x2, fans, wv, act)],
        "standard deviations instead of variances (weight_vars are "
        "already variances)":
            predict_variances_reference(x2, fans, [math.sqrt(v) for v in wv],
                                        act),
    }
    for why, values in candidates.items():
        if close(values):
            return f" That matches {why}."
    return ""


def _judge_recursion(case, got):
    got = as_floats(got, "predict_variances")
    want = predict_variances_reference(case["x2"], case["fan_ins"],
                                       case["weight_vars"],
                                       case["activation"])
    depth = len(want)
    where = (f"(activation={case['activation']!r}, fan_ins="
             f"{case['fan_ins']}, x2={case['x2']:.3g})")
    if len(got) != depth:
        extra = (" (one per layer, q_1 ... q_L: leave out the input's "
                 "E[x^2])" if len(got) == depth + 1 else "")
        fail(f"predict_variances returned {len(got)} values, expected "
             f"{depth}{extra} {where}")
    mean, se = _measure(case)
    for l, (g, m, s) in enumerate(zip(got, mean, se), start=1):
        tol = max(5 * s, _MEASURED_TOL * m)
        if not abs(g - m) <= tol:
            fail(f"layer {l}: predicted E[z^2] = {g:.4g}, but {_NETS} random"
                 f" networks measured {m:.4g} +- {s:.2g} (a right prediction"
                 f" is within {_MEASURED_TOL:.0%}) {where}."
                 f"{_recursion_hint(case, got)}")
    for l, (g, w) in enumerate(zip(got, want), start=1):
        if not math.isclose(g, w, rel_tol=1e-6):
            fail(f"layer {l}: predicted E[z^2] = {g:.6g}, the recursion "
                 f"gives {w:.6g} {where}.{_recursion_hint(case, got)}")


PREDICT_VARIANCES = Check("check_predict_variances", "predict_variances",
                          _recursion_cases, _call_recursion,
                          _judge_recursion)


def check_predict_variances(predict_variances, *, seed: int | None = None):
    """Check ``predict_variances(x2, fan_ins, weight_vars, activation) ->
    list[float]``, the per-layer ``E[z_l^2]`` of an MLP at initialization.

    Three random networks (3-4 layers, fan-ins 256-512, ReLU or identity,
    random weight variances and input scale). The prediction is compared
    first with a measurement, the mean of ``E[z_l^2]`` over 24 random
    networks (within 25 %, over 4 standard errors of that mean), then with
    :func:`predict_variances_reference` (relative error 1e-6).

    Raises:
        CheckFailed: the wrong number of layers or a wrong value, naming the
            layer and the likely mistake (a forgotten activation, the
            activation applied to the input, standard deviations for
            variances).
    """
    PREDICT_VARIANCES.run_local(predict_variances, seed=seed)

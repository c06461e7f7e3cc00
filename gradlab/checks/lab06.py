"""Lab 06 checks: one GRU step written by hand and compared with PyTorch,
and the gradient that reaches each time step of a sequence."""

from __future__ import annotations

import torch
from torch import nn

from ..data import adding_problem
from ..grads import time_grad_norms
from ..models import SequenceModel
from ._common import as_tensor, close, fail, mistake_hint
from ._protocol import Check

__all__ = ["check_gru_step", "check_grad_through_time", "GRU_STEP",
           "GRAD_THROUGH_TIME"]



def _row(t: torch.Tensor) -> str:
    values = t[0] if t.dim() == 2 else t
    return "[" + ", ".join(f"{v:.4g}" for v in values[:3].tolist()) + ", ...]"


# -- check_gru_step --------------------------------------------------------

def _gru_cases(rng) -> list[dict]:
    # sizes with H != F so that transposed weights fail loudly; a batch of 1
    return [dict(b=b, f=f, h=h, seed=rng.randrange(2**31))
            for b, f, h in ((4, 3, 5), (1, 2, 3), (6, 5, 2))]


def _gru_setup(case):
    """Inputs of one step: ``x [B, F]``, ``h [B, H]``, torch-shaped
    weights and biases, large enough that every gate is far from 0.5."""
    g = torch.Generator().manual_seed(case["seed"])
    b, f, h = case["b"], case["f"], case["h"]
    x = 2 * torch.randn(b, f, generator=g)
    state = torch.randn(b, h, generator=g).tanh()
    weight_ih = torch.randn(3 * h, f, generator=g)
    weight_hh = torch.randn(3 * h, h, generator=g)
    bias_ih = torch.randn(3 * h, generator=g)
    bias_hh = torch.randn(3 * h, generator=g)
    return x, state, weight_ih, weight_hh, bias_ih, bias_hh


def _gru_reference(x, state, weight_ih, weight_hh, bias_ih, bias_hh):
    cell = nn.GRUCell(x.shape[1], state.shape[1])
    with torch.no_grad():
        for p, value in zip(cell.parameters(), (weight_ih, weight_hh,
                                                bias_ih, bias_hh)):
            p.copy_(value)
        return cell(x, state)


def _gru_variants(x, state, weight_ih, weight_hh, bias_ih, bias_hh):
    """What the usual mistakes compute, keyed by their explanation."""
    xr, xz, xn = (x @ weight_ih.T + bias_ih).chunk(3, dim=1)
    hr, hz, hn = (state @ weight_hh.T + bias_hh).chunk(3, dim=1)
    W_hn, b_hn = weight_hh.chunk(3)[2], bias_hh.chunk(3)[2]
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    # gates read as (update, reset): r and z exchanged
    z2, r2 = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n2 = (xn + r2 * hn).tanh()
    return {
        "h' = z * n + (1 - z) * h: PyTorch keeps z * h, "
        "h' = (1 - z) * n + z * h":
            z * n + (1 - z) * state,
        "the reset gate applied before the matrix, W_hn (r * h) + b_hn "
        "(Cho et al.'s form); PyTorch applies it after: "
        "r * (W_hn h + b_hn)":
            (1 - z) * (xn + (r * state) @ W_hn.T + b_hn).tanh() + z * state,
        "b_hn added outside the reset gate, r * (W_hn h) + b_hn; PyTorch "
        "multiplies the whole r * (W_hn h + b_hn)":
            (1 - z) * (xn + r * (hn - b_hn) + b_hn).tanh() + z * state,
        "reading the stacked gates as (update, reset, new); PyTorch's "
        "order is (reset, update, new)":
            (1 - z2) * n2 + z2 * state,
        "the candidate n alone: mix it with h through the update gate":
            n,
    }


def _gru_where(case) -> str:
    return (f"x of shape [{case['b']}, {case['f']}], h of shape "
            f"[{case['b']}, {case['h']}]")


def _call_gru_step(gru_step, case):
    inputs = _gru_setup(case)
    out = gru_step(*(t.clone() for t in inputs))
    return as_tensor(out, f"gru_step ({_gru_where(case)})",
                     (case["b"], case["h"])).detach().clone()


def _judge_gru_step(case, got):
    inputs = _gru_setup(case)
    where = _gru_where(case)
    got = as_tensor(got, f"gru_step ({where})", (case["b"], case["h"]))
    want = _gru_reference(*inputs)
    if close(got, want):
        return
    hint = mistake_hint(got, _gru_variants(*inputs))
    fail(f"gru_step is wrong ({where}): expected {_row(want)} in row 0, "
         f"got {_row(got)}.{hint}")


GRU_STEP = Check("check_gru_step", "gru_step", _gru_cases, _call_gru_step,
                 _judge_gru_step)


def check_gru_step(gru_step, *, seed: int | None = None):
    """Check ``gru_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh) ->
    h_new`` against ``nn.GRUCell``.

    ``x`` is ``[B, F]``, ``h`` is ``[B, H]``; the weights are PyTorch's,
    ``[3H, F]`` and ``[3H, H]`` stacked as (reset, update, new), the biases
    ``[3H]``. Three cases, one with a batch of one.

    Raises:
        CheckFailed: naming the case and the likely mistake (the update
            gate's convention, where the reset gate applies, the gate
            order, returning the candidate).
    """
    GRU_STEP.run_local(gru_step, seed=seed)


# -- check_grad_through_time -----------------------------------------------

def _time_cases(rng) -> list[dict]:
    return [dict(cell=cell, seq_len=t, batch=b, hidden=8,
                 seed=rng.randrange(2**31))
            for cell, t, b in (("rnn", 12, 5), ("lstm", 9, 4), ("gru", 7, 1))]


def _time_setup(case):
    """A seeded model at initialization and adding-problem data."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(case["seed"])  # CPU init
        model = SequenceModel(case["cell"], 2, case["hidden"], 1)
    x, y = adding_problem(case["batch"], case["seq_len"],
                          generator=torch.Generator()
                          .manual_seed(case["seed"]))
    return model, x, y


def _time_where(case) -> str:
    return (f"a {case['cell']} model, {case['batch']} sequences of "
            f"{case['seq_len']} steps")


def _call_grad_through_time(grad_through_time, case):
    model, x, y = _time_setup(case)
    out = grad_through_time(model, x, y)
    if isinstance(out, (list, tuple)):
        out = torch.tensor([float(v) for v in out])
    return as_tensor(out, f"grad_through_time ({_time_where(case)})",
                     (case["seq_len"],)).detach().cpu().clone()


def _time_variants(model, x, y, want):
    x = x.detach().requires_grad_(True)
    pred = model(x)
    (g,) = torch.autograd.grad(nn.functional.mse_loss(pred, y), x)  # [B,T,F]
    return {
        "the gradient of the summed squared error; the loss is the mean "
        "over the batch (nn.functional.mse_loss), B times smaller":
            want * x.shape[0],
        "the steps in reverse order: entry t is step t, the loss reads the "
        "last one":
            want.flip(0),
        "the squared norm: take the square root":
            want.pow(2),
        "the mean over the batch of each sequence's norm; take one norm "
        "over the batch and the features together":
            g.norm(dim=2).mean(dim=0),
        "the sum of absolute values (an L1 norm); use the L2 norm":
            g.abs().sum(dim=(0, 2)),
    }


def _judge_grad_through_time(case, got):
    model, x, y = _time_setup(case)
    where = _time_where(case)
    got = as_tensor(got, f"grad_through_time ({where})", (case["seq_len"],))
    want = time_grad_norms(model, x, y, "mse")
    if close(got, want):
        return
    hint = mistake_hint(got, _time_variants(model, x, y, want))
    fail(f"grad_through_time is wrong ({where}): expected "
         f"{_row(want)} for the first steps, got {_row(got)}.{hint}")


GRAD_THROUGH_TIME = Check("check_grad_through_time", "grad_through_time",
                          _time_cases, _call_grad_through_time,
                          _judge_grad_through_time)


def check_grad_through_time(grad_through_time, *, seed: int | None = None):
    """Check ``grad_through_time(model, x, y) -> norms`` against
    :func:`gradlab.time_grad_norms` with the MSE loss.

    ``x`` is ``[B, T, 2]`` adding-problem input, ``y`` is ``[B, 1]``; the
    model is a fresh :class:`~gradlab.models.SequenceModel` (tanh RNN, LSTM
    and GRU, one case each). The answer is a tensor or list of ``T``
    floats, ``||dL/dx_t||`` with the norm over the batch and the features.

    Raises:
        CheckFailed: naming the case and the likely mistake (sum instead of
            mean, reversed order, squared norm, per-sequence norms).
    """
    GRAD_THROUGH_TIME.run_local(grad_through_time, seed=seed)

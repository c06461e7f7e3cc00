"""gl.time_grad_norms against closed forms: a linear RNN's gradient with
respect to each input step is a matrix power, computed here exactly."""

import pytest
import torch
from torch import nn

import gradlab as gl


class LinearRNN(nn.Module):
    """h_t = W h_{t-1} + U x_t, h_0 = 0, read out as v . h_T."""

    def __init__(self, W, U, v):
        super().__init__()
        self.W, self.U, self.v = nn.Parameter(W), nn.Parameter(U), \
            nn.Parameter(v)

    def forward(self, x):                           # x: [B, T, F]
        h = x.new_zeros(x.shape[0], self.W.shape[0])
        for t in range(x.shape[1]):
            h = h @ self.W.T + x[:, t] @ self.U.T   # [B, H]
        return h @ self.v[:, None]                  # [B, 1]


def mean_output(out, target):
    return out.mean()


def random_linear_rnn(H=5, F=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(H, H, generator=g, dtype=torch.float64) / H ** 0.5
    U = torch.randn(H, F, generator=g, dtype=torch.float64)
    v = torch.randn(H, generator=g, dtype=torch.float64)
    return LinearRNN(W, U, v)


def exact_direction(model, T):
    # d(v.h_T)/dx_t = U^T (W^T)^(T-1-t) v, the same for every sample: [T, F]
    W, U, v = (p.detach() for p in (model.W, model.U, model.v))
    return torch.stack([U.T @ torch.linalg.matrix_power(W.T, T - 1 - t) @ v
                        for t in range(T)])


def test_linear_rnn_mean_output_is_exact():
    B, T = 4, 12
    model = random_linear_rnn()
    x = torch.randn(B, T, 3, dtype=torch.float64)
    got = gl.time_grad_norms(model, x, torch.zeros(B, 1), mean_output)
    # every sample gets (1/B) * direction; the norm over B samples
    want = exact_direction(model, T).norm(dim=1) * B ** 0.5 / B
    assert got.shape == (T,)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)


def test_linear_rnn_mse_is_exact():
    B, T = 6, 9
    model = random_linear_rnn(seed=1)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(B, T, 3, generator=g, dtype=torch.float64)
    y = torch.randn(B, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        residual = 2 * (model(x) - y) / B              # dL/d out, [B, 1]
    direction = exact_direction(model, T)              # [T, F]
    want = residual.norm() * direction.norm(dim=1)
    got = gl.time_grad_norms(model, x, y, "mse")
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.1])
def test_scaled_orthogonal_recurrence_decays_at_rate_rho(rho):
    # W = rho Q with Q orthogonal: ||dL/dx_t|| = rho^(T-1-t) / sqrt(B) exactly
    H, B, T = 4, 3, 10
    Q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64,
                                       generator=torch.Generator()
                                       .manual_seed(0)))
    v = torch.zeros(H, dtype=torch.float64)
    v[0] = 1.0
    model = LinearRNN(rho * Q, torch.eye(H, dtype=torch.float64), v)
    x = torch.ones(B, T, H, dtype=torch.float64)
    got = gl.time_grad_norms(model, x, torch.zeros(B, 1), mean_output)
    want = torch.tensor([rho ** (T - 1 - t) for t in range(T)],
                        dtype=torch.float64) / B ** 0.5
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)


def test_matches_autograd_jacobian_on_a_gru():
    # an independent route: the full Jacobian of the loss wrt the inputs
    torch.manual_seed(0)
    model = gl.models.SequenceModel("gru", 2, 6, 1).double()
    x, y = gl.data.adding_problem(5, 8, generator=torch.Generator()
                                  .manual_seed(0))
    x, y = x.double(), y.double()
    jac = torch.autograd.functional.jacobian(
        lambda inp: nn.functional.mse_loss(model(inp), y), x)  # [B, T, F]
    want = jac.pow(2).sum(dim=(0, 2)).sqrt()
    got = gl.time_grad_norms(model, x, y, "mse")
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


def test_leaves_model_grads_and_inputs_alone():
    torch.manual_seed(0)
    model = gl.models.SequenceModel("lstm", 2, 4, 1)
    x, y = gl.data.adding_problem(3, 5, generator=torch.Generator()
                                  .manual_seed(0))
    norms = gl.time_grad_norms(model, x, y, "mse")
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad and x.grad is None
    assert norms.device.type == "cpu" and torch.isfinite(norms).all()


def lambda_module(fn):
    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, z):
            return fn(z)
    return Wrap()


def test_last_step_only_model_gets_zero_before_it():
    # a model that reads only the last step sends no gradient to the others
    model = nn.Linear(2, 1)
    x = torch.randn(3, 4, 2)
    norms = gl.time_grad_norms(lambda_module(lambda z: model(z[:, -1])), x,
                               torch.zeros(3, 1), "mse")
    assert (norms[:-1] == 0).all() and norms[-1] > 0


@pytest.mark.parametrize("bad", [torch.randn(3, 4),
                                 torch.ones(2, 3, 4, dtype=torch.long)])
def test_rejects_non_sequence_inputs(bad):
    model = gl.models.SequenceModel("rnn", 4, 4, 1)
    with pytest.raises(ValueError, match="time_grad_norms needs float"):
        gl.time_grad_norms(model, bad, torch.zeros(3, 1), "mse")

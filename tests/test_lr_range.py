"""gradlab.lr_range: the stability limit 2 / lambda_max and the
learning-rate range test."""

import math

import pytest
import torch
from torch import nn

from gradlab import lr_range


def _spd(eigenvalues, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues),
                                       generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues,
                                       dtype=torch.float64)) @ q.T


def test_max_stable_lr_is_two_over_the_top_eigenvalue():
    H = _spd([0.5, 2.0, 8.0])
    assert lr_range.max_stable_lr(H) == pytest.approx(2 / 8.0)


def test_gd_on_quadratic_matches_the_closed_form():
    H = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    x0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    norms = lr_range.gd_on_quadratic(H, x0, 0.3, 5)
    # x_k = ((1 - 0.3)^k, (1 - 1.2)^k)
    want = torch.tensor([math.hypot(0.7 ** k, (-0.2) ** k)
                         for k in range(6)], dtype=torch.float64)
    assert torch.allclose(norms, want)


@pytest.mark.parametrize("factor, converges", [(0.98, True), (1.02, False)])
def test_the_limit_separates_convergence_from_divergence(factor, converges):
    H = _spd([0.3, 1.0, 5.0], seed=1)
    x0 = torch.ones(3, dtype=torch.float64)
    lr = factor * lr_range.max_stable_lr(H)
    norms = lr_range.gd_on_quadratic(H, x0, lr, 400)
    assert (norms[-1] < 1e-2 * norms[0]) == converges
    assert (norms[-1] > 10 * norms[0]) == (not converges)


@pytest.mark.parametrize("H, word", [
    (torch.ones(2, 3), "square"),
    (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "symmetric"),
    (-torch.eye(2), "largest eigenvalue"),
])
def test_bad_hessians_are_named(H, word):
    with pytest.raises(ValueError, match=word):
        lr_range.max_stable_lr(H)


def _regression(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    y = (X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
         + 0.3 * torch.randn(n, 1, generator=g))     # noise: a loss floor
    return X, y


def test_range_test_rates_are_geometric_and_weights_restored():
    X, y = _regression()
    model = nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]
    result = lr_range.lr_range_test(model, (X, y), loss="mse",
                                    batch_size=16, lr_min=1e-4, lr_max=1e-2,
                                    steps=9, generator=torch.Generator(),
                                    device="cpu")
    assert not result.diverged and len(result.lrs) == 9
    want = [1e-4 * 100 ** (k / 8) for k in range(9)]
    assert result.lrs == pytest.approx(want, rel=1e-12)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p.detach(), q)


def test_range_test_stops_past_the_stability_limit():
    # full-batch GD on least squares: the Hessian of the MSE is 2/n X^T X
    # (the bias adds a column of ones); beyond 2 / lambda_max it diverges
    X, y = _regression()
    A = torch.cat([X, torch.ones(len(X), 1)], dim=1).double()
    limit = lr_range.max_stable_lr(2 / len(X) * A.T @ A)
    model = nn.Linear(4, 1)
    result = lr_range.lr_range_test(model, (X, y), loss="mse",
                                    batch_size=len(X), lr_min=1e-3,
                                    lr_max=100.0, steps=200,
                                    generator=torch.Generator(),
                                    device="cpu")
    assert result.diverged
    assert result.lrs[-1] > limit           # it cannot stop before
    # growth from the converged loss floor takes some steps: measured 3.4x
    assert result.lrs[-1] < 5 * limit


@pytest.mark.parametrize("kwargs, word", [
    (dict(lr_min=1.0, lr_max=0.1), "lr_min"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(steps=1), "steps"),
    (dict(smoothing=1.0), "smoothing"),
    (dict(diverge=1.0), "diverge"),
    (dict(batch_size=1000), "batch_size"),
])
def test_range_test_bad_arguments_are_named(kwargs, word):
    X, y = _regression()
    args = dict(dict(loss="mse", batch_size=16, device="cpu"), **kwargs)
    with pytest.raises(ValueError, match=word):
        lr_range.lr_range_test(nn.Linear(4, 1), (X, y), **args)


def test_plot_range_test_caps_the_diverging_tail():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    result = lr_range.RangeTest(lrs=[1e-3, 1e-2, 1e-1, 1.0],
                                losses=[2.3, 0.5, 0.4, 1e3], diverged=True)
    assert result.best_lr == 1e-1
    assert lr_range.plot_range_test(result, ax=ax) is ax
    assert ax.get_ylim()[1] == pytest.approx(1.5 * 2.3)
    assert ax.get_xscale() == "log"
    plt.close(fig)

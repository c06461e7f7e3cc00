"""gradlab.clipping: rho^k growth in a linear recurrence, norm vs value
clipping, and the chapter 8 explorer."""

import math

import matplotlib
import pytest
import torch

import gradlab as gl
from gradlab import clipping

matplotlib.use("Agg")


def test_orthogonal_recurrence_has_every_singular_value_rho(generator):
    W = clipping.orthogonal_recurrence(1.3, 12, generator=generator)
    s = torch.linalg.svdvals(W)
    assert torch.allclose(s, torch.full((12,), 1.3, dtype=W.dtype))


@pytest.mark.parametrize("rho", [0.7, 1.0, 1.25])
def test_profile_matches_rho_power_exactly(rho):
    profile = clipping.rho_power_profile(rho, 25, seed=3)
    assert profile["k"] == list(range(26))
    for m, p in zip(profile["measured"], profile["predicted"]):
        assert m == pytest.approx(p, rel=1e-10)
    assert profile["predicted"][-1] == pytest.approx(rho ** 25)


def test_profile_gradient_matches_autograd_of_the_recurrence():
    # dL/dW from the profile equals an independent float64 recomputation
    rho, T, H, B, seed = 1.1, 6, 5, 3, 7
    profile = clipping.rho_power_profile(rho, T, hidden=H, batch=B,
                                         seed=seed)
    g = torch.Generator().manual_seed(seed)
    W = clipping.orthogonal_recurrence(rho, H, generator=g)
    x = torch.randn(T, B, H, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, generator=g, dtype=torch.float64)
    h = torch.randn(B, H, generator=g, dtype=torch.float64)
    # by hand: dL/dh_T = v / B, dL/dW = sum_t (dL/dh_t)^T h_{t-1}
    states = [h]
    for t in range(T):
        states.append(states[-1] @ W.T + x[t])
    delta, grad = v / B, torch.zeros(H, H, dtype=torch.float64)
    for t in range(T, 0, -1):
        grad += delta.T @ states[t - 1]
        delta = delta @ W
    assert torch.allclose(profile["grad"], grad, atol=1e-12)


def test_sweep_is_the_last_entry_of_each_profile():
    sweep = clipping.rho_power_sweep([0.9, 1.1], [3, 8], seed=1)
    assert sweep["measured"].shape == (2, 2)
    assert torch.allclose(sweep["measured"], sweep["predicted"], rtol=1e-10)
    assert sweep["predicted"][1, 1].item() == pytest.approx(1.1 ** 8)


def test_clip_comparison_against_torch():
    g = torch.tensor([3.0, -4.0, 0.5, 0.0])          # norm ~5.02
    out = clipping.clip_comparison(g, 1.0, clip_value=1.0)
    assert out["raw_norm"] == pytest.approx(g.norm().item())
    assert out["norm_clipped_norm"] == pytest.approx(1.0, rel=1e-5)
    assert out["cos_norm"] == pytest.approx(1.0, abs=1e-6)
    clamped = g.clamp(-1, 1)                          # [1, -1, 0.5, 0]
    assert out["value_clipped_norm"] == pytest.approx(clamped.norm().item())
    want = (clamped @ g / (clamped.norm() * g.norm())).item()
    assert out["cos_value"] == pytest.approx(want, rel=1e-6)
    assert out["cos_value"] < 0.97    # 7.25 / (1.5 * 5.02) = 0.962
    assert torch.equal(g, torch.tensor([3.0, -4.0, 0.5, 0.0]))  # untouched


def test_clip_comparison_below_threshold_changes_nothing():
    g = torch.tensor([0.1, -0.2, 0.05])
    out = clipping.clip_comparison(g, 10.0)
    assert out["clip_value"] == pytest.approx(10 / math.sqrt(3))
    assert out["norm_clipped_norm"] == pytest.approx(out["raw_norm"])
    assert out["cos_value"] == pytest.approx(1.0)


@pytest.mark.parametrize("call, word", [
    (lambda: clipping.orthogonal_recurrence(0, 3,
                                            generator=torch.Generator()),
     "rho"),
    (lambda: clipping.rho_power_profile(1.0, 0), "T"),
    (lambda: clipping.clip_comparison(torch.ones(3), -1.0), "max_norm"),
    (lambda: clipping.clip_comparison(torch.ones(3), 1.0, 0.0),
     "clip_value"),
])
def test_bad_arguments_are_named(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_plots_draw_on_given_axes():
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2)
    profile = clipping.rho_power_profile(1.2, 5)
    assert clipping.plot_rho_power(profile, ax=axes[0]) is axes[0]
    comp = clipping.clip_comparison(profile["grad"], 1.0)
    assert clipping.plot_clipping(comp, ax=axes[1], max_norm=1.0) is axes[1]
    assert len(axes[1].patches) == 3
    plt.close(fig)


def test_clipping_explorer_wires_every_control(monkeypatch):
    calls = []
    real = clipping.rho_power_profile
    comps = []
    real_comp = clipping.clip_comparison
    monkeypatch.setattr(clipping, "rho_power_profile",
                        lambda rho, T, **kw: calls.append((rho, T))
                        or real(rho, T, **kw))
    monkeypatch.setattr(clipping, "clip_comparison",
                        lambda grad, c, *a: comps.append(c)
                        or real_comp(grad, c, *a))
    box = gl.widgets.clipping_explorer()
    controls = {c.description: c for c in box.children[0].children}
    assert sorted(controls) == ["T", "clip at", "rho"]
    start = gl.widgets.CLIPPING_DEFAULTS
    assert calls[-1] == (start["rho"], start["T"])
    assert comps[-1] == pytest.approx(start["max_norm"])
    controls["rho"].value = 0.8
    controls["T"].value = 12
    controls["clip at"].value = 10.0
    assert calls[-1] == (0.8, 12)
    assert comps[-1] == pytest.approx(10.0)

"""Chapter 6's recurrent explorer: compute, plot, and every control."""

import matplotlib
import pytest
import torch

import gradlab as gl
from gradlab.widgets import recurrent

matplotlib.use("Agg")


def test_time_profile_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = recurrent.time_profile("gru", seq_len=8, hidden_size=4,
                               batch_size=16, device="cpu")
    after = torch.rand(1)
    b = recurrent.time_profile("gru", seq_len=8, hidden_size=4,
                               batch_size=16, device="cpu")
    assert torch.equal(before, after)
    assert a["norms"] == b["norms"] and len(a["norms"]) == 8
    assert a["ratio"] == pytest.approx(a["norms"][0] / a["norms"][-1])


def test_time_profile_small_radius_vanishes_faster():
    small = recurrent.time_profile("rnn", seq_len=30, spectral_radius=0.3,
                                   input_scale=0.01, device="cpu")
    large = recurrent.time_profile("rnn", seq_len=30, spectral_radius=0.95,
                                   input_scale=0.01, device="cpu")
    # linear regime: the per-step rate is the radius (up to the
    # eigenvector's constant), 0.3^29 ~ 1e-15 against 0.95^29 ~ 0.2
    assert small["ratio"] < 1e-10 < 1e-2 < large["ratio"]


def test_plot_draws_one_line_per_curve():
    ax = recurrent.plot_time_grad_norms({"rnn": [1.0, 0.0, 2.0],
                                         "lstm, trained": [1.0, 1.0, 1.0]})
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    assert ax.lines[1].get_color() == recurrent.CELL_COLORS["lstm"]
    assert torch.isnan(torch.tensor(ax.lines[0].get_ydata()[1]))


def test_recurrent_explorer_wires_every_control(monkeypatch):
    calls = []
    real = recurrent.time_profile
    monkeypatch.setattr(recurrent, "time_profile",
                        lambda cell, **kw: calls.append((cell, kw))
                        or real(cell, **{**kw, "batch_size": 8}))
    box = gl.widgets.recurrent_explorer(device="cpu", seq_len=10)
    controls = {c.description: c for c in box.children[0].children}
    assert sorted(controls) == ["T", "cell", "radius ρ"]
    start = gl.widgets.RECURRENT_DEFAULTS
    assert calls[-1][0] == start["cell"]
    assert calls[-1][1]["spectral_radius"] == start["spectral_radius"]
    assert calls[-1][1]["seq_len"] == 10
    controls["cell"].value = "lstm"
    controls["radius ρ"].value = 1.5
    controls["T"].value = 20
    assert calls[-1][0] == "lstm"
    assert calls[-1][1]["spectral_radius"] == 1.5
    assert calls[-1][1]["seq_len"] == 20


def test_plot_time_profile_adds_the_rate_line():
    data = {"cell": "rnn", "spectral_radius": 0.5, "norms": [0.25, 0.5, 1.0],
            "ratio": 0.25}
    ax = recurrent.plot_time_profile(data)
    assert list(ax.lines[1].get_ydata()) == [0.25, 0.5, 1.0]  # 0.5^(T-t)
    assert "first / last step 2.5e-01" in ax.get_title()
    data["spectral_radius"] = None
    assert len(recurrent.plot_time_profile(data).lines) == 1

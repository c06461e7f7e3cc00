import math

import torch

import gradlab as gl


def _diagnose(digits, **kw):
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, width=64,
                          generator=torch.Generator().manual_seed(0), **kw)
    return gl.diagnose(model, X[:256], y[:256], "cross_entropy")


def test_deep_sigmoid_vanishes(digits):
    report = _diagnose(digits, depth=30, activation="sigmoid", init="default")
    assert report.verdict == "vanishing", report.reason


def test_kaiming_relu_with_batch_norm_is_healthy(digits):
    report = _diagnose(digits, depth=30, activation="relu", init="kaiming",
                       norm="batch")
    assert report.verdict == "healthy", report.reason


def test_large_linear_init_explodes(digits):
    report = _diagnose(digits, depth=30, activation="identity",
                       init="normal", init_std=3 / math.sqrt(64))
    assert report.verdict == "exploding", report.reason


def test_report_rows_text_and_html(digits):
    report = _diagnose(digits, depth=3, activation="tanh", norm="layer")
    # norm layers' 1-D gains are not layers
    assert [r["layer"] for r in report.rows] == [
        "layers.0.linear.weight", "layers.1.linear.weight",
        "layers.2.linear.weight", "head.weight"]
    head = report.rows[-1]
    assert head["layer"] == "head.weight" and head["ratio_to_last"] == 1.0
    text = str(report)
    assert "verdict: healthy" in text and "layers.2.linear.weight" in text
    assert "<table>" in report._repr_html_()


def test_diagnose_leaves_grads_and_mode_alone(digits):
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=2, width=8, dropout=0.5)
    model.eval()
    marker = torch.full_like(model.head.weight, 7.0)
    model.head.weight.grad = marker.clone()
    gl.diagnose(model, X[:32], y[:32], "cross_entropy")
    assert torch.equal(model.head.weight.grad, marker)
    assert model.layers[0].linear.weight.grad is None
    assert not model.training


def test_diagnose_any_module(digits):
    X, y, _, _ = digits
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                torch.nn.Linear(32, 10))
    report = gl.diagnose(model, X[:64], y[:64], "cross_entropy")
    assert [r["layer"] for r in report.rows] == ["0.weight", "2.weight"]
    assert [r["activation"] for r in report.rows] == ["", "tanh"]
    assert report.verdict == "healthy"


def test_depth_explorer_wires_every_control(digits, monkeypatch):
    X, y, _, _ = digits
    calls = []
    real = gl.widgets.profile_at_init
    monkeypatch.setattr(gl.widgets, "profile_at_init",
                        lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    box = gl.widgets.depth_explorer(X[:64], y[:64], device="cpu")
    controls = {c.description: c for column in box.children[0].children
                for c in column.children}
    assert sorted(controls) == ["activation", "depth", "init", "norm",
                                "residual", "width"]
    assert calls[-1]["norm"] is None and calls[-1]["depth"] == 20
    controls["norm"].value = "batch"
    controls["depth"].value = 7
    assert calls[-1]["norm"] == "batch" and calls[-1]["depth"] == 7


def test_no_gradient_at_all_is_vanishing_not_healthy(digits):
    """A network whose ReLUs all died passes no gradient to any weight:
    the ratio is 0/0, which must not read as healthy."""
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=3, width=16, activation="relu",
                          generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for block in model.layers:
            block.linear.bias.fill_(-100.0)      # every unit dead
    report = gl.diagnose(model, X[:64], y[:64], "cross_entropy")
    assert [r["grad_norm"] for r in report.rows[1:]] == [0.0] * 3
    assert report.verdict == "vanishing", report.reason
    assert "no gradient reaches" in report.reason
    assert any("100% of the units feeding" in n for n in report.notes)
    assert "note: 100% of the units feeding head.weight" in str(report)


def test_notes_name_saturated_inputs_of_a_healthy_looking_net(digits):
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=3, width=64, activation="tanh",
                          init="normal", init_std=1.0,
                          generator=torch.Generator().manual_seed(0))
    report = gl.diagnose(model, X[:256], y[:256], "cross_entropy")
    saturated = [r["layer"] for r in report.rows if r["saturated"] > 0.5]
    assert saturated    # std-1 weights saturate tanh (chapter 03)
    assert len(report.notes) == len(saturated)
    assert all("tanh outputs feeding" in n for n in report.notes)

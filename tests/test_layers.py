"""One notion of a layer on models gradlab did not build.

Each model here is written the way practitioners write them (torch's own
Transformer encoder, a tied-embedding LSTM language model, a functional CNN,
a plain ``nn.Sequential``). For each: the forward order against a hand
list, the verdict's last layer, and the recorded gradient norms against
``p.grad`` computed by hand.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradlab as gl
from gradlab.layers import ForwardTrace, forward_order, weight_matrices


class Encoder(nn.Module):
    def __init__(self, d=16, layers=4, classes=3):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0,
                                           batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers,
                                         enable_nested_tensor=False)
        self.out = nn.Linear(d, classes)

    def forward(self, x):                      # x: [B, T, d]
        return self.out(self.enc(x).mean(1))   # [B, classes]


class TiedLM(nn.Module):
    def __init__(self, vocab=30, d=12, bidirectional=False):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, d, num_layers=2, batch_first=True,
                            bidirectional=bidirectional)
        self.proj = nn.Linear(2 * d, d) if bidirectional else nn.Identity()
        self.head = nn.Linear(d, vocab)
        self.head.weight = self.emb.weight           # tied (Press & Wolf)

    def forward(self, tokens):                       # [B, T] long
        h, _ = self.lstm(self.emb(tokens))           # [B, T, d or 2d]
        return self.head(self.proj(h))               # [B, T, vocab]


class FunctionalCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):                            # x: [B, 64]
        x = torch.relu(self.c1(x.view(-1, 1, 8, 8)))
        x = F.max_pool2d(F.relu(self.c2(x)), 2)      # [B, 16, 4, 4]
        return self.fc(x.flatten(1))


def _grads_by_hand(model, x, y, loss):
    model.zero_grad()
    loss(model(x), y).backward()
    return {n: p.grad.norm().item()
            for n, p in model.named_parameters(remove_duplicate=False)
            if p.grad is not None}


def test_transformer_encoder_attention_projections_in_order():
    torch.manual_seed(0)
    model = Encoder()
    x, y = torch.randn(8, 5, 16), torch.randint(0, 3, (8,))
    with forward_order(model) as order:
        model(x)
    want = [f"enc.layers.{i}.{name}" for i in range(4) for name in (
        "self_attn.in_proj_weight", "self_attn.out_proj.weight",
        "linear1.weight", "linear2.weight")] + ["out.weight"]
    assert order == want
    report = gl.diagnose(model, x, y, "cross_entropy")
    assert [r["layer"] for r in report.rows] == want
    assert report.rows[-1]["ratio_to_last"] == 1.0
    assert "of out.weight" in report.reason          # the head is "last"
    by_hand = _grads_by_hand(model, x, y, F.cross_entropy)
    for r in report.rows:
        assert r["grad_norm"] == pytest.approx(by_hand[r["layer"]], rel=1e-5)


def test_tied_lstm_lm_rows_per_layer_and_per_use():
    torch.manual_seed(0)
    model = TiedLM()
    tokens = torch.randint(0, 30, (4, 7))
    targets = torch.randint(0, 30, (4, 7))
    want = ["emb.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0",
            "lstm.weight_ih_l1", "lstm.weight_hh_l1", "head.weight"]
    norms = gl.layer_grad_norms(model, tokens, targets, "cross_entropy")
    assert list(norms) == want
    # the two uses of the tied matrix add up to its .grad
    trace = ForwardTrace(model)
    with trace:
        logits = model(tokens)
    trace.remove_hooks()
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    per_row = torch.autograd.grad(loss, trace.grad_tensors())
    model.zero_grad()
    F.cross_entropy(model(tokens).flatten(0, 1), targets.flatten()).backward()
    tied = model.emb.weight.grad
    torch.testing.assert_close(per_row[0] + per_row[-1], tied)
    assert norms["emb.weight"] == pytest.approx(per_row[0].norm().item(),
                                                rel=1e-5)
    assert norms["head.weight"] == pytest.approx(per_row[-1].norm().item(),
                                                 rel=1e-5)
    # the monitor and diagnose agree with layer_grad_norms
    report = gl.diagnose(model, tokens, targets, "cross_entropy")
    assert [r["layer"] for r in report.rows] == want
    assert "of head.weight" in report.reason
    for r in report.rows:
        assert r["grad_norm"] == pytest.approx(norms[r["layer"]], rel=1e-4)
    assert report.rows[0]["activation"] == ""   # token ids: no statistics
    assert math.isnan(report.rows[0]["act_mean"])


def test_bidirectional_lstm_gets_a_row_per_layer_and_direction():
    model = TiedLM(bidirectional=True)
    with forward_order(model) as order:
        model(torch.randint(0, 30, (2, 5)))
    lstm = [n for n in order if n.startswith("lstm.")]
    assert lstm == [f"lstm.weight_{kind}_l{k}{suffix}"
                    for k in range(2) for suffix in ("", "_reverse")
                    for kind in ("ih", "hh")]
    assert order[-2:] == ["proj.weight", "head.weight"]


def test_functional_cnn_on_digits(digits):
    X, y, _, _ = digits
    torch.manual_seed(0)
    model = FunctionalCNN()
    report = gl.diagnose(model, X[:128], y[:128], "cross_entropy")
    assert [r["layer"] for r in report.rows] == ["c1.weight", "c2.weight",
                                                 "fc.weight"]
    # torch.relu / F.relu feed c2 and (through max-pool and flatten) fc
    assert [r["activation"] for r in report.rows] == ["", "relu", "relu"]
    by_hand = _grads_by_hand(model, X[:128], y[:128], F.cross_entropy)
    for r in report.rows:
        assert r["grad_norm"] == pytest.approx(by_hand[r["layer"]], rel=1e-5)
    with torch.no_grad():
        h1 = torch.relu(model.c1(X[:128].view(-1, 1, 8, 8)))
    assert report.rows[1]["dead"] == pytest.approx(
        (h1 <= 0).all(0).float().mean().item())
    assert report.rows[1]["act_mean"] == pytest.approx(
        h1[:64].mean().item(), rel=1e-5)             # the first 64 samples


def test_deep_sequential_sigmoid(digits):
    X, y, _, _ = digits
    torch.manual_seed(0)
    layers = [nn.Linear(64, 32), nn.Sigmoid()]
    for _ in range(14):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 10))
    report = gl.diagnose(model, X[:256], y[:256], "cross_entropy")
    want = [f"{i}.weight" for i in range(0, 29, 2)] + ["30.weight"]
    assert [r["layer"] for r in report.rows] == want
    assert [r["activation"] for r in report.rows] == [""] + ["sigmoid"] * 15
    assert report.verdict == "vanishing"
    by_hand = _grads_by_hand(model, X[:256], y[:256], F.cross_entropy)
    for r in report.rows:
        assert r["grad_norm"] == pytest.approx(by_hand[r["layer"]], rel=1e-5)


class FunctionalMLP(nn.Module):
    """Bare parameters used by F.linear; ReLU as torch.relu; no modules."""

    def __init__(self, sizes):
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(o, i) * math.sqrt(2 / i))
            for i, o in zip(sizes, sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(o))
                                       for o in sizes[1:])

    def forward(self, x):
        for w, b in zip(self.weights[:-1], self.biases):
            x = torch.relu(F.linear(x, w, b))
        return F.linear(x, self.weights[-1], self.biases[-1])


@pytest.mark.parametrize("seed", [1, 2])
def test_functional_relu_net_shows_dead_units_after_a_large_lr(digits, seed):
    """Chapter 01's experiment, written functionally: lr 0.5 kills ReLUs
    that lr 0.1 leaves alive (seeds 1-5 all do; seed 0 diverges instead),
    and diagnose reports exactly how many."""
    X, y, _, _ = digits
    mean_dead = {}
    for lr in (0.1, 0.5):
        torch.manual_seed(seed)
        model = FunctionalMLP([64] + [64] * 10 + [10])
        gl.fit(model, (X, y), loss="cross_entropy", steps=100, batch_size=64,
               lr=lr, device="cpu", progress=False,
               generator=torch.Generator().manual_seed(seed))
        report = gl.diagnose(model, X, y, "cross_entropy")
        assert [r["layer"] for r in report.rows] == [f"weights.{i}"
                                                     for i in range(11)]
        with torch.no_grad():   # dead fractions by hand, on the same data
            h, dead = X, []
            for w, b in zip(model.weights[:-1], model.biases):
                h = torch.relu(F.linear(h, w, b))
                dead.append((h <= 0).all(0).float().mean().item())
        assert [r["dead"] for r in report.rows[1:]] == pytest.approx(dead)
        mean_dead[lr] = sum(dead) / len(dead)
    assert mean_dead[0.5] > 3 * mean_dead[0.1]


def test_monitor_restores_torch_function_state_when_forward_raises():
    model = Encoder()
    with gl.GradientMonitor(model) as monitor:
        with pytest.raises(AssertionError, match="embedding dimension"):
            model(torch.randn(2, 5, 7))                  # wrong width
        assert not torch._C._is_torch_function_mode_enabled()
        loss = model(torch.randn(2, 5, 16)).sum()
        loss.backward()
        monitor.step()
    assert not torch._C._is_torch_function_mode_enabled()
    assert all(not m._forward_hooks and not m._forward_pre_hooks
               for m in model.modules())
    assert len(monitor.record().layers) == 17


def test_weight_matrices_lists_tied_names_once():
    model = TiedLM()
    names = [names for _, names in weight_matrices(model)]
    assert ["emb.weight", "head.weight"] in names
    assert sum(len(n) for n in names) == 6

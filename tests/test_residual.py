"""Chapter 5's package pieces: the Markov-chain language, ReZero residual
blocks, and the residual explorer."""

import math

import pytest
import torch

import gradlab as gl


def test_entropy_rate_of_known_chains():
    # i.i.d. uniform tokens: log V; a two-state chain: closed form
    assert gl.data.markov_entropy_rate(torch.full((5, 5), 0.2)) == \
        pytest.approx(math.log(5))
    a, b = 0.3, 0.1  # P(0 -> 1), P(1 -> 0)
    P = torch.tensor([[1 - a, a], [b, 1 - b]], dtype=torch.float64)

    def h(p):
        return -p * math.log(p) - (1 - p) * math.log(1 - p)
    # stationary pi = (b, a) / (a + b)
    want = (b * h(a) + a * h(b)) / (a + b)
    assert gl.data.markov_entropy_rate(P) == pytest.approx(want, rel=1e-9)


def test_markov_chain_samples_its_transition_matrix(generator):
    tokens, P = gl.data.markov_chain(4000, 21, vocab_size=4,
                                     generator=generator, sharpness=1.5)
    assert tokens.shape == (4000, 21) and tokens.dtype == torch.int64
    assert torch.allclose(P.sum(dim=1), torch.ones(4, dtype=P.dtype))
    # empirical transition frequencies match the matrix
    counts = torch.zeros(4, 4, dtype=torch.float64)
    counts.index_put_((tokens[:, :-1].flatten(), tokens[:, 1:].flatten()),
                      torch.ones(4000 * 20, dtype=torch.float64),
                      accumulate=True)
    freq = counts / counts.sum(dim=1, keepdim=True)
    assert (freq - P).abs().max() < 0.02
    # the first token follows the stationary distribution pi = pi P
    first = torch.bincount(tokens[:, 0], minlength=4).double() / 4000
    pi = first @ P
    assert (first - pi).abs().max() < 0.03
    # the true model's mean cross-entropy is the entropy rate
    nll = -torch.log(P[tokens[:, :-1], tokens[:, 1:]]).mean().item()
    assert nll == pytest.approx(gl.data.markov_entropy_rate(P), abs=0.02)


def test_markov_chain_is_seeded_and_sharpness_lowers_entropy():
    a = gl.data.markov_chain(8, 5, vocab_size=6,
                             generator=torch.Generator().manual_seed(1))
    b = gl.data.markov_chain(8, 5, vocab_size=6,
                             generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    rates = [gl.data.markov_entropy_rate(gl.data.markov_chain(
        2, 2, vocab_size=16, sharpness=s,
        generator=torch.Generator().manual_seed(0))[1]) for s in (0, 1, 3)]
    assert rates[0] == pytest.approx(math.log(16))
    assert rates[0] > rates[1] > rates[2]


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be"), (dict(seq_len=1), "seq_len"),
    (dict(vocab_size=1), "vocab_size"), (dict(sharpness=-1.0), "sharpness")])
def test_markov_chain_rejects_bad_arguments(kwargs, match, generator):
    args = {**dict(n=4, seq_len=5, vocab_size=3), **kwargs}
    with pytest.raises(ValueError, match=match):
        gl.data.markov_chain(args.pop("n"), args.pop("seq_len"),
                             generator=generator, **args)


def test_entropy_rate_rejects_non_stochastic_matrices():
    with pytest.raises(ValueError, match="square"):
        gl.data.markov_entropy_rate(torch.ones(2, 3) / 3)
    with pytest.raises(ValueError, match="row-stochastic"):
        gl.data.markov_entropy_rate(torch.ones(3, 3))


def test_rezero_starts_as_identity_and_learns_alpha(generator):
    model = gl.models.MLP(8, 3, depth=6, width=16, residual=True,
                          rezero=True, generator=generator)
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    first = model.layers[0]
    with torch.no_grad():
        # every residual block is the identity: the output is the head of
        # the first (plain) layer
        want = model.head(first(x))
    assert torch.allclose(model(x), want)
    alphas = [b.alpha for b in model.layers[1:]]
    assert first.alpha is None and all(a.item() == 0 for a in alphas)
    # alpha is learned: it gets a gradient although it is zero
    model(x).pow(2).sum().backward()
    assert all(a.grad is not None and a.grad != 0 for a in alphas)
    with torch.no_grad():
        alphas[0].fill_(0.5)
    h = first(x)
    block = model.layers[1]
    assert torch.allclose(block(h), h + 0.5 * torch.relu(block.linear(h)))


def test_rezero_keeps_mlp_defaults_and_rejects_plain_networks():
    plain = gl.models.MLP(8, 3, depth=3, width=16, residual=True)
    assert all(b.alpha is None for b in plain.layers)
    assert "rezero" not in repr(plain)
    with pytest.raises(ValueError, match="residual=True"):
        gl.models.MLP(8, 3, depth=3, width=16, rezero=True)


def test_residual_explorer_wires_every_control(digits, monkeypatch):
    from gradlab.widgets import residual as module
    X, y, _, _ = digits
    calls = []
    real = module.profile_at_init
    monkeypatch.setattr(module, "profile_at_init",
                        lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    box = gl.widgets.residual_explorer(X[:64], y[:64], device="cpu")
    controls = {c.description: c for column in box.children[0].children
                for c in column.children}
    assert sorted(controls) == ["activation", "depth", "norm", "residual"]
    start = gl.widgets.RESIDUAL_DEFAULTS
    chosen, other = calls[-2:]
    assert chosen["depth"] == start["depth"] and chosen["residual"]
    assert not other["residual"] and chosen["norm"] == "batch"
    controls["depth"].value = 7
    controls["residual"].value = False
    chosen, other = calls[-2:]
    assert chosen["depth"] == 7 and not chosen["residual"]
    assert other["residual"]
    controls["norm"].value = "none"
    controls["activation"].value = "relu"
    assert calls[-1]["norm"] is None and calls[-1]["init"] == "kaiming"

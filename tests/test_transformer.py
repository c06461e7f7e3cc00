"""gl.models.Transformer and gl.time_grad_norms."""

import math

import pytest
import torch
from torch import nn

import gradlab as gl


def _model(norm_position, seed=0, **kw):
    kw = {"d_model": 32, "num_layers": 3, "num_heads": 4, "max_len": 16, **kw}
    return gl.models.Transformer(
        11, norm_position=norm_position,
        generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_transformer_is_causal(norm_position):
    model = _model(norm_position).eval()
    tokens = torch.randint(0, 11, (4, 16),
                           generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 11
    a, b = model(tokens), model(changed)
    assert a.shape == (4, 16, 11)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)  # the past
    assert not torch.allclose(a[:, 9:], b[:, 9:])          # the future


def test_norm_position_changes_where_the_layer_norms_sit():
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))
    post, pre = _model("post").blocks[0], _model("pre").blocks[0]
    with torch.no_grad():
        # post-LN (Vaswani et al.): LN(x + f(x)) after each branch
        h = post.norm1(x + post.attn(x))
        assert torch.allclose(post(x), post.norm2(h + post.ff(h)),
                              atol=1e-5)
        # pre-LN (Xiong et al.): x + f(LN(x)), the sum never normalized
        h = x + pre.attn(pre.norm1(x))
        assert torch.allclose(pre(x), h + pre.ff(pre.norm2(h)), atol=1e-5)
    assert isinstance(_model("pre").final_norm, nn.LayerNorm)
    assert isinstance(_model("post").final_norm, nn.Identity)


def test_xavier_init_is_glorot_uniform_on_every_matrix():
    model = _model("post", d_model=64, num_layers=2)
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            fan_out, fan_in = p.shape
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert p.abs().max() <= bound, name
            assert p.abs().max() > 0.9 * bound, name  # fills the interval
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
    default = _model("post", init="default")
    assert default.blocks[0].norm1.weight.eq(1).all()
    assert not torch.all(default.head.bias == 0)  # torch's own init kept


@pytest.mark.parametrize("kw, match", [
    (dict(num_heads=5), "divide"), (dict(norm_position="middle"), "post"),
    (dict(init="kaiming"), "xavier"), (dict(dropout=1.0), "dropout")])
def test_transformer_rejects_bad_arguments(kw, match):
    kw = {"norm_position": "post", **kw}
    with pytest.raises(ValueError, match=match):
        gl.models.Transformer(11, d_model=32, num_layers=1, max_len=8,
                              **{"num_heads": 4, **kw})


def test_transformer_rejects_long_or_float_input():
    model = _model("pre")
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="long"):
        model(torch.zeros(1, 4))


def test_transformer_trains_with_fit_on_sequence_logits():
    # Learn to copy the previous token: the loss must fall well below
    # chance (log 11 = 2.40).
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, 11, (512, 9), generator=g)
    inputs, targets = seq[:, 1:], seq[:, :-1]
    model = _model("pre", num_layers=2)
    history = gl.fit(model, (inputs, targets), loss="cross_entropy",
                     steps=150, batch_size=64, lr=3e-3, optimizer="adam",
                     device="cpu", progress=False, generator=g)
    assert history.loss[0] > 2.0 and history.loss[-1] < 1.0


class _Weighted(nn.Module):
    """``sum_{t,f} c_t x_{t,f}`` per sample: dL/dx_{b,t,f} = c_t / B for
    the mean of the outputs."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(c)

    def forward(self, x):  # [B, T, F] -> [B]
        return (x * self.c[None, :, None]).sum(dim=(1, 2))


def test_time_grad_norms_is_the_norm_over_batch_and_features():
    B, T, F = 6, 5, 3
    c = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0])
    x = torch.randn(B, T, F)
    norms = gl.time_grad_norms(_Weighted(c), x, torch.zeros(B),
                               lambda out, y: out.mean())
    expected = c.abs() * math.sqrt(B * F) / B
    assert norms.shape == (T,)
    assert torch.allclose(norms, expected, atol=1e-6)


def test_time_grad_norms_sees_a_recurrent_gradient_vanish():
    g = torch.Generator().manual_seed(0)
    x, y = gl.data.adding_problem(64, 40, generator=g)
    torch.manual_seed(0)
    model = gl.models.SequenceModel("rnn", 2, 16, 1)
    norms = gl.time_grad_norms(model, x, y, "mse")
    assert norms[0] < 1e-3 * norms[-1]
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="time"):
        gl.time_grad_norms(model, x[:, :, 0], y, "mse")

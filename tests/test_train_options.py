"""fit's regularization, optimizer and schedule options (chapters 02-08).

Each test compares fit's step with the same step written out by hand, on a
step large enough that a missing or doubled term shows.
"""

import warnings

import pytest
import torch

import gradlab as gl


def _model(seed=0, **kw):
    kw = {"depth": 2, "width": 16, "activation": "tanh", "init": "xavier",
          **kw}
    return gl.models.MLP(64, 10, generator=torch.Generator().manual_seed(seed),
                         **kw)


def _one_step(model, X, y, **kw):
    gl.fit(model, (X, y), loss="cross_entropy", steps=1, batch_size=len(X),
           device="cpu", progress=False,
           generator=torch.Generator().manual_seed(0), **kw)
    return [p.detach().clone() for p in model.parameters()]


def _hand_step(model, X, y, lr, penalty):
    """One SGD step on cross-entropy + penalty(model), written out."""
    loss = torch.nn.functional.cross_entropy(model(X), y) + penalty(model)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [(p - lr * g).detach() for p, g in zip(model.parameters(), grads)]


def _assert_same(a, b):
    for p, q in zip(a, b):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6), (p - q).abs().max()


def test_l1_penalizes_weight_matrices_only_once_per_step(digits):
    X, y = digits[0][:128], digits[1][:128]
    lam, lr = 0.05, 0.5
    expected = _hand_step(_model(), X, y, lr, lambda m: lam * sum(
        p.abs().sum() for p in m.parameters() if p.dim() >= 2))
    no_penalty = _hand_step(_model(), X, y, lr, lambda m: 0.0)
    for accumulate in (1, 4):
        got = _one_step(_model(), X, y, lr=lr, l1=lam, accumulate=accumulate)
        _assert_same(got, expected)
    # the penalty moved the weights and left the biases alone
    weight, bias = 0, 1
    assert not torch.allclose(expected[weight], no_penalty[weight])
    assert torch.allclose(expected[bias], no_penalty[bias])


def test_sgd_weight_decay_is_an_l2_term_in_the_loss(digits):
    X, y = digits[0][:128], digits[1][:128]
    lam, lr = 0.1, 0.5
    expected = _hand_step(_model(), X, y, lr, lambda m: lam / 2 * sum(
        p.pow(2).sum() for p in m.parameters()))
    _assert_same(_one_step(_model(), X, y, lr=lr, weight_decay=lam),
                 expected)


def test_adamw_decouples_the_decay_and_adam_does_not(digits):
    X, y = digits[0][:128], digits[1][:128]
    lam, lr = 0.1, 0.01
    adamw = _one_step(_model(), X, y, lr=lr, optimizer="adamw",
                      weight_decay=lam)
    # AdamW = Adam without decay, then w <- w - lr * lam * w_old.
    start = [p.detach().clone() for p in _model().parameters()]
    plain = _one_step(_model(), X, y, lr=lr, optimizer="adam")
    _assert_same(adamw, [p - lr * lam * w for p, w in zip(plain, start)])
    adam_l2 = _one_step(_model(), X, y, lr=lr, optimizer="adam",
                        weight_decay=lam)
    differs = max((a - b).abs().max().item() for a, b in zip(adam_l2, adamw))
    assert differs > 1e-4


def test_warmup_scales_the_learning_rate_linearly(digits):
    # Full-batch SGD: fit's warmed-up run equals single steps taken by hand
    # at lr * min(1, (s + 1) / k).
    X, y = digits[0][:64], digits[1][:64]
    lr, k, steps = 0.4, 4, 6
    warmed = _model()
    gl.fit(warmed, (X, y), loss="cross_entropy", steps=steps, batch_size=64,
           lr=lr, warmup=k, device="cpu", progress=False)
    by_hand = _model()
    for s in range(steps):
        expected = _one_step(by_hand, X, y, lr=lr * min(1.0, (s + 1) / k))
    _assert_same([p.detach() for p in warmed.parameters()], expected)
    constant = _model()
    gl.fit(constant, (X, y), loss="cross_entropy", steps=steps,
           batch_size=64, lr=lr, device="cpu", progress=False)
    assert not torch.allclose(constant.head.weight, warmed.head.weight)


def test_sequence_cross_entropy_averages_every_position():
    logits = torch.randn(3, 5, 7)
    targets = torch.randint(0, 7, (3, 5))
    loss = gl.train.loss_function("cross_entropy")(logits, targets)
    by_hand = -torch.log_softmax(logits, -1).gather(
        -1, targets.unsqueeze(-1)).mean()
    assert torch.allclose(loss, by_hand)


def test_accumulating_with_batch_norm_warns_and_layer_norm_does_not(digits):
    X, y = digits[0][:64], digits[1][:64]
    with pytest.warns(UserWarning, match=r"layers\.0\.norm"):
        _one_step(_model(norm="batch"), X, y, lr=0.1, accumulate=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _one_step(_model(norm="layer"), X, y, lr=0.1, accumulate=2)
        _one_step(_model(norm="batch"), X, y, lr=0.1, accumulate=1)


@pytest.mark.parametrize("kw, match", [
    (dict(l1=-0.1), "l1"), (dict(warmup=-1), "warmup"),
    (dict(warmup=1.5), "warmup"), (dict(optimizer="lion"), "adamw")])
def test_bad_options_name_the_argument(digits, kw, match):
    with pytest.raises(ValueError, match=match):
        _one_step(_model(), digits[0][:64], digits[1][:64], lr=0.1, **kw)

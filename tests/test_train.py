import math

import pytest
import torch

import gradlab as gl


def _mlp(seed, **kw):
    kw = {"depth": 3, "width": 32, "activation": "tanh", "init": "xavier",
          **kw}
    return gl.models.MLP(64, 10, generator=torch.Generator().manual_seed(seed),
                         **kw)


def test_accumulation_gives_the_full_batch_step(digits):
    X, y, _, _ = digits
    params = []
    for k in (1, 4):
        model = _mlp(seed=0)
        before = [p.detach().clone() for p in model.parameters()]
        gl.fit(model, (X, y), loss="cross_entropy", steps=1, batch_size=256,
               lr=0.5, accumulate=k, device="cpu", progress=False,
               generator=torch.Generator().manual_seed(1))
        params.append([p.detach() for p in model.parameters()])
    moved = max((a - b).abs().max().item()
                for a, b in zip(params[0], before))
    assert moved > 1e-3  # the step did something, so equality means something
    for full, accumulated in zip(*params):
        assert torch.allclose(full, accumulated, rtol=1e-5, atol=1e-6)


class _GradNormAfterStep:
    """A stand-in monitor: total gradient norm seen after each update."""

    def __init__(self, model):
        self.model, self.norms = model, []

    def step(self):
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        self.norms.append(torch.nn.utils.get_total_norm(grads).item())


def test_clipping_bounds_the_total_gradient_norm(digits):
    X, y, _, _ = digits
    model = _mlp(seed=0, activation="relu", init="kaiming")
    spy = _GradNormAfterStep(model)
    history = gl.fit(model, (X, y), loss="cross_entropy", steps=5,
                     batch_size=128, lr=0.1, clip_norm=0.05, monitor=spy,
                     device="cpu", progress=False)
    assert min(history.grad_norm) > 0.05  # clipping was needed every step
    assert all(n <= 0.05 * (1 + 1e-5) for n in spy.norms), spy.norms
    assert len(spy.norms) == 5


def test_overflowing_loss_raises_and_keeps_history(digits):
    X, y, _, _ = digits
    model = _mlp(seed=0, activation="identity", depth=8)
    with pytest.raises(gl.NonFiniteLossError) as info:
        gl.fit(model, (X, y.float().unsqueeze(1).repeat(1, 10)), loss="mse",
               steps=50, batch_size=64, lr=1e3, device="cpu", progress=False)
    err = info.value
    assert err.step >= 1
    assert f"at step {err.step}" in str(err)
    assert len(err.history) == err.step
    assert all(math.isfinite(v) for v in err.history.loss)
    assert not math.isfinite(err.loss)


def test_same_seed_gives_identical_losses(digits):
    X, y, _, _ = digits
    runs = []
    for _ in range(2):
        gl.seed_everything(123)
        model = gl.models.MLP(64, 10, depth=4, width=32, dropout=0.1)
        runs.append(gl.fit(model, (X, y), loss="cross_entropy", steps=20,
                           batch_size=64, lr=0.05, momentum=0.9,
                           device="cpu", progress=False).loss)
    assert runs[0] == runs[1]
    gl.seed_everything(124)
    model = gl.models.MLP(64, 10, depth=4, width=32, dropout=0.1)
    other = gl.fit(model, (X, y), loss="cross_entropy", steps=20,
                   batch_size=64, lr=0.05, momentum=0.9, device="cpu",
                   progress=False).loss
    assert other != runs[0]  # the seed matters, so the equality above is real


def test_fit_learns_digits(digits):
    X, y, X_test, y_test = digits
    gl.seed_everything(0)
    model = gl.models.MLP(64, 10, depth=2, width=64)
    history = gl.fit(model, (X, y), loss="cross_entropy", steps=200,
                     batch_size=64, lr=0.05, optimizer="sgd",
                     momentum=0.9, device="cpu", progress=False)
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert gl.accuracy(model, X_test, y_test) > 0.9


def test_adam_and_weight_decay_run(digits):
    X, y, _, _ = digits
    gl.seed_everything(0)
    model = gl.models.MLP(64, 10, depth=2, width=32)
    history = gl.fit(model, (X, y), loss="cross_entropy", steps=30,
                     batch_size=64, lr=1e-2, optimizer="adam",
                     weight_decay=1e-4, device="cpu", progress=False)
    assert len(history) == 30 and history.config["optimizer"] == "adam"
    assert history.loss[-1] < history.loss[0]

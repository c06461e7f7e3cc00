import math

import pytest
import torch
from torch import nn

import gradlab as gl


def _mlp(**kw):
    kw = {"depth": 4, "width": 16, "activation": "tanh", **kw}
    return gl.models.MLP(64, 10, generator=torch.Generator().manual_seed(0),
                         **kw)


def _hand_loop(model, X, y, steps, monitor, lr=0.1):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    seen = []
    for step in range(steps):
        batch = slice(32 * step, 32 * step + 32)
        opt.zero_grad()
        out = model(X[batch])
        out.retain_grad()
        nn.functional.cross_entropy(out, y[batch]).backward()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        seen.append(({n: p.grad.norm().item()
                      for n, p in model.named_parameters()}, before,
                     out.grad.norm().item()))
        monitor.step()
    return seen


def test_recorded_norms_equal_grad_norms_by_hand(digits):
    X, y, _, _ = digits
    model = _mlp()
    with gl.GradientMonitor(model) as monitor:
        seen = _hand_loop(model, X, y, 3, monitor)
    record = monitor.record()
    assert record.layers == [f"layers.{i}.linear.weight"
                             for i in range(4)] + ["head.weight"]
    # each layer's input: the data, then the previous layer's tanh
    assert record.activations == [""] + ["tanh"] * 4
    assert record.grad_norm.shape == (3, 5)
    for step, (grads, before, out_grad) in enumerate(seen):
        for j, layer in enumerate(record.layers):
            want = grads[layer]
            assert record.grad_norm[step, j].item() == pytest.approx(
                want, rel=1e-5)
        # the head's output is the logits: its gradient we kept by hand
        assert record.out_grad_norm[step, -1].item() == pytest.approx(
            out_grad, rel=1e-5)
        w_after = dict(model.named_parameters())["head.weight"] if \
            step == len(seen) - 1 else seen[step + 1][1]["head.weight"]
        w_before = before["head.weight"]
        ratio = ((w_after - w_before).norm() / w_before.norm()).item()
        assert record.update_ratio[step, -1].item() == pytest.approx(
            ratio, rel=1e-4)


def test_activation_statistics_match_by_hand(digits):
    X, y, _, _ = digits
    model = _mlp(activation="relu", init="kaiming", depth=3)
    with gl.GradientMonitor(model) as monitor, \
            gl.activations.record_activations(model) as acts:
        nn.functional.cross_entropy(model(X[:64]), y[:64]).backward()
        monitor.step()
    record = monitor.record()
    # layer j + 1's input is hidden layer j's ReLU output
    for j, h in enumerate(acts.values()):
        assert record.act_mean[0, j + 1].item() == pytest.approx(
            h.mean().item())
        assert record.act_std[0, j + 1].item() == pytest.approx(
            h.std().item())
        assert record.dead[0, j + 1].item() == (h <= 0).all(0).float().mean()
    assert math.isnan(record.saturated[0, 1].item())  # ReLU does not saturate
    assert math.isnan(record.dead[0, 0].item())  # the data is no ReLU output


def test_hooks_removed_when_the_body_raises(digits):
    X, y, _, _ = digits
    model = _mlp()
    with pytest.raises(ZeroDivisionError):
        with gl.GradientMonitor(model) as monitor:
            nn.functional.cross_entropy(model(X[:8]), y[:8]).backward()
            1 / 0
    assert not monitor.active
    assert all(not m._forward_hooks for m in model.modules())
    monitor.remove()  # safe twice
    with pytest.raises(RuntimeError, match="outside its `with`"):
        monitor.step()


def test_every_records_one_step_in_k(digits):
    X, y, _, _ = digits
    model = _mlp()
    with gl.GradientMonitor(model, every=3, capacity=1) as monitor:
        history = gl.fit(model, (X, y), loss="cross_entropy", steps=10,
                         batch_size=32, lr=0.1, monitor=monitor,
                         device="cpu", progress=False)
    record = monitor.record()
    assert record.steps.tolist() == [0, 3, 6, 9]   # capacity grew from 1
    assert torch.isfinite(record.grad_norm).all()
    assert torch.isfinite(record.update_ratio).all()
    assert len(history) == 10


def test_any_module_conv_and_gru(generator):
    conv = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6, 2))
    with gl.GradientMonitor(conv) as monitor:
        nn.functional.cross_entropy(conv(torch.randn(5, 1, 8)),
                                    torch.tensor([0, 1, 0, 1, 1])).backward()
        monitor.step()
    record = monitor.record()
    assert record.layers == ["0.weight", "3.weight"]
    assert record.activations == ["", "relu"]   # kept through nn.Flatten
    x, y = gl.data.adding_problem(8, 12, generator=generator)
    gru = gl.models.SequenceModel("gru", 2, 8, 1)
    with gl.GradientMonitor(gru) as monitor:
        nn.functional.mse_loss(gru(x), y).backward()
        monitor.step()
    record = monitor.record()
    assert record.layers == ["rnn.weight_ih_l0", "rnn.weight_hh_l0",
                             "head.weight"]
    for j, p in enumerate([gru.rnn.weight_ih_l0, gru.rnn.weight_hh_l0]):
        assert record.grad_norm[0, j].item() == pytest.approx(
            p.grad.norm().item(), rel=1e-5)


def test_no_layers_is_an_error():
    with pytest.raises(ValueError, match="no weight matrix"):
        gl.GradientMonitor(nn.ReLU())


def test_sampled_estimates_are_close_to_exact(digits):
    """Layers above 4,096 weights get a sampled update ratio and batches
    above 64 rows sampled activation moments; both must stay close."""
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=2, width=256, activation="tanh",
                          generator=torch.Generator().manual_seed(3))
    big = model.layers[1].linear.weight            # 65,536 entries
    before = big.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    with gl.GradientMonitor(model) as monitor, \
            gl.activations.record_activations(model) as acts:
        for _ in range(2):  # momentum: the update is not just lr * grad
            before = big.detach().clone()
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[:256]), y[:256]).backward()
            opt.step()
            monitor.step()
    record = monitor.record()
    exact = ((big.detach() - before).norm() / before.norm()).item()
    assert record.update_ratio[-1, 1].item() == pytest.approx(exact, rel=0.05)
    h = acts["layers.1.act"]          # [256, 256], the head's input
    assert record.act_mean[-1, 2].item() == pytest.approx(h.mean().item(),
                                                          abs=0.02)
    assert record.act_std[-1, 2].item() == pytest.approx(h.std().item(),
                                                         rel=0.05)


def _record_of(model_fn, X, y, replay, steps=4):
    model = model_fn()
    monitor = gl.GradientMonitor(model)
    monitor._replay_ok = replay
    with monitor:
        _hand_loop(model, X, y, steps, monitor, lr=0.5)
    return monitor


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_module_hook_replay_records_what_the_trace_records(digits, activation):
    """After one traced pass the monitor follows an MLP with module hooks;
    every number must be the one tracing every pass gives."""
    X, y, _, _ = digits
    make = lambda: _mlp(activation=activation)                    # noqa: E731
    replayed = _record_of(make, X, y, replay=True)
    traced = _record_of(make, X, y, replay=False)
    assert replayed._replay and not traced._replay
    a, b = replayed.record(), traced.record()
    assert a.layers == b.layers and a.activations == b.activations
    for metric in ("grad_norm", "out_grad_norm", "act_mean", "act_std",
                   "saturated", "dead", "update_ratio"):
        assert torch.equal(getattr(a, metric).nan_to_num(-1),
                           getattr(b, metric).nan_to_num(-1)), metric


class _TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.mid = nn.Linear(8, 8)
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, tokens):
        return self.head(torch.tanh(self.mid(self.emb(tokens))))


def test_models_the_hooks_cannot_follow_stay_traced():
    """Attention (weights used without their module's call) and tied
    weights (one parameter, two rows) are traced on every recorded pass."""
    torch.manual_seed(0)
    attention = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    tied = _TiedLM()
    for model, x in ((attention, torch.randn(4, 5, 8)),
                     (tied, torch.randint(0, 10, (4, 5)))):
        with gl.GradientMonitor(model) as monitor:
            for _ in range(2):
                model(x).square().mean().backward()
                monitor.step()
        assert monitor._replay is False
    assert monitor.record().layers == ["emb.weight", "mid.weight",
                                       "head.weight"]


class _Twice(nn.Module):
    """Calls its hidden layer once, or twice when ``twice`` is set."""

    def __init__(self):
        super().__init__()
        self.hidden, self.head = nn.Linear(64, 16), nn.Linear(16, 10)
        self.twice = False

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        if self.twice:
            h = h + torch.relu(self.hidden(x))
        return self.head(h)


def test_a_changed_call_pattern_switches_tracing_back_on(digits):
    """A pass that calls the hooked modules a different number of times
    drops the replay map; the next recorded pass is traced again."""
    X, _, _, _ = digits
    torch.manual_seed(0)
    model = _Twice()
    states = []
    with gl.GradientMonitor(model) as monitor:
        for twice in (False, True, True):
            model.twice = twice
            model(X[:32]).sum().backward()
            monitor.step()
            states.append("hooks" if monitor._replay else monitor._replay)
    # traced, then followed; the changed pass drops the map (None); traced
    # again, the hidden layer is called twice, so it stays traced (False)
    assert states == ["hooks", None, False]


def test_the_model_is_freed_when_the_caller_drops_it():
    """No reference cycle between the monitor and its trace keeps a model
    (and its gradients) alive until the garbage collector runs."""
    import gc
    import weakref

    def train_once():
        model = _mlp()
        with gl.GradientMonitor(model) as monitor:
            model(torch.randn(8, 64)).sum().backward()
            monitor.step()
        return weakref.ref(model)

    gc.disable()
    try:
        ref = train_once()
        assert ref() is None
    finally:
        gc.enable()


def test_out_grad_norm_is_the_gradient_of_the_layers_own_output():
    """||dL/dh|| is taken where backward enters the call that made h: an
    in-place ReLU after the layer does not change it, and an LSTM whose
    sequence output the loss ignores has none (NaN), not zero."""
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    norms = []
    for inplace in (False, True):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(inplace=inplace),
                              nn.Linear(8, 2))
        kept = []
        model[0].register_forward_hook(
            lambda m, a, out: (out.retain_grad(), kept.append(out))[-1]
            if not inplace else None)
        with gl.GradientMonitor(model) as monitor:
            model(x).square().sum().backward()
            monitor.step()
        norms.append(monitor.record().out_grad_norm[0, 0].item())
        if not inplace:
            assert norms[0] == pytest.approx(kept[0].grad.norm().item(),
                                             rel=1e-6)
    assert norms[1] == norms[0]

    class LastState(nn.Module):
        def __init__(self):
            super().__init__()
            # sequence first: the output and h_n come from one node, which
            # backward reaches with no gradient for the output
            self.rnn, self.head = nn.LSTM(3, 4), nn.Linear(4, 1)

        def forward(self, seq):
            return self.head(self.rnn(seq)[1][0][-1])   # h_n only

    model = LastState()
    with gl.GradientMonitor(model) as monitor:
        model(torch.randn(5, 2, 3)).sum().backward()
        monitor.step()
    record = monitor.record()
    assert record.layers[:2] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]
    assert math.isnan(record.out_grad_norm[0, 1].item())
    assert record.out_grad_norm[0, 2].item() > 0


def test_unrecorded_passes_run_without_layer_hooks(digits):
    """With every=k, the module hooks that follow a recorded pass are
    gone during the other passes, which cost two Python calls."""
    X, y, _, _ = digits
    model = _mlp(activation="relu")
    layer_hooks = lambda: sum(len(m._forward_hooks)            # noqa: E731
                              for m in model.modules() if m is not model)
    seen = []
    with gl.GradientMonitor(model, every=2) as monitor:
        for step in range(6):
            nn.functional.cross_entropy(model(X[:32]), y[:32]).backward()
            seen.append(layer_hooks())
            monitor.step()
    record = monitor.record()
    assert record.steps.tolist() == [0, 2, 4]
    assert seen[0] == 0                   # traced: no module hooks
    assert seen[1] == seen[3] == seen[5] == 0
    assert seen[2] == seen[4] == len(record.layers)   # followed by hooks
    assert torch.isfinite(record.dead[:, 1:]).all()


def test_a_float64_model_is_recorded_in_float64():
    """Norms of float64 gradients used to be asked for in float32, which
    torch refuses: diagnose failed on any ``.double()`` model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(),
                          nn.Linear(16, 3)).double()
    x, y = torch.randn(32, 8, dtype=torch.float64), torch.randint(0, 3, (32,))
    with gl.GradientMonitor(model) as monitor:
        torch.nn.functional.cross_entropy(model(x), y).backward()
        monitor.step()
    record = monitor.record()
    for j, layer in enumerate((model[0], model[2])):
        assert record.grad_norm[0, j].item() == pytest.approx(
            layer.weight.grad.norm().item(), rel=1e-6)
    assert record.out_grad_norm[0, 1].item() > 0
    assert 0 <= record.saturated[0, 1].item() <= 1
    report = gl.diagnose(model, x, y, "cross_entropy")
    assert [r["layer"] for r in report.rows] == ["0.weight", "2.weight"]


def test_a_float64_layer_used_three_times_adds_its_calls():
    """The calls' squared output-gradient norms are added in float64 and
    stored in the table's float32 (they were added into a float32 zero
    vector, which torch refuses for float64 norms)."""
    torch.manual_seed(0)
    shared, head = nn.Linear(6, 6).double(), nn.Linear(6, 3).double()
    model = nn.ModuleDict({"shared": shared, "head": head})
    outs = []

    def forward(x):
        for _ in range(3):
            h = shared(x)
            h.retain_grad()
            outs.append(h)
            x = torch.relu(h)
        return head(x)

    model.forward = forward   # called through the model, so its hooks run
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    with gl.GradientMonitor(model) as monitor:
        torch.nn.functional.cross_entropy(model(x), y).backward()
        monitor.step()
    by_hand = sum(h.grad.norm() ** 2 for h in outs).sqrt().item()
    assert monitor.record().out_grad_norm[0, 0].item() == pytest.approx(
        by_hand, rel=1e-6)

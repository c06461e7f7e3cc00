"""gradlab.parallel: two DDP processes give the full batch's gradient, and
no_sync() saves all-reduces; failures and timeouts leave no process."""

import multiprocessing

import pytest
import torch

import gradlab as gl
from gradlab.accumulation import full_batch_grads
from gradlab.parallel import ddp_gradients, free_port

SPEC = dict(in_features=64, out_features=10, depth=2, width=16)


def _no_children_left():
    return not multiprocessing.active_children()


def test_ddp_gradient_is_the_full_batch_gradient(digits):
    X, y, _, _ = digits
    k = 4
    result = ddp_gradients(SPEC, X[:64], y[:64], accumulate=k, seed=3,
                           timeout=300)
    model = gl.models.MLP(**SPEC, generator=torch.Generator().manual_seed(3))
    full = torch.cat([g.reshape(-1) for g in
                      full_batch_grads(model, X[:64], y[:64]).values()])
    for mode in ("sync", "no_sync"):
        grads = result[mode]["grad"]                    # [2, P]
        assert grads.shape == (2, full.numel())
        assert torch.equal(grads[0], grads[1])          # replicas agree
        assert torch.allclose(grads[0], full, rtol=1e-4, atol=1e-6)
    # one bucket (a small model): k all-reduces per step, or 1 with no_sync
    assert result["sync"]["allreduces"] == [k, k]
    assert result["no_sync"]["allreduces"] == [1, 1]
    assert _no_children_left()


def test_a_failing_worker_raises_with_its_traceback(digits):
    X, y, _, _ = digits
    with pytest.raises(RuntimeError, match="activation"):
        ddp_gradients({**SPEC, "activation": "swish"}, X[:8], y[:8],
                      accumulate=2, timeout=300)
    assert _no_children_left()


def test_timeout_kills_the_workers(digits):
    X, y, _, _ = digits
    # starting a process that imports torch takes far longer than 0.2 s
    with pytest.raises(TimeoutError, match="did not finish"):
        ddp_gradients(SPEC, X[:8], y[:8], accumulate=2, timeout=0.2)
    assert _no_children_left()


def test_uneven_batch_is_refused_before_starting(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="batch of 10"):
        ddp_gradients(SPEC, X[:10], y[:10], accumulate=4)


def test_free_port_is_a_usable_port():
    import socket
    port = free_port()
    assert 1024 <= port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))

"""The package on a GPU. Skipped, with the reason shown, where there is none
(CI has none; the GPU workflow runs these)."""

import pytest
import torch

import gradlab as gl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="CUDA not available on this machine")


def test_fit_with_monitor_follows_the_model_to_cuda(digits):
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=3, width=32)      # created on CPU
    with gl.GradientMonitor(model) as monitor:            # buffers on CPU
        history = gl.fit(model, (X, y), loss="cross_entropy", steps=5,
                         batch_size=64, lr=0.1, monitor=monitor,
                         device="cuda", progress=False)
    record = monitor.record()
    assert next(model.parameters()).is_cuda
    assert record.grad_norm.shape == (5, 4)
    assert torch.isfinite(record.grad_norm).all()
    assert torch.isfinite(record.update_ratio).all()
    assert len(history) == 5


def test_diagnose_and_layer_grad_norms_on_cuda(digits):
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=30, width=64, activation="sigmoid",
                          init="default").cuda()
    assert gl.diagnose(model, X[:256], y[:256], "cross_entropy").verdict \
        == "vanishing"
    norms = gl.layer_grad_norms(model, X[:256], y[:256], "cross_entropy")
    assert len(norms) == 31


def test_get_device_cuda():
    assert gl.get_device("cuda").type == "cuda"

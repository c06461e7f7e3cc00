"""gradlab.accumulation: the accumulated gradient is the full batch's."""

import pytest
import torch
from torch import nn

import gradlab as gl
from gradlab.accumulation import (accumulated_grads, accumulation_errors,
                                  full_batch_grads, grad_error,
                                  plot_accumulation_error)


def _model(norm=None, seed=0):
    return gl.models.MLP(64, 10, depth=3, width=32, norm=norm,
                         generator=torch.Generator().manual_seed(seed))


def test_full_batch_grads_match_a_plain_backward(digits):
    X, y, _, _ = digits
    model = _model()
    got = full_batch_grads(model, X[:64], y[:64])
    model.zero_grad()
    nn.functional.cross_entropy(model(X[:64]), y[:64]).backward()
    for name, p in model.named_parameters():
        assert torch.equal(got[name], p.grad)


@pytest.mark.parametrize("k", [1, 2, 8, 64])
def test_accumulation_is_exact_in_float64(digits, k):
    X, y, _, _ = digits
    model = _model().double()
    x, t = X[:64].double(), y[:64]
    errors = grad_error(accumulated_grads(model, x, t, accumulate=k),
                        full_batch_grads(model, x, t))
    assert max(errors.values()) < 1e-12, errors


def test_uneven_sizes_need_size_weights(digits):
    X, y, _, _ = digits
    model = _model().double()
    x, t = X[:60].double(), y[:60]
    full = full_batch_grads(model, x, t)
    right = grad_error(accumulated_grads(model, x, t, sizes=[40, 15, 5]),
                       full)
    wrong = grad_error(accumulated_grads(model, x, t, sizes=[40, 15, 5],
                                         weights="mean"), full)
    assert right["total"] < 1e-12
    assert wrong["total"] > 1e-2


def test_sum_without_1_over_k_is_k_times_the_gradient(digits):
    X, y, _, _ = digits
    model = _model().double()
    x, t = X[:64].double(), y[:64]
    full = full_batch_grads(model, x, t)
    summed = accumulated_grads(model, x, t, accumulate=4, weights="sum")
    for name in full:
        assert torch.allclose(summed[name], 4 * full[name], rtol=1e-10,
                              atol=1e-14)
    assert grad_error(summed, full)["total"] == pytest.approx(3.0, rel=1e-9)


def test_grad_error_is_relative_per_tensor_and_total():
    ref = {"a": torch.tensor([3.0, 4.0]), "b": torch.zeros(2)}
    got = {"a": torch.tensor([3.0, 4.5]), "b": torch.zeros(2)}
    errors = grad_error(got, ref)
    assert errors["a"] == pytest.approx(0.1)
    assert errors["b"] == 0.0
    assert errors["total"] == pytest.approx(0.1)
    assert grad_error({"b": torch.ones(2)}, {"b": torch.zeros(2)})["b"] == \
        float("inf")


def test_batch_norm_breaks_accumulation_and_layer_norm_does_not(digits):
    X, y, _, _ = digits
    errors = {norm: accumulation_errors(_model(norm), X[:64], y[:64],
                                        accumulate=[1, 8])
              for norm in ("batch", "layer")}
    assert errors["batch"][1]["total"] < 1e-6
    assert errors["batch"][8]["total"] > 1e-2     # each micro-batch alone
    assert errors["layer"][8]["total"] < 1e-5


def test_accumulation_errors_leave_the_model_unchanged(digits):
    X, y, _, _ = digits
    model = _model("batch")
    before = model.layers[0].norm.running_mean.clone()
    accumulation_errors(model, X[:64], y[:64], accumulate=[4])
    assert torch.equal(model.layers[0].norm.running_mean, before)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs, words", [
    (dict(accumulate=3), ["accumulate=3", "[1, 2, 4, 8"]),
    (dict(accumulate=0), ["accumulate=0"]),
    (dict(sizes=[30, 30]), ["add up to the batch size 64", "[30, 30]"]),
    (dict(weights="median"), ["'median'", "'size'"]),
])
def test_bad_arguments_are_named(digits, kwargs, words):
    X, y, _, _ = digits
    with pytest.raises(ValueError) as error:
        accumulated_grads(_model(), X[:64], y[:64], **kwargs)
    for word in words:
        assert word in str(error.value)


def test_plot_draws_one_bar_per_weight_matrix():
    import matplotlib.pyplot as plt
    errors = {"layers.0.linear.weight": 1e-3, "layers.0.norm.weight": 1.0,
              "layers.0.linear.bias": 0.5, "head.weight": 0.0, "total": 1.0}
    ax = plot_accumulation_error(errors)
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == [1e-3, 1e-17]
    plt.close(ax.figure)

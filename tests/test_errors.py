"""Every bad argument a user can pass fails with a message that names the
bad value and the valid ones."""

import pytest
import torch

import gradlab as gl


def _fit(**kw):
    X = torch.randn(200, 4)
    y = torch.randint(0, 2, (200,))
    args = {"loss": "cross_entropy", "steps": 1, "batch_size": 100,
            "lr": 0.1, "device": "cpu", "progress": False, **kw}
    gl.fit(gl.models.MLP(4, 2, depth=1, width=8), (X, y), **args)


CASES = [
    ("activation", lambda: gl.models.MLP(4, 2, depth=2, width=8,
                                         activation="swish"),
     ["'swish'", "'relu'", "'sigmoid'"]),
    ("init", lambda: gl.models.MLP(4, 2, depth=2, width=8, init="he"),
     ["'he'", "'kaiming'", "'xavier'"]),
    ("norm", lambda: gl.models.MLP(4, 2, depth=2, width=8, norm="group"),
     ["'group'", "'batch'", "'layer'"]),
    ("cell", lambda: gl.models.SequenceModel("transformer", 2, 8, 1),
     ["'transformer'", "'lstm'", "'gru'"]),
    ("depth", lambda: gl.models.MLP(4, 2, depth=0, width=8),
     ["depth", "0", ">= 1"]),
    ("init_std missing", lambda: gl.models.MLP(4, 2, depth=1, width=8,
                                               init="normal"),
     ["init_std", "None"]),
    ("accumulate", lambda: _fit(accumulate=3),
     ["batch_size=100", "accumulate=3", "[1, 2, 4, 5, 10, 20, 25, 50, 100]"]),
    ("loss", lambda: _fit(loss="hinge"), ["'hinge'", "cross_entropy", "mse"]),
    ("optimizer", lambda: _fit(optimizer="rmsprop"),
     ["'rmsprop'", "sgd", "adam"]),
    ("lr", lambda: _fit(lr=-1.0), ["lr", "-1.0", "positive"]),
    ("clip_norm", lambda: _fit(clip_norm=0.0), ["clip_norm", "0.0", "> 0"]),
    ("batch too large", lambda: _fit(batch_size=1000), ["1000", "200"]),
    ("device name", lambda: gl.get_device("tpu"),
     ["'tpu'", "'cpu'", "'cuda'"]),
    ("seed", lambda: gl.seed_everything(-1), ["-1", "non-negative"]),
    ("test_fraction", lambda: gl.data.digits(test_fraction=1.5),
     ["1.5", "(0, 1)"]),
    ("seq_len", lambda: gl.data.adding_problem(
        4, 1, generator=torch.Generator()), ["seq_len", "1", ">= 2"]),
    ("empty batch", lambda: gl.diagnose(
        torch.nn.Linear(4, 2), torch.randn(0, 4), torch.zeros(0).long(),
        "cross_entropy"), ["empty batch"]),
]


class _DictOutput(torch.nn.Module):
    """Returns its logits in a dict, as many libraries' models do."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return {"logits": self.head(torch.relu(self.body(x)))}


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_a_named_loss_on_a_dict_output_says_to_pass_a_callable(loss):
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    with pytest.raises(TypeError, match=f"returned a dict, and loss '{loss}'"
                       ".*callable loss"):
        gl.diagnose(_DictOutput(), x, y, loss)


def test_a_callable_loss_reads_a_dict_output():
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    report = gl.diagnose(_DictOutput(), x, y, lambda out, t: (
        torch.nn.functional.cross_entropy(out["logits"], t)))
    assert [r["layer"] for r in report.rows] == ["body.weight", "head.weight"]


@pytest.mark.parametrize("call, expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_names_value_and_valid_ones(call, expected):
    with pytest.raises(ValueError) as info:
        call()
    for text in expected:
        assert text in str(info.value), (text, str(info.value))


@pytest.mark.parametrize("name", ["cuda", "cuda:0", None])
def test_missing_cuda_is_a_clear_error(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if name is None:
        monkeypatch.setenv("GRADLAB_DEVICE", "cuda")
    with pytest.raises(ValueError) as info:
        gl.get_device(name)
    message = str(info.value)
    assert "'cuda" in message and "is_available() is False" in message
    assert "'cpu'" in message
    if name is None:
        assert "$GRADLAB_DEVICE" in message


def test_device_comes_from_environment(monkeypatch):
    monkeypatch.setenv("GRADLAB_DEVICE", "cpu")
    assert gl.get_device() == torch.device("cpu")
    monkeypatch.setenv("GRADLAB_DEVICE", "gpu")
    with pytest.raises(ValueError, match="'gpu'"):
        gl.get_device()

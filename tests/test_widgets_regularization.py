"""Chapter 2's explorer: every control reaches the training run."""

import gradlab as gl
import gradlab.train


def test_regularization_explorer_wires_every_control(digits, monkeypatch):
    X, y, X_test, y_test = digits
    calls = []
    real = gradlab.train.fit

    def recording_fit(model, train, **kwargs):
        calls.append(dict(kwargs, model=model))
        return real(model, train, **kwargs)

    monkeypatch.setattr(gradlab.train, "fit", recording_fit)
    box = gl.widgets.regularization_explorer(
        (X[:128], y[:128]), (X_test[:64], y_test[:64]), steps=3,
        batch_size=32, device="cpu")
    controls = {c.description: c for column in box.children[0].children
                for c in column.children}
    assert sorted(controls) == ["L2 λ", "activation", "depth", "dropout p",
                                "init"]
    first = calls[-1]
    assert first["weight_decay"] == 0.1 and first["steps"] == 3
    assert len(first["model"].layers) == 10
    controls["L2 λ"].value = 1e-3
    controls["dropout p"].value = 0.5
    controls["depth"].value = 4
    controls["activation"].value = "relu"
    last = calls[-1]
    assert last["weight_decay"] == 1e-3
    assert len(last["model"].layers) == 4
    block = last["model"].layers[0]
    assert type(block.act).__name__ == "ReLU" and block.drop.p == 0.5

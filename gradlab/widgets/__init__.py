"""Interactive explorers. They only wire gradlab's compute and plot
functions to ipywidgets controls; nothing is computed here.

The explorers of chapters 01-04 live in this module; later chapters each
add one module (``residual``, ``recurrent``, ``accumulation``,
``clipping``) whose explorer is re-exported here, so ``gl.widgets.X``
works for all of them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..activations import activation_histograms
from ..data import digits
from ..device import get_device
from ..grads import profile_at_init
from ..init import INITS
from ..models import ACTIVATIONS, MLP
from ..plots import COLORS, plot_activation_hist, plot_grad_profile

__all__ = ["depth_explorer", "EXPLORER_DEFAULTS", "init_explorer",
           "INIT_EXPLORER_DEFAULTS", "regularization_explorer",
           "REGULARIZATION_DEFAULTS", "residual_explorer",
           "RESIDUAL_DEFAULTS", "accumulation_explorer",
           "ACCUMULATION_DEFAULTS", "clipping_explorer",
           "CLIPPING_DEFAULTS",
           "recurrent_explorer", "RECURRENT_DEFAULTS"]

# The explorer opens on these values; a chapter's static figure drawn with
# the same values shows the printed reader what the widget shows.
EXPLORER_DEFAULTS = dict(depth=20, width=64, activation="sigmoid",
                         init="default", norm=None, residual=False)


def depth_explorer(inputs=None, targets=None, *, seed: int = 0, device=None,
                   **defaults):
    """Sliders and menus for an MLP; redraws its per-layer gradient profile.

    Controls: depth, width, activation, init, norm and residual. Each change
    builds a fresh seeded :class:`~gradlab.models.MLP` and draws
    :func:`~gradlab.layer_grad_norms` at initialization with
    :func:`~gradlab.plots.plot_grad_profile`.

    Args:
        inputs, targets: the batch to measure on; default the first 256
            training digits.
        seed: seed of the weights.
        device: where to compute; ``None`` means ``get_device()``.
        **defaults: starting values, overriding ``EXPLORER_DEFAULTS``.

    Returns:
        An ``ipywidgets.VBox`` to display.
    """
    import ipywidgets as w
    from IPython.display import display

    if inputs is None:
        X, y, _, _ = digits(seed=0)
        inputs, targets = X[:256], y[:256]
    start = {**EXPLORER_DEFAULTS, **defaults}
    controls = dict(
        depth=w.IntSlider(start["depth"], min=1, max=60, description="depth"),
        width=w.IntSlider(start["width"], min=8, max=256, step=8,
                          description="width"),
        activation=w.Dropdown(options=list(ACTIVATIONS),
                              value=start["activation"],
                              description="activation"),
        init=w.Dropdown(options=list(INITS), value=start["init"],
                        description="init"),
        # "none", not None: a saved widget state cannot label a None value.
        norm=w.Dropdown(options=["none", "batch", "layer"],
                        value=start["norm"] or "none", description="norm"),
        residual=w.Checkbox(start["residual"], description="residual"))
    out = w.Output()

    def draw(**config):
        config["norm"] = None if config["norm"] == "none" else config["norm"]
        with out:
            out.clear_output(wait=True)
            norms = profile_at_init(inputs, targets,
                                    out_features=int(targets.max()) + 1,
                                    seed=seed, device=device, **config)
            fig, ax = plt.subplots(figsize=(6.5, 3.4))
            plot_grad_profile(norms, ax=ax,
                              color=COLORS.get(config["activation"]))
            values = list(norms.values())
            ratio = values[0] / values[-1] if values[-1] else float("nan")
            ax.set_title(f"first / last layer: {ratio:.2e}")
            display(fig)
            plt.close(fig)  # shown once, in the output area

    w.interactive_output(draw, controls)
    left = w.VBox([controls["depth"], controls["width"],
                   controls["residual"]])
    right = w.VBox([controls["activation"], controls["init"],
                    controls["norm"]])
    return w.VBox([w.HBox([left, right]), out])


# The initialization explorer (chapter 3) opens on these values; the
# chapter draws its static figure with them.
INIT_EXPLORER_DEFAULTS = dict(activation="tanh", init="xavier", gain=1.0,
                              depth=20, width=64)


def init_explorer(inputs=None, *, seed: int = 0, device=None, **defaults):
    """Menus and sliders for the initialization; redraws the per-layer
    activation histograms of a fresh MLP.

    Controls: activation, init scheme, gain and depth. Each change builds a
    seeded :class:`~gradlab.models.MLP` (``width`` units per layer),
    multiplies every hidden weight matrix by ``gain`` (1 keeps the scheme's
    own scale; the head is left as drawn), and draws
    :func:`~gradlab.activations.activation_histograms` on ``inputs`` with
    :func:`~gradlab.plots.plot_activation_hist`.

    Args:
        inputs: the batch to run; default the first 256 training digits.
        seed: seed of the weights.
        device: where to compute; ``None`` means ``get_device()``.
        **defaults: starting values (``activation``, ``init``, ``gain``,
            ``depth``, ``width``), overriding ``INIT_EXPLORER_DEFAULTS``.

    Returns:
        An ``ipywidgets.VBox`` to display.
    """
    import ipywidgets as w
    from IPython.display import display

    if inputs is None:
        inputs = digits(seed=0)[0][:256]
    start = {**INIT_EXPLORER_DEFAULTS, **defaults}
    controls = dict(
        # "identity" has no activation module to histogram; "normal" needs
        # an init_std, which the gain slider plays the part of.
        activation=w.Dropdown(options=[a for a in ACTIVATIONS
                                       if a != "identity"],
                              value=start["activation"],
                              description="activation"),
        init=w.Dropdown(options=[i for i in INITS if i != "normal"],
                        value=start["init"], description="init"),
        gain=w.FloatSlider(start["gain"], min=0.25, max=3.0, step=0.05,
                           description="gain"),
        depth=w.IntSlider(start["depth"], min=1, max=50,
                          description="depth"))
    out = w.Output()

    def draw(activation, init, gain, depth):
        with out:
            out.clear_output(wait=True)
            model = MLP(inputs.shape[1], 10, depth=depth,
                        width=start["width"], activation=activation,
                        init=init,
                        generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                for block in model.layers:
                    block.linear.weight.mul_(gain)  # [width, fan_in]
            hist = activation_histograms(model.to(get_device(device)),
                                         inputs)
            fig, ax = plt.subplots(figsize=(6.5, 3.4))
            plot_activation_hist(hist, ax=ax)
            ax.set_title(f"{activation}, {init}, gain {gain:.2f}, "
                         f"{depth} layers")
            display(fig)
            plt.close(fig)  # shown once, in the output area

    w.interactive_output(draw, controls)
    left = w.VBox([controls["activation"], controls["init"]])
    right = w.VBox([controls["gain"], controls["depth"]])
    return w.VBox([w.HBox([left, right]), out])


# The regularization explorer (chapter 2) opens on these values; the
# chapter's static figure trains the same network.
REGULARIZATION_DEFAULTS = dict(activation="tanh", init="xavier", depth=10,
                               weight_decay=0.1, dropout=0.0)
_DECAYS = [0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1]
_DROPOUTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def regularization_explorer(train, test, *, steps: int = 200,
                            lr: float = 0.1, batch_size: int = 64,
                            width: int = 64, seed: int = 0, device=None,
                            **defaults):
    """Sliders for L2 weight decay and dropout; retrains an MLP and draws
    its first/last-layer gradient ratio over training.

    Controls: activation, init, depth, ``weight_decay`` and ``dropout``.
    Each change seeds everything with ``seed``, builds an
    :class:`~gradlab.models.MLP` and trains it with :func:`~gradlab.fit`
    (SGD) under a :class:`~gradlab.GradientMonitor` that records every 5
    steps, then draws ``||dL/dW_1|| / ||dL/dW_out||`` per recorded step
    with :func:`~gradlab.plots.plot_curves`; the title gives the test
    accuracy (:func:`~gradlab.accuracy`, eval mode).

    Args:
        train: ``(inputs, targets)`` to train on (class labels).
        test: ``(inputs, targets)`` for the accuracy.
        steps, lr, batch_size: passed to ``fit``.
        width: units per hidden layer.
        seed: seed of the weights, the dropout masks and the batch order.
        device: where to train; ``None`` means ``get_device()``.
        **defaults: starting values (``activation``, ``init``, ``depth``,
            ``weight_decay``, ``dropout``), overriding
            ``REGULARIZATION_DEFAULTS``.

    Returns:
        An ``ipywidgets.VBox`` to display.
    """
    import ipywidgets as w
    from IPython.display import display

    from ..monitor import GradientMonitor
    from ..plots import plot_curves
    from ..seed import seed_everything
    from ..train import accuracy, fit

    start = {**REGULARIZATION_DEFAULTS, **defaults}
    inputs, targets = train
    classes = int(targets.max()) + 1
    controls = dict(
        activation=w.Dropdown(options=list(ACTIVATIONS),
                              value=start["activation"],
                              description="activation"),
        init=w.Dropdown(options=list(INITS), value=start["init"],
                        description="init"),
        depth=w.IntSlider(start["depth"], min=1, max=30,
                          continuous_update=False, description="depth"),
        # (label, value) pairs: a saved widget state shows the labels
        weight_decay=w.SelectionSlider(
            options=[(f"{v:g}", v) for v in _DECAYS],
            value=start["weight_decay"], continuous_update=False,
            description="L2 λ"),
        dropout=w.SelectionSlider(
            options=[(f"{v:g}", v) for v in _DROPOUTS],
            value=start["dropout"], continuous_update=False,
            description="dropout p"))
    out = w.Output()

    def draw(activation, init, depth, weight_decay, dropout):
        with out:
            out.clear_output(wait=True)
            seed_everything(seed)
            model = MLP(inputs.shape[1], classes, depth=depth, width=width,
                        activation=activation, init=init, dropout=dropout)
            with GradientMonitor(model, every=5) as monitor:
                fit(model, (inputs, targets), loss="cross_entropy",
                    steps=steps, batch_size=batch_size, lr=lr,
                    weight_decay=weight_decay, monitor=monitor,
                    device=device, progress=False,
                    generator=torch.Generator().manual_seed(seed))
            record = monitor.record()
            ratio = record.grad_norm[:, 0] / record.grad_norm[:, -1]  # [T]
            acc = accuracy(model, *test)
            fig, ax = plt.subplots(figsize=(6.5, 3.4))
            plot_curves(record.steps.tolist(), {activation: ratio.tolist()},
                        ax=ax, logy=True, marker=None, xlabel="step",
                        ylabel="first / last layer gradient")
            ax.set_title(f"λ = {weight_decay:g}, p = {dropout:g}: "
                         f"test accuracy {acc:.0%}")
            display(fig)
            plt.close(fig)  # shown once, in the output area

    w.interactive_output(draw, controls)
    left = w.VBox([controls["activation"], controls["init"],
                   controls["depth"]])
    right = w.VBox([controls["weight_decay"], controls["dropout"]])
    return w.VBox([w.HBox([left, right]), out])
from .accumulation import accumulation_explorer, ACCUMULATION_DEFAULTS  # noqa: E402
from .clipping import clipping_explorer, CLIPPING_DEFAULTS  # noqa: E402
from .recurrent import recurrent_explorer, RECURRENT_DEFAULTS  # noqa: E402
from .residual import residual_explorer, RESIDUAL_DEFAULTS  # noqa: E402

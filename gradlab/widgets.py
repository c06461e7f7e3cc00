"""Interactive explorers. They only wire gradlab's compute and plot
functions to ipywidgets controls; nothing is computed here."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .data import digits
from .grads import profile_at_init
from .init import INITS
from .models import ACTIVATIONS
from .plots import COLORS, plot_grad_profile

__all__ = ["depth_explorer", "EXPLORER_DEFAULTS"]

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

"""Chapter 5's explorer: depth and skip connections against the gradient
profile at initialization. It only wires gradlab's compute and plot
functions to ipywidgets controls; nothing is computed here."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..data import digits
from ..grads import profile_at_init
from ..plots import plot_grad_profile

__all__ = ["residual_explorer", "RESIDUAL_DEFAULTS"]

# The explorer opens on these values; chapter 5 draws its static figure of
# the per-layer gradient profile with the same ones.
RESIDUAL_DEFAULTS = dict(depth=32, residual=True, norm="batch",
                         activation="tanh", width=32)
_INITS = {"tanh": "xavier", "relu": "kaiming", "sigmoid": "xavier"}
_RESIDUAL_COLOR, _PLAIN_COLOR = "#1f77b4", "#7f7f7f"


def residual_explorer(inputs=None, targets=None, *, seed: int = 0,
                      device=None, **defaults):
    """A depth slider and a residual switch; redraws the per-layer gradient
    profile of a fresh MLP next to the same network with the switch
    flipped.

    Controls: depth, residual (on/off), norm and activation. Each change
    builds two seeded :class:`~gradlab.models.MLP` (``width`` units, the
    activation's usual init: Xavier for tanh and sigmoid, Kaiming for
    ReLU), one with the chosen ``residual`` and one without it or with it,
    computes :func:`~gradlab.profile_at_init` for both in train mode, and
    draws them with :func:`~gradlab.plots.plot_grad_profile`: the chosen
    network in colour, the other in grey. The title gives both first/last
    layer ratios.

    Args:
        inputs, targets: the batch to measure on; default the first 256
            training digits.
        seed: seed of the weights.
        device: where to compute; ``None`` means ``get_device()``.
        **defaults: starting values (``depth``, ``residual``, ``norm``,
            ``activation``, ``width``), overriding ``RESIDUAL_DEFAULTS``.

    Returns:
        An ``ipywidgets.VBox`` to display.
    """
    import ipywidgets as w
    from IPython.display import display

    if inputs is None:
        X, y, _, _ = digits(seed=0)
        inputs, targets = X[:256], y[:256]
    start = {**RESIDUAL_DEFAULTS, **defaults}
    controls = dict(
        depth=w.IntSlider(start["depth"], min=2, max=100,
                          continuous_update=False, description="depth"),
        residual=w.Checkbox(start["residual"], description="residual"),
        # "none", not None: a saved widget state cannot label a None value.
        norm=w.Dropdown(options=["none", "batch", "layer"],
                        value=start["norm"] or "none", description="norm"),
        activation=w.Dropdown(options=list(_INITS),
                              value=start["activation"],
                              description="activation"))
    out = w.Output()

    def profile(depth, residual, norm, activation):
        return profile_at_init(inputs, targets,
                               out_features=int(targets.max()) + 1,
                               seed=seed, device=device, depth=depth,
                               width=start["width"], activation=activation,
                               init=_INITS[activation], norm=norm,
                               residual=residual)

    def draw(depth, residual, norm, activation):
        norm = None if norm == "none" else norm
        with out:
            out.clear_output(wait=True)
            chosen = profile(depth, residual, norm, activation)
            other = profile(depth, not residual, norm, activation)
            fig, ax = plt.subplots(figsize=(6.5, 3.4))
            names = {residual: "residual", not residual: "plain"}
            plot_grad_profile(other, ax=ax, label=names[not residual],
                              color=_PLAIN_COLOR if residual
                              else _RESIDUAL_COLOR, alpha=0.5)
            plot_grad_profile(chosen, ax=ax, label=names[residual],
                              color=_RESIDUAL_COLOR if residual
                              else _PLAIN_COLOR)
            ratios = {names[r]: _first_over_last(p)
                      for r, p in ((residual, chosen),
                                   (not residual, other))}
            ax.set_title("first / last layer: " + ", ".join(
                f"{k} {v:.2g}" for k, v in sorted(ratios.items())))
            ax.legend(frameon=False)
            display(fig)
            plt.close(fig)  # shown once, in the output area

    w.interactive_output(draw, controls)
    left = w.VBox([controls["depth"], controls["residual"]])
    right = w.VBox([controls["norm"], controls["activation"]])
    return w.VBox([w.HBox([left, right]), out])


def _first_over_last(norms: dict[str, float]) -> float:
    values = list(norms.values())
    return values[0] / values[-1] if values[-1] else float("nan")

"""Chapter 8's explorer: rho, T and the clip threshold of a linear
recurrence. It only wires :mod:`gradlab.clipping`'s compute and plot
functions to ipywidgets controls."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .. import clipping

__all__ = ["clipping_explorer", "CLIPPING_DEFAULTS"]

# The explorer opens on these values; the chapter's static figure is drawn
# with the same ones.
CLIPPING_DEFAULTS = dict(rho=1.2, T=30, max_norm=1.0)


def clipping_explorer(*, hidden: int = 16, seed: int = 0, **defaults):
    """Sliders for ``rho``, ``T`` and the clip threshold; redraws the
    gradient's growth through the recurrence and the two clippings.

    Each change runs :func:`~gradlab.clipping.rho_power_profile` (a linear
    recurrence ``W = rho * Q``, ``T`` steps) and
    :func:`~gradlab.clipping.clip_comparison` on its ``dL/dW`` with
    threshold ``max_norm`` (by value: ``max_norm / sqrt(numel)``), and
    draws them with :func:`~gradlab.clipping.plot_rho_power` and
    :func:`~gradlab.clipping.plot_clipping`.

    Args:
        hidden: state size of the recurrence.
        seed: seed of ``W``, the inputs and the loss.
        **defaults: starting ``rho``, ``T``, ``max_norm``, overriding
            ``CLIPPING_DEFAULTS``.

    Returns:
        An ``ipywidgets.VBox`` to display.
    """
    import ipywidgets as w
    from IPython.display import display

    start = {**CLIPPING_DEFAULTS, **defaults}
    controls = dict(
        rho=w.FloatSlider(start["rho"], min=0.5, max=1.5, step=0.05,
                          description="rho"),
        T=w.IntSlider(start["T"], min=1, max=100, description="T"),
        max_norm=w.FloatLogSlider(start["max_norm"], base=10, min=-2, max=3,
                                  step=0.25, description="clip at"))
    out = w.Output()

    def draw(rho, T, max_norm):
        with out:
            out.clear_output(wait=True)
            profile = clipping.rho_power_profile(rho, T, hidden=hidden,
                                                 seed=seed)
            comparison = clipping.clip_comparison(profile["grad"], max_norm)
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
            clipping.plot_rho_power(profile, ax=axes[0])
            clipping.plot_clipping(comparison, ax=axes[1], max_norm=max_norm)
            axes[0].set_title(f"rho = {rho:.2f}, T = {T}: "
                              f"rho^T = {rho ** T:.3g}")
            axes[1].set_title(f"clip at {max_norm:.3g}")
            fig.tight_layout()
            display(fig)
            plt.close(fig)  # shown once, in the output area

    w.interactive_output(draw, controls)
    return w.VBox([w.HBox(list(controls.values())), out])

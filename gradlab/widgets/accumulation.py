"""Chapter 7's explorer: micro-batches, the norm layer, and how far the
accumulated gradient is from the full batch's."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..accumulation import accumulation_errors, plot_accumulation_error
from ..data import digits
from ..device import get_device
from ..models import MLP

__all__ = ["accumulation_explorer", "ACCUMULATION_DEFAULTS"]

# The explorer opens on these values; the chapter's static figure is drawn
# with the same ones.
ACCUMULATION_DEFAULTS = dict(accumulate=8, norm="batch", depth=6, width=64)
_KS = [1, 2, 4, 8, 16, 32, 64]
_NORM_COLORS = {"none": "#7f7f7f", "batch": "#d62728", "layer": "#1f77b4"}


def accumulation_explorer(inputs=None, targets=None, *, seed: int = 0,
                          device=None, **defaults):
    """A slider for the number of micro-batches ``k`` and a menu for the
    norm layer; redraws each weight matrix's relative gradient error.

    Each change builds a seeded ReLU :class:`~gradlab.models.MLP` (Kaiming
    init, ``depth`` hidden layers of ``width`` units) with the chosen norm
    layer, in training mode, and draws
    :func:`~gradlab.accumulation.accumulation_errors` for ``k`` equal
    micro-batches with
    :func:`~gradlab.accumulation.plot_accumulation_error`. Without a norm
    layer or with layer norm the error is float rounding; with batch norm
    each micro-batch is normalized with its own statistics.

    Args:
        inputs, targets: the batch; default the first 256 training digits.
        seed: seed of the weights.
        device: where to compute; ``None`` means ``get_device()``.
        **defaults: starting values (``accumulate``, ``norm``, ``depth``,
            ``width``), overriding ``ACCUMULATION_DEFAULTS``.

    Returns:
        An ``ipywidgets.VBox`` to display.
    """
    import ipywidgets as w
    from IPython.display import display

    if inputs is None:
        X, y, _, _ = digits(seed=0)
        inputs, targets = X[:256], y[:256]
    device = get_device(device)
    inputs, targets = inputs.to(device), targets.to(device)
    start = {**ACCUMULATION_DEFAULTS, **defaults}
    ks = [k for k in _KS if inputs.shape[0] % k == 0]
    controls = dict(
        accumulate=w.SelectionSlider(options=ks, value=start["accumulate"],
                                     description="k"),
        # "none", not None: a saved widget state cannot label a None value.
        norm=w.Dropdown(options=["none", "batch", "layer"],
                        value=start["norm"] or "none", description="norm"))
    out = w.Output()

    def draw(accumulate, norm):
        with out:
            out.clear_output(wait=True)
            model = MLP(inputs.shape[1], int(targets.max()) + 1,
                        depth=start["depth"], width=start["width"],
                        norm=None if norm == "none" else norm,
                        generator=torch.Generator().manual_seed(seed))
            errors = accumulation_errors(model.to(device), inputs, targets,
                                         accumulate=[accumulate])
            fig, ax = plt.subplots(figsize=(6.5, 3.4))
            plot_accumulation_error(errors[accumulate], ax=ax,
                                    color=_NORM_COLORS[norm])
            ax.set_title(f"norm: {norm}, k = {accumulate}: total error "
                         f"{errors[accumulate]['total']:.1e}")
            display(fig)
            plt.close(fig)  # shown once, in the output area

    w.interactive_output(draw, controls)
    return w.VBox([w.HBox([controls["accumulate"], controls["norm"]]), out])

"""Chapter 6's explorer: how far a gradient reaches back in time through a
tanh RNN, an LSTM or a GRU, as the recurrent weights' spectral radius
changes.

``time_profile`` computes (it returns data), ``plot_time_grad_norms`` only
draws, and ``recurrent_explorer`` wires the two to ipywidgets controls.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..data import adding_problem
from ..device import get_device
from ..grads import time_grad_norms
from ..models import CELLS, SequenceModel

__all__ = ["time_profile", "plot_time_grad_norms", "plot_time_profile",
           "recurrent_explorer",
           "RECURRENT_DEFAULTS", "CELL_COLORS"]

# One colour per recurrent cell, the same in every figure of chapter 6.
CELL_COLORS = {"rnn": "#1f77b4", "lstm": "#ff7f0e", "gru": "#2ca02c"}

# The explorer opens on these values; chapter 6 draws its static figure
# with them.
RECURRENT_DEFAULTS = dict(cell="rnn", spectral_radius=0.9, seq_len=60,
                          hidden_size=32)


def time_profile(cell: str, *, seq_len: int = 60, hidden_size: int = 32,
                 spectral_radius: float | None = None,
                 forget_bias: float | None = None, input_scale: float = 1.0,
                 batch_size: int = 256, seed: int = 0,
                 device=None) -> dict:
    """Build a seeded :class:`~gradlab.models.SequenceModel` and measure the
    gradient that reaches each time step of adding-problem inputs.

    The model's weights come from torch's generator seeded with ``seed``
    inside :func:`torch.random.fork_rng`, so the caller's random state is
    left alone and the same arguments give the same curve.

    Args:
        cell: ``rnn | lstm | gru``.
        seq_len: time steps ``T`` of the inputs.
        hidden_size: units of the recurrent state.
        spectral_radius: passed to ``SequenceModel`` (``None``: torch's
            default init, radius about ``1/sqrt(3)``).
        forget_bias: passed to ``SequenceModel`` (LSTM only).
        input_scale: multiplies the inputs; a small value keeps a tanh
            RNN in its linear regime (``tanh' ~ 1``).
        batch_size: sequences of :func:`~gradlab.data.adding_problem`.
        seed: seed of the weights and of the data.
        device: where to compute; ``None`` means
            :func:`~gradlab.get_device`.

    Returns:
        ``{"cell", "spectral_radius", "norms", "ratio"}``: ``norms`` is the
        list of ``||dL/dx_t||`` for ``t = 1..T`` (MSE loss, see
        :func:`~gradlab.time_grad_norms`) and ``ratio`` is
        ``norms[0] / norms[-1]``, the share of the gradient that reaches
        the first step.
    """
    device = get_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: init is on CPU
        model = SequenceModel(cell, 2, hidden_size, 1,
                              spectral_radius=spectral_radius,
                              forget_bias=forget_bias).to(device)
    x, y = adding_problem(batch_size, seq_len,
                          generator=torch.Generator().manual_seed(seed))
    norms = time_grad_norms(model, input_scale * x, y, "mse").tolist()
    ratio = norms[0] / norms[-1] if norms[-1] else float("nan")
    return dict(cell=cell, spectral_radius=spectral_radius, norms=norms,
                ratio=ratio)


def plot_time_grad_norms(curves: dict[str, list[float]], ax=None, *,
                         colors: dict[str, str] | None = None,
                         **line_kwargs):
    """Draw ``||dL/dx_t||`` against the time step, on a log scale.

    Args:
        curves: ``{label: norms}``, ``norms[t - 1]`` for step ``t``; the
            label's text before the first space picks a colour from
            ``CELL_COLORS`` (``"lstm, trained"`` is orange).
        ax: Axes to draw on; a new figure when ``None``.
        colors: optional ``{label: colour}`` overriding that choice.
        line_kwargs: passed to ``ax.plot``.

    Returns:
        The Axes. A step whose gradient underflowed to 0 is left out of the
        line (log scale).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.grid(True, which="major", alpha=0.3)
    colors = colors or {}
    for label, norms in curves.items():
        key = label.split(" ")[0].rstrip(",")
        values = [v if v > 0 else float("nan") for v in norms]
        ax.plot(range(1, len(values) + 1), values, label=label,
                color=colors.get(label, CELL_COLORS.get(key)),
                **line_kwargs)
    ax.set_yscale("log")
    ax.set_xlabel("time step t (the loss reads the last one)")
    ax.set_ylabel(r"$\|\partial L / \partial x_t\|$")
    if len(curves) > 1:
        ax.legend(frameon=False, fontsize=8)
    return ax


def plot_time_profile(data: dict, ax=None):
    """Draw one :func:`~gradlab.widgets.recurrent.time_profile` result and,
    dotted, the line ``rho^(T - t)`` through its last step: the rate a
    linear recurrence with spectral radius ``rho`` gives. The title names
    the cell, ``rho`` and the first/last ratio.

    Returns:
        The Axes.
    """
    norms, rho, cell = data["norms"], data["spectral_radius"], data["cell"]
    ax = plot_time_grad_norms({cell: norms}, ax=ax)
    if rho is not None:
        T = len(norms)
        ax.plot(range(1, T + 1),
                [norms[-1] * rho ** (T - t) for t in range(1, T + 1)],
                "k:", lw=1, label=r"$\rho^{T-t}$")
        ax.legend(frameon=False, fontsize=8)
    radius = "torch's init" if rho is None else f"ρ = {rho:.2f}"
    ax.set_title(f"{cell}, {radius}: first / last step "
                 f"{data['ratio']:.1e}")
    return ax


def recurrent_explorer(*, seed: int = 0, device=None, **defaults):
    """A menu for the cell and sliders for the recurrent weights' spectral
    radius and the sequence length; redraws the gradient through time.

    Each change calls :func:`~gradlab.widgets.recurrent.time_profile` (a
    fresh seeded model at
    initialization) and draws it with
    :func:`~gradlab.widgets.recurrent.plot_time_profile`.

    Args:
        seed: seed of the weights and the data.
        device: where to compute; ``None`` means ``get_device()``.
        **defaults: starting values (``cell``, ``spectral_radius``,
            ``seq_len``, ``hidden_size``), overriding
            ``RECURRENT_DEFAULTS``.

    Returns:
        An ``ipywidgets.VBox`` to display.
    """
    import ipywidgets as w
    from IPython.display import display

    start = {**RECURRENT_DEFAULTS, **defaults}
    controls = dict(
        cell=w.Dropdown(options=list(CELLS), value=start["cell"],
                        description="cell"),
        spectral_radius=w.FloatSlider(start["spectral_radius"], min=0.1,
                                      max=8.0, step=0.05,
                                      continuous_update=False,
                                      description="radius ρ"),
        seq_len=w.IntSlider(start["seq_len"], min=5, max=150, step=5,
                            continuous_update=False, description="T"))
    out = w.Output()

    def draw(cell, spectral_radius, seq_len):
        with out:
            out.clear_output(wait=True)
            data = time_profile(cell, seq_len=seq_len,
                                hidden_size=start["hidden_size"],
                                spectral_radius=spectral_radius, seed=seed,
                                device=device)
            fig, ax = plt.subplots(figsize=(6.5, 3.4))
            plot_time_profile(data, ax=ax)
            display(fig)
            plt.close(fig)  # shown once, in the output area

    w.interactive_output(draw, controls)
    return w.VBox([w.HBox([controls["cell"], controls["spectral_radius"],
                           controls["seq_len"]]), out])

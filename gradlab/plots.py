"""Figures of the book. Each ``plot_*`` draws data it is given on an Axes
and returns it; nothing here computes a gradient.

One look for every chapter: a fixed colour per activation, log axes for
quantities that span orders of magnitude, light grids, labelled axes.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from .diagnose import VERDICT_COLORS

__all__ = ["COLORS", "plot_grad_profile", "plot_curves", "plot_report",
           "plot_grad_heatmap", "plot_update_ratio", "plot_activation_hist",
           "plot_training_curves"]

# One colour per activation (and per init family), the same in every chapter.
COLORS = {"sigmoid": "#d62728", "tanh": "#1f77b4", "relu": "#2ca02c",
          "leaky_relu": "#17becf", "gelu": "#9467bd", "identity": "#7f7f7f"}


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    ax.grid(True, which="major", alpha=0.3)
    return ax


def _loggable(values, log: bool):
    """Zeros and negatives as NaN, so a log-scale line ends instead of
    plunging to the axis (a vanishing gradient can underflow to 0.0)."""
    values = [float(v) for v in values]
    return [v if v > 0 or not log else math.nan for v in values]


def plot_grad_profile(norms: dict[str, float], ax=None, *, label=None,
                      color=None, **line_kwargs):
    """Draw per-layer gradient norms against layer index, on a log scale.

    Args:
        norms: ``{layer: norm}`` in forward order, as returned by
            :func:`gradlab.layer_grad_norms`. Layer 1 is nearest the input.
        ax: Axes to draw on; a new figure when ``None``.
        label, color, line_kwargs: passed to ``ax.plot``.

    Returns:
        The Axes. Zero norms (underflow) cannot be drawn on a log axis and
        are left out of the line.
    """
    ax = _axes(ax)
    layers = range(1, len(norms) + 1)
    ax.plot(layers, _loggable(norms.values(), True), marker="o", markersize=2.5,
            label=label, color=color, **line_kwargs)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_ylabel(r"$\|\partial L / \partial W_l\|$")
    return ax


def plot_curves(x, curves: dict[str, list[float]], ax=None, *, xlabel: str,
                ylabel: str, logx: bool = False, logy: bool = False,
                colors: dict[str, str] | None = None, **line_kwargs):
    """Draw several named curves over a shared x.

    Args:
        x: the shared abscissa.
        curves: ``{label: ys}``, one line each.
        ax: Axes to draw on; a new figure when ``None``.
        xlabel, ylabel: axis labels.
        logx, logy: log scales.
        colors: optional ``{label: colour}``; labels found in
            ``COLORS`` get their activation's colour by default.

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    colors = {**COLORS, **(colors or {})}
    line_kwargs = {"marker": "o", "markersize": 3, **line_kwargs}
    for label, ys in curves.items():
        ax.plot(x, _loggable(ys, logy), label=label, color=colors.get(label),
                **line_kwargs)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(curves) > 1:
        ax.legend(frameon=False)
    return ax


def plot_report(report, ax=None):
    """Draw a :class:`gradlab.diagnose.Report`: per-layer weight-gradient
    norms (weight-matrix layers) on a log scale, the verdict as title.

    Returns:
        The Axes.
    """
    rows = [r for r in report.rows if r["ratio_to_last"] == r["ratio_to_last"]]
    ax = plot_grad_profile({r["layer"]: r["grad_norm"] for r in rows}, ax=ax,
                           color="k")
    ax.set_title(f"verdict: {report.verdict}",
                 color=VERDICT_COLORS[report.verdict])
    return ax


def _layer_colors(n: int):
    return plt.cm.viridis([i / max(n - 1, 1) for i in range(n)])


def _layer_key(ax):
    ax.text(0.99, 0.02, "dark: layer 1 (input side), light: last layer",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            color="0.3")


def plot_grad_heatmap(record, ax=None, *, metric: str = "grad_norm"):
    """Draw a layer x step heatmap of ``log10`` of a monitored metric.

    Args:
        record: a :class:`gradlab.MonitorRecord`.
        ax: Axes to draw on; a new figure when ``None``.
        metric: ``"grad_norm"`` (default), ``"out_grad_norm"`` or
            ``"update_ratio"``.

    Returns:
        The Axes (the colour bar is attached to its figure).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6))
    values = getattr(record, metric).T.clamp_min(1e-45).log10()  # [L, T]
    steps = record.steps.tolist()
    image = ax.imshow(values, aspect="auto", origin="lower",
                      interpolation="nearest", cmap="magma",
                      extent=(steps[0] - 0.5, steps[-1] + 0.5,
                              0.5, len(record.layers) + 0.5))
    ax.figure.colorbar(image, ax=ax, label=f"log10 {metric}")
    ax.set_xlabel("step")
    ax.set_ylabel("layer (1 = input side)")
    return ax


def plot_update_ratio(record, ax=None, *, reference: float = 1e-3):
    """Draw each layer's update:data ratio over steps, log scale, with the
    ``1e-3`` rule-of-thumb line (Karpathy, makemore part 3).

    Args:
        record: a :class:`gradlab.MonitorRecord`.
        ax: Axes to draw on; a new figure when ``None``.
        reference: where to draw the dashed reference line.

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    ratios = record.update_ratio
    steps = record.steps.tolist()
    for j, color in enumerate(_layer_colors(len(record.layers))):
        ax.plot(steps, _loggable(ratios[:, j].tolist(), True), color=color,
                lw=1, label=record.layers[j])
    ax.axhline(reference, color="k", ls="--", lw=1)
    _layer_key(ax)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\|\Delta W\| / \|W\|$")
    return ax


def plot_activation_hist(hist: dict, ax=None):
    """Draw per-layer activation histograms as overlaid lines, first layer
    dark, last layer light (Glorot & Bengio 2010, figs. 6-7).

    Args:
        hist: the output of
            :func:`gradlab.activations.activation_histograms`.
        ax: Axes to draw on; a new figure when ``None``.

    Returns:
        The Axes.
    """
    ax = _axes(ax)
    edges = hist["edges"]
    centres = ((edges[1:] + edges[:-1]) / 2).tolist()
    counts = hist["counts"]
    for (name, c), color in zip(counts.items(), _layer_colors(len(counts))):
        ax.plot(centres, c.tolist(), color=color, lw=1.2, label=name)
    _layer_key(ax)
    ax.set_xlabel("activation value")
    ax.set_ylabel("fraction of activations")
    return ax


def plot_training_curves(histories: dict, ax=None, *, logy: bool = True):
    """Draw the training loss of one or more :class:`gradlab.History`.

    Args:
        histories: ``{label: History}``.
        ax: Axes to draw on; a new figure when ``None``.
        logy: log-scale loss axis.

    Returns:
        The Axes.
    """
    curves = {label: h.loss for label, h in histories.items()}
    longest = max(len(c) for c in curves.values())
    padded = {k: c + [math.nan] * (longest - len(c)) for k, c in curves.items()}
    return plot_curves(range(longest), padded, ax=ax, xlabel="step",
                       ylabel="training loss", logy=logy, marker=None)

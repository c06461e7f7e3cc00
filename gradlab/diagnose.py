"""A one-batch health check of any model's gradients, with a verdict."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .device import device_of
from .monitor import GradientMonitor
from .train import loss_function

__all__ = ["diagnose", "Report", "VANISHING_RATIO", "EXPLODING_RATIO",
           "EXPLODING_GRAD_TO_WEIGHT"]

# A layer whose gradient is 1000x smaller than the last layer's moves 1000x
# more slowly under one shared learning rate: at the ~1e-3 update:data ratio
# that suits the last layer, it needs ~1e6 steps to change by its own size.
VANISHING_RATIO = 1e-3
# The mirror image: the first layer would move 1000x faster than the last.
EXPLODING_RATIO = 1e3
# A note (not a verdict) when over half a layer's input is dead/saturated.
NOTE_FRACTION = 0.5
# ||dL/dW|| / ||W|| > 100: one SGD step at any lr >= 0.01 changes the layer
# by more than its own norm (update:data ratio > 1, 1000x the healthy 1e-3).
EXPLODING_GRAD_TO_WEIGHT = 1e2

VERDICT_COLORS = {"healthy": "#2ca02c", "vanishing": "#1f77b4",
                  "exploding": "#d62728"}
COLUMNS = ("layer", "activation", "grad_norm", "ratio_to_last",
           "out_grad_norm", "grad_to_weight", "act_mean", "act_std",
           "saturated", "dead")


@dataclass
class Report:
    """Per-layer gradient table of one batch and a verdict.

    Attributes:
        rows: one dict per layer (:mod:`gradlab.layers`: a weight matrix,
            forward order), keys ``COLUMNS``. ``ratio_to_last`` divides by
            the last layer's gradient norm. ``activation`` names the
            activation that produced the layer's *input*, and ``act_*``,
            ``saturated``, ``dead`` describe that input; ``saturated``/
            ``dead`` are NaN where they do not apply.
        verdict: ``"vanishing"``, ``"exploding"`` or ``"healthy"``.
        reason: one sentence with the numbers behind the verdict.
        notes: warnings the verdict does not cover: layers whose input is
            over half dead ReLUs or saturated units (a network can be
            "healthy" by the gradient ratio and still not learn).
    """

    rows: list
    verdict: str
    reason: str
    notes: list = field(default_factory=list)
    thresholds: dict = field(default_factory=lambda: dict(
        vanishing_ratio=VANISHING_RATIO, exploding_ratio=EXPLODING_RATIO,
        exploding_grad_to_weight=EXPLODING_GRAD_TO_WEIGHT))

    def __str__(self) -> str:
        header = ["layer", "act", "|dL/dW|", "/last", "|dL/dh|", "|g|/|W|",
                  "mean", "std", "sat", "dead"]
        lines = [[r["layer"], r["activation"] or "-"] +
                 [_fmt(r[c]) for c in COLUMNS[2:]] for r in self.rows]
        widths = [max(len(str(x)) for x in col)
                  for col in zip(header, *lines)]
        out = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths))
               for row in [header, *lines]]
        return "\n".join(out + [f"verdict: {self.verdict} ({self.reason})"]
                         + [f"note: {n}" for n in self.notes])

    def _repr_html_(self) -> str:
        colour = VERDICT_COLORS[self.verdict]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>"
                             for c in COLUMNS) + "</tr>" for r in self.rows)
        notes = "".join(f"<p>note: {html.escape(n)}</p>" for n in self.notes)
        return (f"<p><b style='color:{colour}'>{self.verdict}</b>: "
                f"{html.escape(self.reason)}</p>{notes}<table><thead><tr>"
                f"{head}</tr></thead><tbody>{body}</tbody></table>")

    def plot(self, ax=None):
        """Draw the per-layer gradient norms with the verdict as title."""
        from .plots import plot_report
        return plot_report(self, ax=ax)


def _fmt(value) -> str:
    if isinstance(value, str):
        return value or "-"
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g}"


def diagnose(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
             loss) -> Report:
    """Measure one batch's per-layer gradients and say whether they vanish.

    One forward and one backward pass under a :class:`GradientMonitor`; the
    model's ``.grad`` fields and mode (train/eval) are left as they were.

    The layers are the model's weight matrices in the order the forward
    pass uses them (:mod:`gradlab.layers`), found by tracing the pass: a
    model written with ``F.linear``, ``nn.MultiheadAttention``, tied
    embeddings or functional activations is read as faithfully as
    ``gl.models``. The verdict, checked in this order (first = used first,
    nearest the input; last = used last, nearest the loss):

    * ``exploding`` if a gradient is not finite, or some layer has
      ``||dL/dW|| / ||W|| > 100`` (one SGD step at lr >= 0.01 would move it
      by more than its own size), or ``||g_first|| / ||g_last|| > 1e3``;
    * ``vanishing`` if ``||g_first|| / ||g_last|| < 1e-3`` (the first layer
      learns over 1000x more slowly than the last with one learning rate);
    * ``healthy`` otherwise.

    These are rules of thumb for a network at or near initialization, from
    one batch. They can miss a problem (a tanh network in its saturated,
    chaotic regime can have a first/last ratio of a few hundred) and they
    say nothing about whether the model will fit the data. What the trace
    cannot see is listed in :mod:`gradlab.layers`; norm layers' 1-D gains
    and biases are not layers; weights the pass never uses are left out.

    Args:
        model: any ``nn.Module`` whose forward pass uses a weight matrix.
        inputs: a batch the model accepts (moved to the model's device).
        targets: the matching targets.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable.

    Returns:
        :class:`Report`; ``print`` it for a table, or display it in Jupyter.

    Example:
        >>> report = gl.diagnose(model, X[:256], y[:256], "cross_entropy")
        >>> report.verdict
        'vanishing'
    """
    loss_fn = loss_function(loss)
    if isinstance(inputs, torch.Tensor) and inputs.dim() and not len(inputs):
        raise ValueError("inputs is an empty batch: diagnose needs at least "
                         "one sample to measure gradients on")
    params = list(model.parameters())
    device = device_of(model)
    saved = [p.grad for p in params]
    try:
        for p in params:
            p.grad = None
        with GradientMonitor(model) as monitor:
            loss_fn(model(inputs.to(device)), targets.to(device)).backward()
            monitor.step()
        record = monitor.record()
        named = dict(model.named_parameters(remove_duplicate=False))
        weight_norms = [named[name].detach().norm().item()
                        for name in record.layers]
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    return _report(record, weight_norms)


def _report(record, weight_norms) -> Report:
    g = record.grad_norm[0].tolist()
    matrix = list(range(len(record.layers)))   # every layer is a matrix
    last = g[-1] if g else math.nan
    rows = []
    for i, name in enumerate(record.layers):
        ratio = g[i] / last if last > 0 else math.nan
        rows.append(dict(
            layer=name, activation=record.activations[i], grad_norm=g[i],
            ratio_to_last=ratio,
            out_grad_norm=record.out_grad_norm[0, i].item(),
            grad_to_weight=g[i] / weight_norms[i] if weight_norms[i] > 0
            else math.nan,
            act_mean=record.act_mean[0, i].item(),
            act_std=record.act_std[0, i].item(),
            saturated=record.saturated[0, i].item(),
            dead=record.dead[0, i].item()))
    verdict, reason = _verdict(rows, matrix, g)
    return Report(rows=rows, verdict=verdict, reason=reason,
                  notes=_notes(rows))


def _notes(rows) -> list:
    """Warnings the verdict does not cover: a layer whose input is mostly
    dead ReLUs or saturated tanh/sigmoid units can pass a healthy gradient
    ratio and still not learn."""
    notes = []
    for r in rows:
        if r["dead"] > NOTE_FRACTION:    # NaN compares False
            notes.append(f"{r['dead']:.0%} of the units feeding "
                         f"{r['layer']} are dead ReLUs (zero on every sample)")
        if r["saturated"] > NOTE_FRACTION:
            notes.append(f"{r['saturated']:.0%} of the {r['activation']} "
                         f"outputs feeding {r['layer']} are saturated")
    return notes


def _verdict(rows, matrix, g):
    if not matrix:
        return "healthy", "no weight-matrix layer to compare"
    if not all(math.isfinite(v) for v in g):
        bad = [r["layer"] for r, v in zip(rows, g) if not math.isfinite(v)]
        return "exploding", f"non-finite gradient in {', '.join(bad)}"
    worst = max(matrix, key=lambda i: _nan_to(rows[i]["grad_to_weight"]))
    gw = rows[worst]["grad_to_weight"]
    if gw > EXPLODING_GRAD_TO_WEIGHT:
        return "exploding", (f"|dL/dW|/|W| = {gw:.3g} in {rows[worst]['layer']}"
                             f" > {EXPLODING_GRAD_TO_WEIGHT:g}")
    ratio = rows[matrix[0]]["ratio_to_last"]
    first, last = rows[matrix[0]]["layer"], rows[matrix[-1]]["layer"]
    if not any(v > 0 for v in g):
        return "vanishing", ("no gradient reaches any weight matrix: "
                             "|dL/dW| = 0 in every layer")
    if math.isnan(ratio):   # the last layer gets no gradient, others do
        return "vanishing", (f"|g| of {last} = 0: the layer nearest the "
                             f"loss gets no gradient")
    text = f"|g| of {first} / |g| of {last} = {ratio:.3g}"
    if ratio > EXPLODING_RATIO:
        return "exploding", f"{text} > {EXPLODING_RATIO:g}"
    if ratio < VANISHING_RATIO:
        return "vanishing", f"{text} < {VANISHING_RATIO:g}"
    return "healthy", (f"{text}, max |g|/|W| = {gw:.3g}; within "
                       f"[{VANISHING_RATIO:g}, {EXPLODING_RATIO:g}] and "
                       f"<= {EXPLODING_GRAD_TO_WEIGHT:g}")


def _nan_to(value, default=-math.inf):
    return default if math.isnan(value) else value

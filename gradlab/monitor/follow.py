"""When module hooks can stand in for the trace.

Tracing every torch call costs time, so the monitor traces only until it
knows the model's map. If in a traced pass every layer was used exactly once,
by the call of the module that holds it, with that call's input and output
(an ``nn.Linear``, ``nn.Conv2d``, ``nn.Embedding``: most models), later
passes are followed with forward hooks on those modules instead, and each
layer keeps the activation label the trace found for its input. The map is
assumed to stay the same from pass to pass; a pass that calls the hooked
modules a different number of times switches tracing back on for the next
recorded pass. Attention projections, tied weights and functional weights
are traced on every recorded pass.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ForwardTrace

__all__ = ["owners", "replay_map"]


def owners(model: nn.Module, matrix_ids) -> list[nn.Module]:
    """Modules that hold a weight matrix themselves."""
    return [m for m in model.modules()
            if any(id(p) in matrix_ids
                   for p in m.parameters(recurse=False))]


def replay_map(probe: list, uses: list, trace: ForwardTrace):
    """``[(module, rows)]`` when every use of the traced pass was its
    module's own call, on that call's input and output; else False.

    Args:
        probe: ``(module, first argument, first output)`` of every call of
            a module that holds a weight matrix, in call order.
        uses: the :class:`~gradlab.layers.Use` of every weight, in order.
        trace: the :class:`~gradlab.layers.ForwardTrace` that saw them.
    """
    if len(probe) != len(uses) or any(
            len(names) > 1 for _, names in trace.matrices):
        return False
    params = trace.params
    seen: set = set()
    for (module, arg, out), use in zip(probe, uses):
        own = {id(p) for p in module.parameters(recurse=False)}
        x = use.input
        same_input = (x is None and not (
            isinstance(arg, torch.Tensor) and arg.is_floating_point())) \
            or (x is not None and isinstance(arg, torch.Tensor)
                and x.data_ptr() == arg.data_ptr()
                and x.shape == arg.shape and x.stride() == arg.stride())
        if (out is not use.output or not same_input or module in seen
                or any(id(params[r]) not in own for r in use.rows)):
            return False
        seen.add(module)
    return [(module, use.rows)
            for (module, _, _), use in zip(probe, uses)]

"""What gradlab calls a layer, and the order in which the forward pass uses it.

One definition serves :func:`~gradlab.layer_grad_norms`,
:func:`~gradlab.diagnose` and :class:`~gradlab.GradientMonitor`:

    A *layer* is a weight matrix: a parameter with at least two dimensions
    that requires a gradient. Its name is the parameter's qualified name
    (``layers.0.linear.weight``, ``enc.layers.0.self_attn.in_proj_weight``,
    ``lstm.weight_hh_l1_reverse``). Layers are listed in the order the
    forward pass first *uses* them.

"Uses" is taken literally. :class:`ForwardTrace` is a
:class:`torch.overrides.TorchFunctionMode`: it sees every call of a torch
function during the forward pass, so it finds a weight wherever it enters
the computation, also when its module is never called:
``nn.MultiheadAttention`` passes ``in_proj_weight`` and ``out_proj.weight``
to one functional call, a tied language-model head multiplies by the
embedding's weight, a model written in the functional style calls
``F.linear(x, w)``. Forward hooks on modules see none of these. A multi-layer
``nn.LSTM`` has two matrices per layer and direction (``weight_ih_lK``,
``weight_hh_lK``), so each of its layers gets its own rows.

The trace also labels activations without needing activation *modules*: the
output of ``torch.relu``, ``F.gelu``, ``x.tanh()`` or ``nn.Sigmoid`` carries
the activation's name, kept through reshapes, dropout and max-pooling, so the
input of the next layer is known to be, say, a ReLU output. Statistics of a
layer's *input* are therefore statistics of the previous activation, however
it was computed.

Tied weights: a matrix shared by several modules (an embedding and the
output head, Press & Wolf 2017) gets one row per module that uses it, named
by that module (``emb.weight`` and ``head.weight``). Its gradient is split by
use: the trace passes each use a view of the parameter and reads the
gradient that reaches the view, so the rows add up to ``p.grad``.

What the trace cannot see: weights used inside a ``torch.jit`` script or a
C++ extension that takes them from somewhere other than its arguments, and
activations computed by an op it does not know (the label is then empty and
dead/saturated fractions are not reported; mean and std still are).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["weight_matrices", "ForwardTrace", "Use", "forward_order",
           "ACTIVATION_FUNCTIONS"]

# torch function name -> activation name (the same names as
# gradlab.activations.activation_name gives modules).
ACTIVATION_FUNCTIONS = {
    "relu": "relu", "relu_": "relu", "relu6": "relu6", "tanh": "tanh",
    "tanh_": "tanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
    "gelu": "gelu", "leaky_relu": "leaky_relu", "leaky_relu_": "leaky_relu",
    "elu": "elu", "elu_": "elu", "silu": "silu", "softplus": "softplus",
    "hardtanh": "hardtanh", "hardtanh_": "hardtanh",
}
# Ops after which an activation's output is still "that activation": they
# move, select, drop (zeros stay zeros) or max-pool the same values.
_KEEPS_LABEL = frozenset({
    "view", "reshape", "flatten", "permute", "transpose", "contiguous",
    "squeeze", "unsqueeze", "__getitem__", "dropout", "dropout1d",
    "dropout2d", "max_pool1d", "max_pool2d", "max_pool3d", "clone", "to",
    "chunk", "split", "unbind", "narrow", "select",
})


def weight_matrices(model: nn.Module) -> list[tuple[nn.Parameter, list[str]]]:
    """Every weight matrix of ``model`` with all the names it goes by.

    Returns:
        ``[(parameter, [name, ...]), ...]`` in registration order; a
        parameter shared by several modules (tied weights) appears once,
        with one name per module that holds it.
    """
    found: dict[int, tuple[nn.Parameter, list[str]]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if p.dim() >= 2 and p.requires_grad:
            found.setdefault(id(p), (p, []))[1].append(name)
    return list(found.values())


@dataclass
class Use:
    """One call of a torch function that used a layer's weight.

    Attributes:
        rows: the layers it used, in argument order (an LSTM call uses all
            of its matrices at once).
        input: the floating-point tensor the weights multiplied (``None``
            for an embedding lookup), detached.
        activation: the activation that produced ``input`` (``""`` if none
            is known).
        output: the call's output (first tensor of a tuple), not detached.
    """

    rows: list
    input: torch.Tensor | None
    activation: str
    output: torch.Tensor | None


@dataclass
class _Row:
    param: nn.Parameter
    name: str
    view: torch.Tensor | None = None   # what the forward used, for tied rows


class ForwardTrace(TorchFunctionMode):
    """Watch forward passes and list the layers in the order they are used.

    Use it around a forward pass (``with ForwardTrace(model) as trace:``),
    or let :class:`~gradlab.GradientMonitor` switch it on for each forward
    pass it records. ``trace.layers`` keeps growing over passes: a layer
    first used in a later pass is appended.

    Args:
        model: any ``nn.Module``.
        on_use: optional ``callback(use: Use)`` called for every call that
            uses a weight, after the call.
        on_view: optional ``callback(row: int, view: Tensor)`` called when a
            pass first uses a tied row, with the view that pass gives it
            (hook it to read that use's gradient).

    Attributes:
        layers: row names, in order of first use.
        params: the parameter behind each row (tied rows share one).
    """

    def __init__(self, model: nn.Module, on_use=None, on_view=None):
        super().__init__()
        self.model, self.on_use, self.on_view = model, on_use, on_view
        self.matrices = weight_matrices(model)
        self._param_of = {id(p): i for i, (p, _) in enumerate(self.matrices)}
        self._rows: list[_Row] = []
        self._row_of: dict[tuple[int, str], int] = {}
        self._single = {i: None for i, (_, names) in enumerate(self.matrices)
                        if len(names) == 1}
        self._labels: dict[int, tuple[torch.Tensor, str]] = {}
        self._derived: dict[int, tuple[torch.Tensor, int]] = {}
        self._owners: list[str] = []      # modules running that hold a tied name
        self._handles: list = []
        tied_prefixes = {n.rpartition(".")[0] for _, names in self.matrices
                         if len(names) > 1 for n in names}
        for prefix, module in model.named_modules():
            if prefix in tied_prefixes:
                self._handles.append(module.register_forward_pre_hook(
                    self._enter_owner(prefix)))
                self._handles.append(module.register_forward_hook(
                    self._leave_owner, always_call=True))

    # -- what was found ----------------------------------------------------
    @property
    def layers(self) -> list[str]:
        return [r.name for r in self._rows]

    @property
    def params(self) -> list[nn.Parameter]:
        return [r.param for r in self._rows]

    def unused(self) -> list[tuple[nn.Parameter, str]]:
        """Weight matrices no traced pass used, with their first name."""
        used = {id(r.param) for r in self._rows}
        return [(p, names[0]) for p, names in self.matrices
                if id(p) not in used]

    def grad_tensors(self) -> list[torch.Tensor]:
        """Per row, the tensor whose gradient is that row's gradient in the
        last traced pass: the parameter, or for a tied row the view the
        pass used (``None`` if that row was not used in the last pass)."""
        return [r.view if r.view is not None or self._is_tied(r)
                else r.param for r in self._rows]

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def new_pass(self) -> None:
        """Forget per-pass state (labels, views) before the next forward."""
        self._labels.clear()
        self._derived.clear()
        for r in self._rows:
            r.view = None

    # -- the mode ------------------------------------------------------------
    def __enter__(self):
        self.new_pass()
        return super().__enter__()

    def __exit__(self, *exc):
        self._labels.clear()
        self._derived.clear()
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        hits = self._hits(args, kwargs)
        if not hits:
            out = func(*args, **kwargs)
            self._label(func, args, out)
            return out
        # candidates for the input: tensors that are not weights or their
        # views (a bias is a Parameter too)
        tensors = [a for a in args if isinstance(a, torch.Tensor)
                   and not isinstance(a, nn.Parameter)
                   and id(a) not in self._derived]
        if any(self._is_tied(self._rows[row]) for _, row in hits):
            args, kwargs = self._swap_tied(args, kwargs)
        out = func(*args, **kwargs)
        rows = [row for _, row in hits]
        if not tensors and isinstance(out, torch.Tensor) and len(rows) == 1:
            # w.t(), w.T, w.view(...): not a use yet; the result stands for
            # the weight in the call that uses it
            self._derived[id(out)] = (out, rows[0])
            return out
        x = next((t for t in tensors if t.is_floating_point()), None)
        label = ""
        if x is not None:
            entry = self._labels.get(id(x))
            label = entry[1] if entry is not None and entry[0] is x else ""
        if self.on_use is not None:
            first = out[0] if isinstance(out, (tuple, list)) else out
            self.on_use(Use(rows, None if x is None else x.detach(), label,
                            first if isinstance(first, torch.Tensor)
                            else None))
        return out

    # -- helpers ---------------------------------------------------------------
    def _enter_owner(self, prefix: str):
        def hook(module, args):
            self._owners.append(prefix)
        return hook

    def _leave_owner(self, module, args, output):
        self._owners.pop()

    def _is_tied(self, row: _Row) -> bool:
        return id(row.param) in self._param_of and \
            self._param_of[id(row.param)] not in self._single

    def _hits(self, args, kwargs) -> list:
        """``[(tensor, row)]`` for every weight (or weight view) in the call,
        looking one level into lists and tuples (``_VF.lstm`` takes its
        weights as a list)."""
        hits = []
        for a in (*args, *kwargs.values()):
            if isinstance(a, (list, tuple)):
                for b in a:
                    if isinstance(b, torch.Tensor):
                        self._hit(b, hits)
            elif isinstance(a, torch.Tensor):
                self._hit(a, hits)
        return hits

    def _hit(self, t: torch.Tensor, hits: list) -> None:
        i = self._param_of.get(id(t))
        if i is not None:
            hits.append((t, self._row(i)))
            return
        entry = self._derived.get(id(t))
        if entry is not None and entry[0] is t:
            hits.append((t, entry[1]))

    def _row(self, i: int) -> int:
        """The row of matrix ``i`` for this use; a new row on first use."""
        p, names = self.matrices[i]
        if len(names) == 1:
            name = names[0]
        else:  # tied: the name held by the innermost running module
            owner = self._owners[-1] if self._owners else None
            name = next((n for n in names if owner is not None
                         and n.rpartition(".")[0] == owner), names[0])
        key = (i, name)
        if key not in self._row_of:
            self._row_of[key] = len(self._rows)
            self._rows.append(_Row(p, name))
        return self._row_of[key]

    def _swap_tied(self, args, kwargs):
        """Give each use of a tied matrix its row's view of the parameter,
        so the gradient of each use can be read on its own."""
        def swap(a):
            if isinstance(a, (list, tuple)):
                return type(a)(swap(b) for b in a)
            if isinstance(a, nn.Parameter) and id(a) in self._param_of:
                i = self._param_of[id(a)]
                if i in self._single:
                    return a
                index = self._row(i)
                row = self._rows[index]
                if row.view is None:
                    # the mode is off inside its own handler: not traced
                    row.view = a.view_as(a)
                    if self.on_view is not None:
                        self.on_view(index, row.view)
                return row.view
            return a
        return swap(args), {k: swap(v) for k, v in kwargs.items()}

    def _label(self, func, args, out) -> None:
        if not isinstance(out, torch.Tensor) or not args:
            return
        name = getattr(func, "__name__", "")
        act = ACTIVATION_FUNCTIONS.get(name)
        if act is None and name in _KEEPS_LABEL and \
                isinstance(args[0], torch.Tensor):
            entry = self._labels.get(id(args[0]))
            if entry is not None and entry[0] is args[0]:
                act = entry[1]
        if act is not None:
            self._labels[id(out)] = (out, act)


@contextmanager
def forward_order(model: nn.Module):
    """Trace the forward passes run inside the ``with``.

    Yields:
        a list that fills with the layer names (:mod:`gradlab.layers`) in
        the order the passes first use them. The trace and its hooks are
        removed on exit, also when the body raises.

    Example:
        >>> with forward_order(model) as order:
        ...     model(x)
        >>> order   # ['emb.weight', 'lstm.weight_ih_l0', ..., 'head.weight']
    """
    order: list[str] = []
    trace = ForwardTrace(model)
    try:
        with trace:
            yield order
    finally:
        trace.remove_hooks()
        order[:] = trace.layers

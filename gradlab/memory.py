"""How much memory autograd keeps for the backward pass.

During the forward pass autograd saves the tensors each operation needs for
its backward (a linear layer's input, a ReLU's output, ...). They live until
``backward()`` frees them, and they grow with the batch: this is the memory
that gradient accumulation saves, since a micro-batch of ``b`` samples saves
``b / B`` of what the full batch saves. :class:`SavedTensors` counts those
bytes exactly, on any device, with ``torch.autograd.graph.saved_tensors_hooks``.
"""

from __future__ import annotations

import torch
from torch import nn

from .train import loss_function

__all__ = ["SavedTensors", "saved_tensor_bytes"]


class SavedTensors:
    """Context manager that counts the tensors autograd saves for backward.

    Every tensor an operation saves inside the ``with`` block passes
    through a pack hook (``torch.autograd.graph.saved_tensors_hooks``),
    which records its size, ``numel * element_size``. A tensor saved twice
    (a ReLU's output that the next linear layer also saves as its input:
    same data pointer, shape and dtype) is counted once, since it is held
    once. Tensors sharing a storage with one in ``exclude`` (typically the
    parameters, which live in memory anyway, and their transposed views)
    are not counted. Measure one forward pass per block: memory freed by a
    backward pass can be reused later.

    .. math::
        \\text{bytes} = \\sum_{t \\in \\text{distinct saved tensors}}
        \\text{numel}(t) \\cdot \\text{element size}(t)

    Args:
        exclude: tensors whose storage is not to be counted, e.g.
            ``model.parameters()``.

    Attributes:
        bytes: total bytes of the distinct tensors saved.
        count: number of save events (every saved tensor, repeats included).

    Example:
        >>> model = nn.Sequential(nn.Linear(10, 20), nn.ReLU())
        >>> with SavedTensors(exclude=model.parameters()) as saved:
        ...     model(torch.randn(8, 10)).sum().backward()
        >>> saved.bytes   # the input (8 x 10) and the ReLU output (8 x 20)
        960
    """

    def __init__(self, exclude=()):
        self._skip = {t.untyped_storage().data_ptr() for t in exclude}
        self._saved: dict[tuple, int] = {}   # (ptr, shape, dtype) -> bytes
        self.count = 0
        self._hooks = None

    @property
    def bytes(self) -> int:
        return sum(self._saved.values())

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.count += 1
        if t.untyped_storage().data_ptr() not in self._skip:
            # a view's own bytes, not its whole storage: a micro-batch
            # x[:b] holds b rows, though it points into all of x
            key = (t.data_ptr(), tuple(t.shape), t.dtype)
            self._saved[key] = t.numel() * t.element_size()
        return t        # keep the tensor itself: nothing changes in autograd

    def __enter__(self) -> "SavedTensors":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        # always leave the hooks, also when the block raised
        self._hooks.__exit__(*exc)


def saved_tensor_bytes(model: nn.Module, inputs: torch.Tensor,
                       targets: torch.Tensor, loss="cross_entropy") -> int:
    """Bytes autograd saves for one forward pass and loss, parameters
    left out.

    Args:
        model: any module.
        inputs: ``[B, ...]`` on the model's device.
        targets: ``[B, ...]``.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable averaging over
            the batch.

    Returns:
        The bytes of the distinct tensors saved for backward (see
        :class:`SavedTensors`); they grow linearly with ``B``. The graph is
        freed afterwards by a backward pass, and the gradients it leaves
        in ``.grad`` are cleared.
    """
    with SavedTensors(exclude=list(model.parameters())) as saved:
        out = loss_function(loss)(model(inputs), targets)
    out.backward()
    model.zero_grad(set_to_none=True)
    return saved.bytes

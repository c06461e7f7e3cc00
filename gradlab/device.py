"""Where tensors live and how the CPU is set up.

Two CPU settings shape the book's run times and results:

* Threads. The thread count changes the order of float sums and so the last
  bits of every result; fixing it at one keeps runs repeatable. Speed
  depends on model size: ``benchmarks/cpu_settings.py`` measured a training
  step of the book's smallest models (width 32, batch 32) 1.1-1.6x faster on one
  thread than on two on a 2-core AMD EPYC, and a width-256 MLP 1.6x slower
  (DESIGN.md reports 2-8x gains for the tiny models on another 2-core CPU).
  The book's models are small, so one thread is the default here.
* Denormals. A vanishing gradient is tiny. Below ~1.2e-38 float32 numbers
  become *denormal*, and many x86 cores (notably Intel's) process them in
  slow microcode, so a deep sigmoid network can train many times slower for
  no visible reason. Flushing them to zero removes that risk; a gradient of
  1e-39 is zero for every purpose here. On the AMD EPYC the benchmark ran
  on, it made no measurable difference (1.0x).

Neither setting is applied on import: :func:`configure_cpu` does both,
explicitly, and every notebook calls it in its first cell.
"""

from __future__ import annotations

import os

import torch

__all__ = ["get_device", "configure_cpu", "device_of"]

_KNOWN_TYPES = ("cpu", "cuda")


def get_device(name: str | None = None) -> torch.device:
    """Return the device to compute on.

    The choice, in order: ``name`` if given, else ``$GRADLAB_DEVICE`` if set,
    else ``cuda`` when a GPU is available, else ``cpu``.

    Args:
        name: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, or ``None``.

    Returns:
        A :class:`torch.device`.

    Raises:
        ValueError: the name is not a known device, or names a GPU that this
            machine does not have.

    Example:
        >>> gl.get_device("cpu")
        device(type='cpu')
    """
    source = "argument"
    if name is None:
        name = os.environ.get("GRADLAB_DEVICE") or None
        source = "$GRADLAB_DEVICE"
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, (str, torch.device)):
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda', "
                         f"got {name!r}")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in _KNOWN_TYPES:
        raise ValueError(f"unknown device {name!r} (from the {source}); "
                         f"valid devices: 'cpu', 'cuda', 'cuda:N'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} (from the {source}) was asked "
                             f"for, but torch.cuda.is_available() is False: "
                             f"this torch build or machine has no CUDA GPU; "
                             f"use 'cpu'")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} (from the {source}) does not "
                             f"exist: this machine has {count} CUDA GPU(s), "
                             f"valid indices 0..{count - 1}")
    return device


def configure_cpu(num_threads: int = 1, flush_denormal: bool = True) -> None:
    """Set the process-wide CPU options the book runs under.

    Args:
        num_threads: intra-op threads for :func:`torch.set_num_threads`.
            One is fastest for the book's small models and makes float sums
            repeatable across machines with different core counts.
        flush_denormal: treat denormal floats (``|x| < 1.2e-38``) as zero, via
            :func:`torch.set_flush_denormal`. Avoids a large slow-down when
            gradients vanish. Silently unsupported on CPUs without SSE3.

    Raises:
        ValueError: ``num_threads`` is not a positive integer.
    """
    if not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int, got "
                         f"{num_threads!r}")
    torch.set_num_threads(num_threads)
    torch.set_flush_denormal(flush_denormal)


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU if it has none)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")

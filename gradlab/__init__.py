"""gradlab: vanishing and exploding gradients, measured.

The package behind the gradlab book. Everything a chapter computes lives
here, so the book's notebooks stay short and the tools work on any
``nn.Module``::

    import gradlab as gl
    DEVICE = gl.get_device()
    X, y, X_test, y_test = gl.data.digits()
    model = gl.models.MLP(64, 10, depth=20, width=64, activation="sigmoid")
    gl.layer_grad_norms(model, X, y, "cross_entropy")
"""

from . import activations, checks, data, init, models, plots, widgets
from . import accumulation, memory, parallel
from . import clipping, lr_range
from .device import configure_cpu, get_device
from .diagnose import Report, diagnose
from .grads import layer_grad_norms, profile_at_init, time_grad_norms
from .monitor import GradientMonitor, MonitorRecord
from .seed import seed_everything
from .train import History, NonFiniteLossError, accuracy, fit

__all__ = ["activations", "checks", "data", "widgets", "init", "models", "configure_cpu", "get_device",
           "layer_grad_norms", "time_grad_norms", "diagnose", "Report", "GradientMonitor",
           "MonitorRecord", "plots", "profile_at_init", "seed_everything", "History",
           "NonFiniteLossError", "accuracy", "fit", "accumulation", "memory",
           "parallel", "clipping", "lr_range"]

__version__ = "0.1.0"

"""Record what happens to every layer's gradients and activations in training.

``GradientMonitor`` is a context manager in the spirit of fastai's hooks: it
registers its hooks when the ``with`` starts and removes them when it ends,
also when the body raises. A layer is a weight matrix, in the order the
forward pass uses it (:mod:`gradlab.layers`): recorded forward passes run
under a :class:`~gradlab.layers.ForwardTrace` (see below for when module
hooks take over), so attention projections, tied weights and ``F.linear``
calls are layers like any ``nn.Linear``. Per recorded step and per layer it
keeps

* ``grad_norm``: ``||dL/dW||`` (``W.grad`` after backward; for a tied
  matrix, the gradient of this module's use of it);
* ``out_grad_norm``: ``||dL/dh||`` of the output ``h`` of the call that
  used ``W``, the backward signal the chain rule multiplies by each
  Jacobian (a call that uses several matrices, like ``nn.LSTM`` or
  ``nn.MultiheadAttention``, gives it to its last one; NaN for the others);
* ``act_mean``, ``act_std``: of the layer's *input*, i.e. the previous
  activation, whatever computed it (module, ``torch.relu``, ``x.tanh()``);
  a call that uses several matrices shows its input to its first one only
  (the trace does not see inside it): NaN for ``out_proj`` in attention and
  for every LSTM matrix after ``weight_ih_l0``;
* ``saturated``: fraction of the input in a flat tail (|tanh| > 0.97,
  sigmoid outside [0.03, 0.97]); NaN unless the input is a tanh/sigmoid
  output;
* ``dead``: fraction of input units that are zero on the whole batch, when
  the input is a ReLU output; NaN otherwise;
* ``update_ratio``: ``||W_after - W_before|| / ||W_before||`` across the
  optimizer step. Karpathy's rule of thumb: around 1e-3 is healthy, far
  below learns slowly, far above is unstable.

Tracing every torch call costs time, so once the map of the model is known
the monitor follows it with module hooks where it can
(:mod:`gradlab.monitor.follow`).

The first layer's input is the data, so its activation columns describe the
data. A matrix used several times in one pass (a recurrent cell run in a
Python loop) gets the input statistics of its first use. With gradient
accumulation, activation statistics come from the first micro-batch.

Cost (``benchmarks/monitor_overhead.py`` measures it against a plain loop;
the budget is 15% of a CPU training step). Two estimates: mean, std and
saturation use the first 64 samples of the batch, and the update ratio uses
a fixed sample of 4,096 entries of each larger weight, 256 runs of 16
(:mod:`gradlab.monitor.sample`; median relative error 1-2%). Gradient norms
and dead fractions are exact. Each torch call costs microseconds on a CPU
whatever its size, so the inputs' statistics are computed in few calls at
the end of each forward pass, and a step stores sums and counts in few
calls; means, standard deviations and fractions are computed once, in
:meth:`~GradientMonitor.record`. Everything stays on the model's device; a
step costs no host sync, reading the record costs one.
On the benchmark's 20-layer MLP (width 256, batch 256, 2-core CPU) the
monitor adds about 4 ms to a step of 25-37 ms: 11-12% with one torch thread
(``gl.configure_cpu()``), 16-18% with two, where the step itself is faster
and the monitor's reductions are not: they read every weight gradient,
every output gradient and every ReLU input in full.
The monitor's work per layer is a fixed amount of Python, so on a small
model whose step takes a millisecond or two it can double the step's time:
record ``every=10`` steps or more there.
"""

from .gradient_monitor import GradientMonitor
from .record import METRICS, MonitorRecord

__all__ = ["GradientMonitor", "MonitorRecord", "METRICS"]

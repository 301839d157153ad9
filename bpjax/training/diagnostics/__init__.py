"""Training diagnostics recorded inside the jitted loop, and the hand-written backward checked while
the model trains.

makemore part 3 ("activations, gradients, BatchNorm") teaches what to look at while a deep network
trains; ``--diagnose-every K`` records it every K steps, on device, inside the ``lax.scan`` of the
training chunk (no host round trip per record):

* for every nonlinearity's output ``t`` (tanh; GELU or a recurrence's hidden states in the other
  models; ``Model.probes`` names them): mean, std, the saturated share ``mean(|t| > 0.97)`` and a
  histogram; and the same (without saturation) for the gradient flowing back into ``t``;
* for every 2-D weight ``W`` (the lecture's ``p.ndim == 2``; ``[1, H]`` gains are not weights):
  the gradient's mean, std and histogram, and the **grad:data** ratio ``std(dW) / std(W)``;
* for every parameter: the **update:data** ratio ``log10(std(update) / std(W))`` of the update
  the optimizer applies at that step (the lecture's ``ud``; NaN where ``std(W) == 0``, as batch
  norm's gain and bias start; about -3 is healthy).

``--verify-every K`` computes, on the current parameters and batch, the hand-written gradients
(``jax.grad`` of ``loss_manual``, the very ones the step applies under ``--grad manual``) and the
oracle (``jax.grad`` of the plain ``loss``), and records each parameter's worst difference and
``max|oracle|``. A row that breaks :mod:`bpjax.check`'s pass rule (float32: ``maxdiff <= 1e-4 ·
max|oracle| + 1e-7``) stops the run with :class:`~bpjax.errors.VerificationFailed`, naming the step
and the parameter; the last good checkpoint is kept. The notebook's last training loop reused
batch-norm tensors of an earlier step in its backward; this check stops such a run at its first step.

One module per concern: :mod:`.stats` (the statistics, on device), :mod:`.hooks` (the recorded step
and the check, plugged into the one training chunk), :mod:`.recorder` (the records on the host and
``diagnostics.npz``), :mod:`.summary` (the printed statistics), :mod:`.figures` (the lecture's plots).
"""

from ...errors import VerificationFailed
from .figures import FIGURE, PANELS, compare_figure, draw, figure, save_figure
from .hooks import make_hooks
from .recorder import FILE, KEYS, Recorder, failures, load, save
from .stats import BINS, SATURATED, histogram, histograms, names_of, probe_shapes, record, summarize, verification
from .summary import summary

__all__ = [
    "BINS",
    "SATURATED",
    "KEYS",
    "PANELS",
    "FILE",
    "FIGURE",
    "histogram",
    "histograms",
    "summarize",
    "record",
    "verification",
    "names_of",
    "probe_shapes",
    "make_hooks",
    "Recorder",
    "failures",
    "save",
    "load",
    "summary",
    "figure",
    "compare_figure",
    "draw",
    "save_figure",
    "VerificationFailed",
]

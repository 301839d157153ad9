"""Training: the configuration, the one training chunk, ``fit``, the run directory and what reads it.

===================  ==========================================================================
``config``           :class:`Config`: every setting declared once (type, default, help, range)
``optim``            the notebook's step-decay SGD and AdamW (:data:`OPTIMIZERS`)
``step``             one step: the gradient function ``--grad`` swaps, the minibatch of each step
``chunk``            the ``lax.scan`` chunk that ``fit``, ``bench`` and ``sweep`` run, its hooks, its plan
``loop``             :func:`fit`: start or resume, the loop over chunks, the final evaluation
``session``          what ``fit`` carries (:class:`~bpjax.training.session.Training`), a run's start
``evaluate``         eval-mode split losses
``memory``           refusing work that would not fit, before it is allocated
``run``, ``rundir``  :class:`Run` in memory; the run directory's files, :func:`load_run`
``report``           progress lines and bar, loss plots
``sample``           names from a trained model
``sweep``            many seeds and learning rates at once under ``vmap``
``distributed``      data parallelism on a device mesh, several processes, CPU cores
``diagnostics``      statistics recorded inside the jitted loop; the live check
``signals``          stopping on Ctrl-C, SIGTERM, SIGHUP without losing the run
===================  ==========================================================================
"""

from .config import Config, Setting, settings
from .evaluate import split_losses
from .loop import fit
from .optim import OPTIMIZERS, make_optimizer
from .run import History, Run
from .rundir import load_run
from .step import GRADS, gradient_fn

__all__ = [
    "Config",
    "Setting",
    "settings",
    "fit",
    "Run",
    "History",
    "load_run",
    "make_optimizer",
    "OPTIMIZERS",
    "GRADS",
    "gradient_fn",
    "split_losses",
]

"""The exceptions of bpjax. Each is a :class:`BpjaxError`: something the user can fix, which the
CLI prints as one line (``bpjax <cmd>: error: ...``) with exit status 2.

* :class:`DataError` — a names file or vocabulary that cannot be used;
* :class:`ConfigError` — an invalid configuration or option;
* :class:`CheckpointError` — a run directory or checkpoint that is missing, corrupt or does not match;
* :class:`TrainingDiverged` — the loss or a parameter became non-finite (the last good checkpoint is kept);
* :class:`VerificationFailed` — ``--verify-every`` found a hand-written gradient that disagrees with
  ``jax.grad`` (the last good checkpoint is kept).
"""


class BpjaxError(Exception):
    """Anything the user can fix: bad data, a nonsensical option, a corrupt checkpoint."""


class DataError(BpjaxError):
    """A names file or vocabulary that cannot be used."""


class ConfigError(BpjaxError):
    """An invalid configuration or option."""


class CheckpointError(BpjaxError):
    """A run directory or checkpoint that is missing, corrupt or does not match."""


class TrainingDiverged(BpjaxError):
    """A non-finite loss or parameter; the message names the step and the last good checkpoint."""


class VerificationFailed(BpjaxError):
    """A hand-written gradient broke the pass rule against ``jax.grad`` during training; the message
    names the step, the parameter and the last good checkpoint."""

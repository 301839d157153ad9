"""``bpjax bench``: training speed side by side, measured in one run.

Every bpjax row times the code ``bpjax train`` runs: the chunk of :mod:`bpjax.training.chunk` with
the gradient function of ``--grad`` and the optimizer of the config (``chunk_for``), compiled ahead
of time, one ``lax.scan`` chunk per call with its host round trip. A row's figure is the median over
repeats.

Rows (each a dict keyed by data: ``impl``, ``model``, ``grad``, ``variant``, sizes, ``K``; ``name``
is only for display): manual vs autodiff at the notebook config and at n_hidden 200; every other
registered model at its defaults; the PyTorch baselines of ``experiments/torch_baselines.py`` (in
a source checkout, when torch is importable); with ``--makemore PATH``, makemore.py's own training
loop (run as its command line: its data loader, model and AdamW, the step times it prints) and its
model and AdamW alone, beside each of its six models; scaling in batch and n_hidden; K models at once
under ``vmap``; the cost of ``--diagnose-every 100 --verify-every 1000`` beside the plain step (the
two timed alternately). Each row carries the step's FLOPs (the model's ``flops``) and the GFLOP/s
achieved, beside the machine's peak.

:mod:`.timing` times a step, :mod:`.rows` the groups of rows, :mod:`.peers` finds the PyTorch and
makemore.py peers, :mod:`.report` summarises.
"""

from .report import find, markdown, summary
from .rows import PEAK_GFLOPS_CPU_CORE, REFERENCE, SECTIONS, Bench, run_bench
from .timing import DIAGNOSED, bench_bpjax, bench_diagnostics, step_flops

__all__ = [
    "run_bench",
    "Bench",
    "SECTIONS",
    "REFERENCE",
    "PEAK_GFLOPS_CPU_CORE",
    "bench_bpjax",
    "bench_diagnostics",
    "step_flops",
    "DIAGNOSED",
    "find",
    "markdown",
    "summary",
]

"""The lecture's printed statistics, as text: ``bpjax diagnose``'s summary of a run's records."""

from __future__ import annotations

import numpy as np

from ...errors import CheckpointError
from .recorder import failures


def summary(a: dict, at: int | None = None) -> str:
    """The lecture's printed statistics at one record (default the last): per nonlinearity its mean,
    std and saturated share, and its gradient's mean and std; per weight grad:data and update:data;
    and the verifications' worst row."""
    lines = []
    if len(a["diag_step"]):
        i = record_index(a, at)
        lines.append(f"diagnostics at step {int(a['diag_step'][i]):,} ({len(a['diag_step']):,} records)")
        for j, n in enumerate(a["probe_names"]):
            lines.append(
                f"  {n:>12s}: mean {a['act_mean'][i, j]:+.2f}, std {a['act_std'][i, j]:.2f}, "
                f"saturated {100 * a['act_saturated'][i, j]:5.2f}% | grad mean "
                f"{a['act_grad_mean'][i, j]:+.2e}, std {a['act_grad_std'][i, j]:.2e}"
            )
        pidx = {n: k for k, n in enumerate(a["param_names"])}
        for j, n in enumerate(a["weight_names"]):
            ud = a["update_data"][i, pidx[n]]
            lines.append(f"  {n:>12s}: grad:data {a['grad_data'][i, j]:.3e} | update:data log10 {ud:+.2f}")
    if len(a["verify_step"]):
        ratio = a["verify_maxdiff"] / a["verify_bound"]
        q, p = np.unravel_index(np.nanargmax(np.where(np.isnan(ratio), np.inf, ratio)), ratio.shape)
        passed = int(a["verify_ok"].all(1).sum())
        lines.append(
            f"verification: {passed:,}/{len(a['verify_step']):,} checks passed (steps "
            f"{int(a['verify_step'][0]):,}..{int(a['verify_step'][-1]):,}); worst row "
            f"{a['param_names'][p]} at step {int(a['verify_step'][q]):,}: maxdiff "
            f"{a['verify_maxdiff'][q, p]:.2e} = {ratio[q, p]:.2g} x the bound"
        )
        bad = np.flatnonzero(~a["verify_ok"].all(1))
        if len(bad):  # the first failing check, every parameter it failed
            q = int(bad[0])
            rows = [
                (str(a["param_names"][p]), float(a["verify_maxdiff"][q, p]), float(a["verify_bound"][q, p]))
                for p in np.flatnonzero(~a["verify_ok"][q])
            ]
            lines.append(f"  first failing check, step {int(a['verify_step'][q]):,}: {failures(rows)}")
    return "\n".join(lines) or "no records"


def record_index(a: dict, at: int | None) -> int:
    steps = a["diag_step"]
    if at is None:
        return len(steps) - 1
    i = int(np.searchsorted(steps, at, side="right")) - 1
    if i < 0 or at > int(steps[-1]):
        raise CheckpointError(
            f"--step {at:,} is outside the diagnostics records, steps {int(steps[0]):,}..{int(steps[-1]):,}; "
            "pass a step in that range"
        )
    return i

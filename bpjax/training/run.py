"""A run in memory: :class:`Run` (what a training leaves, to evaluate or sample without the data)
and :class:`History`, the per-step losses in their one form."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..data import Vocab
from ..models import Model
from .config import Config


# --------------------------------------------------------------------------------------------
# History: one place, one dtype per array
# --------------------------------------------------------------------------------------------
@dataclass
class History:
    """The per-step log10 losses (the notebook's ``lossi``) and the eval points ``(step, val)``."""

    lossi: list = field(default_factory=list)
    evals: list = field(default_factory=list)

    def arrays(self) -> dict:
        """``{"lossi": float32 [steps], "eval_steps": int64 [k], "eval_val": float64 [k]}``:
        the one form of a history, in memory, in the checkpoint and in ``history.npz``."""
        return {
            "lossi": np.asarray(self.lossi, np.float32),
            "eval_steps": np.asarray([s for s, _ in self.evals], np.int64),
            "eval_val": np.asarray([v for _, v in self.evals], np.float64),
        }

    @classmethod
    def from_arrays(cls, h: dict) -> History:
        return cls(
            list(np.asarray(h["lossi"], np.float32)),
            list(zip(np.asarray(h["eval_steps"]).tolist(), np.asarray(h["eval_val"]).tolist(), strict=True)),
        )


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------
@dataclass
class Run:
    """A trained (or stopped) run: everything needed to evaluate or sample without the data."""

    params: dict
    bn_stats: dict  # the statistics eval mode uses (see Model.eval_stats)
    vocab: Vocab
    config: Config
    metrics: dict
    history: dict  # History.arrays(): {"lossi": [steps] log10 losses, "eval_steps": [k], "eval_val": [k]}
    dir: Path | None = None
    opt_state: object = field(default=None, repr=False)
    key_data: np.ndarray | None = field(default=None, repr=False)
    step: int = 0
    state: dict = field(default_factory=dict, repr=False)  # training-mode state (running statistics)
    diagnostics: dict | None = field(default=None, repr=False)  # diagnostics.npz's arrays (bpjax.diagnostics)

    @property
    def model(self) -> Model:
        return self.config.spec

    def logits(self, X):
        """Eval-mode logits ``[N, V]`` for contexts ``X`` [N, block_size]."""
        return self.model.logits_eval(self.params, self.bn_stats, jnp.asarray(X))

    def split_loss(self, splits: dict, split: str = "val") -> float:
        """Eval-mode loss on one split of ``make_splits(...)`` (the notebook's ``split_loss``)."""
        from .evaluate import split_losses

        return split_losses(self.model, self.params, self.bn_stats, splits, (split,))[f"{split}_loss"]

    def sample(self, n: int = 20, seed: int = 0, max_len: int = 50, draw: str = "inverse-cdf") -> list[str]:
        """``n`` names (see :func:`bpjax.sample.sample_names`); drawn in batches of
        :data:`bpjax.sample.SAMPLE_CHUNK`, so memory does not grow with ``n``. ``draw="gumbel"``:
        bpjax 0.1.0's draws (its names for a seed)."""
        return list(self.iter_sample(n, seed, max_len, draw))

    def iter_sample(self, n: int = 20, seed: int = 0, max_len: int = 50, draw: str = "inverse-cdf"):
        """:meth:`sample`, yielding each batch's names as soon as it is drawn (``bpjax sample``)."""
        from .sample import iter_sample_names

        yield from iter_sample_names(
            self.model.logits_eval,
            self.params,
            self.bn_stats,
            self.vocab,
            self.config.block_size,
            n=n,
            key=jax.random.key(seed),
            max_len=max_len,
            layout=self.model.data,
            draw=draw,
        )

    def generate(
        self, prompt: str = "\n", chars: int = 500, seed: int = 0, temperature: float = 1.0, top_k: int | None = None
    ):
        """A text model's characters after ``prompt``, yielded as drawn (see
        :func:`bpjax.training.sample.generate_text`): ``"".join(run.generate("ROMEO:", 200))``."""
        from ..errors import ConfigError
        from .sample import generate_text

        if self.model.data != "text":
            raise ConfigError(f"model {self.model.name!r} samples names (bpjax sample -n), not text after a prompt")
        yield from generate_text(
            self.model.logits_eval,
            self.params,
            self.bn_stats,
            self.vocab,
            self.config.block_size,
            prompt=prompt,
            chars=chars,
            key=jax.random.key(seed),
            temperature=temperature,
            top_k=top_k,
        )

    def __repr__(self):
        m = self.metrics
        losses = ", ".join(f"{k} {m[k + '_loss']:.4f}" for k in ("train", "val", "test") if k + "_loss" in m)
        return f"Run({self.dir or 'in memory'}: step {self.step}/{self.config.steps}, {losses})"

    def _repr_html_(self):
        """Metrics as a table and the loss curve inline: how a Run shows in Jupyter."""
        import base64
        import html
        import io

        from .report import loss_figure

        fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(fmt(v))}</td></tr>"
            for k, v in self.metrics.items()
            if not isinstance(v, (dict, list))
        )
        img = ""
        fig = loss_figure(self.history, title=f"{self.config.grad} gradients, seed {self.config.seed}")
        if fig is not None:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80)
            img = f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'/>"
        return (
            f"<b>{html.escape(repr(self))}</b><div style='display:flex;gap:1em;align-items:flex-start'>"
            f"<table>{rows}</table>{img}</div>"
        )

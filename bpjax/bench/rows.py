"""The rows of ``bpjax bench``, measured in one run: a :class:`Bench` holds the data, the peers and
the rows so far, and each group of rows is one of its methods."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import models
from ..data import Vocab, load_dataset, load_words, make_dataset, resolve_data_path, training_arrays
from ..errors import ConfigError
from ..training import Config
from ..training.config import COMPUTE_DTYPES
from ..training.distributed import default_sweep_devices
from ..training.rundir import environment
from ..training.step import GRADS
from . import peers
from .report import summary
from .timing import DIAGNOSED, bench_bpjax, bench_diagnostics, cpu_name, row, step_flops

SECTIONS = ("models", "gpt", "scaling", "vmap", "diagnostics")
"""The groups of rows ``--only`` chooses from; the reference rows (manual and autodiff gradients of
the notebook's MLP, its PyTorch loops) always run. ``models``: makemore's models and the lecture's;
``gpt``: the GPT on a text (and nanoGPT's ``train.py`` with ``--nanogpt``)."""
TEXT_MODELS = ("gpt",)
ROW_FLOPS = 5e11
"""A model row's steps are capped at this many FLOPs a repeat (the GPT's 126 of ~4 GFLOP each)."""
REFERENCE = "mlp"
"""The notebook's model: the grad, scaling and vmap rows measure it; every other registered model
gets its manual and autodiff rows at its defaults."""
PEAK_GFLOPS_CPU_CORE = 166.4  # AVX-512: 2 FMA units x 16 fp32 lanes x 2 flops x 2.6 GHz


class Bench:
    """One bench run: its settings, the names' rows per data layout, the peers, the rows measured."""

    def __init__(
        self,
        *,
        data=None,
        steps: int,
        repeats: int,
        torch_steps: int,
        peak_gflops=None,
        makemore: str | None = None,
        text=None,
        nanogpt: str | None = None,
        log=print,
    ):
        self.data, self.steps, self.repeats, self.torch_steps, self.log = data, steps, repeats, torch_steps, log
        self.words = load_words(data)
        self.V = Vocab.from_words(self.words).size
        self.text, self.nanogpt, self._text = text, nanogpt, None
        self._rows_by_layout = {}
        on_cpu = jax.devices()[0].platform == "cpu"
        self.peak = peak_gflops if peak_gflops is not None else (PEAK_GFLOPS_CPU_CORE if on_cpu else None)
        self.rows: list[dict] = []
        self.torch, self.torch_note = peers.torch_baselines()
        self.peer, self.makemore_note = peers.makemore_peer(makemore)
        for note in (self.torch_note, self.makemore_note):
            if note:
                log(note)
        self.makemore = makemore
        self.mm = self.peer.load_makemore(Path(makemore)) if self.peer else None

    def text_data(self, model: str):
        """``(vocab, splits, info)`` of the text (``--text``, default tiny Shakespeare), read once."""
        if self._text is None:
            self._text = load_dataset(self.text, block_size=Config(model).block_size, layout="text", source="--text")
        return self._text

    def vocab_size(self, model: str) -> int:
        return self.text_data(model)[0].size if models.get(model).data == "text" else self.V

    def train_rows(self, model: str):
        """The training rows ``(X, Y)`` of ``model``'s data layout, on the device (made once per
        layout); a text's train stream, twice."""
        spec = models.get(model)
        if spec.data == "text":
            return tuple(jnp.asarray(a) for a in training_arrays(self.text_data(model)[1]))
        key = (spec.data, Config(model).block_size)
        if key not in self._rows_by_layout:
            splits = make_dataset(self.words, Vocab.from_words(self.words), layout=spec.data, block_size=key[1])
            self._rows_by_layout[key] = tuple(jnp.asarray(a) for a in splits["train"])
        return self._rows_by_layout[key]

    def config(self, model: str, **settings) -> Config:
        if models.get(model).data == "text":
            return Config(model, **settings)
        return Config(model, **settings).with_data({"block_size": self.train_rows(model)[0].shape[1]})

    def model_steps(self, model: str) -> int:
        """A model row's steps: a tenth of ``--steps`` (at least 100), at most :data:`ROW_FLOPS` a repeat."""
        cfg = self.config(model)
        f = step_flops(cfg, self.vocab_size(model))
        steps = max(self.steps // 10, 100)
        return steps if f is None else max(20, min(steps, int(ROW_FLOPS // f)))

    def add(self, group: str, name: str, res: dict, **keys) -> None:
        r = {"group": group, "name": name, **keys, **res}
        if self.peak and r["gflops"] is not None and r.get("compute_dtype", "float32") == "float32":
            r["fraction_of_peak"] = r["gflops"] / self.peak
        self.rows.append(r)
        gf = f"{r['gflops']:7.2f} GFLOP/s" if r["gflops"] is not None else ""
        self.log(
            f"{group:9s} {name:34s} {r['steps_per_second']:>11,.0f} steps/s  "
            f"{r['model_steps_per_second']:>11,.0f} model-steps/s  {gf}"
        )

    def bpjax(self, group, name, model=REFERENCE, grad="manual", K=0, devices=1, steps=None, **settings) -> None:
        cfg = self.config(model, **settings)
        res = bench_bpjax(
            *self.train_rows(model),
            self.vocab_size(model),
            model=model,
            grad=grad,
            steps=steps or self.steps,
            repeats=self.repeats,
            K=K,
            devices=devices,
            **settings,
        )
        self.add(
            group,
            name,
            res,
            impl="bpjax",
            model=models.get(model).name,  # a name, also for a model of your own (PATH.py:NAME)
            grad=grad,
            variant="train",
            K=max(K, 1),
            devices=devices,
            n_hidden=cfg.sizes.get("n_hidden"),
            batch=cfg.batch_size,
            compute_dtype=cfg.compute_dtype,
        )

    def pytorch(self, group: str, model: str, steps: int) -> None:
        for name, variant, grad, fn in self.torch.BASELINES.get(model, []) if self.torch else []:
            ts = max(steps // 4, 50) if variant == "double_loop" else steps  # the slow Python loop
            rates = fn(*self.train_rows(model), self.V, steps=ts, repeats=max(2, self.repeats // 2))
            cfg = self.config(model)
            self.add(
                group,
                name,
                row(rates, step_flops(cfg, self.V)),
                impl="pytorch",
                model=model,
                grad=grad,
                variant=variant,
                K=1,
                n_hidden=cfg.sizes.get("n_hidden"),
                batch=cfg.batch_size,
            )

    def makemore_rows(self, model: str, steps: int) -> None:
        if self.peer is None or model not in self.peer.ZOO:
            return
        import torch

        Xtr, Ytr = self.train_rows(model)
        batch = self.config(model).batch_size
        loop = self.peer.makemore_loop_rates(
            Path(self.makemore), model, str(resolve_data_path(self.data)), max(steps, 50)
        )
        alone = self.peer.time_torch(
            self.mm,
            torch,
            model,
            np.asarray(Xtr),
            np.asarray(Ytr),
            self.V,
            Xtr.shape[1],
            steps,
            repeats=max(2, self.repeats // 2),
        )
        # no FLOPs: makemore computes some models another way (bengio's embcat @ W1 is 30x the projections)
        for name, variant, rates in (
            (f"makemore.py's own loop, {model}", "makemore_loop", loop),
            (f"makemore.py's model + AdamW, {model}", "makemore_model_step", alone),
        ):
            self.add(
                model,
                name,
                row(rates, None),
                impl="makemore",
                model=model,
                grad="autodiff",
                variant=variant,
                K=1,
                batch=batch,
            )

    # ---- the groups ----------------------------------------------------------------------------
    def reference(self) -> None:
        for n_hidden in (64, 200):
            for grad in GRADS:
                self.bpjax("grad", f"bpjax {grad}, n_hidden {n_hidden}", grad=grad, n_hidden=n_hidden)
        self.pytorch("pytorch", REFERENCE, min(self.torch_steps, self.steps))

    def every_model(self) -> None:
        for model in (m for m in models.names() if m != REFERENCE and m not in TEXT_MODELS):
            steps = self.model_steps(model)
            peer_steps = max(min(self.torch_steps, steps) // 2, 20)
            for grad in GRADS:
                self.bpjax(model, f"bpjax {grad}, {model}", model=model, grad=grad, steps=steps)
            self.pytorch(model, model, peer_steps)
            self.makemore_rows(model, peer_steps)

    def yours(self, model: str) -> None:
        """``--model PATH.py:NAME`` (or a registered name): its hand-written and autodiff rows."""
        spec = models.get(model)
        steps = self.model_steps(model)
        for grad in GRADS:
            self.bpjax("model", f"bpjax {grad}, {spec.name}", model=model, grad=grad, steps=steps)

    def gpt(self, quick: bool = False) -> None:
        """The GPT's manual and autodiff rows on the text in each compute dtype (float32, and bfloat16
        products: ``--compute-dtype bfloat16``, given no fraction of the float32 peak), then with
        ``--nanogpt`` (needs torch) nanoGPT's ``train.py`` on the same configuration for as many
        iterations, and its model's step under torch's CPU autocast (bfloat16, in a process of its
        own): the twin of bpjax's bfloat16 rows. ``quick``: 20 steps, float32 only (the bfloat16
        layers have tests of their own)."""
        steps = 20 if quick else self.model_steps("gpt")
        for dtype in COMPUTE_DTYPES[:1] if quick else COMPUTE_DTYPES:
            for grad in GRADS:
                name = f"bpjax {grad}, gpt" + ("" if dtype == "float32" else f", {dtype}")
                self.bpjax("gpt", name, model="gpt", grad=grad, steps=steps, compute_dtype=dtype)
        peer, note = peers.nanogpt_peer(self.nanogpt)
        if peer is None:
            self.log(note)
            return
        cfg = self.config("gpt")
        text = self.text_data("gpt")[2]["path"]
        res = peer.run_train_py(Path(self.nanogpt), peer.load_text(text), cfg, steps=steps + 2, log=self.log)
        flops = step_flops(cfg, self.vocab_size("gpt"))
        keys = {"impl": "nanogpt", "model": "gpt", "grad": "autodiff", "K": 1, "batch": cfg.batch_size}
        rates = peer.iteration_rates(res["ms"], self.repeats)
        self.add("gpt", "nanoGPT train.py, gpt", row(rates, flops), variant="nanogpt_train_py", **keys)
        res = peer.model_step_in_process(Path(self.nanogpt), text, steps + 2, autocast=True)
        rates = peer.iteration_rates(res["ms"], self.repeats)
        name = "nanoGPT model.py + AdamW, autocast bfloat16"
        self.add("gpt", name, row(rates, flops), variant="nanogpt_autocast_bfloat16", **keys)

    def scaling(self, quick: bool) -> None:
        steps = max(self.steps // 10, 100)
        for b in (32, 256) if quick else (32, 256, 2048):
            self.bpjax("scaling", f"manual, batch {b}", batch_size=b, steps=steps)
        for h in (64, 256) if quick else (64, 256, 1024):
            self.bpjax("scaling", f"manual, n_hidden {h}", n_hidden=h, steps=steps)

    def vmap(self) -> None:
        steps = max(self.steps // 10, 100)
        for K in (4, 16):
            for grad in GRADS:
                self.bpjax("vmap", f"{grad}, {K} models under vmap", grad=grad, K=K, steps=steps)

    def sharded(self) -> None:
        n_dev = default_sweep_devices()  # bpjax sweep's default: one device per core on CPU
        if n_dev <= 1:
            return
        for grad in GRADS:
            self.bpjax(
                "vmap",
                f"{grad}, 16 models under vmap, {n_dev} devices",
                grad=grad,
                K=16 - 16 % n_dev,
                devices=n_dev,
                steps=max(self.steps // 10, 100),
            )

    def diagnostics(self, quick: bool) -> None:
        for model in (REFERENCE,) if quick else (REFERENCE, "deep"):
            n = self.steps if model == REFERENCE else max(self.steps // 10, 100)
            res = bench_diagnostics(*self.train_rows(model), self.V, model=model, steps=n, repeats=self.repeats)
            for variant, r in zip(("train", "diagnosed"), res, strict=True):
                name = f"{model} manual" + (
                    ", diagnose 100 + verify 1000" if variant == "diagnosed" else ", plain step"
                )
                self.add(
                    "diagnostics",
                    name,
                    r,
                    impl="bpjax",
                    model=model,
                    grad="manual",
                    variant=variant,
                    K=1,
                    n_hidden=Config(model).sizes.get("n_hidden"),
                    batch=32,
                    **(DIAGNOSED if variant == "diagnosed" else {}),
                )

    def result(self, quick: bool) -> dict:
        machine = {
            **environment(),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "peak_gflops": self.peak,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }
        threads = f"measured: makemore.py on torch's default threads ({peers.torch_threads()})" if self.peer else None
        return {
            "machine": machine,
            "settings": {"steps": self.steps, "repeats": self.repeats, "quick": quick},
            "rows": self.rows,
            "summary": summary(self.rows, self.peak, self.V, self.torch is not None),
            "torch": self.torch_note or "measured (1 thread)",
            "makemore": self.makemore_note or threads,
        }


def run_bench(
    *,
    data=None,
    steps: int = 20_000,
    repeats: int = 5,
    torch_steps: int = 2_000,
    quick: bool = False,
    peak_gflops: float | None = None,
    makemore: str | None = None,
    only: set[str] | None = None,
    text=None,
    nanogpt: str | None = None,
    model: str | None = None,
    log=print,
) -> dict:
    """All rows; ``quick`` is the smoke-test size (a few hundred steps, the large rows skipped).
    ``only``: of the groups :data:`SECTIONS`, just these, after the reference rows.
    ``makemore``: the path to makemore.py, whose own training step is timed beside each of its models.
    ``text``: the GPT's text (default tiny Shakespeare); ``nanogpt``: a nanoGPT checkout, whose
    ``train.py`` is timed beside the GPT. ``model``: a model to time (a registered name or
    ``PATH.py:NAME``, a model of your own) after the reference rows, in place of the groups unless
    ``only`` names some."""
    if only is not None and not (only and only <= set(SECTIONS)):
        raise ConfigError(f"--only takes some of {', '.join(SECTIONS)}, got {', '.join(sorted(only)) or 'nothing'}")

    def want(section):
        return (only is None and model is None) or (only is not None and section in only)

    b = Bench(
        data=data,
        steps=steps,
        repeats=repeats,
        torch_steps=torch_steps,
        peak_gflops=peak_gflops,
        makemore=makemore,
        text=text,
        nanogpt=nanogpt,
        log=log,
    )
    b.reference()
    if model is not None:
        b.yours(model)
    if want("models"):
        b.every_model()
    if want("gpt"):
        b.gpt(quick)
    if want("scaling"):
        b.scaling(quick)
    if want("vmap"):
        b.vmap()
    if want("diagnostics"):
        b.diagnostics(quick)
    if want("vmap"):
        b.sharded()
    return b.result(quick)

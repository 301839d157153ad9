"""The bench's summary (the ratios docs/performance.md quotes) and its markdown table."""

from __future__ import annotations

from .. import models


def find(rows: list[dict], **keys) -> dict:
    """The one row whose fields equal ``keys`` (``find(rows, impl="bpjax", model="mlp", grad="manual",
    group="grad", n_hidden=64)``)."""
    hits = [r for r in rows if all(r.get(k) == v for k, v in keys.items())]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} rows match {keys}")
    return hits[0]


def _gpt_ratios(rows: list[dict], sps) -> dict:
    """The GPT's bfloat16 rows over its float32 and autodiff twins, and every bpjax GPT row over
    nanoGPT's ``train.py`` and its autocast (bfloat16) step, where those rows were measured."""
    out = {}
    have = {(r["impl"], r["grad"], r.get("compute_dtype"), r["variant"]) for r in rows if r["group"] == "gpt"}

    def bp(grad, dtype):
        return sps(group="gpt", impl="bpjax", grad=grad, compute_dtype=dtype)

    bf16 = [g for g in ("manual", "autodiff") if ("bpjax", g, "bfloat16", "train") in have]
    for g in bf16:
        out[f"gpt_{g}_bfloat16_over_float32"] = bp(g, "bfloat16") / bp(g, "float32")
    if len(bf16) == 2:
        out["gpt_manual_over_autodiff_bfloat16"] = bp("manual", "bfloat16") / bp("autodiff", "bfloat16")
    for peer in ("nanogpt_train_py", "nanogpt_autocast_bfloat16"):
        if ("nanogpt", "autodiff", None, peer) not in have:
            continue
        theirs = sps(group="gpt", impl="nanogpt", variant=peer)
        for g in ("manual", "autodiff"):
            out[f"gpt_{g}_over_{peer}"] = bp(g, "float32") / theirs
            if g in bf16:
                out[f"gpt_{g}_bfloat16_over_{peer}"] = bp(g, "bfloat16") / theirs
    return out


def summary(rows: list[dict], peak, V: int, with_torch: bool, reference: str = "mlp") -> dict:
    """The ratios docs/performance.md quotes, each from rows of the same run. A bpjax row without a
    ``compute_dtype`` (a bench.json from before the GPT's bfloat16 rows) computed in float32."""
    rows = [{"compute_dtype": "float32", **r} if r.get("impl") == "bpjax" else r for r in rows]

    def sps(**keys):
        return find(rows, **keys)["model_steps_per_second"]

    def mlp(grad, h=64):
        return sps(group="grad", grad=grad, n_hidden=h)

    s = {
        "manual_over_autodiff": mlp("manual") / mlp("autodiff"),
        "manual_over_autodiff_n_hidden_200": mlp("manual", 200) / mlp("autodiff", 200),
    }
    if any(r["group"] == "vmap" for r in rows):
        s["vmap16_over_single_manual"] = sps(group="vmap", grad="manual", K=16, devices=1) / mlp("manual")
        s["vmap16_over_single_autodiff"] = sps(group="vmap", grad="autodiff", K=16, devices=1) / mlp("autodiff")
    sharded = [r for r in rows if r["group"] == "vmap" and r.get("devices", 1) > 1 and r["grad"] == "manual"]
    if sharded:
        s["vmap16_all_devices_over_one_device_manual"] = sharded[0]["model_steps_per_second"] / sps(
            group="vmap", grad="manual", K=16, devices=1
        )
        s["vmap16_all_devices_over_single_manual"] = sharded[0]["model_steps_per_second"] / mlp("manual")
    for model in (m for m in models.names() if m != reference and any(r["group"] == m for r in rows)):
        man = sps(group=model, impl="bpjax", grad="manual", compute_dtype="float32")
        s[f"{model}_manual_over_autodiff"] = man / sps(
            group=model, impl="bpjax", grad="autodiff", compute_dtype="float32"
        )
        for r in rows:
            if r["group"] == model and r["impl"] == "pytorch":
                s[f"{model}_manual_over_pytorch_{r['variant']}"] = man / r["model_steps_per_second"]
            if r["group"] == model and r["impl"] == "makemore":
                s[f"{model}_manual_over_{r['variant']}"] = man / r["model_steps_per_second"]
    s.update(_gpt_ratios(rows, sps))
    for model in (m for m in (reference, "deep") if any(r["group"] == "diagnostics" and r["model"] == m for r in rows)):
        plain = sps(group="diagnostics", model=model, variant="train")
        s[f"{model}_diagnosed_over_plain"] = sps(group="diagnostics", model=model, variant="diagnosed") / plain
    if with_torch:
        s["manual_over_pytorch_notebook_loop"] = mlp("manual") / sps(
            impl="pytorch", model=reference, variant="double_loop"
        )
        s["manual_over_pytorch_index_add"] = mlp("manual") / sps(impl="pytorch", model=reference, variant="index_add")
    if peak:
        ref = models.get(reference)
        f = ref.flops(32, V, **ref.sizes)
        s["compute_limit_steps_per_second"] = peak * 1e9 / f
        s["manual_fraction_of_compute_limit"] = mlp("manual") / (peak * 1e9 / f)
    return s


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['device']}; jax {m['jax']}, "
        f"peak {m['peak_gflops'] or '?'} GFLOP/s. Steps/s are medians of {result['settings']['repeats']} repeats.",
        "",
        "| group | what | steps/s | model-steps/s | µs/step | compile s | MFLOP/step | GFLOP/s | of peak "
        "| XLA temp KiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        frac = f"{100 * r['fraction_of_peak']:.1f}%" if "fraction_of_peak" in r else "—"
        mf = f"{r['flops_per_step'] / 1e6:.2f}" if r["flops_per_step"] is not None else "—"
        gf = f"{r['gflops']:.2f}" if r["gflops"] is not None else "—"
        temp = f"{r['temp_bytes'] / 1024:,.0f}" if r.get("temp_bytes") is not None else "—"
        lines.append(
            f"| {r['group']} | {r['name']} | {r['steps_per_second']:,.0f} "
            f"| {r['model_steps_per_second']:,.0f} "
            f"| {r['us_per_step']:.1f} | {r['compile_seconds']:.2f} | {mf} | {gf} | {frac} | {temp} |"
        )
    lines.append("")
    lines += [f"- {k.replace('_', ' ')}: {v:,.2f}" for k, v in result["summary"].items()]
    if result["torch"] != "measured (1 thread)":
        lines.append(f"- {result['torch']}")
    lines.append(f"- makemore.py: {result['makemore']}")
    return "\n".join(lines) + "\n"

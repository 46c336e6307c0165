"""run_bench: load the pipeline, build the cases, measure them in turns, gather the results in one dict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from ..errors import WordbrushError
from .cases import build_cases
from .ceiling import matmul_ceiling
from .config import BenchConfig
from .timing import Case, measure
from .memory import Memory
from .reference import ReferenceProbe, reference_config, reference_python
from .report import machine_info


def load_pipeline(model: str, device: torch.device, seed: int = 0, generator: str = "dalle"):
    """A reference config (untrained), a built-in name or a saved folder, on device; token generators only."""
    from ..pipeline import TextToImagePipeline
    from ..reference import REFERENCE_CONFIGS

    if model in REFERENCE_CONFIGS:
        return TextToImagePipeline.from_config(model, seed=seed, generator=generator).to(device)
    pipe = TextToImagePipeline.from_pretrained(model, device=device)
    if pipe.generator.output != "codes":
        raise WordbrushError(f"wordbrush bench times generators that write VAE codes (dalle, maskgit); {model} is a "
                             f"{pipe.generator.kind}: time it with benchmarks/sampling_speed.py")
    return pipe


def run_bench(cfg: BenchConfig, pipe=None, progress: bool = True) -> dict[str, Any]:
    """Measure. Returns a JSON-ready dict: "config", "command" (the CLI line that reproduces it), "machine",
    "model", "device", "threads", "timing", "memory_method", "sample" and "train" (one dict per case: the
    seconds of every timed run, their median, spread, rate, peak memory and, for a dalle, the GFLOP/s achieved
    and its share of the ceiling), "ceiling" (the matmul rate measured first, per dtype), "reference" (None, or
    the reference's version and cases) and "ratios" (ours / theirs, one per comparison; ratio None where the
    reference failed).

    pipe: measure this pipeline instead of loading cfg.model (tests pass a tiny one).
    """
    from ..reference import REFERENCE_CONFIGS

    if cfg.against:
        reference_python(cfg.reference_venv)  # fail before any slow work
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise WordbrushError("--device cuda, but torch sees no CUDA device")
    device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    name = cfg.model if pipe is None else "(given pipeline)"
    if pipe is None and cfg.model in REFERENCE_CONFIGS:
        name += f" {cfg.generator} (untrained, reference config)"
    probe = None
    try:
        pipe = pipe.to(device) if pipe is not None else load_pipeline(cfg.model, device, cfg.seed, cfg.generator)
        if cfg.against:
            probe = ReferenceProbe(cfg.reference_venv, reference_config(pipe), cfg.threads, device.type, cfg.seed)
        ceilings = {dtype: matmul_ceiling(device, dtype) for dtype in cfg.dtypes}  # first: the limit
        memory = Memory(device)
        cases, pairs = build_cases(cfg, pipe, memory, probe)
        measure(cases, cfg.warmup, cfg.repeats, progress)
    finally:
        if probe is not None:
            probe.close()
        torch.set_num_threads(threads_before)

    c = pipe.generator.cfg
    results: dict[str, Any] = {
        "config": asdict(cfg),
        "command": cfg.command_line(),
        "machine": machine_info(device),
        "model": {"name": name, "dim": c.dim, "depth": c.depth, "heads": c.heads, "text_len": c.text_len,
                  "image_tokens": c.image_len, "parameters": sum(p.numel() for p in pipe.generator.parameters()),
                  "vae_decoder": None if pipe.vae is None else
                  {"channels": list(pipe.vae.cfg.channels), "res_blocks": pipe.vae.cfg.res_blocks,
                   "code_dim": pipe.vae.cfg.code_dim}},
        "device": device.type,
        "threads": cfg.threads,
        "timing": f"median of {cfg.repeats} after {cfg.warmup} warm-up run(s), cases interleaved round by round",
        "memory_method": memory.method,
        "ceiling": {d: asdict(c) for d, c in ceilings.items()},
        "ceiling_method": ceiling_method(device, cfg.dtypes),
        "sample": [], "train": [], "reference": None, "ratios": [],
    }
    for case in cases:
        s = case.summary()
        if "gflop_per_s" in s:
            s["peak_share"] = s["gflop_per_s"] / ceilings[s["dtype"]].gflop_per_s
        if case.key.startswith("sample/"):
            s["images_per_s"], s["s_per_image"] = s["per_s"], 1 / s["per_s"]
            results["sample"].append(s)
        elif case.key.startswith("train/"):
            s["samples_per_s"], s["tokens_per_s"] = s["per_s"], s["per_s"] * s["tokens_per_sample"]
            results["train"].append(s)
    if probe is not None:
        results["reference"] = {"name": cfg.against, "version": probe.info.get("version"),
                                "torch": probe.info.get("torch"), "parameters": probe.info.get("params"),
                                "venv": str(cfg.reference_venv),
                                "cases": {k.key: k.summary() for k in cases if k.key.startswith("ref/")}}
        results["ratios"] = ratios(cases, pairs)
    return results


def ceiling_method(device: torch.device, dtypes: tuple[str, ...]) -> str:
    from ..utils.hardware import cpu_has_fast_bf16

    how = "best of 5 square matmuls, same threads"
    if device.type == "cuda":
        how += f", TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}"
    elif "bfloat16" in dtypes and not cpu_has_fast_bf16():
        how += "; this CPU emulates bfloat16 (no bf16 units)"
    return how


def ratios(cases: list[Case], pairs: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """ours / theirs for each (description, our key, their key); ratio None (and the error) where theirs failed."""
    by_key = {k.key: k for k in cases}
    out = []
    for what, ours, theirs in pairs:
        a, b = by_key[ours].summary(), by_key[theirs].summary()
        if "error" in b:
            out.append({"what": what, "ours": a["per_s"], "theirs": None, "ratio": None, "error": b["error"]})
        else:
            out.append({"what": what, "ours": a["per_s"], "theirs": b["per_s"], "ratio": a["per_s"] / b["per_s"]})
    return out

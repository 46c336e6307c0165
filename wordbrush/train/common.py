"""Pieces every training loop shares: lr schedule, threads and seeding, autocast, the progress clock."""

from __future__ import annotations

import json
import math
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import model_folder
from ..errors import CheckpointError, WordbrushError
from ..image.vae import DiscreteVAE, load_vae
from ..utils.hardware import cpu_has_fast_bf16


def lr_at(step: int, progress: float, base_lr: float, warmup_steps: int, min_ratio: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from base_lr to base_lr*min_ratio as progress goes 0 -> 1."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def setup_torch(threads: int, seed: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)


_warned_bf16 = False


def autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast on CPU and CUDA when asked for; float32 otherwise, and on a CPU without native bfloat16
    (one warning: the config asks for a speed-up this machine cannot give)."""
    global _warned_bf16
    if not bf16:
        return nullcontext()
    if device.type == "cpu" and not cpu_has_fast_bf16():
        if not _warned_bf16:
            warnings.warn("bf16 is on, but this CPU has no native bfloat16 (AVX512-BF16/AMX), where it runs about "
                          "100x slower than float32: training in float32 instead", stacklevel=2)
            _warned_bf16 = True
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class Budget:
    """Training progress in [0, 1]: by steps, or by wall-clock minutes when a time budget is set."""

    def __init__(self, max_steps: int, max_minutes: float, elapsed_before: float = 0.0):
        self.max_steps, self.max_seconds = max_steps, max_minutes * 60
        self.start = time.perf_counter() - elapsed_before

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def progress(self, step: int) -> float:
        p = step / self.max_steps
        if self.max_seconds > 0:
            p = max(p, self.elapsed / self.max_seconds)
        return p

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0

    @property
    def bar_total(self) -> int | None:
        """The progress bar's step total: none under a time budget (it would promise a bogus ETA)."""
        return None if self.max_seconds > 0 else self.max_steps

    def postfix(self) -> dict[str, str]:
        """Minutes spent / budgeted, for the progress bar, when a time budget is set."""
        return {"min": f"{self.elapsed / 60:.1f}/{self.max_seconds / 60:g}"} if self.max_seconds > 0 else {}


def param_groups(model: torch.nn.Module, weight_decay: float, pretrained_lr_ratio: float = 1.0) -> list[dict[str, Any]]:
    """The trainable parameters in groups: weight decay on matrices only (not on norms, biases, positions), and
    pretrained layers being fine-tuned (a minilm encoder's `bert.`) at lr_scale = pretrained_lr_ratio."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((p.dim() >= 2 and "pos" not in n, ".bert." in n), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0,
             "lr_scale": pretrained_lr_ratio if pretrained else 1.0}
            for (decay, pretrained), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))]


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a run's log.jsonl (one JSON object per line, written by the runtime); [] if there is none."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def frozen_vae(name_or_path: str, device: torch.device) -> DiscreteVAE:
    """A trained VAE (a vae folder, a pipeline folder that holds one, or a built-in model's name), frozen, on device."""
    how = ("pass --vae with a `wordbrush train vae` run folder, a pipeline folder or a built-in model name "
           "(shapes, emoji), or set vae in the config")
    if not name_or_path:
        raise WordbrushError(f"this stage needs a trained VAE: {how}")
    try:
        folder = model_folder(name_or_path)
    except CheckpointError:
        raise WordbrushError(f"the VAE {name_or_path!r} was not found (train one first with `wordbrush train vae "
                             f"--config configs/vae-shapes.json`): {how}") from None
    vae = load_vae(folder).to(device)
    vae.requires_grad_(False)
    return vae

"""`wordbrush train clip`: the contrastive text-image model's training loop, written out.

    once:           train a BPE tokenizer on the captions; hold the eval split's images and captions
    for each step:  a batch of pairs (data/training.py) -> random shift of each image (edges repeated)
                    [-> hard negatives: each caption with words swapped, text/negatives.py]
                    -> symmetric InfoNCE under bf16 autocast -> backward -> clip -> AdamW
    every N steps:  log (JSONL + progress bar); zero-shot retrieval on the eval split (does an image pick its own
                    caption out of 32?) and the swap test (does it prefer its caption to the same words swapped?);
                    a checkpoint (a CLIPScorer folder + optimizer state)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import load_optimizer, load_part, save_optimizer, write_json
from ..clip import CLIP, CLIPConfig, CLIPScorer
from ..config import check, to_dict
from ..data.config import DataConfig
from ..data.training import TrainingData
from ..errors import WordbrushError
from ..eval.realism import retrieval_top1
from ..text.negatives import swap_negative
from ..text.tokenizer import TextTokenizer
from ..utils.images import to_tensor
from ..utils.plot import plot_curves
from .common import STATE, Budget, JsonlLog, autocast, lr_at, param_groups, setup_torch, start_run
from .config import OneOptimizerConfig


@dataclass
class CLIPTrainConfig(OneOptimizerConfig):
    """`wordbrush train clip --config FILE`: contrastive training on image-caption pairs (the shared keys:
    train/config.py)."""

    model: CLIPConfig = field(default_factory=CLIPConfig)
    out: str = "runs/clip"
    tokenizer_vocab: int = 2000
    tokenizer_captions: int = 20000  # shapes: captions the BPE is trained on (a dataset on disk: all of its captions)
    batch_size: int = 256
    weight_decay: float = 0.1
    shift: int = 4  # augmentation: random translation by up to this many pixels (edges repeated)
    # NegCLIP: each caption's words swapped (text/negatives.py) as an extra candidate its image must rank lower,
    # so that the CLIP reads which word goes with which, not a bag of words
    hard_negatives: bool = False
    eval_every: int = 500  # zero-shot retrieval on eval_split
    eval_split: str = "heldout"  # data on disk: the manifest split of the retrieval figure ("all": every item)
    eval_images: int = 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 2, "batch_size must be >= 2 (a contrastive loss needs negatives)")
        check(self.shift >= 0, "shift must be >= 0")
        check(self.tokenizer_vocab >= 16, "tokenizer_vocab must be >= 16")
        check(self.eval_every >= 1 and self.eval_images >= 1, "eval_every and eval_images must be >= 1")
        check(self.model.image_size == self.data.size,
              f"model.image_size ({self.model.image_size}) and data.size ({self.data.size}) differ")


def random_shift(images: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image of (B, 3, H, W) by up to `shift` pixels each way, repeating the edges."""
    if shift == 0:
        return images
    B, _, H, W = images.shape
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, B), generator=gen).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])


def eval_data(cfg: CLIPTrainConfig, progress: bool) -> tuple[np.ndarray, list[str], list[str], str]:
    """(images, one caption each, groups, the split they really are) of the eval split, at most cfg.eval_images;
    shapes: rendered held-out pairs (split "holdout"), each its own group."""
    d = cfg.data
    if not d.path:
        data = TrainingData(DataConfig(size=d.size, seed=d.seed + 1_000_000, split="holdout"))
        b = data.batch(0, cfg.eval_images)
        return b.images, b.captions, list(b.captions), "holdout"
    data = TrainingData(DataConfig(path=d.path, size=d.size, seed=d.seed, split=cfg.eval_split,
                                   background=d.background), progress=progress)
    if not data.in_memory:
        raise WordbrushError("zero-shot retrieval needs an eval split held in memory (a folder or a manifest)")
    n = min(cfg.eval_images, len(data))
    return data.images[:n], [c[0] for c in data.captions[:n]], data.groups[:n], data.actual_split


@torch.no_grad()
def zero_shot(scorer: CLIPScorer, images: np.ndarray, captions: list[str], groups: list[str]) -> dict[str, float]:
    """zero_shot_top1: retrieval among 32 captions (realism.retrieval_top1). swap_test: the share of images that
    are closer to their caption than to its swapped negative (text/negatives.py; captions without one are left
    out), where a bag-of-words CLIP scores about 50%."""
    was_training = scorer.model.training
    scorer.model.eval()
    image_emb, text_emb = scorer.embed_images(to_tensor(images)), scorer.embed_texts(captions)
    result = {"zero_shot_top1": retrieval_top1(image_emb, text_emb, groups)}
    rng = np.random.default_rng(0)
    negatives = [swap_negative(c, rng) for c in captions]
    keep = [i for i, n in enumerate(negatives) if n is not None]
    if keep:
        img = image_emb[keep]
        own = (img * text_emb[keep]).sum(-1)
        swapped = (img * scorer.embed_texts([negatives[i] for i in keep])).sum(-1)
        result["swap_test"] = (own > swapped).float().mean().item()
    scorer.model.train(was_training)
    return result


def train_clip(cfg: CLIPTrainConfig, resume: bool = False, progress_bar: bool = True) -> dict[str, Any]:
    setup_torch(cfg.threads, cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(cfg.out)
    has_ckpt = start_run(out, resume)

    data = TrainingData(cfg.data, progress=progress_bar)
    print(f"data: {data.summary()}")
    if resume and has_ckpt:
        tokenizer = TextTokenizer.load(out)
    else:
        tokenizer = TextTokenizer.train(data.caption_texts(cfg.tokenizer_captions), cfg.tokenizer_vocab)
    cfg.model.text_vocab = tokenizer.vocab_size
    model = CLIP(cfg.model).to(device)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98))
    step, elapsed = 0, 0.0
    if resume and has_ckpt:
        load_part(model, out / "clip.safetensors", "clip")
        extra = load_optimizer(opt, out / STATE)
        step, elapsed = int(extra["step"]), float(extra["elapsed"])
        print(f"resuming {out} at step {step}")
    write_json(out / "train_config.json", to_dict(cfg))
    scorer = CLIPScorer(model, tokenizer)
    ev_images, ev_captions, ev_groups, ev_split = eval_data(cfg, progress_bar)
    log = JsonlLog(out / "log.jsonl")
    shift_gen = torch.Generator().manual_seed(cfg.seed + 5 + step)
    swap_rng = np.random.default_rng([cfg.seed, step])

    budget = Budget(cfg.max_steps, cfg.max_minutes, elapsed)
    bar = tqdm(total=budget.bar_total, initial=step, desc="train clip", unit="step", disable=not progress_bar,
               dynamic_ncols=True)
    t_log, seen = time.perf_counter(), 0
    model.train()
    while not budget.done(step):
        lr = lr_at(step, budget.progress(step), cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = data.batch(step, cfg.batch_size)
        images = random_shift(to_tensor(batch.images), cfg.shift, shift_gen).to(device)  # (B, 3, H, W)
        ids = tokenizer.encode(batch.captions, cfg.model.text_len).ids.to(device)  # (B, L)
        negatives = None
        if cfg.hard_negatives:
            swapped = [n for n in (swap_negative(c, swap_rng) for c in batch.captions) if n is not None]
            negatives = tokenizer.encode(swapped, cfg.model.text_len).ids.to(device) if swapped else None  # (M, L)
        with autocast(device, cfg.bf16):
            loss = model(images, ids, negatives)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        seen += cfg.batch_size
        bar.update(1)
        if step % cfg.log_every == 0:
            now = time.perf_counter()
            record = {"step": step, "elapsed": round(budget.elapsed, 1), "lr": lr, "loss": loss.item(),
                      "temperature": 1 / model.logit_scale.clamp(max=np.log(100)).exp().item(),
                      "samples_per_s": seen / (now - t_log)}
            t_log, seen = now, 0
            if step % cfg.eval_every == 0:
                record.update(zero_shot(scorer, ev_images, ev_captions, ev_groups))
            log.write(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", smp_s=f"{record['samples_per_s']:.0f}", **budget.postfix())
        if step % cfg.checkpoint_every == 0:
            _checkpoint(scorer, opt, out, step, budget.elapsed)
    bar.close()
    _checkpoint(scorer, opt, out, step, budget.elapsed)
    plot_curves(log.path, out / "curves.png", ["loss", "zero_shot_top1", "swap_test", "temperature", "samples_per_s"],
                title=f"CLIP {out.name}")
    final = zero_shot(scorer, ev_images, ev_captions, ev_groups)
    summary = {"steps": step, "train_minutes": round(budget.elapsed / 60, 2), "samples_seen": step * cfg.batch_size,
               "parameters": sum(p.numel() for p in model.parameters()), "final_loss": loss.item(),
               "zero_shot_top1_of_32": round(final["zero_shot_top1"], 4),
               "swap_test": round(final["swap_test"], 4) if "swap_test" in final else None,
               "eval_images": len(ev_images), "eval_split": ev_split,
               "data": data.summary(), "skipped_items": data.skipped_count()}
    write_json(out / "train_summary.json", summary)
    return summary


def _checkpoint(scorer: CLIPScorer, opt: torch.optim.Optimizer, out: Path, step: int, elapsed: float) -> None:
    scorer.save_pretrained(out)
    save_optimizer(opt, out / STATE, {"step": step, "elapsed": elapsed})

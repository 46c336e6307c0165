"""`wordbrush train clip`: the contrastive text-image model's training loop, written out.

    once:           train a BPE tokenizer on the captions; hold the eval split's images and captions
    for each step:  a batch of pairs (data/training.py) -> random shift of each image (edges repeated)
                    [-> hard negatives: each caption with words swapped, text/negatives.py]
                    -> symmetric InfoNCE under bf16 autocast -> backward -> clip -> AdamW
    every N steps:  (the runtime, runtime.py: log, checkpoint, resume, every rank under torchrun); zero-shot retrieval on the eval split (does an image pick its own
                    caption out of 32?) and the swap test (does it prefer its caption to the same words swapped?);
                    a checkpoint (a CLIPScorer folder + optimizer state)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..clip import CLIP, MAX_LOGIT_SCALE, CLIPConfig, CLIPScorer
from ..config import check
from ..data.config import DataConfig
from ..data.training import TrainingData
from ..errors import WordbrushError
from ..eval.realism import retrieval_top1
from ..text.negatives import swap_negative
from ..text.tokenizer import TextTokenizer
from ..utils.images import to_tensor
from ..utils.plot import plot_curves
from .common import autocast, lr_at, param_groups, read_log
from .config import OneOptimizerConfig
from .runtime import Runtime


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
        check(self.micro_batch == 0, "micro_batch must be 0 for clip: a contrastive loss needs the whole batch at once")
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
    data = TrainingData(replace(d, split=cfg.eval_split), progress=progress)
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
    with Runtime(cfg, resume, progress_bar) as rt:
        return rt.run(CLIPStage(cfg, rt, progress_bar), desc="train clip")


class CLIPStage:
    """The CLIP's model, data and step (the loop itself: runtime.py). Under torchrun each rank embeds its share and
    the loss is taken over the embeddings of the whole global batch (rt.gather), as at one process."""

    def __init__(self, cfg: CLIPTrainConfig, rt: Runtime, progress_bar: bool):
        self.cfg, self.rt = cfg, rt
        self.data = TrainingData(cfg.data, progress=progress_bar and rt.main)
        rt.say(f"data: {self.data.summary()}")
        if rt.resume_folder is not None:
            tokenizer = TextTokenizer.load(rt.resume_folder)
        else:
            tokenizer = TextTokenizer.train(self.data.caption_texts(cfg.tokenizer_captions), cfg.tokenizer_vocab)
        cfg.model.text_vocab = tokenizer.vocab_size
        self.tokenizer = tokenizer
        self.model = CLIP(cfg.model).to(rt.device)
        self.opt = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98))
        self.scorer = CLIPScorer(self.model, tokenizer)
        self.ev = eval_data(cfg, progress_bar and rt.main) if rt.main else None
        self.shift_gen = torch.Generator().manual_seed(cfg.seed + 5)
        self.swap_rng = np.random.default_rng([cfg.seed, 0])
        self.modules, self.optimizers = {"clip": self.model}, {"clip": self.opt}
        self.rngs = {"shift": self.shift_gen, "swap": self.swap_rng}
        self.model.train()

    def step(self, step: int, progress: float) -> dict[str, Any]:
        cfg, rt, model = self.cfg, self.rt, self.model
        lr = lr_at(step, progress, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr
        b = cfg.batch_size
        batch = self.data.batch(step, b)  # the global batch (the same random shifts and swaps on every rank)
        images = random_shift(to_tensor(batch.images), cfg.shift, self.shift_gen)  # (B, 3, H, W)
        mine = rt.share(b)
        ids = self.tokenizer.encode(batch.captions[mine], cfg.model.text_len).ids.to(rt.device)  # (b, L)
        negatives = None
        if cfg.hard_negatives:
            swapped = [n for n in (swap_negative(c, self.swap_rng) for c in batch.captions) if n is not None]
            negatives = self.tokenizer.encode(swapped, cfg.model.text_len).ids.to(rt.device) if swapped else None
        with autocast(rt.device, cfg.bf16):
            loss = self._loss(images[mine].to(rt.device), ids, negatives, mine)
        rt.update(loss, self.opt, list(model.parameters()), cfg.grad_clip)
        return {"lr": lr, "loss": loss.detach(),
                "temperature": 1 / model.logit_scale.detach().clamp(max=np.log(100)).exp()}

    def _loss(self, images: torch.Tensor, ids: torch.Tensor, negative_ids: torch.Tensor | None,
              mine: slice) -> torch.Tensor:
        """CLIP.forward's symmetric InfoNCE over the global batch, for the rows of this rank's share: images
        (b, 3, H, W), ids (b, L), negative_ids (M, L) the global batch's swapped captions (image-to-text only)."""
        model, rt = self.model, self.rt
        img, txt = model.encode_image(images), model.encode_text(ids)  # (b, E)
        img_all, txt_all = rt.gather(img), rt.gather(txt)  # (B, E)
        scale = model.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        to_text = scale * img @ txt_all.T  # (b, B)
        to_image = scale * txt @ img_all.T  # (b, B)
        target = torch.arange(mine.start, mine.stop, device=images.device)
        if negative_ids is not None and len(negative_ids):
            to_text = torch.cat([to_text, scale * img @ model.encode_text(negative_ids).T], dim=1)  # (b, B + M)
        return (F.cross_entropy(to_text, target) + F.cross_entropy(to_image, target)) / 2

    def periodic(self, step: int, record: dict[str, Any] | None) -> None:
        if record is not None and step % self.cfg.eval_every == 0:
            record.update(zero_shot(self.scorer, *self.ev[:3]))

    def save(self, folder: Path) -> None:
        self.scorer.save_pretrained(folder)

    def finish(self, step: int, elapsed: float) -> dict[str, Any]:
        cfg, out = self.cfg, self.rt.out
        plot_curves(out / "log.jsonl", out / "curves.png",
                    ["loss", "zero_shot_top1", "swap_test", "temperature", "samples_per_s"], title=f"CLIP {out.name}")
        ev_images, ev_captions, ev_groups, ev_split = self.ev
        final = zero_shot(self.scorer, ev_images, ev_captions, ev_groups)
        records = read_log(out / "log.jsonl")
        return {"steps": step, "train_minutes": round(elapsed / 60, 2), "samples_seen": step * cfg.batch_size,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "final_loss": records[-1]["loss"] if records else None,
                "zero_shot_top1_of_32": round(final["zero_shot_top1"], 4),
                "swap_test": round(final["swap_test"], 4) if "swap_test" in final else None,
                "eval_images": len(ev_images), "eval_split": ev_split,
                "data": self.data.summary(), "skipped_items": self.data.skipped_count()}

"""`wordbrush train vae`: the discrete VAE's training loop, written out.

    for each step:  a batch of images (fresh shapes scenes, or a dataset on disk: data/training.py), mirrored at
                    random when hflip is set -> forward under bf16 autocast
                    loss = reconstruction + quantizer term (+ VQGAN's perceptual and, after the warm-up,
                    adaptively weighted adversarial terms: image/adversarial.py) -> backward -> clip -> AdamW step
                    (-> with the adversarial term on: the patch discriminator's hinge step)
    every N steps:  reconstruction grid (PNG); the runtime (runtime.py) logs, checkpoints, resumes and runs this
                    same step on every rank under torchrun
    at the end:     held-out figures (PSNR, code usage; on shapes also the scene checker on reconstructions)
                    -> eval.json
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..checkpoint import save_part
from ..clip import CLIPScorer
from ..config import check
from ..data.shapes import ShapesDataset
from ..data.training import TrainingData
from ..image.adversarial import (
    PatchDiscriminator,
    PerceptualLoss,
    adaptive_weight,
    d_hinge,
)
from ..image.metrics import code_usage, psnr
from ..image.vae import DiscreteVAE, VAEConfig, VAEOutput, save_vae
from ..utils.images import save_grid, to_pil, to_tensor
from ..utils.plot import plot_curves
from .common import autocast, lr_at
from .config import OneOptimizerConfig
from .runtime import Runtime

EVAL_SEED_OFFSET = 1_000_000  # held-out scenes come from seed data.seed + this
DISC = "discriminator.safetensors"  # the VQGAN patch discriminator, beside the run's vae.safetensors


@dataclass
class VAETrainConfig(OneOptimizerConfig):
    """`wordbrush train vae --config FILE`: the image tokenizer, and for how long (the shared keys: train/config.py)."""

    model: VAEConfig = field(default_factory=VAEConfig)
    out: str = "runs/vae"
    recon_loss: str = "mse"  # "mse", "l1" or "l1+mse"
    sample_every: int = 1000  # write a reconstruction grid PNG
    eval_images: int = 1024  # held-out images for the final PSNR / usage (/ checker, on shapes) figures
    eval_split: str = "heldout"  # data on disk: the manifest split the final figures use ("all": every item)
    hflip: bool = False  # also train on mirrored images (the VAE never reads captions, so this is safe)
    # VQGAN's terms (image/adversarial.py); 0 = off
    adversarial_weight: float = 0.0  # w_a, times the adaptive weight
    adversarial_start: float = 0.3  # share of the budget (steps or minutes) before the discriminator is switched on
    disc_channels: tuple[int, ...] = (64, 128, 256)
    disc_lr: float = 2e-4
    perceptual_weight: float = 0.0  # w_p
    perceptual_clip: str = ""  # a trained CLIP folder (wordbrush train clip) whose image tower gives the features

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.adversarial_weight >= 0 and self.perceptual_weight >= 0, "term weights must be >= 0")
        check(0 <= self.adversarial_start < 1, "adversarial_start must be in [0, 1)")
        check(self.perceptual_weight == 0 or bool(self.perceptual_clip),
              "perceptual_weight > 0 needs perceptual_clip: a trained CLIP folder")
        check(self.disc_lr > 0, "disc_lr must be > 0")
        check(self.recon_loss in ("mse", "l1", "l1+mse"),
              f"recon_loss must be mse, l1 or l1+mse, not {self.recon_loss!r}")
        check(self.model.image_size == self.data.size,
              f"model.image_size ({self.model.image_size}) and data.size ({self.data.size}) differ")


def recon_loss(kind: str, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    recon = recon.float()
    if kind == "mse":
        return F.mse_loss(recon, target)
    if kind == "l1":
        return F.l1_loss(recon, target)
    return F.l1_loss(recon, target) + F.mse_loss(recon, target)


def _temperature(cfg: VAETrainConfig, progress: float) -> float:
    m = cfg.model
    return m.temperature_start * (m.temperature_end / m.temperature_start) ** min(progress, 1.0)


def train_vae(cfg: VAETrainConfig, resume: bool = False, progress_bar: bool = True) -> dict[str, Any]:
    with Runtime(cfg, resume, progress_bar) as rt:
        return rt.run(VAEStage(cfg, rt, progress_bar), desc="train vae")


class VAEStage:
    """The VAE's models, data and step (the loop itself: runtime.py)."""

    def __init__(self, cfg: VAETrainConfig, rt: Runtime, progress_bar: bool):
        self.cfg, self.rt, device = cfg, rt, rt.device
        self.progress_bar = progress_bar and rt.main
        self.vae = vae = DiscreteVAE(cfg.model).to(device).to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
        self.disc = PatchDiscriminator(cfg.disc_channels).to(device) if cfg.adversarial_weight > 0 else None
        self.opt_d = (torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))
                      if self.disc is not None else None)
        self.perceptual = (PerceptualLoss(CLIPScorer.from_pretrained(cfg.perceptual_clip).model.image).to(device)
                           if cfg.perceptual_weight > 0 else None)  # frozen
        self.data = TrainingData(cfg.data, progress=self.progress_bar)
        rt.say(f"data: {self.data.summary()}")
        self.held_out, self.eval_split = (_held_out_images(cfg, self.progress_bar) if rt.main
                                          else (None, ""))  # (n, H, W, 3) uint8, or None for shapes
        held = self.held_out
        self.fixed = to_tensor(held[:8] if held is not None else ShapesDataset(
            8, size=cfg.data.size, seed=cfg.data.seed + EVAL_SEED_OFFSET).render_batch(range(8)))
        self.flip_rng = torch.Generator().manual_seed(cfg.seed + 11)
        self.modules: dict[str, torch.nn.Module] = {"vae": vae}
        self.optimizers: dict[str, torch.optim.Optimizer] = {"vae": self.opt}
        if self.disc is not None:
            self.modules["discriminator"], self.optimizers["discriminator"] = self.disc, self.opt_d
        self.rngs = {"flip": self.flip_rng}
        vae.train()

    def step(self, step: int, progress: float) -> dict[str, Any]:
        cfg, rt, vae, disc = self.cfg, self.rt, self.vae, self.disc
        lr = lr_at(step, progress, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr
        if cfg.model.quantizer == "gumbel":
            vae.quantizer.temperature = _temperature(cfg, progress)

        b = cfg.batch_size
        images = to_tensor(self.data.batch(step, b).images)  # (B, 3, H, W) in [0, 1], the global batch
        if cfg.hflip:
            flip = torch.rand(b, generator=self.flip_rng) < 0.5
            images[flip] = images[flip].flip(-1)
        images = images[rt.share(b)].to(rt.device).contiguous(memory_format=torch.channels_last)  # this rank's
        adversarial_on = disc is not None and progress >= cfg.adversarial_start
        self.opt.zero_grad(set_to_none=True)
        n, sums = len(images), {}
        pieces = rt.micro_batches(n)
        for piece in pieces:  # gradient accumulation: the share's mean, piece by piece
            weight = (piece.stop - piece.start) / n
            o, terms = self._loss(images[piece], adversarial_on)
            rt.backward(terms["loss"] * weight if weight != 1 else terms["loss"])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach() * weight
        rt.step(self.opt, list(vae.parameters()), cfg.grad_clip)
        if adversarial_on:
            d_loss = d_hinge(disc, images[piece], o.recon.float())  # D on the last piece
            rt.update(d_loss, self.opt_d, list(disc.parameters()))
            sums["d_loss"] = d_loss.detach()
        self.last = (o, images[piece])
        record = {"lr": lr, **sums}
        if o.kl is not None:
            record["temperature"] = vae.quantizer.temperature
        return record

    def _loss(self, images: torch.Tensor, adversarial_on: bool) -> tuple[VAEOutput, dict[str, torch.Tensor]]:
        """The VAE's loss on (b, 3, H, W) images and its terms."""
        cfg, vae, disc = self.cfg, self.vae, self.disc
        with autocast(self.rt.device, cfg.bf16):
            o: VAEOutput = vae(images)
        rec = recon_loss(cfg.recon_loss, o.recon, images)
        terms: dict[str, torch.Tensor] = {"recon": rec, "quant": o.quant_loss}
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(o.recon.float(), images)
            rec_total = rec + cfg.perceptual_weight * terms["perceptual"]
        else:
            rec_total = rec
        loss = rec_total + o.quant_loss.float()
        if adversarial_on:  # the adaptive weight reads this rank's share (under torchrun: a local estimate)
            terms["g_adv"] = -disc(o.recon.float()).mean()
            terms["adaptive"] = adaptive_weight(rec_total, terms["g_adv"], vae.decoder.net[-1].weight)
            loss = loss + cfg.adversarial_weight * terms["adaptive"] * terms["g_adv"]
        if o.kl is not None:
            terms["kl"] = o.kl
        terms["loss"] = loss
        return o, terms

    def periodic(self, step: int, record: dict[str, Any] | None) -> None:
        if record is not None:  # figures of rank 0's share of the last batch
            o, images = self.last
            with torch.no_grad():
                record["psnr"] = psnr(o.recon.detach(), images).mean().item()
                record["batch_perplexity"] = code_usage(o.indices, self.cfg.model.num_codes)["perplexity"]
        if step % self.cfg.sample_every == 0:
            path = self.rt.out / "samples" / f"step_{step:06d}.png"
            _write_samples(self.vae, self.fixed, path, self.rt.device)
            self.rt.image("reconstructions", path, step)

    def save(self, folder: Path) -> None:
        save_vae(self.vae, folder)
        if self.disc is not None:  # beside the tokenizer, not inside its weights
            save_part(self.disc, folder / DISC)

    def finish(self, step: int, elapsed: float) -> dict[str, Any]:
        cfg, out, vae = self.cfg, self.rt.out, self.vae
        _write_samples(vae, self.fixed, out / "samples" / "final.png", self.rt.device)
        plot_curves(out / "log.jsonl", out / "curves.png",
                    ["recon", "psnr", "batch_perplexity", "perceptual", "g_adv", "d_loss"], title=f"VAE {out.name}")
        vae.eval()
        if self.held_out is None:
            figures = evaluate_vae(vae, n=cfg.eval_images, size=cfg.data.size, seed=cfg.data.seed + EVAL_SEED_OFFSET,
                                   progress_bar=self.progress_bar)
        else:
            figures = reconstruction_figures(vae, self.held_out, progress_bar=self.progress_bar)
            figures["eval_split"] = self.eval_split  # what the images really are: "all" when the data has no split
        figures.update(steps=step, train_minutes=round(elapsed / 60, 2), images_seen=step * cfg.batch_size,
                       data=self.data.summary(), skipped_items=self.data.skipped_count())
        self.rt.write_json("eval.json", figures)
        return figures


def _held_out_images(cfg: VAETrainConfig, progress: bool) -> tuple[np.ndarray | None, str]:
    """Up to cfg.eval_images images of the data's eval_split for the final figures, and the split they really are;
    None for shapes (which renders its own held-out scenes). Without a split column this is the training data
    itself, and eval.json says so."""
    if not cfg.data.path:
        return None, "holdout"
    d = cfg.data
    data = TrainingData(replace(d, split=cfg.eval_split), progress=progress)
    if not data.in_memory:  # tar shards: the first eval_images of the stream
        return data.batch(0, cfg.eval_images).images, data.actual_split
    return data.images[: cfg.eval_images], data.actual_split


@torch.no_grad()
def _write_samples(vae: DiscreteVAE, images: torch.Tensor, path: Path, device: torch.device) -> None:
    """Top row: originals; bottom row: reconstructions."""
    was_training = vae.training
    vae.eval()
    recon = vae.decode(vae.encode(images.to(device)))
    vae.train(was_training)
    save_grid(to_pil(images) + to_pil(recon), path, cols=len(images), scale=2)


@torch.no_grad()
def evaluate_vae(vae: DiscreteVAE, n: int = 1024, size: int = 64, seed: int = EVAL_SEED_OFFSET,
                 split: str = "all", batch_size: int = 128, progress_bar: bool = False) -> dict[str, Any]:
    """Held-out shapes figures: PSNR (dB), codebook usage over all tokens, and the share of reconstructions whose
    objects the scene checker finds exactly as in the true scene."""
    from ..eval.scene_checker import check_scene

    ds = ShapesDataset(n, size=size, seed=seed, split=split)
    figures = reconstruction_figures(vae, ds.render_batch(range(n)), batch_size, progress_bar,
                                     check=lambda i, img: check_scene(img, ds.scene(i)).ok)
    return {"eval_images": n, "eval_seed": seed, **{k: v for k, v in figures.items() if k != "eval_images"}}


@torch.no_grad()
def reconstruction_figures(vae: DiscreteVAE, images: np.ndarray, batch_size: int = 128, progress_bar: bool = False,
                           check: Callable[[int, Image.Image], bool] | None = None) -> dict[str, Any]:
    """PSNR (dB) and codebook usage of the reconstructions of (n, H, W, 3) uint8 images; with `check`
    (item index, reconstruction -> passed?) also the share that passes it."""
    device = next(vae.parameters()).device
    psnrs, ids, passed = [], [], 0
    for start in tqdm(range(0, len(images), batch_size), desc="eval vae", disable=not progress_bar):
        x = to_tensor(images[start : start + batch_size]).to(device)
        codes = vae.encode(x)
        recon = vae.decode(codes)
        psnrs.append(psnr(recon, x))
        ids.append(codes.flatten().cpu())
        if check is not None:
            passed += sum(check(start + k, img) for k, img in enumerate(to_pil(recon)))
    usage = code_usage(torch.cat(ids), vae.num_codes)
    figures = {"eval_images": len(images), "psnr_db": round(torch.cat(psnrs).mean().item(), 3),
               "codes_used_share": round(usage["used_share"], 4), "code_perplexity": round(usage["perplexity"], 1)}
    if check is not None:
        figures["checker_pass_rate"] = round(passed / len(images), 4)
    return figures

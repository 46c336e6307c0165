"""`wordbrush train vae`: the discrete VAE's training loop, written out.

    for each step:  render a fresh batch of shapes scenes -> forward under bf16 autocast
                    loss = reconstruction + quantizer term -> backward -> clip -> AdamW step
    every N steps:  log (JSONL + progress bar), reconstruction grid (PNG), checkpoint (resumable)
    at the end:     held-out figures (PSNR, code usage, scene checker on reconstructions) -> eval.json
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import load_optimizer, load_part, save_optimizer, write_json
from ..config import VAETrainConfig, to_dict
from ..data.shapes import ShapesDataset
from ..image.metrics import code_usage, psnr
from ..image.vae import DiscreteVAE, VAEOutput, save_vae
from ..utils.images import save_grid, to_pil, to_tensor
from ..utils.plot import plot_curves
from .common import STATE, Budget, JsonlLog, autocast, lr_at, setup_torch, start_run

EVAL_SEED_OFFSET = 1_000_000  # held-out scenes come from seed data.seed + this


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
    setup_torch(cfg.threads, cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(cfg.out)
    has_ckpt = start_run(out, resume)

    vae = DiscreteVAE(cfg.model).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step, elapsed = 0, 0.0
    log = JsonlLog(out / "log.jsonl")
    if resume and has_ckpt:
        load_part(vae, out / "vae.safetensors", "vae")
        extra = load_optimizer(opt, out / STATE)
        step, elapsed = int(extra["step"]), float(extra["elapsed"])
        print(f"resuming {out} at step {step}")
    write_json(out / "train_config.json", to_dict(cfg))

    data = ShapesDataset(None, size=cfg.data.size, seed=cfg.data.seed, split=cfg.data.split)
    fixed = to_tensor(ShapesDataset(8, size=cfg.data.size, seed=cfg.data.seed + EVAL_SEED_OFFSET).render_batch(range(8)))
    budget = Budget(cfg.max_steps, cfg.max_minutes, elapsed)
    bar = tqdm(total=budget.bar_total, initial=step, desc="train vae", unit="step", disable=not progress_bar,
               dynamic_ncols=True)
    t_log, seen_log = time.perf_counter(), 0
    vae.train()
    while not budget.done(step):
        p = budget.progress(step)
        lr = lr_at(step, p, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        if cfg.model.quantizer == "gumbel":
            vae.quantizer.temperature = _temperature(cfg, p)

        b = cfg.batch_size
        images = to_tensor(data.render_batch(range(step * b, (step + 1) * b)))  # (B, 3, H, W) in [0, 1]
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, cfg.bf16):
            o: VAEOutput = vae(images)
        rec = recon_loss(cfg.recon_loss, o.recon, images)
        loss = rec + o.quant_loss.float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        seen_log += b
        bar.update(1)

        if step % cfg.log_every == 0:
            now = time.perf_counter()
            with torch.no_grad():
                rec_psnr = psnr(o.recon.detach(), images).mean().item()
                usage = code_usage(o.indices, cfg.model.num_codes)
            rec_rate = seen_log / (now - t_log)
            t_log, seen_log = now, 0
            record = {"step": step, "elapsed": round(budget.elapsed, 1), "lr": lr, "loss": loss.item(),
                      "recon": rec.item(), "quant": o.quant_loss.item(), "psnr": rec_psnr,
                      "batch_perplexity": usage["perplexity"], "images_per_s": rec_rate}
            if o.kl is not None:
                record.update(kl=o.kl.item(), temperature=vae.quantizer.temperature)
            log.write(record)
            bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{rec_psnr:.1f}", ppl=f"{usage['perplexity']:.0f}",
                            img_s=f"{rec_rate:.0f}", **budget.postfix())
        if step % cfg.sample_every == 0:
            _write_samples(vae, fixed, out / "samples" / f"step_{step:06d}.png", device)
        if step % cfg.checkpoint_every == 0:
            _checkpoint(vae, opt, out, step, budget.elapsed)
    bar.close()
    _checkpoint(vae, opt, out, step, budget.elapsed)
    _write_samples(vae, fixed, out / "samples" / "final.png", device)
    plot_curves(log.path, out / "curves.png", ["recon", "psnr", "batch_perplexity", "lr"], title=f"VAE {out.name}")
    train_seconds = budget.elapsed

    vae.eval()
    figures = evaluate_vae(vae, n=cfg.eval_images, size=cfg.data.size, seed=cfg.data.seed + EVAL_SEED_OFFSET,
                           progress_bar=progress_bar)
    figures.update(steps=step, train_minutes=round(train_seconds / 60, 2),
                   images_seen=step * cfg.batch_size)
    write_json(out / "eval.json", figures)
    return figures


def _checkpoint(vae: DiscreteVAE, opt: torch.optim.Optimizer, out: Path, step: int, elapsed: float) -> None:
    save_vae(vae, out)
    save_optimizer(opt, out / STATE, {"step": step, "elapsed": elapsed})


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
    """Held-out figures: PSNR (dB), codebook usage over all tokens, and the share of reconstructions whose
    objects the scene checker finds exactly as in the true scene."""
    from ..eval.scene_checker import check_scene

    ds = ShapesDataset(n, size=size, seed=seed, split=split)
    device = next(vae.parameters()).device
    psnrs, ids, passed = [], [], 0
    for start in tqdm(range(0, n, batch_size), desc="eval vae", disable=not progress_bar):
        idx = range(start, min(n, start + batch_size))
        images = to_tensor(ds.render_batch(idx)).to(device)
        codes = vae.encode(images)
        recon = vae.decode(codes)
        psnrs.append(psnr(recon, images))
        ids.append(codes.flatten().cpu())
        for img, i in zip(to_pil(recon), idx):
            passed += check_scene(img, ds.scene(i)).ok
    usage = code_usage(torch.cat(ids), vae.num_codes)
    return {"eval_images": n, "eval_seed": seed, "psnr_db": round(torch.cat(psnrs).mean().item(), 3),
            "codes_used_share": round(usage["used_share"], 4), "code_perplexity": round(usage["perplexity"], 1),
            "checker_pass_rate": round(passed / n, 4)}

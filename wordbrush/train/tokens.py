"""`wordbrush train dalle` and `wordbrush train maskgit`: the training loop of a family that writes a VAE's codes,
written out. The family (generators/registry.py) is the one whose config class cfg.model is; each computes its
own loss from (text ids, image code ids), so the loop is the same for all of them.

    once:           train the BPE tokenizer on captions (or take minilm's own); load the frozen VAE; for a dataset
                    held in memory, encode every image with the VAE (the codes never change)
    for each step:  a batch of images + captions (data/training.py) -> VAE codes (no grad) -> caption dropout
                    -> forward under bf16 autocast -> the generator's loss -> backward -> clip -> AdamW
    every N steps:  log (JSONL + progress bar), a PNG grid of samples for fixed prompts, a checkpoint that is
                    a complete pipeline folder (TextToImagePipeline.from_pretrained loads it) + optimizer state
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import load_optimizer, load_part, save_optimizer, write_json
from ..clip import CLIPScorer
from ..config import check, to_dict
from ..data.training import TrainingData
from ..errors import ConfigError, WordbrushError
from ..generators import registry
from ..generators.dalle import DalleConfig
from ..generators.maskgit import MaskGITConfig
from ..generators.options import SampleOptions
from ..pipeline import TextToImagePipeline
from ..text.minilm import load_tokenizer as load_minilm_tokenizer
from ..text.tokenizer import PAD_ID, TextTokenizer
from ..utils.images import save_grid, to_tensor
from ..utils.plot import plot_curves
from .common import STATE, Budget, JsonlLog, autocast, frozen_vae, lr_at, param_groups, setup_torch, start_run
from .config import SAMPLE_PROMPTS, OneOptimizerConfig

ENCODE_BATCH = 256


@dataclass
class DalleTrainConfig(OneOptimizerConfig):
    """`wordbrush train dalle --config FILE`: the transformer, trained on a frozen VAE's tokens (the shared keys:
    train/config.py)."""

    model: DalleConfig = field(default_factory=DalleConfig)
    vae: str = ""  # the trained VAE: a vae folder (wordbrush train vae), a pipeline folder or a built-in name
    clip: str = ""  # optional: a trained CLIP folder (wordbrush train clip) saved with the model to rerank candidates
    out: str = "runs/dalle-shapes"
    tokenizer_vocab: int = 1000  # BPE vocabulary cap; model.text_vocab is set to what the BPE learns
    tokenizer_captions: int = 20000  # captions the BPE is trained on
    caption_dropout: float = 0.1  # share of captions replaced by [PAD]s: the unconditional model for guidance
    min_lr_ratio: float = 0.1
    warmup_steps: int = 300
    weight_decay: float = 0.01
    sample_every: int = 1000
    text_encoder_lr_ratio: float = 0.1  # minilm layers being fine-tuned learn at lr * this
    # the saved model's sampling defaults (what `generate` and `eval` use unless told otherwise)
    sampling: SampleOptions = field(default_factory=lambda: SampleOptions(guidance_scale=3.0))
    sample_prompts: tuple[str, ...] = SAMPLE_PROMPTS

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.caption_dropout < 1.0, "caption_dropout must be in [0, 1)")
        check(self.tokenizer_vocab >= 16, "tokenizer_vocab must be >= 16")
        check(self.text_encoder_lr_ratio >= 0, "text_encoder_lr_ratio must be >= 0")
        try:
            self.sampling.validate()
        except WordbrushError as e:
            raise ConfigError(f"sampling: {e}") from None


@dataclass
class MaskGITTrainConfig(DalleTrainConfig):
    """`wordbrush train maskgit --config FILE`: the same loop and data as dalle, with a MaskGIT generator."""

    model: MaskGITConfig = field(default_factory=MaskGITConfig)
    out: str = "runs/maskgit-shapes"


def train_generator(cfg: DalleTrainConfig, resume: bool = False, progress_bar: bool = True) -> dict[str, Any]:
    """Train the generator that cfg.model configures (DalleConfig -> dalle, MaskGITConfig -> maskgit); see the top."""
    setup_torch(cfg.threads, cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(cfg.out)
    has_ckpt = start_run(out, resume)

    vae = frozen_vae(cfg.vae, device)
    if vae.cfg.image_size != cfg.data.size:
        raise WordbrushError(f"the VAE in {cfg.vae} works on {vae.cfg.image_size}px images, data.size is {cfg.data.size}")
    data = TrainingData(cfg.data, progress=progress_bar)
    print(f"data: {data.summary()}")
    if resume and has_ckpt:
        tokenizer = TextTokenizer.load(out)
    elif cfg.model.text_encoder == "minilm":
        tokenizer = load_minilm_tokenizer()
    else:
        tokenizer = TextTokenizer.train(data.caption_texts(cfg.tokenizer_captions), cfg.tokenizer_vocab)
    cfg.model.text_vocab = tokenizer.vocab_size
    cfg.model.image_vocab, cfg.model.image_grid = vae.num_codes, vae.grid_size

    model = family_of(cfg.model)(cfg.model).to(device)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.text_encoder_lr_ratio), lr=cfg.lr,
                            betas=(0.9, 0.95))
    step, elapsed = 0, 0.0
    if resume and has_ckpt:
        load_part(model, out / f"{model.kind}.safetensors", model.kind)
        extra = load_optimizer(opt, out / STATE)
        step, elapsed = int(extra["step"]), float(extra["elapsed"])
        print(f"resuming {out} at step {step}")
    write_json(out / "train_config.json", to_dict(cfg))
    clip = CLIPScorer.from_pretrained(cfg.clip) if cfg.clip else None  # saved with the model, for reranking
    pipe = TextToImagePipeline(tokenizer, model, vae, cfg.sampling, clip)
    log = JsonlLog(out / "log.jsonl")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)  # trained ones

    code_table = _encode_all(vae, data, device, cfg.bf16) if data.in_memory else None  # (N_items, N)
    drop_rng = np.random.default_rng([cfg.seed, 1])
    budget = Budget(cfg.max_steps, cfg.max_minutes, elapsed)
    bar = tqdm(total=budget.bar_total, initial=step, desc=f"train {model.kind} ({n_params / 1e6:.1f}M)", unit="step",
               disable=not progress_bar, dynamic_ncols=True)
    t_log, seen, data_time = time.perf_counter(), 0, 0.0
    while not budget.done(step):
        lr = lr_at(step, budget.progress(step), cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        t0 = time.perf_counter()
        b = cfg.batch_size
        batch = data.batch(step, b)
        if code_table is not None:
            codes = code_table[torch.from_numpy(batch.index)].to(device)  # (B, N)
        else:
            codes = _encode(vae, batch.images, device, cfg.bf16)
        text = tokenizer.encode(batch.captions, cfg.model.text_len).ids.to(device)  # (B, L)
        dropped = torch.from_numpy(drop_rng.random(b) < cfg.caption_dropout).to(device)
        text[dropped] = PAD_ID
        data_time += time.perf_counter() - t0

        model.train()
        with autocast(device, cfg.bf16):
            losses = model(text, codes)
        opt.zero_grad(set_to_none=True)
        losses.loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        seen += b
        bar.update(1)

        if step % cfg.log_every == 0:
            now = time.perf_counter()
            rate = seen / (now - t_log)
            record = {"step": step, "elapsed": round(budget.elapsed, 1), "lr": lr, "loss": losses.loss.item(),
                      "image_loss": losses.image.item(), "text_loss": losses.text.item(),
                      "samples_per_s": rate, "data_share": data_time / (now - t_log)}
            t_log, seen, data_time = now, 0, 0.0
            log.write(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", img=f"{record['image_loss']:.3f}", smp_s=f"{rate:.0f}",
                            **budget.postfix())
        if step % cfg.sample_every == 0:
            _write_samples(pipe, cfg, out / "samples" / f"step_{step:06d}.png")
        if step % cfg.checkpoint_every == 0:
            _checkpoint(pipe, opt, out, step, budget.elapsed)
    bar.close()
    _checkpoint(pipe, opt, out, step, budget.elapsed)
    _write_samples(pipe, cfg, out / "samples" / "final.png")
    plot_curves(log.path, out / "curves.png", ["loss", "image_loss", "text_loss", "samples_per_s"],
                title=f"{model.kind} {out.name}")
    records = log.read()
    summary = {"steps": step, "train_minutes": round(budget.elapsed / 60, 2), "samples_seen": step * cfg.batch_size,
               "parameters": n_params, "final_loss": records[-1]["loss"] if records else None,
               "data": data.summary(), "skipped_items": data.skipped_count()}
    write_json(out / "train_summary.json", summary)
    return summary


def family_of(model_cfg) -> type:
    """The registered family whose config class `model_cfg` is (it must write codes)."""
    for family in registry.FAMILIES.values():
        cls = family.model_class()
        if type(model_cfg) is cls.config_class and cls.output == "codes":
            return cls
    raise WordbrushError(f"no registered generator writes VAE codes from a {type(model_cfg).__name__}")


@torch.no_grad()
def _encode(vae, images: np.ndarray, device: torch.device, bf16: bool) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, N) VAE code ids."""
    x = to_tensor(images).to(device).contiguous(memory_format=torch.channels_last)
    with autocast(device, bf16):
        return vae.encode(x).flatten(1)


def _encode_all(vae, data: TrainingData, device: torch.device, bf16: bool) -> torch.Tensor:
    """The codes of every image of a dataset held in memory, once: (N_items, N) int64 on the CPU."""
    return torch.cat([_encode(vae, data.images[s : s + ENCODE_BATCH], device, bf16).cpu()
                      for s in range(0, len(data), ENCODE_BATCH)])


def _checkpoint(pipe: TextToImagePipeline, opt: torch.optim.Optimizer, out: Path, step: int, elapsed: float) -> None:
    pipe.save_pretrained(out)
    save_optimizer(opt, out / STATE, {"step": step, "elapsed": elapsed})


def _write_samples(pipe: TextToImagePipeline, cfg: DalleTrainConfig, path: Path) -> None:
    """One row per prompt, 4 seeds each."""
    prompts = list(cfg.sample_prompts)
    pipe.generator.eval()
    with warnings.catch_warnings():  # a prompt's unknown words are the sample grid's business, not the log's
        warnings.simplefilter("ignore")
        out = pipe(prompts, num_images_per_prompt=4, seed=0)
    save_grid(out.images, path, cols=4, scale=2)

"""`wordbrush train dalle` and `wordbrush train maskgit`: the training loop of a family that writes a VAE's codes,
written out. The family (generators/registry.py) is the one whose config class cfg.model is; each computes its
own loss from (text ids, image code ids), so the loop is the same for all of them.

    once:           train the BPE tokenizer on captions (or take minilm's own); load the frozen VAE; for a dataset
                    held in memory, encode every image with the VAE (the codes never change)
    for each step:  a batch of images + captions (data/training.py) -> VAE codes (no grad) -> caption dropout
                    -> forward under bf16 autocast -> the generator's loss -> backward -> clip -> AdamW
    every N steps:  a PNG grid of samples for fixed prompts; the runtime (runtime.py) logs, checkpoints (each a
                    complete pipeline folder that TextToImagePipeline.from_pretrained loads + the training state)
                    and runs this same step on every rank under torchrun
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import model_folder
from ..clip import CLIPScorer
from ..config import check
from ..data.training import TrainingData
from ..errors import ConfigError, WordbrushError
from ..generators import registry
from ..generators.dalle import DalleConfig
from ..generators.maskgit import MaskGITConfig
from ..generators.options import SampleOptions
from ..nn.compiled import compiled_forward
from ..pipeline import TextToImagePipeline
from ..text.minilm import MiniLMText
from ..text.minilm import load_tokenizer as load_minilm_tokenizer
from ..text.tokenizer import PAD_ID, TextTokenizer
from ..utils.images import save_grid, to_tensor
from ..utils.plot import plot_curves
from .common import autocast, frozen_vae, lr_at, param_groups, read_log
from .config import SAMPLE_PROMPTS, OneOptimizerConfig
from .runtime import Runtime

ENCODE_BATCH = 256


@dataclass
class DalleTrainConfig(OneOptimizerConfig):
    """`wordbrush train dalle --config FILE`: the transformer, trained on a frozen VAE's tokens (the shared keys:
    train/config.py)."""

    model: DalleConfig = field(default_factory=DalleConfig)
    vae: str = ""  # the trained VAE: a vae folder (wordbrush train vae), a pipeline folder or a built-in name
    clip: str = ""  # optional: a trained CLIP folder (wordbrush train clip) saved with the model to rerank candidates
    # optional: fine-tune a trained model (a pipeline folder or a built-in name) of this family instead of starting
    # from random weights: its architecture, tokenizer and weights are the start (leave `model` out of the config),
    # its VAE is the default `vae`, its CLIP the default `clip`; the optimizer, schedule and data start afresh
    init: str = ""
    out: str = "runs/dalle-shapes"
    tokenizer_vocab: int = 1000  # BPE vocabulary cap; model.text_vocab is set to what the BPE learns
    tokenizer_captions: int = 20000  # captions the BPE is trained on
    caption_dropout: float = 0.1  # share of captions replaced by [PAD]s: the unconditional model for guidance
    min_lr_ratio: float = 0.1
    warmup_steps: int = 300
    weight_decay: float = 0.01
    sample_every: int = 1000
    text_encoder_lr_ratio: float = 0.1  # minilm layers being fine-tuned learn at lr * this
    compile: bool = False  # forward and backward through torch.compile (nn/compiled.py); the first steps compile
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
    start = _init_from(cfg) if cfg.init else None  # before the runtime writes cfg into the run folder
    with Runtime(cfg, resume, progress_bar) as rt:
        stage = TokensStage(cfg, rt, progress_bar, start)
        return rt.run(stage, desc=f"train {stage.model.kind} ({stage.n_params / 1e6:.1f}M)")


class TokensStage:
    """The models, data and step of a family that writes codes (the loop itself: runtime.py)."""

    def __init__(self, cfg: DalleTrainConfig, rt: Runtime, progress_bar: bool,
                 start: TextToImagePipeline | None = None):
        """start: the model that cfg.init names (_init_from), whose tokenizer and weights the run starts from."""
        self.cfg, self.rt, device = cfg, rt, rt.device
        vae = frozen_vae(cfg.vae, device)  # frozen: never wrapped, never all-reduced
        if vae.cfg.image_size != cfg.data.size:
            raise WordbrushError(f"the VAE in {cfg.vae} works on {vae.cfg.image_size}px images, data.size is "
                                 f"{cfg.data.size}")
        self.data = TrainingData(cfg.data, progress=progress_bar and rt.main)
        rt.say(f"data: {self.data.summary()}")
        if rt.resume_folder is not None and cfg.model.text_encoder != "minilm":
            tokenizer = TextTokenizer.load(rt.resume_folder)
        elif start is not None:
            tokenizer = start.tokenizer
        elif cfg.model.text_encoder == "minilm":
            tokenizer = load_minilm_tokenizer()
        else:
            tokenizer = TextTokenizer.train(self.data.caption_texts(cfg.tokenizer_captions), cfg.tokenizer_vocab)
        cfg.model.text_vocab = tokenizer.vocab_size
        cfg.model.image_vocab, cfg.model.image_grid = vae.num_codes, vae.grid_size
        self.tokenizer, self.vae = tokenizer, vae

        self.model = family_of(cfg.model)(cfg.model)
        if start is not None and rt.resume_folder is None:  # a resumed run loads its own weights after this
            self.model.load_state_dict(start.generator.state_dict())
            rt.say(f"init: starting from the weights of {cfg.init}")
        self.model.to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.forward = compiled_forward(self.model) if cfg.compile else self.model  # same weights either way
        self.opt = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay, cfg.text_encoder_lr_ratio), lr=cfg.lr,
                                     betas=(0.9, 0.95))
        self.n_params = sum(p.numel() for p in self.params)  # trained ones
        clip = CLIPScorer.from_pretrained(cfg.clip) if cfg.clip else None  # saved with the model, for reranking
        self.pipe = TextToImagePipeline(tokenizer, self.model, vae, cfg.sampling, clip)
        self.code_table = (_encode_all(vae, self.data, device, cfg.bf16)  # (N_items, N)
                           if self.data.in_memory else None)
        self._cache_text_states()
        self.drop_rng = np.random.default_rng([cfg.seed, 1])
        self.modules, self.optimizers = {"generator": self.model}, {"generator": self.opt}
        self.rngs = {"caption_dropout": self.drop_rng}
        self.data_time, self.t_data = 0.0, time.perf_counter()

    def _cache_text_states(self) -> None:
        """A frozen minilm encoder and a dataset held in memory: BERT's states of every caption line (and of the
        all-[PAD] row of caption dropout) computed once, in a fixed order (text/minilm.py's cache_states)."""
        encoder = next((m for m in self.model.modules() if isinstance(m, MiniLMText)), None)
        if encoder is None or encoder.train_layers > 0 or not self.data.in_memory:
            return
        lines = [c for caps in self.data.captions for c in caps]
        ids = self.tokenizer.encode(lines, self.cfg.model.text_len).ids  # (N, L)
        ids = torch.cat([ids, torch.full_like(ids[:1], PAD_ID)])
        t0 = time.perf_counter()
        with autocast(self.rt.device, self.cfg.bf16):
            n = encoder.cache_states(ids.to(self.rt.device))
        self.rt.say(f"text: MiniLM states of {n} distinct captions computed once ({time.perf_counter() - t0:.0f} s)")

    def step(self, step: int, progress: float) -> dict[str, Any]:
        cfg, device, rt = self.cfg, self.rt.device, self.rt
        lr = lr_at(step, progress, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        t0 = time.perf_counter()
        b = cfg.batch_size
        batch = self.data.batch(step, b)  # the global batch; this rank takes its share
        mine = rt.share(b)
        dropped = torch.from_numpy(self.drop_rng.random(b) < cfg.caption_dropout)[mine].to(device)  # (b,)
        if self.code_table is not None:
            codes = self.code_table[torch.from_numpy(batch.index[mine])].to(device)  # (b, N)
        else:
            codes = _encode(self.vae, batch.images[mine], device, cfg.bf16)
        text = self.tokenizer.encode(batch.captions[mine], cfg.model.text_len).ids.to(device)  # (b, L)
        text[dropped] = PAD_ID
        self.data_time += time.perf_counter() - t0

        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        n, sums = len(text), {"loss": 0.0, "image_loss": 0.0, "text_loss": 0.0}
        for piece in rt.micro_batches(n):  # gradient accumulation: the share's mean, piece by piece
            with autocast(device, cfg.bf16):
                losses = self.forward(text[piece], codes[piece])
            weight = (piece.stop - piece.start) / n
            rt.backward(losses.loss * weight if weight != 1 else losses.loss)
            for key, value in (("loss", losses.loss), ("image_loss", losses.image), ("text_loss", losses.text)):
                sums[key] = sums[key] + value.detach() * weight
        rt.step(self.opt, self.params, cfg.grad_clip)
        return {"lr": lr, **sums}

    def periodic(self, step: int, record: dict[str, Any] | None) -> None:
        if record is not None:
            now = time.perf_counter()
            record["data_share"] = min(self.data_time / max(now - self.t_data, 1e-9), 1.0)
            self.data_time, self.t_data = 0.0, now
        if step % self.cfg.sample_every == 0:
            path = self.rt.out / "samples" / f"step_{step:06d}.png"
            _write_samples(self.pipe, self.cfg, path)
            self.rt.image("samples", path, step)

    def save(self, folder: Path) -> None:
        self.pipe.save_pretrained(folder)

    def finish(self, step: int, elapsed: float) -> dict[str, Any]:
        out = self.rt.out
        _write_samples(self.pipe, self.cfg, out / "samples" / "final.png")
        plot_curves(out / "log.jsonl", out / "curves.png", ["loss", "image_loss", "text_loss", "samples_per_s"],
                    title=f"{self.model.kind} {out.name}")
        records = read_log(out / "log.jsonl")
        return {"steps": step, "train_minutes": round(elapsed / 60, 2), "samples_seen": step * self.cfg.batch_size,
                "parameters": self.n_params, "final_loss": records[-1]["loss"] if records else None,
                "data": self.data.summary(), "skipped_items": self.data.skipped_count()}


def _init_from(cfg: DalleTrainConfig) -> TextToImagePipeline:
    """The model that cfg.init names, checked against cfg; cfg.model becomes its architecture, and cfg.vae and
    cfg.clip default to its own."""
    start = TextToImagePipeline.from_pretrained(cfg.init)
    want = family_of(cfg.model)
    if not isinstance(start.generator, want):
        raise ConfigError(f"init: {cfg.init} holds a {start.generator.kind} generator, this stage trains {want.kind}")
    if cfg.model not in (type(cfg.model)(), start.generator.cfg):
        raise ConfigError(f"init: the architecture comes from {cfg.init}; leave `model` out of the config")
    cfg.model = start.generator.cfg
    folder = model_folder(cfg.init)
    if not cfg.vae:
        cfg.vae = str(folder)
    if not cfg.clip and (folder / "clip").is_dir():
        cfg.clip = str(folder / "clip")
    return start


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


def _write_samples(pipe: TextToImagePipeline, cfg: DalleTrainConfig, path: Path) -> None:
    """One row per prompt, 4 seeds each."""
    prompts = list(cfg.sample_prompts)
    pipe.generator.eval()
    with warnings.catch_warnings():  # a prompt's unknown words are the sample grid's business, not the log's
        warnings.simplefilter("ignore")
        out = pipe(prompts, num_images_per_prompt=4, seed=0)
    save_grid(out.images, path, cols=4, scale=2)

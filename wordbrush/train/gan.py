"""`wordbrush train gan`: generator against discriminator, written out (the objective is in generators/gan.py).

    once:           load the frozen CLIP (--clip): into the generator, whose captions it reads (its tokenizer is
                    the pipeline's), or with model.text_encoder "minilm" beside it, where it only judges (the
                    alignment term, the collapse check, reranking) and MiniLM reads the captions. In latent mode
                    (--vae) also the frozen VAE: its decoder into the generator, and the whole VAE to pass the
                    real images through, so that D sees reals and fakes drawn by the same decoder (or, with
                    disc_reads "codes", the VAE's code vectors of the reals against the generator's vectors)
    for each step:  a batch of real images + captions -> the frozen reader reads the captions (with distill: a
                    batch of a dalle's images for given noise, train/gan_distill.py: G also learns to write them)
                    D step: fakes (detached from G) -> hinge on real/fake/mismatched + MA-GP -> Adam
                    G step: the same fakes, through the updated D -> fool D + CLIP alignment (+ with
                    code_commitment: the written vectors' distance to their nearest VAE codes) -> Adam -> EMA
                    with recon_weight (cVAE-GAN): E reads the real codes + caption into a noise z ~ q(z|x,t); the
                    same G pass also redraws the reals from it (reconstruction + KL to N(0, I), with G's step)
    every N steps:  (the runtime, runtime.py: log, checkpoints, resume, every rank under torchrun); divergence
                    check (a loss that is not finite stops the run with a message); collapse check (the spread of
                    16 seeds for one prompt against 16 real images of that prompt, in CLIP features); a sample
                    grid. The model folder: the EMA generator as a pipeline folder (with the CLIP in clip/ when
                    MiniLM reads), the raw generator and the discriminator beside it
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import save_part
from ..clip import CLIPScorer
from ..config import check
from ..data.training import TrainingData
from ..errors import ConfigError, WordbrushError
from ..generators.gan import GAN, GANConfig, Text, nearest_codes
from ..generators.gan_discriminator import (
    Discriminator,
    NoiseEncoder,
    caption_contrast,
    discriminator_loss,
    generator_loss,
    posterior_loss,
)
from ..generators.options import SampleOptions
from ..image.vae import DiscreteVAE
from ..pipeline import TextToImagePipeline
from ..text.minilm import load_tokenizer as load_minilm_tokenizer
from ..text.negatives import swap_negative
from ..text.phrases import token_roles
from ..text.tokenizer import TextTokenizer
from ..utils.images import to_tensor
from ..utils.plot import plot_curves
from .common import autocast, frozen_vae, lr_at
from .config import SAMPLE_PROMPTS, TrainConfig
from .gan_collapse import collapse_probe, seed_diversity
from .gan_distill import DistillSet
from .gan_samples import write_redraws, write_samples
from .gan_teacher import DalleTeacher
from .runtime import Runtime

RAW_G = "generator_raw.safetensors"  # the generator's own weights (gan.safetensors holds their EMA)
DISC = GAN.critic_file  # the pipeline loads it as its critic (rerank "discriminator")
ENCODER = "noise_encoder.safetensors"  # the cVAE-GAN's encoder (recon_weight > 0), trained with G


@dataclass
class GANTrainConfig(TrainConfig):
    """`wordbrush train gan --config FILE --clip DIR`: generator against discriminator, with a frozen CLIP (the
    shared keys: train/config.py)."""

    model: GANConfig = field(default_factory=GANConfig)
    clip: str = "runs/clip-shapes"  # a trained CLIP folder (wordbrush train clip) on the same data
    # latent mode: a trained VAE (a vae folder, or a pipeline folder that holds one) whose frozen decoder draws
    # the pixels; "" = the generator draws pixels itself
    vae: str = ""
    out: str = "runs/gan-shapes"
    batch_size: int = 32
    max_steps: int = 100000
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, ...] = (0.0, 0.9)
    gp_weight: float = 2.0  # MA-GP: k * ||grad||^p on real, matching pairs (DF-GAN: k = 2, p = 6)
    gp_power: float = 6.0
    clip_weight: float = 2.0  # lambda_clip: pull each image towards its caption in the CLIP's space
    # "cosine": 1 - the cosine to its caption; "contrastive": the CLIP's InfoNCE over the batch's captions and (with
    # hard_negatives) their swaps, which stops pulling once the image is told apart (generators/gan_discriminator.py)
    clip_objective: str = "cosine"
    # D's mismatched captions: always the next item's caption (which objects and colours are there); with this,
    # also each caption with its words swapped where it has a swap (text/negatives.py: which colour is whose,
    # which way round)
    hard_negatives: bool = False
    # latent mode, conv trunk: weight of the squared distance from each vector G writes to its nearest VAE code
    # (VQ-VAE's commitment term, the codes fixed). A colour the caption leaves open otherwise comes out as a blend
    # of codes that no real image holds (pale, mixed shades); with model.snap_codes sampling then snaps onto codes
    # the decoder has drawn real pictures from. 0 = off
    code_commitment: float = 0.0
    # cVAE-GAN (latent mode): an encoder reads each real image's codes + caption into a noise z ~ q(z | x, t), and
    # G, given that z, must redraw the image's codes: recon_weight * squared distance + kl_weight * KL(q || N(0, I)),
    # beside the adversarial and CLIP terms on noise from the prior. 0 = off
    recon_weight: float = 0.0
    kl_weight: float = 0.01
    # "mse": the squared distance to the real code vectors; "codes": the cross-entropy of the real codes under
    # logits -||v - e_k||^2 over the VAE's codebook (generators/gan_discriminator.py: posterior_loss)
    recon_loss: str = "mse"
    # distillation (transformer trunk): a trained dalle on the same VAE's codes (a built-in name or a folder)
    # scores G's grid by its next-token likelihood, teacher_weight * that expected NLL a position joins G's loss
    # (train/gan_teacher.py). "" = off
    teacher: str = ""
    teacher_weight: float = 1.0
    teacher_rows: int = 0  # the teacher judges the first this many of each step's grids (its pass is the dearest
    # part of a step: 0 = all of them)
    # which grids: "samples" (from prior noise; alone its likeliest grid is an empty picture and G collapses onto
    # it) or "redraws" (the cVAE's redraws of real images: the cross-entropy keeps them the real picture, the
    # teacher asks for a grid it finds coherent)
    teacher_reads: str = "redraws"
    # "likelihood" (the caption's NLL) or "pmi" (the caption's pointwise mutual information with each code: how much
    # more likely the caption makes G's grid than no caption; no empty-picture mode, so it may judge the samples)
    teacher_objective: str = "likelihood"
    # distillation by coupled noise (train/gan_distill.py): a folder of a dalle's images drawn with a quantile per
    # position (`wordbrush data distill`). Each step reads its captions, noise and the teacher's tokens: G, given
    # that noise, is trained to write those tokens (distill_weight * their cross-entropy under G's scores, nats a
    # position) beside the adversarial term, and D takes the teacher's grids as its reals. Needs the transformer
    # trunk with grid_noise. "" = off (the data's images are the reals)
    distill: str = ""
    distill_weight: float = 1.0
    ema_decay: float = 0.999  # of the generator's weights, which the saved pipeline samples with
    gp_every: int = 1  # MA-GP on every k-th discriminator step (lazy regularisation, StyleGAN2), times k
    sample_every: int = 500
    checkpoint_every: int = 500
    diversity_every: int = 500  # collapse check: spread of 16 seeds for one prompt against 16 real images
    collapse_ratio: float = 0.15  # stop with a clear message when the spread falls below this share of the real's
    sampling: SampleOptions = field(default_factory=SampleOptions)
    sample_prompts: tuple[str, ...] = SAMPLE_PROMPTS

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 2, "batch_size must be >= 2 (the mismatched pairs pair each item with the next)")
        check(self.lr_g > 0 and self.lr_d > 0, "lr_g and lr_d must be > 0")
        check(self.micro_batch == 0, "micro_batch must be 0 for gan: D and G each take their share in one pass")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas must be two numbers in [0, 1)")
        check(0 < self.ema_decay < 1, "ema_decay must be in (0, 1)")
        check(self.gp_every >= 1 and self.diversity_every >= 1, "gp_every and diversity_every must be >= 1")
        check(self.recon_weight >= 0 and self.kl_weight >= 0, "recon_weight and kl_weight must be >= 0")
        check(self.recon_weight == 0 or bool(self.vae), "recon_weight needs latent mode (a VAE: --vae)")
        check(self.recon_loss in ("mse", "codes"), f"recon_loss must be 'mse' or 'codes', not {self.recon_loss!r}")
        check(self.recon_loss == "codes" or self.model.trunk != "transformer" or self.recon_weight == 0,
              "the transformer trunk scores the codes: its recon_loss is 'codes'")
        check(not self.teacher or (self.model.trunk == "transformer" and bool(self.vae)),
              "a teacher scores the transformer trunk's code scores: it needs trunk 'transformer' and a VAE")
        check(self.teacher_weight >= 0 and self.teacher_rows >= 0, "teacher_weight and teacher_rows must be >= 0")
        check(self.teacher_reads in ("samples", "redraws"),
              f"teacher_reads must be 'samples' or 'redraws', not {self.teacher_reads!r}")
        check(self.teacher_objective in ("likelihood", "pmi"),
              f"teacher_objective must be 'likelihood' or 'pmi', not {self.teacher_objective!r}")
        check(not self.teacher or self.teacher_reads == "samples" or self.recon_weight > 0,
              "teacher_reads 'redraws' needs the cVAE's redraws: recon_weight > 0")
        check(not self.distill or (self.model.grid_noise and bool(self.vae) and self.recon_weight == 0
                                   and self.model.disc_reads == "codes"),
              "distill needs model.grid_noise (the transformer trunk, noise_dim = grid * grid), a VAE, D on the codes "
              "(model.disc_reads 'codes') and no cVAE term (recon_weight 0)")
        check(self.distill_weight >= 0, "distill_weight must be >= 0")
        check(self.code_commitment >= 0, "code_commitment must be >= 0")
        check(self.clip_objective in ("cosine", "contrastive"),
              f"clip_objective must be 'cosine' or 'contrastive', not {self.clip_objective!r}")
        check(self.code_commitment == 0 or (bool(self.vae) and self.model.trunk == "conv"),
              "code_commitment pulls written code vectors onto the VAE's codes: it needs a VAE and the conv trunk")
        if not self.vae:
            self.model.check_depth()
        check(self.model.image_size == self.data.size,
              f"model.image_size ({self.model.image_size}) and data.size ({self.data.size}) differ")
        try:
            self.sampling.validate()
        except WordbrushError as e:
            raise ConfigError(f"sampling: {e}") from None


def train_gan(cfg: GANTrainConfig, resume: bool = False, progress_bar: bool = True) -> dict[str, Any]:
    with Runtime(cfg, resume, progress_bar) as rt:
        stage = GANStage(cfg, rt, progress_bar)
        return rt.run(stage, desc=f"train gan ({stage.n_params / 1e6:.1f}M)")


class GANStage:
    """The GAN's networks, data and step (the loop itself: runtime.py). Under torchrun both G and D are averaged
    across ranks at each of their steps; the CLIP and the VAE are frozen and stay local."""

    def __init__(self, cfg: GANTrainConfig, rt: Runtime, progress_bar: bool):
        self.cfg, self.rt, device = cfg, rt, rt.device
        self.clip = clip = CLIPScorer.from_pretrained(cfg.clip)
        cfg.model.clip = clip.model.cfg
        self.vae = vae = frozen_vae(cfg.vae, device) if cfg.vae else None
        cfg.model = replace(cfg.model, vae=vae.cfg if vae is not None else None)  # replace() runs the checks again
        self.data = TrainingData(cfg.data, progress=progress_bar and rt.main)
        rt.say(f"data: {self.data.summary()}")
        g = GAN(cfg.model)
        if g.clip is not None:  # the CLIP reads the captions: its text tower inside G
            g.clip.load_state_dict(clip.model.state_dict())
        self.tokenizer = clip.tokenizer if g.clip is not None else load_minilm_tokenizer()
        if cfg.model.slot_reading == "objects":
            g.set_word_roles(token_roles(self.tokenizer))
        if vae is not None:
            g.decoder.load_state_dict(vae.decoder.state_dict())
            if hasattr(g, "codebook"):
                g.codebook.copy_(vae.quantizer.codebook)
        self.g, self.d = g, d = g.to(device), Discriminator(cfg.model).to(device)
        self.ema = ema = copy.deepcopy(g).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
        self.teacher = DalleTeacher(cfg.teacher, g.codebook, device) if cfg.teacher else None
        self.distill = DistillSet(cfg.distill, cfg.seed) if cfg.distill else None
        if self.distill is not None:
            check(self.distill.image_len == cfg.model.noise_dim, f"{cfg.distill}: its images have "
                  f"{self.distill.image_len} positions, the gan's grid {cfg.model.noise_dim}")
            rt.say(f"distill: {len(self.distill)} teacher images from {cfg.distill}")
        self.enc = enc = NoiseEncoder(cfg.model).to(device) if cfg.recon_weight > 0 else None
        self.g_params = [p for p in g.parameters() if p.requires_grad] + (list(enc.parameters()) if enc else [])
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr_g, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
        self.pipe = TextToImagePipeline(self.tokenizer, ema, None, cfg.sampling, clip if g.clip is None else None)
        self.probe = collapse_probe(cfg.data, self.data)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 1000)
        self.swap_rng = np.random.default_rng([cfg.seed, 0])
        self.modules: dict[str, torch.nn.Module] = {"generator": g, "ema": ema, "discriminator": d}
        if enc is not None:
            self.modules["noise_encoder"] = enc
        self.optimizers = {"generator": self.opt_g, "discriminator": self.opt_d}
        self.rngs = {"noise": self.noise_gen, "swap": self.swap_rng}
        self.n_params = sum(p.numel() for p in g.parameters() if p.requires_grad)
        g.train()

    def step(self, step: int, progress: float) -> dict[str, Any]:
        cfg, rt, device = self.cfg, self.rt, self.rt.device
        g, d, enc, vae, clip = self.g, self.d, self.enc, self.vae, self.clip
        for opt, lr in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, progress, lr, 0, 1.0)  # constant: GANs are trained at a fixed rate
        b = cfg.batch_size
        mine = rt.share(b)
        targets = None  # distillation: the teacher's code ids (b, N) for this noise
        if self.distill is not None:
            batch = self.distill.batch(step, b)  # captions, noise and the teacher's tokens; no images
            targets = batch.tokens[mine].to(device)
        else:
            batch = self.data.batch(step, b)  # the global batch; this rank takes its share
            real = to_tensor(batch.images[mine]).to(device)  # (b, 3, H, W) in [0, 1]
        captions = batch.captions[mine]
        text = _read(g, self.tokenizer, captions)
        aim = clip.embed_texts(captions) if g.clip is None and cfg.clip_weight > 0 else None  # the CLIP's view
        swapped = None  # D's (real, wrong caption) pairs: the next item's caption, and with hard_negatives swaps
        n_swaps, negatives = 0, []  # negatives: this rank's swapped captions
        if cfg.hard_negatives:
            every = [swap_negative(c, self.swap_rng) for c in batch.captions]  # the global batch's
            n_swaps, swaps = sum(s is not None for s in every), every[mine]
            index = [i for i, s in enumerate(swaps) if s is not None]
            negatives = [swaps[i] for i in index]
            if index:
                swapped = (torch.tensor(index, device=device), _read(g, self.tokenizer, negatives))
        contrast = None  # the contrastive CLIP term's candidates: the captions' and their swaps' CLIP vectors
        if cfg.clip_objective == "contrastive" and cfg.clip_weight > 0:
            if aim is None:  # G reads the captions through the CLIP: its sentence vectors are the CLIP's
                own, theirs = text.sentence, swapped[1].sentence if negatives else None
            else:
                own, theirs = aim, clip.embed_texts(negatives) if negatives else None
            contrast = caption_contrast(captions, own, negatives, theirs)
        next_text, mismatch_norm = None, None
        if rt.world > 1:  # the next item's caption may be the next rank's first: the whole batch's pairs
            next_text = _read(g, self.tokenizer, batch.captions[mine.start + 1 : mine.stop + 1])
            mismatch_norm = (b - 1 + n_swaps) / rt.world
        if targets is not None:
            z = batch.z[mine].to(device)
        else:
            z = torch.randn(b, cfg.model.noise_dim, generator=self.noise_gen)[mine].to(device)

        gp_now = step % cfg.gp_every == 0
        with autocast(device, cfg.bf16):
            if targets is not None:  # the teacher's grids are D's reals: the exact code vectors the decoder reads
                real = g.codes_of(targets)
            elif vae is not None:  # D compares like with like: reals and fakes both drawn by the decoder, or both codes
                codes = vae.code_vectors(real)  # (B, D, g, g): the decoder's input
                with torch.no_grad():
                    real = codes if d.reads_codes else ((vae.decoder(codes) + 1) / 2).float()
            scores = None  # the transformer trunk's code scores of the prior samples (the teacher reads them)
            if enc is None and cfg.model.trunk == "transformer":
                scores = g.code_scores(z, text)
                layout = g.mixture(scores)  # what g.layout() writes, with the scores kept
            elif enc is None:
                layout = g.layout(z, text)
            else:  # one G pass for both: noise from the prior (D, CLIP) and from E (redraw the real codes)
                mu, logvar = enc(codes, text)
                z_post = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
                both, z_both = text.map(lambda t: torch.cat([t, t])), torch.cat([z, z_post.to(z.dtype)])
                if cfg.model.trunk == "transformer":  # its own scores over the codes: their cross-entropy
                    scores = g.code_scores(z_both, both)
                    (layout, redrawn), (scores, redrawn_scores) = g.mixture(scores).chunk(2), scores.chunk(2)
                else:
                    (layout, redrawn), redrawn_scores = g.layout(z_both, both).chunk(2), None
            fake = layout if d.reads_codes else g.draw(layout)  # what D judges
            ld = discriminator_loss(d, real, fake, text, cfg.gp_weight * cfg.gp_every * gp_now, cfg.gp_power,
                                    swapped, next_text, mismatch_norm)
        rt.update(ld["loss"], self.opt_d, list(d.parameters()))

        d.requires_grad_(False)  # the G step needs gradients through D, not for it
        with autocast(device, cfg.bf16):  # the same fakes, judged by the updated D (one G forward per step)
            seen_by_clip = g.draw(layout) if d.reads_codes and cfg.clip_weight > 0 else None  # None: fake itself
            lg = generator_loss(d, clip.model, fake, text, cfg.clip_weight, images=seen_by_clip, aim=aim,
                                 contrast=contrast)
            if cfg.code_commitment > 0:  # G's vectors onto their nearest codes (which stay as they are)
                lg["commit"] = F.mse_loss(layout.float(), nearest_codes(layout, vae.quantizer.codebook).float())
                lg["loss"] = lg["loss"] + cfg.code_commitment * lg["commit"]
            if enc is not None:
                codebook = vae.quantizer.codebook if cfg.recon_loss == "codes" else None
                lg |= posterior_loss(redrawn, codes, mu, logvar, codebook, redrawn_scores)
                lg["loss"] = lg["loss"] + cfg.recon_weight * lg["recon"] + cfg.kl_weight * lg["kl"]
            if targets is not None:
                lg["distill"] = F.cross_entropy(scores.float().flatten(0, 1), targets.flatten())
                lg["loss"] = lg["loss"] + cfg.distill_weight * lg["distill"]
            if self.teacher is not None:
                judged = scores if cfg.teacher_reads == "samples" else redrawn_scores
                n = cfg.teacher_rows or len(judged)
                lg["teacher"] = self.teacher.loss(self.teacher.text(captions[:n]), judged[:n], cfg.teacher_objective)
                lg["loss"] = lg["loss"] + cfg.teacher_weight * lg["teacher"]
        rt.update(lg["loss"], self.opt_g, self.g_params)
        d.requires_grad_(True)
        _ema_update(self.ema, g, min(cfg.ema_decay, (1 + step) / (10 + step)))  # warm-up: early EMA follows G
        return {**{f"d_{k}": v.detach() for k, v in ld.items()}, **{f"g_{k}": v.detach() for k, v in lg.items()}}

    def periodic(self, step: int, record: dict[str, Any] | None) -> None:
        cfg, out = self.cfg, self.rt.out
        if record is not None:
            bad = [k for k, v in record.items() if isinstance(v, float) and not np.isfinite(v)]
            if bad:
                self._dump(out / "diverged")
                raise WordbrushError(f"training diverged at step {step}: {', '.join(bad)} not finite (state saved "
                                     f"to {out / 'diverged'}; lower lr_d / lr_g or raise gp_weight and resume)")
            if step % cfg.diversity_every == 0:  # on G itself: it is G that collapses (the EMA lags behind it)
                diversity = seed_diversity(self.g, self.tokenizer, self.clip, self.probe)
                record["diversity_ratio"] = diversity
                if diversity < cfg.collapse_ratio:
                    self._dump(out / "collapsed")
                    raise WordbrushError(f"mode collapse at step {step}: 16 seeds for {self.probe[0]!r} spread only "
                                         f"{diversity:.2f}x as much as 16 real images (limit {cfg.collapse_ratio}); "
                                         f"state saved to {out / 'collapsed'}")
        if step % cfg.sample_every == 0:
            write_samples(self.pipe, cfg.sample_prompts, out / "samples" / f"step_{step:06d}.png")
            self.rt.image("samples", out / "samples" / f"step_{step:06d}.png", step)
            if self.enc is not None:
                write_redraws(self.g, self.enc, self.vae, self.tokenizer, self.data,
                              out / "samples" / f"redraw_{step:06d}.png")

    def _dump(self, folder: Path) -> None:
        """The networks as they are when a check stops the run, for a look (the checkpoints hold the last good)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.save(folder)

    def save(self, folder: Path) -> None:
        """The EMA generator as a pipeline folder, and beside it the raw generator, D (and E) to look at."""
        self.pipe.save_pretrained(folder)
        save_part(self.g, folder / RAW_G)
        save_part(self.d, folder / DISC)
        if self.enc is not None:
            save_part(self.enc, folder / ENCODER)

    def finish(self, step: int, elapsed: float) -> dict[str, Any]:
        cfg, out = self.cfg, self.rt.out
        write_samples(self.pipe, cfg.sample_prompts, out / "samples" / "final.png")
        if self.enc is not None:
            write_redraws(self.g, self.enc, self.vae, self.tokenizer, self.data, out / "samples" / "redraw_final.png")
        plot_curves(out / "log.jsonl", out / "curves.png", ["d_hinge", "d_gp", "g_adv", "g_clip", "g_commit", "g_recon",
                                                            "g_kl", "g_teacher", "g_distill",
                                                            "diversity_ratio"], title=f"gan {out.name}")
        diversity = seed_diversity(self.ema, self.tokenizer, self.clip, self.probe)
        return {"steps": step, "train_minutes": round(elapsed / 60, 2), "samples_seen": step * cfg.batch_size,
                "parameters": self.n_params, "diversity_ratio": round(diversity, 4),
                "data": self.data.summary(), "skipped_items": self.data.skipped_count()}


def _read(g: GAN, tokenizer: TextTokenizer, captions: list[str]) -> Text:
    """Captions -> what the generator reads of them (its frozen reader's word states, sentence, mask)."""
    return g.read_text(tokenizer.encode(captions, g.text_len).ids.to(g.first_weight.device))


@torch.no_grad()
def _ema_update(ema: GAN, g: GAN, decay: float) -> None:
    for pe, pg in zip(ema.parameters(), g.parameters()):
        if pg.requires_grad:
            pe.lerp_(pg, 1 - decay)

"""Distillation data for a one-step GAN: a dalle's images as a fixed function of (caption, noise).

A dalle draws token i from p(. | caption, tokens before i). Drawn by sampling.pick_quantile with a uniform u_i per
position (the codes in descending order of probability, the one whose cumulative share passes u_i), its image is
a deterministic map of the caption and u = (u_1 .. u_N): the route of one-step distillation of autoregressive
image models (Distilled Decoding, Liu et al. 2025, maps noise to tokens the same way, through a flow). A student
that reads the caption and the same noise in one pass can then be trained as a classifier on the teacher's
tokens, position by position, instead of chasing the teacher's likelihood (which, session 17 found, pulls a
one-step student onto the dalle's likeliest grid: an empty picture). The noise is stored as z ~ N(0, I) with
u = Phi(z), so that the student reads the Gaussian noise a `gan` samples with.

    write_distill_set(teacher, folder, samples):
        for each shard of SHARD rows:  captions from the training data's stream, z ~ N(0, I) (n, N) from the
                                       shard's own seed, tokens = teacher.sample(ids, quantiles=Phi(z))
                                       -> folder/shard_00000.safetensors {z (n, N) float32, tokens (n, N) int16},
                                          the captions in its metadata
        each shard is written atomically, so a killed run leaves whole shards only and a rerun continues from them
    DistillSet(folder).batch(step, b) -> captions, z (b, N), tokens (b, N) long: a fresh permutation each epoch,
        addressed by the step (a resumed run reads what an uninterrupted one would have)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from tqdm import tqdm

from ..data.config import DataConfig
from ..data.training import TrainingData, epoch_order
from ..errors import WordbrushError
from ..generators.dalle import DALLE
from ..pipeline import TextToImagePipeline
from ..utils.atomic import write_bytes
from ..utils.hardware import cpu_has_fast_bf16

SHARD = 4096  # rows a shard holds
SEED_OFFSET = 7_000_000  # the shards' noise and the captions' stream steer clear of the GAN's own seeds


@dataclass
class DistillBatch:
    captions: list[str]
    z: torch.Tensor  # (b, N) float32: the noise, u = Phi(z) for the teacher
    tokens: torch.Tensor  # (b, N) long: the teacher's code ids


def shard_path(folder: Path, k: int) -> Path:
    return folder / f"shard_{k:05d}.safetensors"


def uniforms(z: torch.Tensor) -> torch.Tensor:
    """z ~ N(0, I) -> u = Phi(z) in [0, 1): the quantile each position's token is picked at."""
    return (0.5 * (1 + torch.erf(z / 2**0.5))).clamp(0.0, 1.0 - 1e-7)


@torch.no_grad()
def write_distill_set(teacher: str, folder: str | Path, samples: int, data: DataConfig | None = None,
                      batch: int = 64, threads: int = 0, compile: bool = True, progress: bool = True) -> dict:
    """The first ceil(samples / SHARD) shards of a distillation set in `folder`, skipping those already there.
    teacher: a dalle pipeline (a built-in name or a folder), drawn with its saved sampling settings (guidance,
    temperature), one candidate, in bfloat16 where the CPU has it natively and compiled (compile=False: eager).
    data: where the captions come from (default: the shapes train split)."""
    if threads:
        torch.set_num_threads(threads)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipe = TextToImagePipeline.from_pretrained(teacher)
    if not isinstance(pipe.generator, DALLE):
        raise WordbrushError(f"teacher {teacher!r} is a {pipe.generator.kind!r} model: distillation needs a dalle")
    dtype = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    pipe.to(dtype=dtype).compile(compile)
    dalle: DALLE = pipe.generator
    options = pipe.sampling
    N = dalle.cfg.image_len
    stream = TrainingData(data or DataConfig(size=pipe.vae.cfg.image_size, split="train"))  # a dalle has a VAE
    shards = -(-samples // SHARD)
    todo = [k for k in range(shards) if not shard_path(folder, k).exists()]
    bar = tqdm(total=len(todo) * SHARD, desc=f"distill {teacher}", unit="img", disable=not progress)
    for k in todo:
        gen = torch.Generator().manual_seed(SEED_OFFSET + k)
        z = torch.randn(SHARD, N, generator=gen)
        captions = stream.batch(SEED_OFFSET // SHARD + k, SHARD).captions
        tokens = torch.empty(SHARD, N, dtype=torch.int16)
        for s in range(0, SHARD, batch):
            ids = pipe.tokenizer.encode(captions[s : s + batch], dalle.cfg.text_len).ids
            rngs = [torch.Generator() for _ in range(len(ids))]  # unused: the quantiles are the randomness
            tokens[s : s + batch] = dalle.sample(ids, rngs, options, quantiles=uniforms(z[s : s + batch])).short()
            bar.update(len(ids))
        meta = {"teacher": teacher, "captions": json.dumps(captions), "sampling": json.dumps(vars(options)),
                "dtype": str(dtype)}
        write_bytes(shard_path(folder, k), save({"z": z.contiguous(), "tokens": tokens}, metadata=meta))
    bar.close()
    return {"folder": str(folder), "shards": shards, "written": len(todo), "samples": shards * SHARD}


class DistillSet:
    """A distillation set written by write_distill_set, held in memory (int16 tokens: 64 positions x 2 bytes a row)."""

    def __init__(self, folder: str | Path, seed: int = 0):
        folder = Path(folder)
        paths = sorted(folder.glob("shard_*.safetensors")) if folder.is_dir() else []
        if not paths:
            raise WordbrushError(f"{folder}: no distillation shards (shard_*.safetensors); write them first with "
                                 f"`wordbrush data distill --teacher shapes --out {folder}`")
        zs, toks, self.captions = [], [], []
        for p in paths:
            try:
                part = load_file(p)
                with safe_open(str(p), "pt") as f:  # the header's metadata: the captions
                    captions = json.loads((f.metadata() or {})["captions"])
            except (SafetensorError, OSError, KeyError, ValueError) as e:
                raise WordbrushError(f"{p}: not a distillation shard ({e})") from None
            if part["z"].shape != part["tokens"].shape or len(captions) != len(part["z"]):
                raise WordbrushError(f"{p}: z, tokens and captions disagree in size")
            zs.append(part["z"])
            toks.append(part["tokens"])
            self.captions += captions
        self.z, self.tokens = torch.cat(zs), torch.cat(toks)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.z)

    @property
    def image_len(self) -> int:
        return self.z.shape[1]

    def batch(self, step: int, b: int) -> DistillBatch:
        """Rows step*b .. step*b+b-1 of the epochs' permutations (each epoch its own, from the seed)."""
        index, _ = epoch_order(self.seed, len(self), step, b)
        t = torch.from_numpy(index)
        return DistillBatch([self.captions[i] for i in index], self.z[t], self.tokens[t].long())

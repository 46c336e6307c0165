"""What is timed, as Cases (timing.py):

  sample  pipe.draw() of `batch` prompts -> PIL images, KV cache on: text encoding, sampling, VAE decode
          (bfloat16: the generator's and the VAE decoder's weights in bf16).
          Sampling options are the defaults (temperature 1, no top-k / top-p) with the guidance scale set;
          guidance != 1 runs the conditional and unconditional rows in one batch.
  train   `train_steps` AdamW steps of the transformer (a copy; the pipeline is left as it was) on random text
          and image token ids: forward, loss, backward, step. No data loading, no VAE, no clipping.
          With compile, sampling runs through pipe.compile() and training through a torch.compile'd forward
          (and its backward); the warm-up run pays the compile.
  ref     the same work in dalle-pytorch (reference.py), each placed right after the case of ours it is
          compared with.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch

from ..nn.compiled import compiled_forward
from . import flops
from .config import BenchConfig
from .timing import Case, timed
from .memory import Memory
from .reference import ReferenceProbe

PROMPTS = ("a red circle to the left of a blue square", "two green triangles", "a small white cross",
           "an orange diamond above a purple circle")
TRAIN_LR, TRAIN_WEIGHT_DECAY = 1e-3, 0.01  # the dalle stage's defaults (train/tokens.py DalleTrainConfig)


def _autocast(device: torch.device, dtype: str):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()


def sample_case(pipe, batch: int, guidance: float, dtype: str, memory: Memory) -> Case:
    from ..generators.options import SampleOptions

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    options = SampleOptions(guidance_scale=guidance)

    def fn() -> None:  # the pipeline's own weights set the dtype (see build_cases)
        pipe.draw(prompts, list(range(batch)), options, batch_size=batch, use_cache=True)

    info = {"dtype": dtype, "guidance": guidance, "batch": batch}
    per_image = None
    if flops.counted(pipe.generator):
        per_image = flops.sample_flops(pipe.generator.cfg, guided=guidance != 1.0).total
        info["gflop_per_image"] = per_image / 1e9
    return Case(f"sample/{dtype}/g{guidance:g}/b{batch}", timed(fn, pipe.device, memory), batch, info,
                flops=None if per_image is None else per_image * batch)


def train_case(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: int, steps: int, dtype: str,
               memory: Memory, seed: int = 0, compile: bool = False) -> Case:
    from ..text.tokenizer import PAD_ID

    c, device = model.cfg, next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(PAD_ID + 1, c.text_vocab, (batch, c.text_len), generator=g).to(device)  # (B, L), no PAD
    image = torch.randint(0, c.image_vocab, (batch, c.image_len), generator=g).to(device)  # (B, N)

    forward = compiled_forward(model) if compile else model  # the training stages' own compiled form

    def fn() -> None:
        model.train()
        for _ in range(steps):
            with _autocast(device, dtype):
                loss = forward(text, image).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    info = {"dtype": dtype, "batch": batch, "steps": steps, "tokens_per_sample": c.text_len + c.image_len,
            "compiled": compile}
    per_sample = None
    if flops.counted(model):
        per_sample = flops.train_flops(c).total
        info["gflop_per_sample"] = per_sample / 1e9
    return Case(f"train/{dtype}/b{batch}", timed(fn, device, memory), steps * batch, info,
                flops=None if per_sample is None else per_sample * steps * batch)


def build_cases(cfg: BenchConfig, pipe, memory: Memory,
                probe: ReferenceProbe | None) -> tuple[list[Case], list[tuple[str, str, str]]]:
    """Our cases, each reference case placed right after the one of ours it is compared with; and the pairs
    compared, as (description, our key, their key)."""
    cases: list[Case] = []
    pairs: list[tuple[str, str, str]] = []
    rb = cfg.reference_batch
    if cfg.train:
        model = copy.deepcopy(pipe.generator)
        # One parameter group: training's groups (train.common.param_groups) only spare norms, biases and positions the
        # decay, a multiply per element of a few thousand parameters; bench sits beside train, not above it.
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=TRAIN_LR, betas=(0.9, 0.95),
                                weight_decay=TRAIN_WEIGHT_DECAY)
        for dtype in cfg.dtypes:
            ours = train_case(model, opt, cfg.train_batch, cfg.train_steps, dtype, memory, cfg.seed, cfg.compile)
            cases.append(ours)
            if probe is not None:
                key = f"ref/train/{dtype}/b{cfg.train_batch}"
                cases.append(probe.case(key, {"op": "train", "batch": cfg.train_batch, "steps": cfg.train_steps,
                                              "dtype": dtype}, cfg.train_steps * cfg.train_batch,
                                        {"dtype": dtype, "batch": cfg.train_batch}))
                pairs.append((f"training samples/s, batch {cfg.train_batch}, {dtype}", ours.key, key))
    if cfg.sample:
        combos = {(b, g) for b in cfg.batch_sizes for g in cfg.guidance_scales}
        if probe is not None:
            combos |= {(rb, 1.0), (rb, 3.0)}  # what the comparison needs
        made: set[str] = set()
        for dtype in cfg.dtypes:
            # bfloat16 sampling runs a copy of the pipeline with bf16 weights, generator and VAE decoder
            # (pipe.to(dtype=..., decoder_dtype=...)), as a user would; the reference's bf16 autocast covers both too
            low = getattr(torch, dtype)
            p = pipe if dtype == "float32" else copy.deepcopy(pipe).to(dtype=low, decoder_dtype=low)
            if cfg.compile:  # on a copy: the caller's pipeline is left as it was
                p = (copy.deepcopy(p) if p is pipe else p).compile()
            for b, gs in sorted(combos):
                ours = sample_case(p, b, gs, dtype, memory)
                cases.append(ours)
                if probe is None or b != rb or gs not in (1.0, 3.0):
                    continue
                paths = (("default", "its default path (cond_scale=1: cache skipped)"),
                         ("cached", "its cached path (cond_scale=1.0001: 2 passes/token)"))
                if gs != 1.0:  # the same work as its cached path: a conditional and an unconditional row per image
                    paths = (("cached", "its cached path (both run conditional + unconditional rows)"),)
                # the reference at the same precision (bf16: its generate_images under bf16 autocast), and bf16
                # also against its float32, the precision it is usually run at
                for theirs in dict.fromkeys((dtype, "float32")):
                    for path, label in paths:
                        key = f"ref/sample/{path}/{theirs}/b{rb}"
                        if key not in made:
                            made.add(key)
                            cases.append(probe.case(key, {"op": "sample", "batch": rb, "path": path, "dtype": theirs},
                                                    rb, {"path": path, "batch": rb, "dtype": theirs}))
                        ours_label = f"ours {dtype}, guidance {'off' if gs == 1.0 else f'{gs:g}'}"
                        their_label = label.replace("its ", f"its {theirs} " if theirs == "float32" else
                                                    "its bf16-autocast ", 1)
                        pairs.append((f"sampling images/s, batch {rb}: {ours_label} vs {their_label}", ours.key, key))
    return cases, pairs

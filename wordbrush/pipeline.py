"""TextToImagePipeline: the one validated entry point that turns prompts into images.

    pipe = TextToImagePipeline.from_pretrained("shapes")       # a built-in name or a saved folder
    out = pipe(["a red circle", "two blue squares"], num_images_per_prompt=4, seed=0)
    out.images                                                   # list[PIL.Image.Image], prompt-major
    pipe.save_pretrained("my-model/")

A saved pipeline is a folder: config.json (kind "pipeline", which generator, the generator's and the VAE's configs,
the default sampling options, the wordbrush version) + GENERATOR.safetensors (dalle, maskgit, gan, ...) + for a
generator that writes codes vae.safetensors + tokenizer.json, and optionally clip/ (a CLIP with its own tokenizer,
wordbrush/clip.py) to rerank candidates and rewriter/ (text/rewriter.py) to read everyday words as the model's
captions. The pipeline knows generators only through their contract
(generators/base.py) and the registry (generators/registry.py): it has no branch on a family.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import (
    BUILTIN,
    build_part,
    builtin_path,
    check_image_size,
    config_from,
    model_folder,
    model_header,
    part_path,
    read_header,
    save_part,
    unwrap,
    write_json,
)
from .clip import CLIPScorer
from .config import to_dict
from .errors import CheckpointError, ConfigError, WordbrushError
from .generators import registry
from .generators.base import ImageGenerator
from .generators.options import SampleOptions
from .generators.sampling import best_of, candidate_rng
from .image.vae import DiscreteVAE, VAEConfig
from .text import prompts as reading
from .text.rewriter import REWRITER_FOLDER, PromptRewriter
from .text.tokenizer import TextTokenizer
from .utils.hardware import cpu_has_fast_bf16
from .utils.images import to_pil, to_tensor

__all__ = ["BUILTIN", "PipelineOutput", "TextToImagePipeline", "builtin_path", "model_folder"]
MAX_IMAGES = 10_000  # images one call may ask for (prompts x num_images_per_prompt)
CLIP_FOLDER = "clip"


@dataclass
class PipelineOutput:
    images: list[Image.Image]  # prompt-major: all images of prompt 0, then prompt 1, ...
    prompts: list[str]  # the prompt of each image
    seeds: list[int]  # the seed of each image
    tokens: torch.Tensor  # (n_images, N) image code ids; (n_images, 0) from a gan, which has none
    warnings: list[str] = field(default_factory=list)
    revised_prompts: list[str] = field(default_factory=list)  # what the model read for each image (the prompt,
    # or the caption its rewriter read it as)


class TextToImagePipeline:
    def __init__(self, tokenizer: TextTokenizer, generator: ImageGenerator, vae: DiscreteVAE | None = None,
                 sampling: SampleOptions | None = None, clip: CLIPScorer | None = None,
                 rewriter: PromptRewriter | None = None, critic: torch.nn.Module | None = None):
        """A generator that writes codes (output "codes": dalle, maskgit) needs the VAE whose codes it writes; one
        that draws pixels (the gan) takes none. clip: a CLIP to rerank candidates with (default: the one inside
        the generator, if it carries one). sampling: the defaults of __call__ (default: the family's). rewriter:
        reads a prompt in a person's words as the nearest of the model's captions (text/rewriter.py). critic: the
        generator's critic (a gan's trained discriminator: its registry entry's critic class), to rerank by."""
        if generator.output == "codes":
            if vae is None:
                raise ConfigError(f"a {generator.kind} generator needs the VAE whose codes it writes")
            if generator.image_vocab != vae.num_codes or generator.image_grid != vae.grid_size:
                raise ConfigError(f"generator expects {generator.image_vocab} codes on a {generator.image_grid}² "
                                  f"grid, the VAE has {vae.num_codes} on {vae.grid_size}²")
            self.image_size = vae.cfg.image_size
        else:
            if vae is not None:
                raise ConfigError(f"a {generator.kind} generator draws pixels itself; its pipeline takes no VAE")
            self.image_size = generator.image_size
        if tokenizer.vocab_size > generator.text_vocab:
            raise ConfigError(f"tokenizer has {tokenizer.vocab_size} tokens, the generator embeds "
                              f"{generator.text_vocab}")
        own = generator.text_image_model()
        clip = clip or (CLIPScorer(own, tokenizer) if own is not None else None)
        if clip is not None and clip.model.cfg.image_size != self.image_size:
            raise ConfigError(f"the CLIP reads {clip.model.cfg.image_size}px images, the model draws "
                              f"{self.image_size}px")
        self.text_len = generator.text_len
        self.tokenizer, self.generator, self.vae = tokenizer, generator.eval(), vae.eval() if vae is not None else None
        self.clip = clip  # optional: reranks candidates when sampling.rerank == "clip"
        self.rewriter = rewriter  # optional: rewrites prompts when sampling.rewrite
        if critic is not None and generator.critic_file is None:
            raise ConfigError(f"a {generator.kind} generator has no critic to rank candidates with")
        self.critic = critic.eval() if critic is not None else None  # optional: reranks by "discriminator"
        self.sampling = sampling or replace(generator.default_sampling)  # defaults of __call__, saved with the model
        self._check_options(self.sampling)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
           decoder_dtype: torch.dtype | None = None) -> "TextToImagePipeline":
        """Move the parts to device; dtype (e.g. torch.bfloat16) converts the generator's weights, which makes
        sampling faster where the hardware multiplies bf16 quickly (about 1.5x on this project's CPUs; logits
        and the CPU KV cache stay float32, see docs/benchmarks.md). The VAE stays float32 unless decoder_dtype
        converts its decoder too (bf16: about 1.9x faster decoding on these CPUs, pixels within a few levels of
        255 of float32's; the tokens do not change)."""
        if device is not None:
            for part in (self.generator, self.vae, self.clip, self.critic):
                if part is not None:
                    part.to(device)
        for d in (dtype, decoder_dtype):
            if d is not None and (not isinstance(d, torch.dtype) or not d.is_floating_point):
                raise WordbrushError(f"dtype must be a floating-point torch dtype, got {d}")
        if decoder_dtype is not None:
            if self.vae is None:
                raise WordbrushError(f"a {self.generator.kind} generator draws pixels itself: it has no VAE decoder")
            self.vae.decoder.to(decoder_dtype)
        if dtype is not None:
            self.generator.to(dtype)
            if self.critic is not None:
                self.critic.to(dtype)
        if torch.bfloat16 in (dtype, decoder_dtype):
            if self.device.type == "cpu" and not cpu_has_fast_bf16():
                warnings.warn("this CPU has no native bfloat16 (AVX512-BF16/AMX): sampling with bfloat16 weights "
                              "will be much slower than float32 here", stacklevel=2)
        return self

    def compile(self, enabled: bool = True) -> "TextToImagePipeline":
        """Sample through compiled steps from now on (ImageGenerator.compile_sampling): each batch size (rounded up
        to a power of two) and dtype compiles once per process on its first draw, seconds to a minute; a dalle's
        decoding step on the CPU is compiled ahead of time (AOTInductor, weights frozen in and recompiled when they
        change: nn/compiled.py), the other steps through torch.compile. float32 tokens are those of the eager path
        (tests/test_compiled.py). The VAE's decoding of the codes is compiled too (DiscreteVAE.compile_decoding).
        Where no compiler works, one warning and eager sampling."""
        self.generator.compile_sampling(enabled)
        if self.vae is not None:
            self.vae.compile_decoding(enabled)
        return self

    # ------------------------------------------------------------------------------------------ save / load

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        generator = unwrap(self.generator)
        kind = generator.kind
        header = model_header("pipeline", {"generator": kind, kind: to_dict(generator.cfg),
                                           "vae": to_dict(unwrap(self.vae).cfg) if self.vae is not None else None,
                                           "sampling": to_dict(self.sampling)})
        write_json(folder / "config.json", header)
        save_part(generator, folder / f"{kind}.safetensors")
        if self.vae is not None:
            save_part(self.vae, folder / "vae.safetensors")
        self.tokenizer.save(folder)
        if self.clip is not None and self.clip.model is not generator.text_image_model():
            self.clip.save_pretrained(folder / CLIP_FOLDER)
        if self.rewriter is not None:
            self.rewriter.save_pretrained(folder / REWRITER_FOLDER)
        if self.critic is not None:
            save_part(self.critic, folder / generator.critic_file)
        return folder

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> "TextToImagePipeline":
        """A built-in model by name, or a saved folder. A folder is untrusted input: every fault in it (a malformed
        config.json, sizes its weights do not have, a part that links out of the folder, NaN weights) is one
        CheckpointError line, found before anything large is allocated (checkpoint.py)."""
        folder = model_folder(name_or_path)
        found, cfg = read_header(folder, "pipeline")
        if found != "pipeline":
            raise CheckpointError(f"{folder} holds a {found!r:.60} model, not a text-to-image pipeline")
        kind = cfg.get("generator", "dalle")
        if not isinstance(kind, str) or kind not in registry.FAMILIES:
            raise CheckpointError(f"{folder}/config.json: unknown generator {kind!r:.60} "
                                  f"(known: {', '.join(registry.FAMILIES)})")
        known = ("generator", kind, "vae", "sampling")
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise CheckpointError(f"{folder}/config.json: config: unknown key {unknown[0]!r:.60} "
                                  f"(known: {', '.join(known)})")
        model_cls = registry.get(kind).model_class()
        gcfg = config_from(folder, cfg.get(kind, {}), model_cls.config_class, kind)
        sampling = config_from(folder, cfg.get("sampling", {}), SampleOptions, "sampling")
        vae = None
        if model_cls.output == "codes":
            vcfg = config_from(folder, cfg.get("vae", {}), VAEConfig, "vae")
            check_image_size(folder, vcfg.image_size, "vae")
        elif cfg.get("vae") is not None:
            raise CheckpointError(f"{folder}/config.json: config: a {kind} draws pixels and takes no vae")
        generator = build_part(lambda: model_cls(gcfg), part_path(folder, f"{kind}.safetensors", kind), kind)
        if model_cls.output == "codes":
            vae = build_part(lambda: DiscreteVAE(vcfg), part_path(folder, "vae.safetensors", "vae"), "vae")
        clip = None
        if os.path.lexists(folder / CLIP_FOLDER):  # a link counts too: part_path refuses one that leads out
            clip = CLIPScorer.from_pretrained(part_path(folder, CLIP_FOLDER, "clip", kind="dir"))
        rewriter = None
        if os.path.lexists(folder / REWRITER_FOLDER):
            rewriter = PromptRewriter.from_pretrained(part_path(folder, REWRITER_FOLDER, "rewriter", kind="dir"))
        critic, critic_file, critic_cls = None, model_cls.critic_file, registry.get(kind).critic
        if critic_file is not None and critic_cls and os.path.lexists(folder / critic_file):
            critic = build_part(lambda: registry.load(critic_cls)(gcfg), part_path(folder, critic_file, "critic"),
                                "critic")
        try:
            pipe = cls(TextTokenizer.load(folder), generator, vae, sampling, clip, rewriter, critic)
        except ValueError as e:
            raise CheckpointError(f"{folder}: {e}") from None
        return pipe.to(device, dtype)

    @classmethod
    def from_config(cls, name: str, seed: int = 0, generator: str = "dalle") -> "TextToImagePipeline":
        """An untrained pipeline at a named reference config, e.g. "r1" (reference.py), so that speed can be
        measured through the public API. generator: a family that writes codes (dalle, maskgit)."""
        from .reference import reference_parts

        return cls(*reference_parts(name, seed, generator))

    # ---------------------------------------------------------------------------------------------- call

    def check_prompts(self, prompts: str | list[str]) -> tuple[list[str], list[str]]:
        """Validate prompts; return them as a list plus the warnings a user should see (text/prompts.py)."""
        return reading.check_prompts(self.tokenizer, self.text_len, prompts)

    def __call__(self, prompts: str | list[str], num_images_per_prompt: int = 1, seed: int = 0,
                 guidance_scale: float | None = None, temperature: float | None = None, top_k: int | None = None,
                 top_p: float | None = None, num_inference_steps: int | None = None, candidates: int | None = None,
                 rerank: str | None = None, rewrite: bool | None = None,
                 prime_images: list[Image.Image] | None = None, prime_rows: int = 0, batch_size: int = 64, use_cache: bool = True,
                 callback: Callable[[int, list[Image.Image]], None] | None = None) -> PipelineOutput:
        """Draw num_images_per_prompt images for each prompt. Image k (prompt-major) uses seed + k: the images of
        prompt p get seeds seed + p * num_images_per_prompt, ... (so with 4 per prompt, the third prompt's are
        seed + 8 to seed + 11), and an image depends on its seed and prompt alone, not on its batch.

        prime_images / prime_rows: keep the top prime_rows token rows of the given image (one per prompt) and
        let the model complete the rest. num_inference_steps: parallel decoding steps (maskgit; dalle always
        takes one step per image token). candidates: draw this many per image and keep the best (costs candidates
        times the sampling); rerank: by what, "likelihood" (the generator's log p(image | prompt)), "clip"
        (similarity to the prompt in the pipeline's CLIP, DALL·E's reranking) or "clip+likelihood" (both, each
        standardised over the candidates). rewrite: read a prompt in a person's words as the nearest of the
        model's own captions, where the model has a rewriter (`revise`). Sampling options left as None
        take the model's saved defaults (`pipe.sampling`, stored in config.json). callback(first, images) is
        called after each batch with the index of its first image, so that long runs can save as they go.
        """
        options = self.sampling_options(guidance_scale=guidance_scale, temperature=temperature, top_k=top_k,
                                        top_p=top_p, steps=num_inference_steps, candidates=candidates,
                                        rerank=rerank, rewrite=rewrite)
        prompts, drawn, notes, revisions = self.read_prompts(prompts, options)
        notes = notes + revisions
        for note in notes:
            warnings.warn(note, stacklevel=2)
        if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, int) \
                or num_images_per_prompt < 1:
            raise WordbrushError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        if len(prompts) * num_images_per_prompt > MAX_IMAGES:
            raise WordbrushError(f"{len(prompts)} prompts x {num_images_per_prompt} images is more than the "
                                 f"{MAX_IMAGES:,} images one call draws; split the work into several calls")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63 - MAX_IMAGES:
            raise WordbrushError(f"seed must be a non-negative integer below 2**63, got {seed!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise WordbrushError(f"batch_size must be a positive integer, got {batch_size!r}")
        prime = None
        if prime_images is not None:
            prime = self._prime(prime_images, prime_rows, len(prompts)).repeat_interleave(num_images_per_prompt, 0)
        all_prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        all_drawn = [p for p in drawn for _ in range(num_images_per_prompt)]
        seeds = [seed + k for k in range(len(all_prompts))]
        images, tokens = self.draw(all_drawn, seeds, options, prime=prime, batch_size=batch_size,
                                   use_cache=use_cache, callback=callback)
        return PipelineOutput(images=images, prompts=all_prompts, seeds=seeds, tokens=tokens, warnings=notes,
                              revised_prompts=all_drawn)

    def read_prompts(self, prompts: str | list[str], options: SampleOptions | None = None
                     ) -> tuple[list[str], list[str], list[str], list[str]]:
        """check_prompts, then revise (text/prompts.py): the prompts as a list, what the model draws for each, the
        warnings about what it draws (words it never saw, truncation) and a note for each prompt rewritten."""
        rewriter = self.rewriter if (options or self.sampling).rewrite else None
        return reading.read_prompts(self.tokenizer, self.text_len, rewriter, prompts)

    def revise(self, prompts: list[str], options: SampleOptions | None = None) -> tuple[list[str], list[str]]:
        """What the model draws for each validated prompt, and a note for each one rewritten: with a rewriter and
        options.rewrite, a prompt in a person's words becomes the nearest of the model's own captions when it is
        close enough (text/rewriter.py); else every prompt is drawn as typed."""
        return reading.revise(self.rewriter if (options or self.sampling).rewrite else None, prompts)

    def _prime(self, images: list[Image.Image], rows: int, n_prompts: int) -> torch.Tensor:
        """The first `rows` token rows of each image: (P, rows * grid) code ids."""
        if not self.generator.supports_priming:
            raise WordbrushError(f"prime_images needs a generator that completes images; a {self.generator.kind} "
                                 "draws whole images")
        if len(images) != n_prompts:
            raise WordbrushError(f"prime_images needs one image per prompt ({n_prompts}), got {len(images)}")
        grid = self.generator.image_grid
        if isinstance(rows, bool) or not isinstance(rows, int) or not 0 < rows < grid:
            raise WordbrushError(f"prime_rows must be in 1..{grid - 1}, got {rows!r}")
        return self.encode_images(images)[:, : rows * grid]  # (P, rows*grid)

    def sampling_options(self, **overrides) -> SampleOptions:
        """The model's saved sampling defaults with the overrides that are not None, validated."""
        options = replace(self.sampling, **{k: v for k, v in overrides.items() if v is not None})
        self._check_options(options)
        return options

    def _check_options(self, options: SampleOptions) -> None:
        self.generator.check_options(options)
        if (options.candidates > 1 and "likelihood" in options.rerank.split("+")
                and not self.generator.supports_likelihood):
            raise WordbrushError(f"a {self.generator.kind} generator has no likelihood to rerank candidates by; "
                                 "use rerank='clip'")
        if (options.candidates > 1 and "discriminator" in options.rerank.split("+")
                and self.critic is None):
            raise WordbrushError(f"rerank={options.rerank!r} needs a pipeline with the generator's critic (this model "
                                 f"has none: a gan keeps its discriminator as {self.generator.critic_file})"
                                 if self.generator.critic_file else
                                 f"a {self.generator.kind} generator has no discriminator to rerank candidates by; "
                                 "use rerank='clip'")
        if "clip" in options.rerank.split("+") and self.clip is None:
            raise WordbrushError(f"rerank={options.rerank!r} needs a pipeline with a CLIP (this model has none; "
                                 "train one with `wordbrush train clip` and set pipe.clip)")

    def draw(self, prompts: list[str], seeds: list[int], options: SampleOptions | None = None,
             prime: torch.Tensor | None = None, batch_size: int = 64, use_cache: bool = True,
             callback: Callable[[int, list[Image.Image]], None] | None = None
             ) -> tuple[list[Image.Image], torch.Tensor]:
        """One image per (prompt, seed) pair, no validation: the loop under __call__, for benchmarks and servers.

        With options.candidates = C > 1, each image is the best of C drawn for its prompt: the likeliest by the
        generator's log_likelihood given the prompt (rerank "likelihood"), or the closest to the prompt in the
        CLIP's embedding space (rerank "clip", DALL·E's reranking), or the most real to the generator's critic
        (rerank "discriminator": a gan's D), or by the CLIP and one of the others ("clip+likelihood",
        "clip+discriminator": each score standardised over the image's C candidates, then summed); candidate 0 is
        what C = 1 would draw. A batch
        holds batch_size rows, candidates included. Returns the images and their code ids, (n, N) ((n, 0) from
        a generator that writes pixels).
        """
        options = options or self.sampling
        C = options.candidates
        codes = self.generator.output == "codes"
        per_batch = max(1, batch_size // C)  # images per batch

        def decode(t: torch.Tensor) -> torch.Tensor:  # (n, N) codes -> (n, 3, H, W), as the sampler pads its rows
            return self.vae.decode_batch(t, self.generator.compiled_rows(len(t)))

        images, tokens = [], []
        with torch.no_grad():
            text = self.tokenizer.encode(prompts, self.text_len).ids.to(self.device)  # (n, L)
            for s in range(0, len(prompts), per_batch):
                rows = text[s : s + per_batch].repeat_interleave(C, 0)  # (b*C, L)
                rngs = [candidate_rng(x, c) for x in seeds[s : s + per_batch] for c in range(C)]
                p = None if prime is None else prime[s : s + per_batch].repeat_interleave(C, 0)
                judges = options.rerank.split("+") if C > 1 else []  # "clip" and "likelihood" or "discriminator"
                if "discriminator" in judges:
                    out, judged = self.generator.sample_judged(rows, rngs, options, self.critic)  # (b*C, ...), (b*C,)
                else:
                    out = self.generator.sample(rows, rngs, options, prime=p, use_cache=use_cache)
                if codes:  # out: (b*C, N) code ids; decoded now unless only the likeliest will be kept
                    t = out
                    pixels = decode(t) if C == 1 or "clip" in judges else None  # (b*C, 3, H, W)
                else:  # out: (b*C, 3, H, W) pixels, no codes
                    t, pixels = torch.zeros(len(rows), 0, dtype=torch.long, device=out.device), out
                if C > 1:
                    scores = []  # each (b*C,)
                    if "clip" in judges:
                        scores.append(self.clip.similarity(pixels, [q for q in prompts[s : s + per_batch]
                                                                    for _ in range(C)]))
                    if "likelihood" in judges:
                        scores.append(self.generator.log_likelihood(rows, t))
                    if "discriminator" in judges:
                        scores.append(judged)
                    pick = best_of(scores, C).to(t.device)  # (b,) rows of the kept candidates
                    t = t[pick]
                    pixels = pixels[pick.to(pixels.device)] if pixels is not None else decode(t)
                batch = to_pil(pixels)
                if callback is not None:
                    callback(len(images), batch)
                images += batch
                tokens.append(t.cpu())
        return images, torch.cat(tokens)

    def encode_images(self, images: list[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, N) code ids (converted to RGB and resized to the model's size)."""
        if self.vae is None:
            raise WordbrushError(f"a {self.generator.kind} generator has no image tokens to encode images into")
        size = self.vae.cfg.image_size
        arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC)) for im in images])
        with torch.no_grad():
            return self.vae.encode(to_tensor(arr).to(self.device)).flatten(1)

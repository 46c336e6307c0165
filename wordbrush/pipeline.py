"""TextToImagePipeline: the one validated entry point that turns prompts into images.

    pipe = TextToImagePipeline.from_pretrained("shapes")       # a built-in name or a saved folder
    out = pipe(["a red circle", "two blue squares"], num_images_per_prompt=4, seed=0)
    out.images                                                   # list[PIL.Image.Image], prompt-major
    pipe.save_pretrained("my-model/")

A saved pipeline is a folder: config.json (kind "pipeline", which generator, the generator's and the VAE's configs,
the default sampling options, the wordbrush version) + GENERATOR.safetensors (dalle or maskgit) + vae.safetensors
+ tokenizer.json, and optionally clip/ (a CLIP with its own tokenizer, wordbrush/clip.py) to rerank candidates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_part, model_header, read_json, save_part, unwrap, write_json
from .clip import CLIPScorer
from .config import DalleConfig, GANConfig, MaskGITConfig, VAEConfig, from_dict, to_dict
from .errors import CheckpointError, ConfigError, WordbrushError
from .generators.common import SampleOptions
from .generators.dalle import DALLE
from .generators.gan import GAN
from .generators.maskgit import MaskGIT
from .image.vae import DiscreteVAE
from .text.tokenizer import TextTokenizer, clean_prompt
from .utils.hardware import cpu_has_fast_bf16
from .utils.images import to_pil, to_tensor

BUILTIN = ("shapes", "shapes-minilm", "emoji")  # shapes-minilm needs the minilm extra (pip install wordbrush[minilm])
Generator = DALLE | MaskGIT | GAN
GENERATORS: dict[str, tuple[type[Generator], type]] = {"dalle": (DALLE, DalleConfig), "maskgit": (MaskGIT, MaskGITConfig),
                                                       "gan": (GAN, GANConfig)}
TOKEN_GENERATORS = ("dalle", "maskgit")  # those that write a VAE's codes
ANY_VOCAB = 2**31  # a gan has no image vocabulary to bound top_k by (it ignores top_k)
MAX_PROMPT_CHARS = 100_000  # longer input is refused outright rather than tokenised
CLIP_FOLDER = "clip"


REFERENCE_CONFIGS = {  # name -> (generator shape, VAE config)
    "r1": lambda: (dict(text_vocab=1000, text_len=32, image_vocab=512, image_grid=8, dim=256, depth=6, heads=8),
                   VAEConfig(image_size=64, channels=(64, 128, 256), num_codes=512)),
}


@dataclass
class PipelineOutput:
    images: list[Image.Image]  # prompt-major: all images of prompt 0, then prompt 1, ...
    prompts: list[str]  # the prompt of each image
    seeds: list[int]  # the seed of each image
    tokens: torch.Tensor  # (n_images, N) image code ids; (n_images, 0) from a gan, which has none
    warnings: list[str] = field(default_factory=list)


def candidate_generator(seed: int, candidate: int) -> torch.Generator:
    """The random stream of one candidate of the image with this seed; candidate 0 is seeded with the seed itself."""
    if candidate == 0:
        return torch.Generator().manual_seed(seed)
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, candidate]).generate_state(1, np.uint64)[0]))


def builtin_path(name: str) -> Path:
    return Path(str(resources.files("wordbrush") / "models" / name))


def model_folder(name_or_path: str | Path) -> Path:
    """The folder of a saved model, or of a built-in one by name. A built-in name wins over a same-named folder
    that holds no model (such as a dataset folder called "emoji")."""
    folder, name = Path(name_or_path), str(name_or_path)
    if not (folder / "config.json").is_file() and name in BUILTIN and builtin_path(name).is_dir():
        folder = builtin_path(name)
    if not folder.is_dir():
        raise CheckpointError(f"model {name!r} not found: no model folder or built-in model has that name "
                              f"(built-in: {', '.join(BUILTIN)})")
    return folder


class TextToImagePipeline:
    def __init__(self, tokenizer: TextTokenizer, generator: Generator, vae: DiscreteVAE | None,
                 sampling: SampleOptions | None = None, clip: CLIPScorer | None = None):
        """A token generator (dalle, maskgit) needs the VAE whose codes it writes; a gan draws pixels itself
        (vae None) and reads text through the CLIP inside it, which is also its reranker unless `clip` is given."""
        if isinstance(generator, GAN):
            if vae is not None:
                raise ConfigError("a gan draws pixels itself; its pipeline takes no VAE")
            text_vocab, self.text_len, self.image_size = generator.cfg.clip.text_vocab, generator.cfg.clip.text_len, \
                generator.cfg.image_size
            clip = clip or CLIPScorer(generator.clip, tokenizer)
        else:
            if vae is None:
                raise ConfigError(f"a {generator.kind} generator needs the VAE whose codes it writes")
            if generator.cfg.image_vocab != vae.num_codes or generator.cfg.image_grid != vae.grid_size:
                raise ConfigError(f"generator expects {generator.cfg.image_vocab} codes on a {generator.cfg.image_grid}² "
                                  f"grid, the VAE has {vae.num_codes} on {vae.grid_size}²")
            text_vocab, self.text_len, self.image_size = generator.cfg.text_vocab, generator.cfg.text_len, \
                vae.cfg.image_size
        if tokenizer.vocab_size > text_vocab:
            raise ConfigError(f"tokenizer has {tokenizer.vocab_size} tokens, the generator embeds {text_vocab}")
        if clip is not None and clip.model.cfg.image_size != self.image_size:
            raise ConfigError(f"the CLIP reads {clip.model.cfg.image_size}px images, the model draws {self.image_size}px")
        self.tokenizer, self.generator, self.vae = tokenizer, generator.eval(), vae.eval() if vae is not None else None
        self.clip = clip  # optional: reranks candidates when sampling.rerank == "clip"
        self.sampling = sampling or SampleOptions(guidance_scale=3.0)  # defaults of __call__, saved with the model
        self._check_options(self.sampling)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "TextToImagePipeline":
        """Move the parts to device; dtype (e.g. torch.bfloat16) converts the generator's weights, which makes
        sampling faster where the hardware multiplies bf16 quickly (about 1.5x on this project's CPUs; logits
        and the CPU KV cache stay float32, see docs/benchmarks.md). The VAE stays float32."""
        if device is not None:
            self.generator.to(device)
            if self.vae is not None:
                self.vae.to(device)
            if self.clip is not None:
                self.clip.to(device)
        if dtype is not None:
            if not dtype.is_floating_point:
                raise WordbrushError(f"dtype must be a floating-point type, got {dtype}")
            self.generator.to(dtype)
            if dtype == torch.bfloat16 and self.device.type == "cpu" and not cpu_has_fast_bf16():
                warnings.warn("this CPU has no native bfloat16 (AVX512-BF16/AMX): sampling with bfloat16 weights "
                              "will be much slower than float32 here", stacklevel=2)
        return self

    # ------------------------------------------------------------------------------------------ save / load

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        kind = unwrap(self.generator).kind
        header = model_header("pipeline", {"generator": kind, kind: to_dict(unwrap(self.generator).cfg),
                                           "vae": to_dict(unwrap(self.vae).cfg) if self.vae is not None else None,
                                           "sampling": to_dict(self.sampling)})
        write_json(folder / "config.json", header)
        save_part(self.generator, folder / f"{kind}.safetensors")
        if self.vae is not None:
            save_part(self.vae, folder / "vae.safetensors")
        self.tokenizer.save(folder)
        if self.clip is not None and self.clip.model is not getattr(self.generator, "clip", None):
            self.clip.save_pretrained(folder / CLIP_FOLDER)
        return folder

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> "TextToImagePipeline":
        folder = model_folder(name_or_path)
        header = read_json(folder / "config.json", "pipeline")
        if header.get("kind") != "pipeline":
            raise CheckpointError(f"{folder} holds a {header.get('kind')!r} model, not a text-to-image pipeline")
        cfg = header.get("config", {})
        kind = cfg.get("generator", "dalle")
        if kind not in GENERATORS:
            raise CheckpointError(f"{folder}/config.json: unknown generator {kind!r} (known: {', '.join(GENERATORS)})")
        model_cls, cfg_cls = GENERATORS[kind]
        try:
            gcfg = from_dict(cfg_cls, cfg.get(kind, {}), kind)
            vcfg = None if kind == "gan" else from_dict(VAEConfig, cfg.get("vae", {}), "vae")
            sampling = from_dict(SampleOptions, cfg.get("sampling", {}), "sampling")
        except ConfigError as e:
            raise CheckpointError(f"{folder}/config.json: {e}") from None
        generator, vae = model_cls(gcfg), None if vcfg is None else DiscreteVAE(vcfg)
        load_part(generator, folder / f"{kind}.safetensors", kind)
        if vae is not None:
            load_part(vae, folder / "vae.safetensors", "vae")
        clip = CLIPScorer.from_pretrained(folder / CLIP_FOLDER) if (folder / CLIP_FOLDER).is_dir() else None
        try:
            pipe = cls(TextTokenizer.load(folder), generator, vae, sampling, clip)
        except ValueError as e:
            raise CheckpointError(f"{folder}: {e}") from None
        return pipe.to(device, dtype)

    @classmethod
    def from_config(cls, name: str, seed: int = 0, generator: str = "dalle") -> "TextToImagePipeline":
        """An untrained pipeline at a named reference config, e.g. "r1" (64x64 images, VAE with 3 downsamples
        and 512 codes, transformer width 256, depth 6, 8 heads, 32 text tokens, text vocabulary 1000), so that
        speed can be measured through the public API. generator: "dalle" or "maskgit" (its image trunk has the
        config's depth; its own text encoder has MaskGITConfig's default text_depth on top)."""
        if name not in REFERENCE_CONFIGS:
            raise WordbrushError(f"unknown reference config {name!r} (known: {', '.join(REFERENCE_CONFIGS)})")
        if generator not in TOKEN_GENERATORS:
            raise WordbrushError(f"unknown generator {generator!r} for a reference config "
                                 f"(known: {', '.join(TOKEN_GENERATORS)})")
        shape, vcfg = REFERENCE_CONFIGS[name]()
        model_cls, cfg_cls = GENERATORS[generator]
        dcfg = cfg_cls(**shape)
        from .data.shapes import ShapesDataset

        torch.manual_seed(seed)
        ds = ShapesDataset(2000, size=vcfg.image_size, seed=seed)
        tokenizer = TextTokenizer.train((ds.item_arrays(i)[1] for i in range(len(ds))), dcfg.text_vocab)
        vae = DiscreteVAE(vcfg)
        vae.quantizer.initialised.fill_(True)
        return cls(tokenizer, model_cls(dcfg), vae)

    # ---------------------------------------------------------------------------------------------- call

    def check_prompts(self, prompts: str | list[str]) -> tuple[list[str], list[str]]:
        """Validate prompts; return them as a list plus the warnings a user should see."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise WordbrushError("prompts must be a string or a non-empty list of strings")
        notes = []
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise WordbrushError(f"prompt {i} is a {type(p).__name__}, not a string")
            if len(p) > MAX_PROMPT_CHARS:
                raise WordbrushError(f"prompt {i} has {len(p):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
            if not clean_prompt(p):
                raise WordbrushError(f"prompt {i} is empty (or only whitespace / control characters)")
        enc = self.tokenizer.encode(list(prompts), self.text_len)
        for i, p in enumerate(prompts):
            short = clean_prompt(p)[:40] + ("…" if len(clean_prompt(p)) > 40 else "")
            if enc.truncated[i]:
                notes.append(f"prompt {i} ({short!r}) is longer than {self.text_len} tokens "
                             f"and was truncated")
            if enc.unknown_words[i]:
                words = ", ".join(dict.fromkeys(enc.unknown_words[i]))
                what = ("its text encoder cannot read" if self.tokenizer.pretrained
                        else "the model never saw in training as whole words (it reads them in pieces)")
                notes.append(f"prompt {i} has words {what}: {words}")
        return list(prompts), notes

    @torch.no_grad()
    def __call__(self, prompts: str | list[str], num_images_per_prompt: int = 1, seed: int = 0,
                 guidance_scale: float | None = None, temperature: float | None = None, top_k: int | None = None,
                 top_p: float | None = None, num_inference_steps: int | None = None, candidates: int | None = None,
                 rerank: str | None = None, prime_images: list[Image.Image] | None = None, prime_rows: int = 0,
                 batch_size: int = 64, use_cache: bool = True) -> PipelineOutput:
        """Draw num_images_per_prompt images for each prompt. Image k (prompt-major) uses seed + k.

        prime_images / prime_rows: keep the top prime_rows token rows of the given image (one per prompt) and
        let the model complete the rest. num_inference_steps: parallel decoding steps (maskgit; dalle always
        takes one step per image token). candidates: draw this many per image and keep the best (costs candidates
        times the sampling); rerank: by what, "likelihood" (the generator's log p(image | prompt)) or "clip"
        (similarity to the prompt in the pipeline's CLIP, DALL·E's reranking). Sampling options left as None
        take the model's saved defaults (`pipe.sampling`, stored in config.json).
        """
        prompts, notes = self.check_prompts(prompts)
        for note in notes:
            warnings.warn(note, stacklevel=2)
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise WordbrushError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        if not isinstance(seed, int) or seed < 0:
            raise WordbrushError(f"seed must be a non-negative integer, got {seed!r}")
        options = self.sampling_options(guidance_scale=guidance_scale, temperature=temperature, top_k=top_k,
                                        top_p=top_p, steps=num_inference_steps, candidates=candidates,
                                        rerank=rerank)
        cfg = self.generator.cfg
        prime = None
        if prime_images is not None:
            if self.vae is None:
                raise WordbrushError("prime_images needs a token generator (dalle, maskgit); a gan draws whole images")
            if len(prime_images) != len(prompts):
                raise WordbrushError(f"prime_images needs one image per prompt ({len(prompts)}), got {len(prime_images)}")
            if not 0 < prime_rows < cfg.image_grid:
                raise WordbrushError(f"prime_rows must be in 1..{cfg.image_grid - 1}, got {prime_rows}")
            prime = self.encode_images(prime_images)[:, : prime_rows * cfg.image_grid]  # (P, rows*grid)
            prime = prime.repeat_interleave(num_images_per_prompt, 0)

        all_prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        seeds = [seed + k for k in range(len(all_prompts))]
        images, tokens = self.draw(all_prompts, seeds, options, prime=prime, batch_size=batch_size, use_cache=use_cache)
        return PipelineOutput(images=images, prompts=all_prompts, seeds=seeds, tokens=tokens, warnings=notes)

    def sampling_options(self, **overrides) -> SampleOptions:
        """The model's saved sampling defaults with the overrides that are not None, validated."""
        options = replace(self.sampling, **{k: v for k, v in overrides.items() if v is not None})
        self._check_options(options)
        return options

    def _check_options(self, options: SampleOptions) -> None:
        options.validate(ANY_VOCAB if self.vae is None else self.generator.cfg.image_vocab)
        if options.rerank == "likelihood" and options.candidates > 1 and self.vae is None:
            raise WordbrushError("a gan has no likelihood to rerank candidates by; use rerank='clip'")
        if options.rerank == "clip" and self.clip is None:
            raise WordbrushError("rerank='clip' needs a pipeline with a CLIP (this model has none; "
                                 "train one with `wordbrush train clip` and set pipe.clip)")

    @torch.no_grad()
    def draw(self, prompts: list[str], seeds: list[int], options: SampleOptions | None = None,
             prime: torch.Tensor | None = None, batch_size: int = 64,
             use_cache: bool = True) -> tuple[list[Image.Image], torch.Tensor]:
        """One image per (prompt, seed) pair, no validation: the loop under __call__, for benchmarks.

        With options.candidates = C > 1, each image is the best of C drawn for its prompt: the likeliest by the
        generator's log_likelihood given the prompt (rerank "likelihood"), or the closest to the prompt in the
        CLIP's embedding space (rerank "clip", DALL·E's reranking); candidate 0 is what C = 1 would draw. A batch
        holds batch_size rows, candidates included.
        """
        options = options or self.sampling
        C = options.candidates
        text = self.tokenizer.encode(prompts, self.text_len).ids.to(self.device)
        per_batch = max(1, batch_size // C)  # images per batch
        images, tokens = [], []
        for s in range(0, len(prompts), per_batch):
            rows = text[s : s + per_batch].repeat_interleave(C, 0)  # (b*C, L)
            gens = [candidate_generator(x, c) for x in seeds[s : s + per_batch] for c in range(C)]
            p = None if prime is None else prime[s : s + per_batch].repeat_interleave(C, 0)
            if self.vae is None:  # a gan: pixels in one pass, no tokens
                pixels = self.generator.sample(rows, gens, options)  # (b*C, 3, H, W)
                t = torch.zeros(len(rows), 0, dtype=torch.long, device=pixels.device)
            else:
                t = self.generator.sample(rows, gens, options, prime=p, use_cache=use_cache)  # (b*C, N)
                pixels = self.vae.decode(t) if C == 1 or options.rerank == "clip" else None  # (b*C, 3, H, W)
            if C > 1:
                if options.rerank == "clip":
                    score = self.clip.similarity(pixels, [q for q in prompts[s : s + per_batch] for _ in range(C)])
                else:
                    score = self.generator.log_likelihood(rows, t)
                best = score.view(-1, C).argmax(1).to(t.device)  # (b,)
                pick = torch.arange(len(best), device=t.device) * C + best
                t = t[pick]
                pixels = pixels[pick.to(pixels.device)] if pixels is not None else self.vae.decode(t)
            images += to_pil(pixels)
            tokens.append(t.cpu())
        return images, torch.cat(tokens)

    def encode_images(self, images: list[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, N) code ids (converted to RGB and resized to the model's size)."""
        if self.vae is None:
            raise WordbrushError("a gan has no image tokens to encode images into")
        size = self.vae.cfg.image_size
        arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC)) for im in images])
        return self.vae.encode(to_tensor(arr).to(self.device)).flatten(1)

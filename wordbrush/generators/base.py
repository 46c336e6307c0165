"""The one generator contract. Every family (dalle, maskgit, gan, ...) is an `ImageGenerator`: it declares what it
writes, the config class it is built from and its default sampling options, and samples through one signature.
The pipeline is written against this class alone; registry.py lists the families by name.

    output "codes"   sample() returns (B, N) ids of a discrete VAE's codebook, which the pipeline decodes: the
                     family states the vocabulary (image_vocab) and grid (image_grid) the VAE must have.
    output "pixels"  sample() returns (B, 3, H, W) images in [0, 1] (image_size), and the pipeline holds no VAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ..config import check
from ..errors import WordbrushError
from ..nn.compiled import AheadOfTime, Compiled
from .options import SampleOptions

Output = Literal["codes", "pixels"]
TEXT_ENCODERS = ("scratch", "minilm")


@dataclass
class GeneratorLoss:
    """What a family's forward() returns in training."""

    loss: torch.Tensor  # what is optimised
    text: torch.Tensor  # caption-token part (0 where the generator has none)
    image: torch.Tensor  # image-token part


class ImageGenerator(nn.Module):
    """Base class of every generator family. Subclasses set the class attributes and implement sample()."""

    kind: ClassVar[str]  # the family's name: the registry's key and the generator field of a saved config.json
    output: ClassVar[Output]  # what sample() returns: "codes" for a VAE to decode, or "pixels"
    config_class: ClassVar[type]  # the dataclass the constructor takes (saved in config.json)
    default_sampling: ClassVar[SampleOptions] = SampleOptions(guidance_scale=3.0)  # a new pipeline's defaults
    supports_priming: ClassVar[bool] = False  # sample(prime=...) keeps a given first part of the image
    supports_likelihood: ClassVar[bool] = False  # log_likelihood() ranks candidates
    critic_file: ClassVar[str | None] = None  # a weights file in a saved pipeline's folder, beside the generator's:
    # the family's critic (the gan's discriminator: its class is the registry entry's `critic`), which
    # sample_judged() scores candidates with (rerank "discriminator"); None: the family has none

    cfg: Any
    _compiled: dict[str, Compiled | AheadOfTime] | None = None  # set by compile_sampling(): the compiled steps, by name

    # ----------------------------------------------------------------------------------------- what it reads

    @property
    def text_len(self) -> int:
        """Prompt tokens per row that sample() reads: (B, text_len) ids."""
        return self.cfg.text_len

    @property
    def text_vocab(self) -> int:
        """Token ids the text embedding holds: a tokenizer must not have more."""
        return self.cfg.text_vocab

    @property
    def image_vocab(self) -> int | None:
        """output "codes": the VAE codebook size it writes ids of (bounds top_k); None for pixels."""
        return None

    @property
    def image_grid(self) -> int | None:
        """output "codes": tokens per side of the VAE's grid; None for pixels."""
        return None

    @property
    def image_size(self) -> int | None:
        """output "pixels": the side of the images it draws; None for codes (the VAE's image size)."""
        return None

    def text_image_model(self) -> nn.Module | None:
        """A CLIP carried inside the generator's own weights (the gan reads text through one), which reranks
        candidates when the pipeline is given no other; None if it has none."""
        return None

    # --------------------------------------------------------------------------------------------- sampling

    def check_options(self, options: SampleOptions) -> None:
        """Raise WordbrushError if these options cannot be used with this generator."""
        options.validate(self.image_vocab)

    def sample(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None = None,
               prime: torch.Tensor | None = None, use_cache: bool = True) -> torch.Tensor:
        """text (B, L) prompt ids -> (B, N) code ids ("codes") or (B, 3, H, W) images in [0, 1] ("pixels").

        rngs: one random stream per row, so that row i depends on rngs[i] alone. options None: the family's
        defaults. prime: (B, n) first code ids to keep (families with supports_priming). use_cache: reuse work
        across decoding steps where the family can (a KV cache); it never changes what is drawn."""
        raise NotImplementedError

    def compile_sampling(self, enabled: bool = True) -> None:
        """From now on sample() runs its fixed-shape hot step (each family names its own: dalle the one-token
        decoding step, maskgit the trunk, the gan its forward) through torch.compile: compiled on first use per
        shape and dtype, the eager step where no compiler works (nn/compiled.py). Off again with False."""
        self._compiled = {} if enabled else None

    def compiled_rows(self, rows: int) -> int:
        """How many rows a sample() of `rows` should run: `rows` itself, or after compile_sampling() the next power
        of two, so that one compiled graph serves every batch size up to it (the extra rows are dropped)."""
        return rows if self._compiled is None else 1 << (rows - 1).bit_length()

    def fast(self, name: str, fn, ahead_of_time: bool = False, dynamic=None):
        """fn itself, or its compiled form (one per name, kept) after compile_sampling(). ahead_of_time: on the CPU,
        through AOTInductor with the weights frozen in (nn/compiled.py AheadOfTime; fn a method of a module);
        dynamic: a method giving torch.export's dynamic_shapes for fn's arguments (AheadOfTime)."""
        if self._compiled is None:
            return fn
        if name not in self._compiled:
            what = f"{self.kind} {name}"
            if ahead_of_time and next(self.parameters()).device.type == "cpu":
                self._compiled[name] = AheadOfTime(fn, what, dynamic)
            else:
                self._compiled[name] = Compiled(fn, what, None if dynamic else False)
        return self._compiled[name]

    def log_likelihood(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """text (B, L), image (B, N) code ids -> a score per row (B,) to rank candidates by, higher is likelier."""
        raise WordbrushError(f"a {self.kind} generator has no likelihood to rank candidates by; use rerank='clip'")

    def sample_judged(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None,
                      critic: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """sample() (without priming), and the critic's score of each row (B,), higher meaning likelier real and
        matching its prompt: what rerank "discriminator" keeps the best candidate by (families with a critic_file)."""
        raise WordbrushError(f"a {self.kind} generator has no discriminator to rank candidates by; use rerank='clip'")

    def text_attention(self, text: torch.Tensor, image: torch.Tensor, layers: list[int] | None = None) -> torch.Tensor:
        """How much each image token looked at each text position: (B, N, L) (wordbrush explain)."""
        raise WordbrushError(f"a {self.kind} generator has no text-to-image-token attention to explain")

    def _start(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None,
               prime: torch.Tensor | None, length: int) -> SampleOptions:
        """The checks every sample() makes first; returns the options to use."""
        options = options if options is not None else self.default_sampling
        self.check_options(options)
        if len(rngs) != text.shape[0]:
            raise WordbrushError(f"need one random stream per row: {len(rngs)} for {text.shape[0]} rows")
        if prime is not None:
            if not self.supports_priming:
                raise WordbrushError(f"a {self.kind} generator cannot complete a primed image")
            if not 0 <= prime.shape[1] < length:
                raise WordbrushError(f"prime must have fewer than {length} tokens, got {prime.shape[1]}")
        return options


def check_token_config(cfg: Any) -> None:
    """The checks every token family's config shares (text_vocab, text_len, image_vocab, image_grid, dim, heads,
    depth, text_encoder, text_encoder_train_layers)."""
    check(cfg.text_vocab >= 2 and cfg.image_vocab >= 2, "vocabularies need at least 2 entries")
    check(cfg.text_len >= 1 and cfg.image_grid >= 1, "text_len and image_grid must be >= 1")
    check(cfg.heads >= 1 and cfg.dim % cfg.heads == 0, f"dim {cfg.dim} is not divisible by heads {cfg.heads}")
    check(cfg.depth >= 1, "depth must be >= 1")
    check(cfg.text_encoder in TEXT_ENCODERS, f"text_encoder must be 'scratch' or 'minilm', not {cfg.text_encoder!r}")
    check(cfg.text_encoder_train_layers >= 0, "text_encoder_train_layers must be >= 0")
    check(cfg.text_encoder == "minilm" or cfg.text_encoder_train_layers == 0,
          "text_encoder_train_layers applies to the minilm encoder only")


class TokenGenerator(ImageGenerator):
    """A family that writes a VAE's code ids (dalle, maskgit): its config holds image_vocab and image_grid."""

    output = "codes"
    supports_priming = True
    supports_likelihood = True

    @property
    def image_vocab(self) -> int:
        return self.cfg.image_vocab

    @property
    def image_grid(self) -> int:
        return self.cfg.image_grid

"""Typed configuration for every part, read from and written to JSON or TOML.

Every hyperparameter lives in a dataclass; a saved model stores them in its config.json, so a folder
rebuilds exactly the model that was trained. Unknown keys and wrong types are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .generators.common import SampleOptions

T = TypeVar("T")


@dataclass
class VAEConfig:
    """The discrete VAE image tokenizer: encoder -> codebook -> decoder."""

    image_size: int = 64
    channels: tuple[int, ...] = (64, 128, 256)  # width after each downsample; len = number of downsamples
    res_blocks: int = 1  # residual blocks per resolution level
    num_codes: int = 512  # codebook size = image vocabulary
    code_dim: int = 64  # width of a code vector
    quantizer: str = "vq"  # "vq" (commitment + EMA codebook + dead-code restart) or "gumbel" (DALL·E dVAE)
    # vq
    commitment: float = 0.25  # beta in  ||sg[z_q] - z_e||^2 * beta
    ema_decay: float = 0.99
    restart_threshold: float = 0.03  # a code whose EMA usage per batch falls below this is restarted
    # gumbel
    kl_weight: float = 1e-3  # beta in  recon + beta * KL(q(z|x) || uniform)
    temperature_start: float = 1.0
    temperature_end: float = 1.0 / 16
    straight_through: bool = False

    def __post_init__(self) -> None:
        _check(self.image_size >= 8, "image_size must be >= 8")
        _check(len(self.channels) >= 1, "channels needs at least one entry")
        _check(self.image_size % (2 ** len(self.channels)) == 0,
               f"image_size {self.image_size} is not divisible by 2**{len(self.channels)} (one halving per channels entry)")
        _check(all(c > 0 for c in self.channels), "channels must be positive")
        _check(self.res_blocks >= 0, "res_blocks must be >= 0")
        _check(self.num_codes >= 2, "num_codes must be >= 2")
        _check(self.code_dim >= 1, "code_dim must be >= 1")
        _check(self.quantizer in ("vq", "gumbel"), f"quantizer must be 'vq' or 'gumbel', not {self.quantizer!r}")
        _check(0.0 < self.ema_decay < 1.0, "ema_decay must be in (0, 1)")
        _check(self.temperature_start > 0 and self.temperature_end > 0, "temperatures must be > 0")

    @property
    def grid_size(self) -> int:
        """Side of the token grid: image_size / 2**downsamples."""
        return self.image_size // (2 ** len(self.channels))


@dataclass
class DataConfig:
    """Training data: the built-in procedural shapes (path "") or a dataset on disk: a folder of images with
    same-stem .txt captions, a .jsonl/.csv manifest, a .tar shard or a folder of shards (wordbrush.data.folder)."""

    path: str = ""  # "" = the built-in shapes dataset
    size: int = 64
    seed: int = 0
    # shapes: "train" leaves the held-out colour-shape pairs out ("holdout": only them, "all": both).
    # A manifest with a `split` column keeps the rows with this value ("all": every row); other datasets use all items.
    split: str = "train"
    background: tuple[int, ...] = (255, 255, 255)  # behind transparent pixels of images on disk

    def __post_init__(self) -> None:
        _check(self.size >= 16, f"data.size must be >= 16, got {self.size}")
        if not self.path:
            _check(self.split in ("train", "holdout", "all"),
                   f"data.split must be train, holdout or all for the shapes dataset, not {self.split!r}")
        _check(bool(self.split), "data.split must not be empty")
        _check(len(self.background) == 3 and all(0 <= c <= 255 for c in self.background),
               f"data.background must be three numbers in 0..255, got {list(self.background)}")


@dataclass
class VAETrainConfig:
    """`wordbrush train vae --config FILE`: what to train and for how long."""

    model: VAEConfig = field(default_factory=VAEConfig)
    data: DataConfig = field(default_factory=DataConfig)
    out: str = "runs/vae"
    batch_size: int = 64
    max_steps: int = 20000
    max_minutes: float = 0.0  # > 0: stop at this wall-clock budget; the lr schedule follows elapsed time
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    recon_loss: str = "mse"  # "mse", "l1" or "l1+mse"
    bf16: bool = True  # bfloat16 autocast (checked against float32 in the tests)
    threads: int = 0  # torch threads; 0 = leave torch's default
    seed: int = 0
    log_every: int = 50
    sample_every: int = 1000  # write a reconstruction grid PNG
    checkpoint_every: int = 1000
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
        _check(self.batch_size >= 1, "batch_size must be >= 1")
        _check(self.adversarial_weight >= 0 and self.perceptual_weight >= 0, "term weights must be >= 0")
        _check(0 <= self.adversarial_start < 1, "adversarial_start must be in [0, 1)")
        _check(self.perceptual_weight == 0 or bool(self.perceptual_clip),
               "perceptual_weight > 0 needs perceptual_clip: a trained CLIP folder")
        _check(self.max_steps >= 1, "max_steps must be >= 1")
        _check(self.max_minutes >= 0, "max_minutes must be >= 0")
        _check(self.lr > 0, "lr must be > 0")
        _check(self.recon_loss in ("mse", "l1", "l1+mse"), f"recon_loss must be mse, l1 or l1+mse, not {self.recon_loss!r}")
        _check(self.model.image_size == self.data.size,
               f"model.image_size ({self.model.image_size}) and data.size ({self.data.size}) differ")


@dataclass
class DalleConfig:
    """The `dalle` generator: a decoder-only transformer over [text tokens ; image tokens]."""

    text_vocab: int = 1000
    text_len: int = 32
    image_vocab: int = 512  # = the VAE's num_codes
    image_grid: int = 8  # image tokens per side (= the VAE's grid_size)
    dim: int = 256
    depth: int = 6
    heads: int = 8
    mlp_ratio: int = 4
    dropout: float = 0.0
    text_loss_weight: float = 0.125  # DALL·E: 1/8 text, 7/8 image (0 with the minilm encoder: no text head)
    text_encoder: str = "scratch"  # "scratch": embeddings learned with the model; "minilm": pretrained states
    text_encoder_train_layers: int = 0  # minilm: top layers fine-tuned (0 = frozen)

    def __post_init__(self) -> None:
        _check(self.text_vocab >= 2 and self.image_vocab >= 2, "vocabularies need at least 2 entries")
        _check(self.text_len >= 1 and self.image_grid >= 1, "text_len and image_grid must be >= 1")
        _check(self.dim % self.heads == 0, f"dim {self.dim} is not divisible by heads {self.heads}")
        _check(self.depth >= 1, "depth must be >= 1")
        _check(0.0 <= self.text_loss_weight < 1.0, "text_loss_weight must be in [0, 1)")
        _check_text_encoder(self.text_encoder, self.text_encoder_train_layers)
        _check(self.text_encoder == "scratch" or self.text_loss_weight == 0,
               "text_loss_weight must be 0 with the minilm text encoder (the caption is its input, not a target)")

    @property
    def image_len(self) -> int:
        return self.image_grid**2


@dataclass
class MaskGITConfig:
    """The `maskgit` generator: a bidirectional transformer over image tokens that cross-attends to text states
    from a small text encoder of its own, trained to fill in masked tokens and sampled in a few parallel steps."""

    text_vocab: int = 1000
    text_len: int = 32
    image_vocab: int = 512  # = the VAE's num_codes; id image_vocab is the [MASK] token
    image_grid: int = 8
    dim: int = 256
    depth: int = 6  # image blocks (self-attention + cross-attention + MLP)
    heads: int = 8
    mlp_ratio: int = 4
    dropout: float = 0.0
    text_depth: int = 2  # blocks of the scratch text encoder (bidirectional self-attention)
    text_encoder: str = "scratch"  # "scratch": the small encoder above; "minilm": pretrained states
    text_encoder_train_layers: int = 0  # minilm: top layers fine-tuned (0 = frozen)

    def __post_init__(self) -> None:
        _check(self.text_vocab >= 2 and self.image_vocab >= 2, "vocabularies need at least 2 entries")
        _check(self.text_len >= 1 and self.image_grid >= 1, "text_len and image_grid must be >= 1")
        _check(self.dim % self.heads == 0, f"dim {self.dim} is not divisible by heads {self.heads}")
        _check(self.depth >= 1 and self.text_depth >= 1, "depth and text_depth must be >= 1")
        _check_text_encoder(self.text_encoder, self.text_encoder_train_layers)

    @property
    def image_len(self) -> int:
        return self.image_grid**2


@dataclass
class DalleTrainConfig:
    """`wordbrush train dalle --config FILE`: the transformer, trained on a frozen VAE's tokens."""

    model: DalleConfig = field(default_factory=DalleConfig)
    vae: str = "runs/vae-shapes"  # folder of a trained VAE (wordbrush train vae)
    clip: str = ""  # optional: a trained CLIP folder (wordbrush train clip) saved with the model to rerank candidates
    data: DataConfig = field(default_factory=DataConfig)
    out: str = "runs/dalle-shapes"
    tokenizer_vocab: int = 1000  # BPE vocabulary cap; model.text_vocab is set to what the BPE learns
    tokenizer_captions: int = 20000  # captions the BPE is trained on
    caption_dropout: float = 0.1  # share of captions replaced by [PAD]s: the unconditional model for guidance
    batch_size: int = 64
    max_steps: int = 20000
    max_minutes: float = 0.0
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 300
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    bf16: bool = True
    threads: int = 0
    seed: int = 0
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 1000
    text_encoder_lr_ratio: float = 0.1  # minilm layers being fine-tuned learn at lr * this
    # the saved model's sampling defaults (what `generate` and `eval` use unless told otherwise)
    sampling: SampleOptions = field(default_factory=lambda: SampleOptions(guidance_scale=3.0))
    sample_prompts: tuple[str, ...] = (
        "a red circle", "a large blue square", "two green triangles", "three yellow crosses",
        "a purple diamond to the left of a white circle", "an orange square above a cyan triangle",
        "a small white cross", "a blue triangle below a red square",
    )

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1 and self.max_steps >= 1, "batch_size and max_steps must be >= 1")
        _check(0.0 <= self.caption_dropout < 1.0, "caption_dropout must be in [0, 1)")
        _check(self.tokenizer_vocab >= 16, "tokenizer_vocab must be >= 16")
        _check(self.lr > 0 and self.max_minutes >= 0, "lr must be > 0 and max_minutes >= 0")



@dataclass
class MaskGITTrainConfig(DalleTrainConfig):
    """`wordbrush train maskgit --config FILE`: the same loop and data as dalle, with a MaskGIT generator."""

    model: MaskGITConfig = field(default_factory=MaskGITConfig)
    out: str = "runs/maskgit-shapes"

@dataclass
class CLIPConfig:
    """The contrastive text-image model (wordbrush/clip.py): a small CNN image tower and a transformer text tower,
    each projected to a shared embedding space."""

    text_vocab: int = 2000
    text_len: int = 48
    text_dim: int = 256
    text_depth: int = 4
    text_heads: int = 4
    image_size: int = 64
    image_channels: tuple[int, ...] = (32, 64, 128, 256)  # width after each stride-2 stage
    image_pool: str = "mean"  # "mean" over the final grid, or "flatten" it (keeps where things are: left of, above)
    embed_dim: int = 256
    init_temperature: float = 0.07  # softmax temperature of the similarities at the start (CLIP: 0.07)

    def __post_init__(self) -> None:
        _check(self.text_vocab >= 2 and self.text_len >= 1, "text_vocab must be >= 2 and text_len >= 1")
        _check(self.text_dim % self.text_heads == 0, f"text_dim {self.text_dim} is not divisible by text_heads")
        _check(self.text_depth >= 1 and self.embed_dim >= 1, "text_depth and embed_dim must be >= 1")
        _check(len(self.image_channels) >= 1 and all(c > 0 for c in self.image_channels),
               "image_channels needs at least one positive entry")
        _check(self.image_size % (2 ** len(self.image_channels)) == 0,
               f"image_size {self.image_size} is not divisible by 2**{len(self.image_channels)}")
        _check(0 < self.init_temperature < 1, "init_temperature must be in (0, 1)")
        _check(self.image_pool in ("mean", "flatten"), f"image_pool must be mean or flatten, not {self.image_pool!r}")


@dataclass
class CLIPTrainConfig:
    """`wordbrush train clip --config FILE`: contrastive training on image-caption pairs."""

    model: CLIPConfig = field(default_factory=CLIPConfig)
    data: DataConfig = field(default_factory=DataConfig)
    out: str = "runs/clip"
    tokenizer_vocab: int = 2000
    tokenizer_captions: int = 20000  # shapes: captions the BPE is trained on (a dataset on disk: all of its captions)
    batch_size: int = 256
    max_steps: int = 20000
    max_minutes: float = 0.0
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    shift: int = 4  # augmentation: random translation by up to this many pixels (edges repeated)
    # NegCLIP: each caption's words swapped (text/negatives.py) as an extra candidate its image must rank lower,
    # so that the CLIP reads which word goes with which, not a bag of words
    hard_negatives: bool = False
    bf16: bool = True
    threads: int = 0
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500  # zero-shot retrieval on eval_split
    checkpoint_every: int = 1000
    eval_split: str = "heldout"  # data on disk: the manifest split of the retrieval figure ("all": every item)
    eval_images: int = 1024

    def __post_init__(self) -> None:
        _check(self.batch_size >= 2, "batch_size must be >= 2 (a contrastive loss needs negatives)")
        _check(self.max_steps >= 1 and self.max_minutes >= 0, "max_steps must be >= 1 and max_minutes >= 0")
        _check(self.lr > 0 and self.shift >= 0, "lr must be > 0 and shift >= 0")
        _check(self.tokenizer_vocab >= 16, "tokenizer_vocab must be >= 16")
        _check(self.model.image_size == self.data.size,
               f"model.image_size ({self.model.image_size}) and data.size ({self.data.size}) differ")


def stages_from_4(side: int) -> int:
    """Doublings from 4 px up to `side` (a power of two times 4): 64 -> 4. The gan's blocks count with it."""
    return max(0, side // 4).bit_length() - 1


@dataclass
class GANConfig:
    """The `gan` generator (generators/gan.py): noise + a frozen CLIP's reading of the caption -> pixels, drawn
    directly or (with `vae`) by a frozen VAE decoder from a grid of code vectors that the generator writes."""

    clip: CLIPConfig = field(default_factory=CLIPConfig)  # the frozen CLIP inside (set from the --clip folder)
    vae: VAEConfig | None = None  # latent mode: the frozen decoder inside (set from the --vae folder)
    image_size: int = 64
    noise_dim: int = 100
    # generator width at 4, 8, ..., up to its output grid (image_size px, or the VAE's grid); entries past that
    # are further blocks at the output grid's size
    channels: tuple[int, ...] = (256, 256, 128, 64, 32)
    disc_channels: tuple[int, ...] = (32, 64, 128, 256, 256)  # discriminator width at image_size, ..., 4 px
    # what D judges: "pixels", or in latent mode "codes" (the generator's code vectors against the VAE's codes of
    # real images: D works on the 8x8 grid, and it sees at once whether a vector is one of the decoder's codes).
    # With codes, disc_channels runs from the grid to 4 px; entries past that are further blocks at the grid's size
    disc_reads: str = "pixels"
    attn_resolutions: tuple[int, ...] = (16, 32)  # word-level attention at these sizes
    disc_attn_resolutions: tuple[int, ...] = ()  # the discriminator's features attend over the words at these
    attn_dim: int = 64

    @property
    def out_grid(self) -> int:
        """Side of what the generator's blocks write: the image, or the VAE's code grid."""
        return self.vae.grid_size if self.vae is not None else self.image_size

    @property
    def up_stages(self) -> int:
        return stages_from_4(self.out_grid)

    def __post_init__(self) -> None:
        stages = stages_from_4(self.image_size)
        _check(self.image_size >= 8 and 4 * 2**stages == self.image_size,
               f"gan image_size must be 4 times a power of two (8, 16, 32, 64, ...), got {self.image_size}")
        _check(self.disc_reads in ("pixels", "codes"),
               f"disc_reads must be 'pixels' or 'codes', not {self.disc_reads!r}")
        _check(self.disc_reads == "codes" or len(self.disc_channels) == stages + 1,
               f"gan: image_size {self.image_size} needs {stages + 1} entries in disc_channels")
        if self.vae is not None:
            _check(self.vae.image_size == self.image_size,
                   f"the VAE draws {self.vae.image_size}px images, the gan {self.image_size}px")
            _check(self.out_grid >= 4 and 4 * 2**self.up_stages == self.out_grid,
                   f"gan: the VAE's grid must be 4 times a power of two, got {self.out_grid}")
            self.check_depth()  # (without a VAE, a training config's --vae may still set one: checked there)
        _check(all(c > 0 for c in self.channels + self.disc_channels), "gan channels must be positive")
        _check(self.noise_dim >= 1 and self.attn_dim >= 1, "noise_dim and attn_dim must be >= 1")
        _check(self.clip.image_size == self.image_size, f"the CLIP reads {self.clip.image_size}px images, "
                                                        f"the gan draws {self.image_size}px")

    def check_depth(self) -> None:
        _check(len(self.channels) >= self.up_stages + 1,
               f"gan: a {self.out_grid}x{self.out_grid} output needs at least {self.up_stages + 1} entries in "
               f"channels, got {len(self.channels)}")
        if self.disc_reads == "codes":
            _check(self.vae is not None, "disc_reads 'codes' needs latent mode (a VAE: --vae)")
            _check(len(self.disc_channels) >= self.up_stages + 1,
                   f"gan: D reading the {self.out_grid}x{self.out_grid} code grid needs at least "
                   f"{self.up_stages + 1} entries in disc_channels, got {len(self.disc_channels)}")


@dataclass
class GANTrainConfig:
    """`wordbrush train gan --config FILE --clip DIR`: generator against discriminator, with a frozen CLIP."""

    model: GANConfig = field(default_factory=GANConfig)
    clip: str = "runs/clip-shapes"  # a trained CLIP folder (wordbrush train clip) on the same data
    # latent mode: a trained VAE (a vae folder, or a pipeline folder that holds one) whose frozen decoder draws
    # the pixels; "" = the generator draws pixels itself
    vae: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    out: str = "runs/gan-shapes"
    batch_size: int = 32
    max_steps: int = 100000
    max_minutes: float = 0.0
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, ...] = (0.0, 0.9)
    gp_weight: float = 2.0  # MA-GP: k * ||grad||^p on real, matching pairs (DF-GAN: k = 2, p = 6)
    gp_power: float = 6.0
    clip_weight: float = 2.0  # lambda_clip: pull each image towards its caption in the CLIP's space
    # D's mismatched captions: always the next item's caption (which objects and colours are there); with this,
    # also each caption with its words swapped where it has a swap (text/negatives.py: which colour is whose,
    # which way round)
    hard_negatives: bool = False
    # cVAE-GAN (latent mode): an encoder reads each real image's codes + caption into a noise z ~ q(z | x, t), and
    # G, given that z, must redraw the image's codes: recon_weight * squared distance + kl_weight * KL(q || N(0, I)),
    # beside the adversarial and CLIP terms on noise from the prior. 0 = off
    recon_weight: float = 0.0
    kl_weight: float = 0.01
    ema_decay: float = 0.999  # of the generator's weights, which the saved pipeline samples with
    gp_every: int = 1  # MA-GP on every k-th discriminator step (lazy regularisation, StyleGAN2), times k
    bf16: bool = True  # bfloat16 autocast for both networks (the losses and the MA-GP pass in float32; tests check it)
    threads: int = 0
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    diversity_every: int = 500  # collapse check: spread of 16 seeds for one prompt against 16 real images
    collapse_ratio: float = 0.15  # stop with a clear message when the spread falls below this share of the real's
    sampling: SampleOptions = field(default_factory=SampleOptions)
    sample_prompts: tuple[str, ...] = DalleTrainConfig.sample_prompts

    def __post_init__(self) -> None:
        _check(self.batch_size >= 2, "batch_size must be >= 2 (the mismatched pairs pair each item with the next)")
        _check(self.max_steps >= 1 and self.max_minutes >= 0, "max_steps must be >= 1 and max_minutes >= 0")
        _check(self.lr_g > 0 and self.lr_d > 0, "lr_g and lr_d must be > 0")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas must be two numbers in [0, 1)")
        _check(0 < self.ema_decay < 1, "ema_decay must be in (0, 1)")
        _check(self.gp_every >= 1, "gp_every must be >= 1")
        _check(self.recon_weight >= 0 and self.kl_weight >= 0, "recon_weight and kl_weight must be >= 0")
        _check(self.recon_weight == 0 or bool(self.vae), "recon_weight needs latent mode (a VAE: --vae)")
        if not self.vae:
            self.model.check_depth()
        _check(self.model.image_size == self.data.size,
               f"model.image_size ({self.model.image_size}) and data.size ({self.data.size}) differ")


# ----------------------------------------------------------------------------------------------------------
# generic (de)serialisation


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _check_text_encoder(name: str, train_layers: int) -> None:
    _check(name in ("scratch", "minilm"), f"text_encoder must be 'scratch' or 'minilm', not {name!r}")
    _check(train_layers >= 0, "text_encoder_train_layers must be >= 0")
    _check(name == "minilm" or train_layers == 0, "text_encoder_train_layers applies to the minilm encoder only")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-safe dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from a dict, checking every key and type; errors name the key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, v: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, v, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if v is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, v, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {v!r} does not fit {tp}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {v!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(inner, x, f"{where}[{i}]") for i, x in enumerate(v))
    if tp is bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{where}: expected true/false, got {v!r}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: expected an integer, got {v!r}")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {v!r}")
        return float(v)
    if tp is str:
        if not isinstance(v, str):
            raise ConfigError(f"{where}: expected a string, got {v!r}")
        return v
    return v


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a .json or .toml file into a dict; every failure is a one-line ConfigError."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"config path is not a file: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {p}: {e}") from None
    if p.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ConfigError("TOML configs need Python >= 3.11; use a .json config") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p} is not valid TOML: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return data


def load_config(cls: type[T], path: str | Path) -> T:
    """Load dataclass `cls` from a JSON/TOML file."""
    data = load_file(path)
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except TypeError as e:  # a missing required field
        raise ConfigError(f"{path}: {e}") from None

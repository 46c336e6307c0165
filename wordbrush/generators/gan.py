"""The `gan` generator: noise + text -> image in one forward pass (the DF-GAN family: Tao et al. 2022, with
AttnGAN's word-level attention). Its discriminator and objective: gan_discriminator.py.

Text. A frozen reader turns the caption into per-token states (B, L, Dt), which feed word-level attention, and
a sentence vector s (B, E), which feeds the fusion blocks and the discriminator: the text tower of a CLIP trained
on the same data (text_encoder "clip", wordbrush/clip.py; it travels inside the generator's weights, so a saved
`gan` needs nothing else), or the brief's pretrained BERT-family encoder, all-MiniLM-L6-v2 (text_encoder
"minilm", text/minilm.py's MiniLMReader: its token states and its mean-pooled sentence vector; its weights come
from the installed package, and the CLIP that the training's alignment term and the reranking use is saved
beside the gan in the pipeline folder).

Generator.  z ~ N(0, I) (B, Z) -> linear -> (B, C0, 4, 4) -> per stage: upsample x2, then a residual block whose
two fusion layers scale and shift every channel by MLPs of [s ; z] (DF-GAN's deep fusion), with word attention
at the resolutions in attn_resolutions (each pixel attends over the caption's tokens; the context is added
through a gate that starts at 0) -> conv -> pixels (x + 1) / 2, unbounded while training and clamped to [0, 1]
when sampling. There is no tanh: in the first shapes run a saturated tanh held every image at black (the
background's colour), where its gradient vanishes, and the generator never left it.

Latent mode (GANConfig.vae set; `wordbrush train gan --vae shapes`). The blocks stop at the grid of a trained VAE
(8x8 for 64 px images; further blocks work at that size) and write a vector in the VAE's code space at each
position; the VAE's decoder, frozen and carried inside the gan's weights, draws the pixels from them. The
generator decides what goes where on a coarse grid, and the outlines come from a decoder that already draws them;
D sees the real images passed through the same VAE.

Transformer trunk (GANConfig.trunk "transformer", latent mode; gan_transformer.py). In place of the conv blocks,
each of the grid's positions is a token: self-attention over them and cross-attention to the words, then a head
that scores the VAE's codes at every position (B, g*g, K). The code vectors those scores weight (their softmax
mixture) go to the decoder and D, so the adversarial game is unchanged, and the cVAE term is the cross-entropy of
the real codes under the scores, as a classifier's. Sampling with snap_codes draws the nearest code at each
position (its likeliest), as the decoder was trained to read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from ..clip import CLIP, CLIPConfig
from ..config import check
from ..image.vae import Decoder, VAEConfig
from ..text.minilm import MiniLMReader
from ..text.tokenizer import PAD_ID
from .base import ImageGenerator
from .gan_blocks import UpBlock
from .gan_slots import Phrases, SlotLayout, object_phrases
from .gan_transformer import TransformerTrunk
from .options import SampleOptions


def stages_from_4(side: int) -> int:
    """Doublings from 4 px up to `side` (a power of two times 4): 64 -> 4. The gan's blocks count with it."""
    return max(0, side // 4).bit_length() - 1


@dataclass
class GANConfig:
    """The `gan` generator (generators/gan.py): noise + a frozen CLIP's reading of the caption -> pixels, drawn
    directly or (with `vae`) by a frozen VAE decoder from a grid of code vectors that the generator writes."""

    clip: CLIPConfig = field(default_factory=CLIPConfig)  # the frozen CLIP inside (set from the --clip folder)
    text_encoder: str = "clip"  # what reads the captions: "clip" (the CLIP's text tower) or "minilm" (the frozen
    # all-MiniLM-L6-v2; the CLIP then only judges, beside the gan)
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
    # what writes the output: "conv" (the fused up-sampling blocks above) or, in latent mode, "transformer"
    # (gan_transformer.py: every grid position a token, self-attention over them, cross-attention to the words)
    trunk: str = "conv"
    trunk_dim: int = 128  # the transformer trunk's width, depth, heads and MLP ratio
    trunk_depth: int = 4
    trunk_heads: int = 4
    trunk_mlp_ratio: int = 4
    # the transformer trunk reads one noise value per grid position (noise_dim = grid * grid): the student of a
    # dalle drawn with a quantile per position (train/gan_distill.py, gan_transformer.py)
    grid_noise: bool = False
    # sampling in latent mode: each written vector replaced by the nearest of the VAE's codes (the transformer
    # trunk: its likeliest code) before the decoder draws it; training decodes the vectors as written (the
    # trainer's code_commitment pulls them onto codes)
    snap_codes: bool = False
    # the conv trunk's object slots (gan_slots.py): this many, each reading the words and placing itself on the
    # grid as a soft blob whose features are added at 4 px and at the output grid; 0 = none
    slots: int = 0
    slot_dim: int = 128
    # what the slots read: "caption" (the whole caption's word states) or "objects" (each slot one object phrase of
    # the caption, encoded alone, for what it draws; the whole caption for where it goes: gan_slots.py)
    slot_reading: str = "caption"
    # the conv trunk's fusion blocks read the sentence vector beside the noise; False: the noise alone, so that with
    # slot_reading "objects" and no attn_resolutions the caption reaches the grid only through the slots
    trunk_reads_sentence: bool = True

    @property
    def out_grid(self) -> int:
        """Side of what the generator's blocks write: the image, or the VAE's code grid."""
        return self.vae.grid_size if self.vae is not None else self.image_size

    @property
    def up_stages(self) -> int:
        return stages_from_4(self.out_grid)

    @property
    def text_dim(self) -> int:
        """Width of the word states the generator and D attend over."""
        return MiniLMReader.width if self.text_encoder == "minilm" else self.clip.text_dim

    @property
    def sentence_dim(self) -> int:
        """Width of the sentence vector the fusion blocks and D read."""
        return MiniLMReader.width if self.text_encoder == "minilm" else self.clip.embed_dim

    def __post_init__(self) -> None:
        stages = stages_from_4(self.image_size)
        check(self.image_size >= 8 and 4 * 2**stages == self.image_size,
             f"gan image_size must be 4 times a power of two (8, 16, 32, 64, ...), got {self.image_size}")
        check(self.text_encoder in ("clip", "minilm"),
             f"text_encoder must be 'clip' or 'minilm', not {self.text_encoder!r}")
        check(self.trunk in ("conv", "transformer"), f"trunk must be 'conv' or 'transformer', not {self.trunk!r}")
        check(not self.grid_noise or self.trunk == "transformer", "grid_noise needs trunk 'transformer'")
        check(self.trunk_dim % self.trunk_heads == 0 and min(self.trunk_depth, self.trunk_mlp_ratio) >= 1,
             "trunk_dim must be a multiple of trunk_heads, trunk_depth and trunk_mlp_ratio >= 1")
        check(self.disc_reads in ("pixels", "codes"),
             f"disc_reads must be 'pixels' or 'codes', not {self.disc_reads!r}")
        check(self.disc_reads == "codes" or len(self.disc_channels) == stages + 1,
             f"gan: image_size {self.image_size} needs {stages + 1} entries in disc_channels")
        if self.vae is not None:
            check(self.vae.image_size == self.image_size,
                 f"the VAE draws {self.vae.image_size}px images, the gan {self.image_size}px")
            check(self.out_grid >= 4 and 4 * 2**self.up_stages == self.out_grid,
                 f"gan: the VAE's grid must be 4 times a power of two, got {self.out_grid}")
            self.check_depth()  # (without a VAE, a training config's --vae may still set one: checked there)
        check(all(c > 0 for c in self.channels + self.disc_channels), "gan channels must be positive")
        check(self.noise_dim >= 1 and self.attn_dim >= 1, "noise_dim and attn_dim must be >= 1")
        check(self.slots >= 0 and self.slot_dim >= 4 and self.slot_dim % 4 == 0,
              "slots must be >= 0 and slot_dim a positive multiple of 4")
        check(self.slots == 0 or self.trunk == "conv", "slots are for trunk 'conv'")
        check(self.slot_reading in ("caption", "objects"),
              f"slot_reading must be 'caption' or 'objects', not {self.slot_reading!r}")
        check(self.slot_reading == "caption" or self.slots > 0, "slot_reading 'objects' needs slots > 0")
        check(self.clip.image_size == self.image_size, f"the CLIP reads {self.clip.image_size}px images, "
                                                      f"the gan draws {self.image_size}px")

    def check_depth(self) -> None:
        check(self.trunk == "conv" or self.vae is not None, "trunk 'transformer' needs latent mode (a VAE: --vae)")
        check(not self.grid_noise or self.noise_dim == self.out_grid**2,
              f"grid_noise needs noise_dim = grid * grid ({self.out_grid**2}), got {self.noise_dim}")
        check(self.trunk != "conv" or len(self.channels) >= self.up_stages + 1,
             f"gan: a {self.out_grid}x{self.out_grid} output needs at least {self.up_stages + 1} entries in "
             f"channels, got {len(self.channels)}")
        if self.disc_reads == "codes":
            check(self.vae is not None, "disc_reads 'codes' needs latent mode (a VAE: --vae)")
            check(len(self.disc_channels) >= self.up_stages + 1,
                 f"gan: D reading the {self.out_grid}x{self.out_grid} code grid needs at least "
                 f"{self.up_stages + 1} entries in disc_channels, got {len(self.disc_channels)}")


class Text(NamedTuple):
    """A caption as the networks read it (GAN.read_text): word states (B, L, Dt), sentence (B, E), keep (B, L),
    and with slot_reading "objects" each slot's phrase (gan_slots.Phrases)."""

    words: torch.Tensor
    sentence: torch.Tensor
    keep: torch.Tensor
    phrases: Phrases | None = None

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Text":
        """The same caption with fn applied to every tensor (the phrases' too)."""
        phrases = None if self.phrases is None else Phrases(*(fn(t) for t in self.phrases))
        return Text(fn(self.words), fn(self.sentence), fn(self.keep), phrases)

    def shifted(self) -> "Text":
        """Item i gets item i+1's caption (the mismatched pairs); one fewer item."""
        return self.map(lambda t: t[1:])


def _kept(ids: torch.Tensor) -> torch.Tensor:
    """(..., L) ids -> which positions attention reads: not [PAD], and always the first (an all-[PAD] row)."""
    keep = ids != PAD_ID
    keep[..., 0] = True
    return keep


def nearest_codes(v: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Code vectors (B, D, g, g) -> the nearest row of codebook (K, D) at each position (same shape and dtype)."""
    B, D, h, w = v.shape
    flat = v.detach().permute(0, 2, 3, 1).reshape(-1, D).float()
    nearest = codebook[torch.cdist(flat, codebook.float()).argmin(1)].to(v.dtype)  # (B*h*w, D)
    return nearest.view(B, h, w, D).permute(0, 3, 1, 2)


class GAN(ImageGenerator):
    """The generator (and the frozen CLIP that reads its captions). See the top of the file."""

    kind = "gan"  # the registry's name and a saved pipeline's "generator"
    output = "pixels"
    config_class = GANConfig
    default_sampling = SampleOptions()  # no guidance: the gan has no unconditional model
    critic_file = "discriminator.safetensors"  # what `wordbrush train gan` saves beside the generator

    def __init__(self, cfg: GANConfig):
        super().__init__()
        cfg.check_depth()
        self.cfg = cfg
        self.clip = CLIP(cfg.clip).requires_grad_(False) if cfg.text_encoder == "clip" else None
        self.reader = MiniLMReader() if cfg.text_encoder == "minilm" else None
        chs, z, e, n_up = cfg.channels, cfg.noise_dim, cfg.sentence_dim, cfg.up_stages
        if cfg.trunk == "transformer":  # latent mode (checked): every grid position a token (gan_transformer.py)
            self.trunk = TransformerTrunk(cfg.out_grid, z, e, cfg.text_dim, cfg.vae.num_codes, cfg.trunk_dim,
                                          cfg.trunk_depth, cfg.trunk_heads, cfg.trunk_mlp_ratio, cfg.grid_noise)
        else:
            self.fc = nn.Linear(z, chs[0] * 16)
            sizes = [4 * 2 ** min(i + 1, n_up) for i in range(len(chs) - 1)]  # each block's output side
            self.blocks = nn.ModuleList(UpBlock(chs[i], chs[i + 1], e + z, cfg.text_dim, cfg.attn_dim,
                                                sizes[i] in cfg.attn_resolutions, up=i < n_up)
                                        for i in range(len(chs) - 1))
            # object slots: blobs added to the 4 px input and to the first block's output
            self.slots = (SlotLayout(cfg.slots, z, cfg.text_dim, cfg.slot_dim, 4, (4, sizes[0]), (chs[0], chs[1]),
                                     objects=cfg.slot_reading == "objects") if cfg.slots else None)
            if cfg.slot_reading == "objects":  # each token's role in splitting a caption into object phrases
                self.register_buffer("word_roles", torch.zeros(self.text_vocab, dtype=torch.long))  # set_word_roles
            if cfg.vae is None:
                self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], 3, 3, padding=1))
            else:  # latent mode: code vectors for the frozen decoder
                self.to_codes = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], cfg.vae.code_dim, 3, padding=1))
        if cfg.vae is not None:  # the frozen decoder travels in the weights, like the CLIP
            self.decoder = Decoder(cfg.vae)
            if cfg.trunk == "transformer" or cfg.snap_codes:  # the VAE's codebook, to snap to (set with the decoder)
                self.register_buffer("codebook", torch.zeros(cfg.vae.num_codes, cfg.vae.code_dim))
            for p in self.decoder.parameters():
                p.requires_grad_(False)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def text_len(self) -> int:
        return self.cfg.clip.text_len

    @property
    def text_vocab(self) -> int:
        return self.cfg.clip.text_vocab if self.reader is None else self.reader.bert.config.vocab_size

    def text_image_model(self) -> CLIP | None:
        return self.clip  # None when minilm reads: the pipeline then holds the CLIP, with its own tokenizer

    def train(self, mode: bool = True) -> "GAN":
        super().train(mode)
        if self.clip is not None:
            self.clip.eval()  # frozen: never in training mode
        if self.cfg.vae is not None:
            self.decoder.eval()
        return self

    def set_word_roles(self, roles: torch.Tensor) -> None:
        """slot_reading "objects": the role of each of the reader's token ids (text/phrases.py: token_roles of the
        tokenizer the gan is trained with), which travels in the gan's weights."""
        check(tuple(roles.shape) == tuple(self.word_roles.shape),
              f"word roles for {len(roles)} tokens, the gan reads {len(self.word_roles)}")
        self.word_roles.copy_(roles)

    @torch.no_grad()
    def read_text(self, ids: torch.Tensor) -> Text:
        """(B, L) ids -> word states (B, L, Dt), sentence (B, E), keep mask (B, L) (a caption of only [PAD]s keeps
        its first position, so that attention always has something to read); with slot_reading "objects", each
        slot's object phrase read alone (gan_slots.object_phrases)."""
        words, sentence = self._states(ids)
        phrases = None
        if self.cfg.slot_reading == "objects":
            packed, order = object_phrases(ids, self.word_roles, self.cfg.slots)  # (B, P, L), (B, K)
            pw = self._states(packed.flatten(0, 1))[0].float().view(*packed.shape, -1)  # (B, P, L, Dt)
            at = order[..., None].expand(-1, -1, packed.shape[-1])  # (B, K, L): each slot's phrase
            phrases = Phrases(pw.gather(1, at[..., None].expand(-1, -1, -1, pw.shape[-1])),
                              _kept(packed).gather(1, at), order)
        return Text(words.float(), sentence.float(), _kept(ids), phrases)

    def _states(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, L) ids -> the reader's word states (N, L, Dt) and sentence vectors (N, E)."""
        return self.clip.text_states(ids) if self.reader is None else self.reader(ids)

    def forward(self, z: torch.Tensor, text: Text) -> torch.Tensor:
        """noise (B, Z) + text -> images (B, 3, H, W), about [0, 1] (not clamped: see the top of the file)."""
        return self.draw(self.layout(z, text))

    def layout(self, z: torch.Tensor, text: Text) -> torch.Tensor:
        """noise (B, Z) + text -> what G writes: the images (B, 3, H, W) in pixel mode, the VAE's code vectors
        (B, D, g, g) in latent mode."""
        words, keep = text.words, text.keep
        if self.cfg.trunk == "transformer":
            return self.mixture(self.code_scores(z, text))
        sentence = text.sentence if self.cfg.trunk_reads_sentence else torch.zeros_like(text.sentence)
        c = torch.cat([sentence, z], dim=1)  # (B, E + Z)
        x = self.fc(z).view(len(z), -1, 4, 4).contiguous(memory_format=torch.channels_last)  # NHWC: ~3x on CPU
        placed = (self.slots(z, words, keep, text.phrases) if self.slots is not None
                  else None)  # [(B, C0, 4, 4), (B, C1, s, s)]
        if placed is not None:
            x = x + placed[0]
        for i, blk in enumerate(self.blocks):
            x = blk(x, c, words, keep)
            if placed is not None and i == 0:
                x = x + placed[1]
        return (self.to_rgb(x) + 1) / 2 if self.cfg.vae is None else self.to_codes(x)

    def draw(self, layout: torch.Tensor) -> torch.Tensor:
        """layout() -> images (B, 3, H, W): the frozen decoder draws the code vectors in latent mode."""
        return layout if self.cfg.vae is None else (self.decoder(layout) + 1) / 2

    def code_scores(self, z: torch.Tensor, text: Text) -> torch.Tensor:
        """The transformer trunk's logits over the VAE's codes at each grid position (B, g*g, K)."""
        return self.trunk(z, text.sentence, text.words)

    def mixture(self, scores: torch.Tensor) -> torch.Tensor:
        """code_scores (B, g*g, K) -> the code vectors their softmax weights (B, D, g, g): what the decoder and D
        read (a confident score picks one code; an unsure one blends, which D can tell from a real code)."""
        return self._as_grid(scores.float().softmax(-1) @ self.codebook.float()).to(scores.dtype)

    def picked(self, scores: torch.Tensor) -> torch.Tensor:
        """code_scores (B, g*g, K) -> the vector of the likeliest code at each position (B, D, g, g)."""
        return self.codes_of(scores.argmax(-1)).to(scores.dtype)

    def codes_of(self, ids: torch.Tensor) -> torch.Tensor:
        """Code ids (B, g*g) in raster order -> their vectors as the grid the decoder and D read (B, D, g, g)."""
        return self._as_grid(self.codebook[ids])

    def _as_grid(self, v: torch.Tensor) -> torch.Tensor:
        """One vector per grid position (B, g*g, D) -> the grid the decoder and D read (B, D, g, g)."""
        return v.transpose(1, 2).reshape(len(v), -1, self.cfg.out_grid, self.cfg.out_grid)

    def snapped(self, layout: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, D, g, g) -> the nearest of the VAE's codes at each position (same shape)."""
        return nearest_codes(layout, self.codebook)

    @property
    def first_weight(self) -> torch.Tensor:
        """A weight of the trunk: its device, and its dtype (float32, or bfloat16 after pipe.to(dtype=...))."""
        return self.trunk.pos if self.cfg.trunk == "transformer" else self.fc.weight

    @torch.no_grad()
    def sample(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None = None,
               prime: torch.Tensor | None = None, use_cache: bool = True) -> torch.Tensor:
        """(B, L) caption ids -> (B, 3, H, W) images in [0, 1] in one pass (the contract: base.py); image i's
        noise comes from rngs[i] alone, scaled by options.temperature (< 1 trades variety for fidelity, the
        truncation trick's simple form). Guidance, top-k / top-p and steps do not apply and are ignored."""
        z, t = self._inputs(text, rngs, options, prime)
        return self.fast("forward", self.forward_sampling)(z, t).float().clamp(0, 1)

    def _inputs(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None,
                prime: torch.Tensor | None) -> tuple[torch.Tensor, Text]:
        """The checks of every sample, then the scaled noise (B, Z) and the captions as G reads them."""
        options = self._start(text, rngs, options, prime, 0)
        dtype = self.first_weight.dtype
        z = torch.stack([torch.randn(self.cfg.noise_dim, generator=g) for g in rngs]).to(text.device, dtype)
        t = self.read_text(text).map(lambda x: x.to(dtype) if x.is_floating_point() else x)
        return z * options.temperature, t

    @torch.no_grad()
    def sample_judged(self, text: torch.Tensor, rngs: list[torch.Generator], options: SampleOptions | None,
                      critic: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """sample()'s images, and D's logit for each (B,): D judges what it was trained on (the code grid G writes
        in latent mode with disc_reads "codes", else the pixels) under the caption. A trained D's logit estimates
        log p_data(x | t) - log p_G(x | t), so keeping the highest of C is discriminator rejection sampling's
        greedy form (Azadi et al. 2019): it drops the candidates D can tell from real pictures of the prompt."""
        z, t = self._inputs(text, rngs, options, None)
        layout = self.sampled_layout(z, t)
        pixels = self.draw(layout)
        judged = layout if getattr(critic, "reads_codes", False) else pixels.float().clamp(0, 1).to(layout.dtype)
        return pixels.float().clamp(0, 1), critic(judged, t).float()

    def forward_sampling(self, z: torch.Tensor, text: Text) -> torch.Tensor:
        """forward() as sampling runs it: with snap_codes, the written vectors snapped to the VAE's codes."""
        return self.draw(self.sampled_layout(z, text))

    def sampled_layout(self, z: torch.Tensor, text: Text) -> torch.Tensor:
        """layout() as sampling writes it: with snap_codes, snapped to the VAE's codes (the transformer trunk: its
        likeliest code at each position)."""
        if self.cfg.snap_codes and self.cfg.trunk == "transformer":
            return self.picked(self.code_scores(z, text))
        layout = self.layout(z, text)
        return self.snapped(layout) if self.cfg.snap_codes else layout

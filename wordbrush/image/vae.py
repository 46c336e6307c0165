"""The discrete VAE image tokenizer: an image becomes a grid of code ids, and the ids become an image.

    image (B, 3, H, W) in [0, 1]
      -> encoder: conv, then per level a stride-2 conv and residual blocks     (B, C, H/2^L, W/2^L)
      -> quantizer (vq or gumbel)                                              (B, h, w) ids
      -> decoder: the mirror image, nearest-neighbour upsampling + conv        (B, 3, H, W)

The training objective is the VAE's: reconstruction + the bottleneck's term (commitment for vq,
beta * KL(q(z|x) || uniform) for gumbel); see wordbrush.image.quantizers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import (
    build_part,
    check_image_size,
    config_from,
    model_header,
    part_path,
    read_header,
    save_part,
    unwrap,
    write_json,
)
from ..config import check, to_dict
from ..errors import CheckpointError
from ..nn.compiled import AheadOfTime, Compiled, pad_rows
from ..nn.conv import ResBlock, is_upsampled_conv, upsampled_conv
from .quantizers import GumbelQuantizer, QuantizerOutput, VectorQuantizerEMA


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
        check(self.image_size >= 8, "image_size must be >= 8")
        check(len(self.channels) >= 1, "channels needs at least one entry")
        check(self.image_size % (2 ** len(self.channels)) == 0,
              f"image_size {self.image_size} is not divisible by 2**{len(self.channels)} "
              "(one halving per channels entry)")
        check(all(c > 0 for c in self.channels), "channels must be positive")
        check(self.res_blocks >= 0, "res_blocks must be >= 0")
        check(self.num_codes >= 2, "num_codes must be >= 2")
        check(self.code_dim >= 1, "code_dim must be >= 1")
        check(self.quantizer in ("vq", "gumbel"), f"quantizer must be 'vq' or 'gumbel', not {self.quantizer!r}")
        check(0.0 < self.ema_decay < 1.0, "ema_decay must be in (0, 1)")
        check(self.temperature_start > 0 and self.temperature_end > 0, "temperatures must be > 0")

    @property
    def grid_size(self) -> int:
        """Side of the token grid: image_size / 2**downsamples."""
        return self.image_size // (2 ** len(self.channels))


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig, out_dim: int):
        super().__init__()
        chs = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(3, chs[0], 3, padding=1)]
        prev = chs[0]
        for ch in chs:  # each level halves the resolution
            layers.append(nn.Conv2d(prev, ch, 4, stride=2, padding=1))
            layers += [ResBlock(ch) for _ in range(cfg.res_blocks)]
            prev = ch
        layers += [ResBlock(prev), nn.ReLU(), nn.Conv2d(prev, out_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, out_dim, h, w)


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chs = list(reversed(cfg.channels))
        layers: list[nn.Module] = [nn.Conv2d(cfg.code_dim, chs[0], 3, padding=1), ResBlock(chs[0])]
        for i, ch in enumerate(chs):  # each level doubles the resolution
            nxt = chs[i + 1] if i + 1 < len(chs) else chs[-1]
            layers += [ResBlock(ch) for _ in range(cfg.res_blocks)]
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, nxt, 3, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(chs[-1], 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # training: the plain layers
            return self.net(z)  # (B, 3, H, W), pixel values around [-1, 1]
        # inference: each upsample + conv as one sub-pixel conv (2.25x fewer FLOPs), channels last throughout (the
        # convolutions run faster so: R1, batch 16, bfloat16, eager 38.6 -> 27.1 ms a decode)
        layers, i = list(self.net), 0
        z = z.contiguous(memory_format=torch.channels_last)
        while i < len(layers):
            if i + 1 < len(layers) and is_upsampled_conv(layers[i], layers[i + 1]):
                z, i = upsampled_conv(z, layers[i + 1]), i + 2
            else:
                z, i = layers[i](z), i + 1
        return z.contiguous()


@dataclass
class VAEOutput:
    recon: torch.Tensor  # (B, 3, H, W) in [0, 1] (unclamped while training)
    indices: torch.Tensor  # (B, h, w)
    quant_loss: torch.Tensor  # scalar
    kl: torch.Tensor | None


class DiscreteVAE(nn.Module):
    _compiled: dict[str, AheadOfTime | Compiled] | None = None  # set by compile_decoding(): the compiled decode

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.quantizer == "vq":
            self.encoder = Encoder(cfg, cfg.code_dim)
            self.quantizer: nn.Module = VectorQuantizerEMA(cfg.num_codes, cfg.code_dim, cfg.commitment,
                                                           cfg.ema_decay, cfg.restart_threshold)
        else:
            self.encoder = Encoder(cfg, cfg.num_codes)  # logits over codes
            self.quantizer = GumbelQuantizer(cfg.num_codes, cfg.code_dim, cfg.kl_weight, cfg.straight_through)
        self.decoder = Decoder(cfg)

    @property
    def num_codes(self) -> int:
        return self.cfg.num_codes

    @property
    def grid_size(self) -> int:
        return self.cfg.grid_size

    def _quantize(self, images: torch.Tensor) -> QuantizerOutput:
        return self.quantizer(self.encoder(images * 2 - 1))

    def forward(self, images: torch.Tensor) -> VAEOutput:
        """images (B, 3, H, W) in [0, 1] -> reconstruction, code ids and the bottleneck loss."""
        q = self._quantize(images)
        recon = (self.decoder(q.z_q) + 1) / 2
        return VAEOutput(recon=recon, indices=q.indices, quant_loss=q.loss, kl=q.kl)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [0, 1] -> code ids (B, h, w)."""
        return self._quantize(images).indices

    @torch.no_grad()
    def code_vectors(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [0, 1] -> their codebook vectors (B, D, h, w): what the decoder reads."""
        return self.quantizer.embed(self.encode(images)).float()

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """code ids (B, h, w) or (B, h*w) -> images (B, 3, H, W) in [0, 1]."""
        if indices.dim() == 2:
            g = self.grid_size
            indices = indices.view(indices.shape[0], g, g)
        z = self.quantizer.embed(indices).to(self.decoder.net[0].weight.dtype)  # (B, D, h, w); bf16 decoder: bf16
        return ((self.decoder(z).float() + 1) / 2).clamp(0, 1)

    def compile_decoding(self, enabled: bool = True) -> None:
        """From now on decode_batch() decodes through a compiled decode (ahead of time on the CPU, AOTInductor with
        the weights frozen in and rebuilt when they change; torch.compile elsewhere: nn/compiled.py): R1, batch
        16, 1.12x in bf16, 1.19x in float32, pixels within 1e-4 of eager's. Off again with False."""
        self._compiled = {} if enabled else None

    def decode_batch(self, indices: torch.Tensor, rows: int) -> torch.Tensor:
        """decode(indices), after compile_decoding() compiled, with the batch padded to `rows` rows (the sampler's
        compiled row count, so that a few shapes compile, not one per batch size) and the padding dropped."""
        if self._compiled is None:
            return self.decode(indices)
        if "decode" not in self._compiled:
            kind = AheadOfTime if indices.device.type == "cpu" else Compiled
            self._compiled["decode"] = kind(self.decode, "vae decode")
        return self._compiled["decode"](pad_rows(indices, rows))[: indices.shape[0]]


# ------------------------------------------------------------------------------------------- save / load

WEIGHTS = "vae.safetensors"


def save_vae(vae: DiscreteVAE, folder: str | Path) -> Path:
    """Write `folder/config.json` + `folder/vae.safetensors`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vae = unwrap(vae)
    write_json(folder / "config.json", model_header("vae", to_dict(vae.cfg)))
    save_part(vae, folder / WEIGHTS)
    return folder


def load_vae(folder: str | Path) -> DiscreteVAE:
    """Rebuild a DiscreteVAE from a folder written by save_vae, or the tokenizer inside a saved dalle or maskgit
    pipeline (strict: shapes and names must match; the folder is checked as every model folder is, checkpoint.py)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"vae folder not found: {folder}")
    kind, config = read_header(folder, "vae")
    if kind == "pipeline":
        if config.get("vae") is None:
            raise CheckpointError(f"{folder} is a pipeline without a VAE (a gan draws its own pixels)")
        cfg = config_from(folder, config["vae"], VAEConfig, "vae")
    elif kind == "vae":
        cfg = config_from(folder, config, VAEConfig, "vae")
    else:
        raise CheckpointError(f"{folder} holds a {kind!r:.60} model, not a vae")
    check_image_size(folder, cfg.image_size, "vae")

    def make() -> DiscreteVAE:
        vae = DiscreteVAE(cfg)
        if cfg.quantizer == "vq":
            vae.quantizer.initialised.fill_(True)
        return vae

    return build_part(make, part_path(folder, WEIGHTS, "vae"), "vae").eval()

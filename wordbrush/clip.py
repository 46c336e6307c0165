"""CLIP: a contrastive text-image model trained on the same data as the generators.

    image (B, 3, H, W) in [0, 1] -> CNN (a stride-2 conv + residual block per stage) -> mean over space
                                  (or the grid flattened: image_pool) -> LayerNorm -> features (B, F)
                                  -> linear -> image embedding (B, E), unit length
    caption ids (B, L)           -> transformer encoder (text/encoder.py) -> mean over non-[PAD] tokens
                                  -> linear -> text embedding (B, E), unit length
    loss: symmetric cross-entropy over the B x B similarities scaled by a learned 1/temperature (CLIP's InfoNCE);
          optionally with hard negative captions, the batch's captions with words swapped (NegCLIP)

It serves twice: to rerank candidates (DALL·E's best-of-N: keep the image whose embedding is closest to the
prompt's) and as the feature space of the metrics in wordbrush/eval/realism.py (the image features F, where
Inception's would otherwise be; no Inception weights can be had offline). `CLIPScorer` bundles the model with its
tokenizer; a saved one is a folder: config.json (kind "clip") + clip.safetensors + tokenizer.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (
    build_part,
    check_image_size,
    model_header,
    part_path,
    read_model_config,
    save_part,
    unwrap,
    write_json,
)
from .config import check, to_dict
from .errors import CheckpointError, ConfigError
from .nn.conv import ResBlock
from .nn.transformer import init_weights
from .text.encoder import TextEncoder
from .text.tokenizer import PAD_ID, TextTokenizer

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps 1/temperature at 100


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
        check(self.text_vocab >= 2 and self.text_len >= 1, "text_vocab must be >= 2 and text_len >= 1")
        check(self.text_dim % self.text_heads == 0, f"text_dim {self.text_dim} is not divisible by text_heads")
        check(self.text_depth >= 1 and self.embed_dim >= 1, "text_depth and embed_dim must be >= 1")
        check(len(self.image_channels) >= 1 and all(c > 0 for c in self.image_channels),
              "image_channels needs at least one positive entry")
        check(self.image_size % (2 ** len(self.image_channels)) == 0,
              f"image_size {self.image_size} is not divisible by 2**{len(self.image_channels)}")
        check(0 < self.init_temperature < 1, "init_temperature must be in (0, 1)")
        check(self.image_pool in ("mean", "flatten"), f"image_pool must be mean or flatten, not {self.image_pool!r}")


class ImageTower(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        chs = cfg.image_channels
        layers: list[nn.Module] = [nn.Conv2d(3, chs[0], 3, padding=1)]
        prev = chs[0]
        for ch in chs:
            layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), ResBlock(ch)]
            prev = ch
        layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.flatten = cfg.image_pool == "flatten"
        grid = cfg.image_size // 2 ** len(chs)
        self.ln = nn.LayerNorm(prev * grid * grid if self.flatten else prev)

    @property
    def num_features(self) -> int:
        return self.ln.normalized_shape[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, F) pooled features."""
        h = self.net(images * 2 - 1)  # (B, C, h, w)
        return self.ln(h.flatten(1) if self.flatten else h.mean(dim=(2, 3)))


class CLIP(nn.Module):
    kind = "clip"

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.image = ImageTower(cfg)
        self.text = TextEncoder(cfg.text_vocab, cfg.text_len, cfg.text_dim, cfg.text_depth, cfg.text_heads)
        self.image_proj = nn.Linear(self.image.num_features, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)
        self.text.apply(init_weights)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, F): what the Fréchet distance and KID are computed on."""
        return self.image(images)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, E) unit vectors."""
        return F.normalize(self.image_proj(self.image(images)).float(), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, E) unit vectors (the mean of the states of the non-[PAD] tokens)."""
        return self.text_states(ids)[1]

    def text_states(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) token ids -> per-token states (B, L, D) and the sentence embedding (B, E), unit length: what the
        gan generator reads (word-level attention and sentence-level fusion)."""
        states = self.text(ids)  # (B, L, D)
        keep = (ids != PAD_ID).unsqueeze(-1).to(states.dtype)  # (B, L, 1)
        pooled = (states * keep).sum(1) / keep.sum(1).clamp_min(1)
        return states, F.normalize(self.text_proj(pooled).float(), dim=-1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor,
                negative_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The contrastive loss of a batch of matching pairs (image i goes with caption i). negative_ids (M, L):
        hard negative captions (text/negatives.py), extra candidates every image must rank below its own caption
        (NegCLIP: they join the image-to-text direction only, having no image of their own)."""
        img, txt = self.encode_image(images), self.encode_text(ids)
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        logits = scale * img @ txt.T  # (B, B)
        target = torch.arange(len(images), device=images.device)
        to_text = logits
        if negative_ids is not None and len(negative_ids):
            to_text = torch.cat([logits, scale * img @ self.encode_text(negative_ids).T], dim=1)  # (B, B + M)
        return (F.cross_entropy(to_text, target) + F.cross_entropy(logits.T, target)) / 2


class CLIPScorer:
    """A CLIP with its tokenizer: text-image similarity and image features, from prompts and pixels."""

    def __init__(self, model: CLIP, tokenizer: TextTokenizer):
        if tokenizer.vocab_size > model.cfg.text_vocab:
            raise ConfigError(f"CLIP tokenizer has {tokenizer.vocab_size} tokens, the model embeds {model.cfg.text_vocab}")
        self.model, self.tokenizer = model.eval(), tokenizer

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    def to(self, device: str | torch.device) -> "CLIPScorer":
        self.model.to(device)
        return self

    def _fit(self, images: torch.Tensor) -> torch.Tensor:
        size = self.model.cfg.image_size
        images = images.to(self.device, next(self.model.parameters()).dtype)  # float32, or bf16 weights' dtype
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return images

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] (resized to the model's size if need be) -> (N, E) unit vectors."""
        return torch.cat([self.model.encode_image(self._fit(images[s : s + batch_size]))
                          for s in range(0, len(images), batch_size)])

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """N captions -> (N, E) unit vectors."""
        out = []
        for s in range(0, len(texts), batch_size):
            ids = self.tokenizer.encode(texts[s : s + batch_size], self.model.cfg.text_len).ids.to(self.device)
            out.append(self.model.encode_text(ids))
        return torch.cat(out)

    @torch.no_grad()
    def image_features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, F) float64 features, for the Fréchet distance and KID."""
        return torch.cat([self.model.image_features(self._fit(images[s : s + batch_size])).double()
                          for s in range(0, len(images), batch_size)])

    @torch.no_grad()
    def similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Cosine similarity of image i with text i: (N,)."""
        return (self.embed_images(images) * self.embed_texts(texts)).sum(-1)

    # ------------------------------------------------------------------------------------------ save / load

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "config.json", model_header("clip", to_dict(unwrap(self.model).cfg)))
        save_part(self.model, folder / "clip.safetensors")
        self.tokenizer.save(folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> "CLIPScorer":
        """A saved CLIP folder, checked as every model folder is (checkpoint.py: sizes against the weights' header
        before anything is allocated, no part that links out of the folder, no NaN weights)."""
        folder = Path(folder)
        cfg = read_model_config(folder, "clip", CLIPConfig, "CLIP")
        check_image_size(folder, cfg.image_size, "clip")
        model = build_part(lambda: CLIP(cfg), part_path(folder, "clip.safetensors", "clip"), "clip")
        try:
            return cls(model, TextTokenizer.load(folder)).to(device)
        except ConfigError as e:
            raise CheckpointError(f"{folder}: {e}") from None

"""A generator family in one file, for tests/test_generator_contract.py: what a new family needs is an
ImageGenerator subclass with its config dataclass beside it, plus one registry entry (made by the test)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wordbrush.config import check
from wordbrush.generators.base import ImageGenerator
from wordbrush.generators.options import SampleOptions


@dataclass
class ToyConfig:
    text_vocab: int = 300
    text_len: int = 8
    image_size: int = 16
    dim: int = 8

    def __post_init__(self) -> None:
        check(self.image_size >= 4, "image_size must be >= 4")


class ToyGenerator(ImageGenerator):
    """Mean word embedding + noise -> a flat colour per image, in one pass."""

    kind = "toy"
    output = "pixels"
    config_class = ToyConfig
    default_sampling = SampleOptions()

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.text_vocab, cfg.dim)
        self.to_rgb = nn.Linear(2 * cfg.dim, 3)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @torch.no_grad()
    def sample(self, text, rngs, options=None, prime=None, use_cache=True):
        options = self._start(text, rngs, options, prime, 0)
        z = torch.stack([torch.randn(self.cfg.dim, generator=g) for g in rngs]) * options.temperature  # (B, dim)
        colour = torch.sigmoid(self.to_rgb(torch.cat([self.emb(text).mean(1), z], 1)))  # (B, 3)
        return colour[:, :, None, None].expand(-1, -1, self.cfg.image_size, self.cfg.image_size)  # (B, 3, H, W)

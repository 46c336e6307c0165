"""The conv trunk's blocks (generators/gan.py; WordAttention also in the discriminator): DF-GAN's deep fusion of
the sentence into every block, and word attention at the resolutions GANConfig.attn_resolutions names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Affine(nn.Module):
    """Per-channel scale and shift from a condition vector; starts as the identity."""

    def __init__(self, cond: int, ch: int):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond, ch), nn.ReLU(), nn.Linear(ch, ch))
        self.beta = nn.Sequential(nn.Linear(cond, ch), nn.ReLU(), nn.Linear(ch, ch))
        for head in (self.gamma[2], self.beta[2]):
            nn.init.zeros_(head.weight)
        nn.init.ones_(self.gamma[2].bias)
        nn.init.zeros_(self.beta[2].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta(c)[:, :, None, None], self.gamma(c)[:, :, None, None], x)  # one pass


class Fusion(nn.Module):
    """DF-GAN's deep fusion: affine -> LeakyReLU -> affine -> LeakyReLU."""

    def __init__(self, cond: int, ch: int):
        super().__init__()
        self.a1, self.a2 = Affine(cond, ch), Affine(cond, ch)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.a1(x, c), 0.2, inplace=True)
        return F.leaky_relu(self.a2(x, c), 0.2, inplace=True)


class WordAttention(nn.Module):
    """Each pixel attends over the caption's non-[PAD] token states; the context enters through a gate at 0."""

    def __init__(self, ch: int, text_dim: int, dim: int):
        super().__init__()
        self.q = nn.Conv2d(ch, dim, 1)
        self.kv = nn.Linear(text_dim, 2 * dim)
        self.out = nn.Conv2d(dim, ch, 1)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, words: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        q = self.q(x).flatten(2).transpose(1, 2)  # (B, HW, d)
        k, v = self.kv(words).chunk(2, dim=-1)  # (B, L, d) each
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, :])  # (B, HW, d)
        return x + self.gate * self.out(ctx.transpose(1, 2).reshape(B, -1, H, W))


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def same(x: torch.Tensor) -> torch.Tensor:
    return x


class UpBlock(nn.Module):
    """Fused residual block that doubles the resolution (or, with up=False, keeps it)."""

    def __init__(self, cin: int, cout: int, cond: int, text_dim: int, attn_dim: int, attend: bool, up: bool = True):
        super().__init__()
        self.up = up
        self.f1, self.c1 = Fusion(cond, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.f2, self.c2 = Fusion(cond, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.attn = WordAttention(cout, text_dim, attn_dim) if attend else None

    def forward(self, x, c, words, keep):
        # The fusion (per-channel affine + pointwise activation) and the 1x1 skip commute with nearest upsampling,
        # so both run before it, at a quarter of the pixels: the same function as upsample-then-fuse, less work.
        resize = up2 if self.up else same
        h = self.c2(self.f2(self.c1(resize(self.f1(x, c))), c))
        h = resize(self.skip(x)) + h
        return self.attn(h, words, keep) if self.attn is not None else h

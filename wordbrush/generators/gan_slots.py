"""Object slots for the gan's conv trunk (GANConfig.slots > 0): per-object conditioning, learnt without boxes.

The conv trunk conditions every position on the same sentence vector, and its word attention lets each position
read the words, but a position does not know which object the noise put there: "a purple diamond to the left of
a white circle" comes out as two purple objects, or the right shapes in the wrong places (docs/gan.md). Here K
slots each take a share of the noise and read the caption's words (cross-attention), then hear each other
(self-attention: which object the others took, and where they went, for the relations), and each places itself
on the grid as a soft blob, a centre and a width, that carries a feature vector. The sum over the slots is added
to the trunk's features at 4 px and at the output grid, so one object's words condition one region. Nothing
tells a slot which object to take or where: the gan's losses train it, as the rest of G.

    z (B, Z) -> K slots (B, K, d) -> + words (cross-attention) -> slots hear each other -> centre (B, K, 2) in
    [-1, 1]², width (B, K, 1) -> per side s: sum_k blob_k (s*s) x feature_k (C_s) -> (B, C_s, s, s)
"""

from __future__ import annotations

import torch
from torch import nn


def cell_centres(side: int) -> torch.Tensor:
    """The centres of a side x side grid's cells in [-1, 1]², raster order: (side*side, 2) as (x, y)."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


class SlotLayout(nn.Module):
    """See the top of the file. sides: the grids the blobs are drawn on; widths: the trunk's channels there."""

    def __init__(self, slots: int, noise_dim: int, text_dim: int, dim: int, heads: int,
                 sides: tuple[int, ...], widths: tuple[int, ...]):
        super().__init__()
        self.k, self.dim, self.sides = slots, dim, sides
        self.queries = nn.Parameter(torch.randn(slots, dim))  # which slot is which, before the noise
        self.noise = nn.Linear(noise_dim, slots * dim)  # each slot's own share of the noise
        self.read = nn.MultiheadAttention(dim, heads, kdim=text_dim, vdim=text_dim, batch_first=True)
        self.mix = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.where = nn.Linear(dim, 3)  # centre (x, y), width
        self.what = nn.ModuleList(nn.Linear(dim, w) for w in widths)
        for s in sides:
            self.register_buffer(f"grid{s}", cell_centres(s), persistent=False)

    def place(self, z: torch.Tensor, words: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """noise (B, Z), word states (B, L, Dt), keep (B, L) -> slots (B, K, d), centres (B, K, 2), widths (B, K, 1)."""
        s = self.queries + self.noise(z).view(len(z), self.k, self.dim)  # (B, K, d)
        ctx, _ = self.read(s, words.to(s.dtype), words.to(s.dtype), key_padding_mask=~keep, need_weights=False)
        s = self.mix(s + ctx)  # (B, K, d)
        w = self.where(s).float()
        return s, torch.tanh(w[..., :2]), 0.1 + 0.4 * torch.sigmoid(w[..., 2:])  # width: a fifth of the side to all

    def forward(self, z: torch.Tensor, words: torch.Tensor, keep: torch.Tensor) -> list[torch.Tensor]:
        """-> one feature map per side: (B, width, side, side)."""
        s, centre, width = self.place(z, words, keep)
        out = []
        for side, what in zip(self.sides, self.what):
            grid = getattr(self, f"grid{side}")  # (n, 2)
            d2 = (grid[None, None] - centre[:, :, None]).square().sum(-1)  # (B, K, n)
            blob = torch.exp(-d2 / (2 * width.square()))  # (B, K, n), 1 at the centre
            feat = what(s)  # (B, K, C)
            out.append(torch.einsum("bkn,bkc->bcn", blob.to(feat.dtype), feat).view(len(z), -1, side, side))
        return out

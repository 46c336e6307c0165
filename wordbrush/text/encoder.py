"""The `scratch` text encoder: token + position embeddings and a few bidirectional transformer blocks, trained
with the generator that reads its states (the `maskgit` generator cross-attends to them)."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.transformer import Block


class TextEncoder(nn.Module):
    def __init__(self, vocab: int, length: int, dim: int, depth: int, heads: int, mlp_ratio: int = 4,
                 dropout: float = 0.0):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(length, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout, causal=False) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, D) states. [PAD] positions are attended like any token, so an all-[PAD]
        caption (caption dropout) is a real input: the unconditional model of classifier-free guidance."""
        x = self.emb(ids) + self.pos[: ids.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.ln(x)

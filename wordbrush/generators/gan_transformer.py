"""The `gan`'s transformer trunk (GANConfig.trunk "transformer", latent mode only): noise + text -> the VAE's code
grid in one pass, with self-attention relating every grid position to every other and cross-attention to the
caption's words: the brief's "self-attention relates the words to one another and to the image", without the
dalle's token-by-token loop.

    z (B, Z), sentence s (B, E), words (B, L, Dt)
    image tokens  x_i = pos_i + W_c [s ; z]                        (B, g*g, d)  one per grid position
    noise tokens  W_n z, reshaped                                  (B, n, d)    slots the positions can read
    blocks:       self-attention over [noise ; image] tokens, cross-attention to W_t words, MLP (pre-LN)
    out:          LN -> linear -> scores over the VAE's K codes      (B, g*g, K)  (gan.py mixes their code vectors
                                                                                for the decoder, or picks the best)

With grid_noise (GANConfig.grid_noise; Z = g*g) the noise is one number per grid position: image token i reads
pos_i + W_c s + MLP(z_i), and the noise tokens still see all of z. This is the student of a dalle drawn with a
quantile per position (train/gan_distill.py): token i of the teacher's image is a function of the caption and
z_1 .. z_i, so each position gets its own noise where it is decided.

The conv trunk (gan.py) reaches the whole 8x8 grid only through stacked 3x3 convolutions and relates words to
places through two attention layers; here every layer can look at where the other objects went, which is what
"to the left of" and "a red square and a blue circle" need.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.transformer import Block

NOISE_TOKENS = 4


class TransformerTrunk(nn.Module):
    def __init__(self, grid: int, noise_dim: int, sentence_dim: int, text_dim: int, num_codes: int, dim: int,
                 depth: int, heads: int, mlp_ratio: int, grid_noise: bool = False):
        super().__init__()
        self.grid, self.dim = grid, dim
        # unit scale: every position gets the same content (the noise and the sentence), so the position embedding
        # alone tells them apart; at ViT's 0.02 it was drowned by the content and all 64 positions wrote one code
        self.pos = nn.Parameter(torch.randn(grid * grid, dim))
        self.cond = nn.Linear(sentence_dim + (0 if grid_noise else noise_dim), dim)
        # grid_noise: each position's own noise value, through a small MLP (a threshold on it decides a token)
        self.cell = nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, dim)) if grid_noise else None
        self.noise = nn.Linear(noise_dim, NOISE_TOKENS * dim)
        self.context = nn.Linear(text_dim, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, causal=False, cross=True) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, num_codes)

    def forward(self, z: torch.Tensor, sentence: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """z (B, Z), sentence (B, E), words (B, L, Dt) -> logits over the codes (B, g*g, K)."""
        B = len(z)
        if self.cell is not None:  # z (B, g*g): one value per position
            x = self.pos + self.cond(sentence)[:, None] + self.cell(z[..., None])  # (B, g*g, d)
        else:
            x = self.pos + self.cond(torch.cat([sentence, z], dim=1))[:, None]  # (B, g*g, d)
        x = torch.cat([self.noise(z).view(B, NOISE_TOKENS, self.dim), x], dim=1)  # (B, n + g*g, d)
        context = self.context(words)  # (B, L, d)
        for blk in self.blocks:
            x = blk(x, context=context)
        return self.out(self.ln(x[:, NOISE_TOKENS:]))  # (B, g*g, K)

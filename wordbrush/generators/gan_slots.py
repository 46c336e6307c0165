"""Object slots for the gan's conv trunk (GANConfig.slots > 0): per-object conditioning, learnt without boxes.

The conv trunk conditions every position on the same sentence vector, and its word attention lets each position
read the words, but a position does not know which object the noise put there: "a purple diamond to the left of
a white circle" comes out as two purple objects, or the right shapes in the wrong places (docs/gan.md). Here K
slots each take a share of the noise and read the caption's words (cross-attention), then hear each other
(self-attention: which object the others took, and where they went, for the relations), and each places itself
on the grid as a soft blob, a centre and a width, that carries a feature vector. The sum over the slots is added
to the trunk's features at 4 px and at the output grid, so one object's words condition one region. Nothing
tells a slot which object to take or where: the gan's losses train it, as the rest of G.

Reading objects (GANConfig.slot_reading "objects"). Read as above, a slot takes its object's shape and place
but the other object's colour ("an orange square above a cyan triangle" -> a cyan square above an orange
triangle, every seed: docs/gan.md), since one attention over the whole caption's word states does not say which
colour word goes with which shape. Here the caption is split into its object phrases, the runs of content words
(text/phrases.py: "a [purple diamond] to the left of a [white circle]"), each phrase encoded on its own by the
same frozen text tower, and slot k reads phrase k mod n (n phrases) and learns which of them it holds (an
embedding of the phrase's place). What a slot draws (its features) comes from its phrase alone; where it goes,
and whether it is drawn at all (a gate: "three crosses" needs three of the slots that read it, "a drawing of"
none), from the whole caption and the other slots, as above.

    z (B, Z) -> K slots (B, K, d) -> + words (cross-attention) -> slots hear each other -> centre (B, K, 2) in
    [-1, 1]², width (B, K, 1) -> per side s: sum_k blob_k (s*s) x feature_k (C_s) -> (B, C_s, s, s)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..text.phrases import ROLE_CONTENT, ROLE_EVERY
from ..text.tokenizer import PAD_ID


class Phrases(NamedTuple):
    """Each slot's object phrase, encoded alone: word states (B, K, L, Dt), keep (B, K, L), and which of the
    caption's phrases it is (B, K), counted from 0."""

    words: torch.Tensor
    keep: torch.Tensor
    order: torch.Tensor


def object_phrases(ids: torch.Tensor, roles: torch.Tensor, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Caption ids (B, L) and the vocabulary's roles (text/phrases.py) -> the caption's object phrases as ids
    (B, P, L), P = the most phrases of any caption, up to `slots` (each phrase's tokens and the tokens every phrase
    keeps, in their order, then [PAD]s), and which phrase each slot reads (B, K): slot k reads phrase k mod n of
    its caption's n (a caption without content words: an empty phrase)."""
    role = roles[ids]  # (B, L)
    content = (role == ROLE_CONTENT) & (ids != PAD_ID)
    start = content & ~F.pad(content[:, :-1], (1, 0), value=False)  # where a run of content words begins
    run = start.long().cumsum(1) * content  # (B, L): 1..n on a phrase's tokens, 0 elsewhere
    n = start.sum(1).clamp_min(1)  # (B,)
    order = torch.arange(slots, device=ids.device)[None] % n[:, None]  # (B, K)
    p = torch.arange(min(slots, int(n.max())), device=ids.device)
    pick = (run[:, None, :] == p[None, :, None] + 1) | (role == ROLE_EVERY)[:, None, :]  # (B, P, L)
    packed = torch.where(pick, ids[:, None, :], PAD_ID)
    first = torch.argsort((~pick).to(torch.int8), dim=-1, stable=True)  # the picked tokens first, in order
    return packed.gather(-1, first), order


def cell_centres(side: int) -> torch.Tensor:
    """The centres of a side x side grid's cells in [-1, 1]², raster order: (side*side, 2) as (x, y)."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


class SlotLayout(nn.Module):
    """See the top of the file. sides: the grids the blobs are drawn on; widths: the trunk's channels there."""

    def __init__(self, slots: int, noise_dim: int, text_dim: int, dim: int, heads: int,
                 sides: tuple[int, ...], widths: tuple[int, ...], objects: bool = False):
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
        if objects:  # each slot's own phrase: what it draws; the gate: whether it is drawn
            self.order = nn.Embedding(slots, dim)
            self.read_own = nn.MultiheadAttention(dim, heads, kdim=text_dim, vdim=text_dim, batch_first=True)
            self.own = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            self.gate = nn.Linear(dim, 1)

    def place(self, z: torch.Tensor, words: torch.Tensor, keep: torch.Tensor,
              phrases: Phrases | None = None) -> tuple[torch.Tensor, ...]:
        """noise (B, Z), word states (B, L, Dt), keep (B, L), with objects each slot's phrase -> what each slot
        draws (B, K, d), centres (B, K, 2), widths (B, K, 1)."""
        B = len(z)
        s = self.queries + self.noise(z).view(B, self.k, self.dim)  # (B, K, d)
        if phrases is not None:  # the slot's own phrase alone: (B*K) one-query attentions
            s = s + self.order(phrases.order)
            pw = phrases.words.to(s.dtype).flatten(0, 1)  # (B*K, L, Dt)
            own, _ = self.read_own(s.reshape(B * self.k, 1, self.dim), pw, pw,
                                   key_padding_mask=~phrases.keep.flatten(0, 1), need_weights=False)
            s = s + own.view(B, self.k, self.dim)
            s = s + self.own(s)  # (B, K, d): from the noise and the slot's own words only
        ctx, _ = self.read(s, words.to(s.dtype), words.to(s.dtype), key_padding_mask=~keep, need_weights=False)
        mixed = self.mix(s + ctx)  # (B, K, d): the whole caption, and the other slots
        w = self.where(mixed).float()
        if phrases is None:
            drawn = mixed
        else:  # the features of the slot's own words, scaled by whether the whole caption wants it drawn
            drawn = s * torch.sigmoid(self.gate(mixed))
        return drawn, torch.tanh(w[..., :2]), 0.1 + 0.4 * torch.sigmoid(w[..., 2:])  # widths 0.1 to 0.5

    def forward(self, z: torch.Tensor, words: torch.Tensor, keep: torch.Tensor,
                phrases: Phrases | None = None) -> list[torch.Tensor]:
        """-> one feature map per side: (B, width, side, side)."""
        s, centre, width = self.place(z, words, keep, phrases)
        out = []
        for side, what in zip(self.sides, self.what):
            grid = getattr(self, f"grid{side}")  # (n, 2)
            d2 = (grid[None, None] - centre[:, :, None]).square().sum(-1)  # (B, K, n)
            blob = torch.exp(-d2 / (2 * width.square()))  # (B, K, n), 1 at the centre
            feat = what(s)  # (B, K, C)
            out.append(torch.einsum("bkn,bkc->bcn", blob.to(feat.dtype), feat).view(len(z), -1, side, side))
        return out

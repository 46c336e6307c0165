"""Analytic FLOP counts of the `dalle` generator's work: what bench sets against the matmul ceiling.

A multiply-add is 2 FLOPs. Counted: every matmul of the transformer and its heads (weights only) and attention's
two products (q k^T and weights @ v) over the keys each query sees (causal: a query at position t sees t keys).
Left out: norms, biases, GELU, softmax, embedding lookups, the text encoder outside the transformer (minilm), the
VAE decode and AdamW. A backward costs twice its forward, so a training step is 3x its forward.

With cfg = the generator's config (dim d, depth, mlp_ratio r, L text + N image tokens, T = L + N - 1 positions):
    one layer, one position t:   matmuls 2 (4 + 2r) d^2   (qkv 3d^2, proj d^2, MLP 2 r d^2)   attention 4 t d
    trunk over T positions:      depth (2 T (4 + 2r) d^2 + 2 d T (T + 1))                   (sum of 4 t d, t = 1..T)
    sampling, one image:         rows (trunk + N 2 d V_img)  rows = 2 with guidance (conditional + unconditional)
                                 the KV cache runs every position once: the text in one pass, then N - 1 steps
    training, one sample:        3 (trunk + N 2 d V_img + [text loss] (L - 1) 2 d V_txt)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flops:
    """FLOPs of one unit of work (one image drawn, or one sample trained), by kind."""

    matmul: int  # the weight matmuls of the trunk and heads
    attention: int  # q k^T and weights @ v

    @property
    def total(self) -> int:
        return self.matmul + self.attention

    def __mul__(self, k: int) -> Flops:
        return Flops(self.matmul * k, self.attention * k)


def _positions(cfg) -> int:
    return cfg.text_len + cfg.image_len - 1  # the last image token is predicted, never fed back


def trunk(cfg, positions: int) -> Flops:
    """One causal pass of the transformer over `positions` tokens (with or without a KV cache: the same work)."""
    d, T = cfg.dim, positions
    return Flops(matmul=cfg.depth * 2 * T * (4 + 2 * cfg.mlp_ratio) * d * d, attention=cfg.depth * 2 * d * T * (T + 1))


def sample_flops(cfg, guided: bool) -> Flops:
    """Drawing one image with the KV cache; guided: the conditional and unconditional rows both run."""
    one_row = trunk(cfg, _positions(cfg))
    head = cfg.image_len * 2 * cfg.dim * cfg.image_vocab  # one image-head row per image token
    return Flops(one_row.matmul + head, one_row.attention) * (2 if guided else 1)


def train_flops(cfg) -> Flops:
    """One sample through a training step: forward (both heads where the text loss is on) and backward."""
    fwd = trunk(cfg, _positions(cfg))
    heads = cfg.image_len * 2 * cfg.dim * cfg.image_vocab
    if cfg.text_encoder == "scratch" and cfg.text_loss_weight > 0 and cfg.text_len > 1:
        heads += (cfg.text_len - 1) * 2 * cfg.dim * cfg.text_vocab
    return Flops(fwd.matmul + heads, fwd.attention) * 3


def counted(generator) -> bool:
    """Whether this module counts the generator's work (the dalle only, today)."""
    return getattr(generator, "kind", None) == "dalle"

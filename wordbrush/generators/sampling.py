"""The token families' draw over the image vocabulary: per-row Gumbel noise, temperature + top-k / top-p
filtering, and the Gumbel-max pick."""

from __future__ import annotations

import torch

from .options import SampleOptions


def gumbel(rngs: list[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Gumbel noise of `shape` for each row, each from its own random stream: (len(rngs), *shape)."""
    u = torch.stack([torch.rand(shape, generator=g) for g in rngs])
    return (-torch.log(-torch.log(u.clamp_(1e-20, 1.0)))).to(device)


def filter_logits(logits: torch.Tensor, o: SampleOptions) -> torch.Tensor:
    """(..., V) logits -> temperature-scaled logits with tokens outside top-k / top-p set to -inf."""
    logits = logits / o.temperature
    if o.top_k is not None and o.top_k < logits.shape[-1]:
        kth = logits.topk(o.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if o.top_p is not None and o.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= o.top_p  # mass before this token already reaches p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    return logits


def pick(logits: torch.Tensor, noise: torch.Tensor, o: SampleOptions) -> torch.Tensor:
    """One token per row of (..., V) logits: filtering, temperature, then the Gumbel-max trick."""
    return (filter_logits(logits, o) + noise).argmax(-1)

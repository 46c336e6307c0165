"""The token families' draw over the image vocabulary: per-row Gumbel noise, temperature + top-k / top-p
filtering, and the Gumbel-max pick; and, for the pipeline's best-of-C, each candidate's random stream and the
standardised scores its rerankers sum."""

from __future__ import annotations

import numpy as np
import torch

from .options import SampleOptions


def gumbel(rngs: list[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Gumbel noise of `shape` for each row, each from its own random stream: (len(rngs), *shape)."""
    u = torch.stack([torch.rand(shape, generator=g) for g in rngs])
    return u.clamp_(1e-20, 1.0).log_().neg_().log_().neg_().to(device)  # -log(-log u), in place


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


def pick_quantile(logits: torch.Tensor, u: torch.Tensor, o: SampleOptions) -> torch.Tensor:
    """One token per row of (..., V) logits, chosen by a uniform u (...,) in [0, 1): after the same filtering and
    temperature as pick(), the codes in descending order of probability, and the one whose cumulative share
    passes u (u near 0: the likeliest code). A draw from the same distribution as pick()'s, but a fixed function
    of u: with u given for every position, a dalle's image is a deterministic map of (caption, u), which a one-step
    student can learn (train/gan_distill.py)."""
    probs, order = filter_logits(logits.float(), o).softmax(-1).sort(-1, descending=True)
    index = (probs.cumsum(-1) <= u[..., None]).sum(-1).clamp_max(probs.shape[-1] - 1)  # (...,)
    return order.gather(-1, index[..., None])[..., 0]


def standardised(score: torch.Tensor) -> torch.Tensor:
    """(b, C) scores -> each row shifted to mean 0 and scaled to standard deviation 1 (0 where all are equal), so
    that two rerankers' scores on different scales can be summed."""
    centred = score - score.mean(1, keepdim=True)
    return centred / centred.std(1, keepdim=True, unbiased=False).clamp_min(1e-8)


def best_of(scores: list[torch.Tensor], candidates: int) -> torch.Tensor:
    """Judges' scores, each (b*C,) for b images of C candidates in a row -> (b,) the row of each image's best
    candidate: each judge's scores standardised over an image's candidates, then summed (neither scale dominates)."""
    total = sum(standardised(x.reshape(-1, candidates).float().cpu()) for x in scores)  # (b, C)
    best = total.argmax(1)
    return torch.arange(len(best)) * candidates + best


def candidate_rng(seed: int, candidate: int) -> torch.Generator:
    """The random stream of one candidate of the image with this seed; candidate 0 is seeded with the seed itself."""
    if candidate == 0:
        return torch.Generator().manual_seed(seed)
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, candidate]).generate_state(1, np.uint64)[0]))

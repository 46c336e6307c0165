"""What every token generator shares: its loss record, the sampling options a pipeline passes it, and the
filtering + Gumbel-max draw over the image vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_CANDIDATES = 64
RERANKERS = ("likelihood", "clip")


@dataclass
class GeneratorLoss:
    loss: torch.Tensor  # what is optimised
    text: torch.Tensor  # caption-token part (0 where the generator has none)
    image: torch.Tensor  # image-token part


@dataclass
class SampleOptions:
    guidance_scale: float = 1.0  # 1 = no guidance (the unconditional rows are skipped)
    temperature: float = 1.0
    top_k: int | None = None  # keep the k most likely image tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p
    steps: int = 12  # maskgit: parallel decoding steps (dalle writes one token per step and ignores this)
    choice_temperature: float = 4.5  # maskgit: noise on which tokens to keep at a step, annealed to 0 (MaskGIT: 4.5)
    candidates: int = 1  # draw this many per image and keep the best by `rerank`
    rerank: str = "likelihood"  # "likelihood": the generator's log p(image | prompt); "clip": the pipeline's CLIP

    def validate(self, vocab: int) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.top_k is not None and not 1 <= self.top_k <= vocab:
            raise ValueError(f"top_k must be in 1..{vocab}, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 1 <= self.steps <= 1024:
            raise ValueError(f"steps must be in 1..1024, got {self.steps}")
        if self.choice_temperature < 0:
            raise ValueError(f"choice_temperature must be >= 0, got {self.choice_temperature}")
        if self.rerank not in RERANKERS:
            raise ValueError(f"rerank must be one of {', '.join(RERANKERS)}, got {self.rerank!r}")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise ValueError(f"candidates must be in 1..{MAX_CANDIDATES}, got {self.candidates}")


def gumbel(generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Gumbel noise of `shape` for each row, each from its own generator: (len(generators), *shape)."""
    u = torch.stack([torch.rand(shape, generator=g) for g in generators])
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

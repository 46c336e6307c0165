"""The sampling options a pipeline passes to every generator, and their checks. Plain Python (no torch), so the
command line can read the choices without loading a model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import WordbrushError

MAX_CANDIDATES = 64
RERANKERS = ("likelihood", "clip", "clip+likelihood", "discriminator", "clip+discriminator")


@dataclass
class SampleOptions:
    guidance_scale: float = 1.0  # 1 = no guidance (the unconditional rows are skipped)
    temperature: float = 1.0  # token families: of the logits; the gan: of its noise (the truncation trick)
    top_k: int | None = None  # keep the k most likely image tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p
    steps: int = 12  # maskgit: parallel decoding steps (the others ignore it)
    choice_temperature: float = 4.5  # maskgit: noise on which tokens to keep at a step, annealed to 0 (MaskGIT: 4.5)
    candidates: int = 1  # draw this many per image and keep the best by `rerank`
    rerank: str = "likelihood"  # "likelihood": the generator's log p(image | prompt); "clip": the pipeline's CLIP;
    # "clip+likelihood": both, each standardised over an image's candidates, summed; "discriminator": the
    # generator's own critic (a gan's discriminator: discriminator rejection sampling's greedy form), "clip+..." both
    rewrite: bool = True  # a model with a prompt rewriter (text/rewriter.py) draws a prompt in a person's words as
    # the nearest of its own captions; False draws every prompt as typed

    def validate(self, vocab: int | None = None) -> None:
        """Raise WordbrushError naming the first bad option. vocab: the image vocabulary that bounds top_k (None
        for a generator that writes pixels and has none)."""
        for name in ("guidance_scale", "temperature", "choice_temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise WordbrushError(f"{name} must be a finite number, got {value!r}")
        if not self.temperature > 0:
            raise WordbrushError(f"temperature must be > 0, got {self.temperature}")
        if self.guidance_scale < 0:
            raise WordbrushError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.top_k is not None and not (_is_int(self.top_k) and 1 <= self.top_k <= (vocab or self.top_k)):
            raise WordbrushError(f"top_k must be in 1..{vocab or 'the vocabulary'}, got {self.top_k!r}")
        if self.top_p is not None and not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise WordbrushError(f"top_p must be in (0, 1], got {self.top_p!r}")  # NaN fails both comparisons
        if not (_is_int(self.steps) and 1 <= self.steps <= 1024):
            raise WordbrushError(f"steps must be in 1..1024, got {self.steps!r}")
        if self.choice_temperature < 0:
            raise WordbrushError(f"choice_temperature must be >= 0, got {self.choice_temperature}")
        if not isinstance(self.rewrite, bool):
            raise WordbrushError(f"rewrite must be true or false, got {self.rewrite!r}")
        if self.rerank not in RERANKERS:
            raise WordbrushError(f"rerank must be one of {', '.join(RERANKERS)}, got {self.rerank!r}")
        if not (_is_int(self.candidates) and 1 <= self.candidates <= MAX_CANDIDATES):
            raise WordbrushError(f"candidates must be in 1..{MAX_CANDIDATES}, got {self.candidates!r}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)

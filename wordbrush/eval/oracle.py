"""The shapes fidelity benchmark's two baselines, drawn the way a model draws (a DrawFn: prompts and seeds in, one
image per pair out), so every report can show a model beside them:

- the oracle renders a random dataset scene matching each prompt (data/specs.py's render_spec): the ceiling, ~1.0;
- the shuffled-caption baseline renders the oracle scene of a different prompt of the same set: what an image
  unrelated to its prompt scores.

The image for (prompt, seed) is determined by the pair, whatever the batch it comes in.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Mapping

import numpy as np
from PIL import Image

from ..data.specs import PromptSpec, render_spec
from .fidelity import DrawFn

Specs = Mapping[str, PromptSpec] | Iterable[PromptSpec]  # by prompt, or a list of specs


def _spec_table(specs: Specs) -> dict[str, PromptSpec]:
    return dict(specs) if isinstance(specs, Mapping) else {s.prompt: s for s in specs}


def _rng_for(prompt: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(prompt.encode("utf-8"))])


def _lookup(table: dict[str, PromptSpec], prompt: str) -> PromptSpec:
    if prompt not in table:
        raise ValueError(f"the baseline knows no spec for prompt {prompt!r}")
    return table[prompt]


def oracle_draw(specs_by_prompt: Specs, size: int = 64) -> DrawFn:
    """A DrawFn that renders a scene matching each prompt (the ceiling; scores ~1.0)."""
    table = _spec_table(specs_by_prompt)

    def draw(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return [Image.fromarray(render_spec(_lookup(table, p), _rng_for(p, s), size), "RGB")
                for p, s in zip(prompts, seeds)]

    return draw


def shuffled_draw(specs_by_prompt: Specs, size: int = 64) -> DrawFn:
    """The shuffled-caption baseline: for each (prompt, seed), the oracle render of a different
    prompt drawn at random from the same set. Scores what an image unrelated to its prompt gets."""
    table = _spec_table(specs_by_prompt)
    names = sorted(table)
    if len(names) < 2:
        raise ValueError("the shuffled baseline needs at least two different prompts")

    def draw(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        out = []
        for p, s in zip(prompts, seeds):
            _lookup(table, p)
            rng = _rng_for(p, s)
            others = [q for q in names if q != p]
            other = others[int(rng.integers(len(others)))]
            out.append(Image.fromarray(render_spec(table[other], rng, size), "RGB"))
        return out

    return draw


def baseline_draws(specs: Specs, size: int = 64) -> dict[str, DrawFn]:
    """{"oracle": ..., "shuffled": ...}: the two baselines every report shows beside a model."""
    table = _spec_table(specs)
    return {"oracle": oracle_draw(table, size), "shuffled": shuffled_draw(table, size)}

"""The fidelity benchmark's paraphrased prompts: the standard prompts (same scenes, same seed, same judge) written
in words and sentence forms that training captions never use: shape, colour, size, relation and number synonyms
and sentence frames, all from data/captions.py's UNSEEN_* lists ("show me a crimson ball beneath an azure box").
A model that only memorised its caption vocabulary fails here; one whose text encoder knows the language should
not.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..data.captions import (UNSEEN_AND_WORDS, UNSEEN_COLOR_WORDS, UNSEEN_FORMS, UNSEEN_NUMBER_WORDS,
                             UNSEEN_RELATION_WORDS, UNSEEN_SHAPE_WORDS, UNSEEN_SIZE_WORDS, article, pick)
from ..data.specs import ObjSpec, PromptSpec
from .prompts import DEFAULT_SEED, make_prompts

P_SIZE_WORD = 0.3  # single objects sometimes get a size word; sizes are never judged


def paraphrase(spec: PromptSpec, rng: np.random.Generator) -> PromptSpec:
    """The same spec with its prompt written in unseen words: "a red circle to the left of a blue square" ->
    e.g. "please draw a scarlet disc west of a navy block"."""

    def phrase(o: ObjSpec) -> str:
        words = []
        if o.count == 1 and rng.random() < P_SIZE_WORD:
            words.append(pick(rng, pick(rng, tuple(UNSEEN_SIZE_WORDS.values()))))
        if o.color is not None:
            words.append(pick(rng, UNSEEN_COLOR_WORDS[o.color]))
        words.append(pick(rng, UNSEEN_SHAPE_WORDS[o.shape])[1 if o.count > 1 else 0])
        text = " ".join(words)
        return f"{pick(rng, UNSEEN_NUMBER_WORDS[o.count])} {text}" if o.count > 1 else article(text)

    if spec.relation is not None:
        scene = f"{phrase(spec.objects[0])} {pick(rng, UNSEEN_RELATION_WORDS[spec.relation])} {phrase(spec.objects[1])}"
    else:
        scene = f" {pick(rng, UNSEEN_AND_WORDS)} ".join(phrase(o) for o in spec.objects)
    return replace(spec, prompt=pick(rng, UNSEEN_FORMS).format(x=scene))


def make_paraphrase_prompts(n_per_category: int = 20, seed: int = DEFAULT_SEED, split: str = "all") -> list[PromptSpec]:
    """make_prompts(n_per_category, seed, split), each prompt paraphrased (deterministic in seed)."""
    rng = np.random.default_rng([seed, 7])
    return [paraphrase(s, rng) for s in make_prompts(n_per_category, seed=seed, split=split)]

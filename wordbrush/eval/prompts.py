"""The shapes fidelity benchmark's prompts: every prompt of each GenEval category, and make_prompts, which draws
n of each from a seed training never uses.

Prompts use only words of the training captions (data/captions.py), never RESERVED_WORDS. split="holdout" gives
only prompts that name a held-out colour-shape pair, so only the four categories that name colours
(COLOR_CATEGORIES); split="train" gives prompts that name none. The specs themselves (ObjSpec, PromptSpec) live in
data/specs.py.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..data.captions import NUMBER_WORDS, RELATION_WORDS
from ..data.scene import COLORS, RELATIONS, SHAPES
from ..data.shapes import DEFAULT_HOLDOUT, SPLITS
from ..data.specs import CATEGORIES, ObjSpec, PromptSpec

DEFAULT_SEED = 2_000_000  # training draws scenes from small seeds; prompts come from here


def _spec(category: str, objects: tuple[ObjSpec, ...], relation: str | None = None) -> PromptSpec:
    if relation is not None:
        text = f"{objects[0].phrase()} {RELATION_WORDS[relation][0]} {objects[1].phrase()}"
    else:
        text = " and ".join(o.phrase() for o in objects)
    return PromptSpec(category, text, objects, relation)


def _candidates(category: str) -> list[PromptSpec]:
    """Every prompt of a category (before a split's filter), in a fixed order."""
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    if category == "single_object":
        return [_spec(category, (ObjSpec(s),)) for s in SHAPES]
    if category == "two_objects":
        return [_spec(category, (ObjSpec(a), ObjSpec(b))) for a in SHAPES for b in SHAPES if a != b]
    if category == "counting":
        return [_spec(category, (ObjSpec(s, c, n),))
                for n in NUMBER_WORDS for s in SHAPES for c in (None, *COLORS)]
    if category == "colors":
        return [_spec(category, (ObjSpec(s, c),)) for c, s in pairs]
    if category == "position":  # like the dataset's pairs: differ in colour or shape (or both)
        return [_spec(category, (ObjSpec(a[1], a[0]), ObjSpec(b[1], b[0])), r)
                for a in pairs for b in pairs if a != b for r in RELATIONS]
    if category == "attribute_binding":  # different colours and different shapes
        return [_spec(category, (ObjSpec(a[1], a[0]), ObjSpec(b[1], b[0])))
                for a in pairs for b in pairs if a[0] != b[0] and a[1] != b[1]]
    raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")


def make_prompts(n_per_category: int = 20, seed: int = DEFAULT_SEED, split: str = "all",
                 holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT) -> list[PromptSpec]:
    """n prompts per category, category-major, determined by (seed, split, holdout).

    Each category draws without replacement from all its prompts and starts over (newly shuffled)
    when it runs out, so small categories repeat (single_object has 5 prompts, two_objects 20).
    A larger n extends a smaller n's list. split="holdout" has only COLOR_CATEGORIES.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if n_per_category < 1:
        raise ValueError(f"n_per_category must be >= 1, got {n_per_category}")
    held = frozenset(tuple(p) for p in holdout)
    out: list[PromptSpec] = []
    for k, category in enumerate(CATEGORIES):
        cands = _candidates(category)
        if split == "holdout":
            cands = [c for c in cands if c.named_pairs() & held]
        elif split == "train":
            cands = [c for c in cands if not c.named_pairs() & held]
        if not cands:
            continue
        rng = np.random.default_rng([seed, k])
        picked: list[PromptSpec] = []
        while len(picked) < n_per_category:
            picked += [cands[i] for i in rng.permutation(len(cands))]
        out += picked[:n_per_category]
    return out

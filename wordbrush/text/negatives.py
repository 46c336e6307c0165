"""Hard negative captions: the same words in the wrong places (NegCLIP's swaps, Yuksekgonul et al. 2023).

A CLIP trained only against the other captions of its batch can match images to captions as bags of words: "a
purple diamond left of a white circle" and "a white circle left of a purple diamond" hold the same words, and no
batch asks which one an image shows. The wordbrush CLIP trained that way preferred a shapes image's caption to
its swap 53% of the time: chance (docs/metrics.md). NegCLIP adds, for each caption, one with words swapped as an
extra candidate that only its image has to reject.

NegCLIP chooses the swap by part of speech (spaCy). Here it needs no tagger: a caption is split at function words
(articles, prepositions, conjunctions, "is"/"are"...) into chunks of content words, "a [purple diamond] to the
[left] of a [white circle]"; two chunks swap whole ("a white circle to the left of a purple diamond": the
relation reversed) or one word each, counted from the chunk's end ("a white diamond to the left of a purple
circle": the attributes rebound). A caption with one chunk ("two green triangles") gets none.
"""

from __future__ import annotations

import re

import numpy as np

FUNCTION_WORDS: frozenset[str] = frozenset(
    "a an the this that these those some of to in on at by for from with without into onto over under above below "
    "beneath behind beside near next and or but is are was were be been it its there here which who as than "
    "left right top bottom front back side inside outside between underneath atop".split()  # where, not what
)
_SYMMETRIC: frozenset[str] = frozenset({"and", "or", ",", "a", "an", "the", "&"})
_WORD = re.compile(r"[\w'-]+|[^\w\s]")


def content_chunks(words: list[str]) -> list[list[int]]:
    """Indices of the maximal runs of content words (not function words, not punctuation)."""
    chunks, run = [], []
    for i, w in enumerate(words):
        if w.lower() in FUNCTION_WORDS or not w[0].isalnum():
            if run:
                chunks.append(run)
            run = []
        else:
            run.append(i)
    return chunks + [run] if run else chunks


def swap_negative(caption: str, rng: np.random.Generator) -> str | None:
    """`caption` with two chunks swapped whole, or one word of each at the same place from the chunk's end (where
    English puts the head noun) swapped, at even odds; None when no swap changes the caption. Chunks joined only
    by "and"/"or" ("a cross and a square") do not swap whole: that says the same thing."""
    words = _WORD.findall(caption)
    chunks = content_chunks(words)
    pairs = [(a, b) for i, a in enumerate(chunks) for b in chunks[i + 1:]]
    for p in rng.permutation(len(pairs)):
        a, b = pairs[p]
        symmetric = {w.lower() for w in words[a[-1] + 1:b[0]]} <= _SYMMETRIC
        singles = [([i], [j]) for i, j in zip(reversed(a), reversed(b))]
        singles = [singles[k] for k in rng.permutation(len(singles))]
        for x, y in (singles + [(a, b)] if rng.random() < 0.5 else [(a, b)] + singles):
            if symmetric and (x, y) == (a, b):
                continue
            out = (words[:x[0]] + [words[i] for i in y] + words[x[-1] + 1:y[0]] + [words[i] for i in x]
                   + words[y[-1] + 1:])
            if [w.lower() for w in out] != [w.lower() for w in words]:
                return _join(out)
    return None


def _join(words: list[str]) -> str:
    text = " ".join(words)
    return re.sub(r" ([^\w\s])", r"\1", text)

"""Everyday phrasings of a labelled item: the words people type, built from a dataset's label, keywords and style.

A structured caption ("hot beverage; food and drink; beverage, cafe, caffeine") teaches a model its concepts but
not the way people ask for them ("a hot coffee", "a cup of tea"). With ``data.everyday_captions`` a manifest row
that has a ``label`` column gets these phrasings beside its own caption(s), and training draws one of them per
epoch (data/training.py):

    everyday_phrasings("hot beverage", ["beverage", "cafe", "coffee", "tea", "hot"])
    -> ['a hot beverage', 'a hot beverage emoji', 'a picture of a hot beverage', 'hot beverage, coffee, cafe',
        'an emoji of a hot beverage, tea', 'coffee and cafe']     (keywords in an order hashed from the label)

Labels of the form "head: detail" are read as emojibase writes them: "flag: France" -> "the flag of France",
"woman pilot: light skin tone" -> "woman pilot with light skin tone". Keywords are chosen per item by a hash of
its label (the same phrasings on every machine and in every run), never by a global random state.
"""

from __future__ import annotations

import hashlib
import random

KEYWORD_GROUPS = 4  # at most this many phrasings of two keywords each
VOWELS = "aeiou"
NO_ARTICLE_STARTS = ("the ", "a ", "an ", "two ", "three ")


def label_phrase(label: str) -> str:
    """'flag: France' -> 'the flag of France'; 'man pilot: dark skin tone' -> 'man pilot with dark skin tone';
    'couple with heart: woman, man' -> 'couple with heart, woman, man'."""
    label = " ".join(label.split())
    head, sep, rest = label.partition(": ")
    if not sep:
        return label
    if head.lower() == "flag":
        return f"the flag of {rest}"
    return f"{head}, {rest}" if " with " in head else f"{head} with {rest}"


def with_article(phrase: str) -> str:
    """'apple' -> 'an apple'; 'the flag of France' and plural-looking phrases stay as they are."""
    low = phrase.lower()
    first = low.split(" ")[0] if low else ""
    plural = len(first) > 3 and first.endswith("s") and not first.endswith(("ss", "us"))
    if not phrase or low.startswith(NO_ARTICLE_STARTS) or plural:
        return phrase
    return ("an " if low[0] in VOWELS else "a ") + phrase


def _keywords(label: str, keywords) -> list[str]:
    """The keywords that add something to the label: cleaned, without the label's own words, in stable order."""
    words = set(label.lower().replace(":", " ").replace(",", " ").split())
    out: list[str] = []
    for k in keywords or ():
        k = " ".join(str(k).replace("_", " ").split())
        if k and k.isascii() and any(c.isalpha() for c in k) and k.lower() not in words and k not in out:
            out.append(k)
    return out


def everyday_phrasings(label: str, keywords=(), style: str = "") -> list[str]:
    """Three to eight short natural phrasings of one item (see the module docstring): the label as a noun phrase,
    as an emoji (naming `style`, e.g. "twitter", so a prompt can still ask for it), as a picture, then the keywords
    two at a time beside the label, and the first two alone ("coffee and tea": the words without the label's)."""
    thing = label_phrase(label)
    a_thing = with_article(thing)
    kws = _keywords(label, keywords)
    random.Random(int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "big")).shuffle(kws)
    out = [a_thing, f"{a_thing} emoji" + (f" in {style} style" if style else ""), f"a picture of {a_thing}"]
    pairs = [kws[i:i + 2] for i in range(0, min(len(kws), 2 * KEYWORD_GROUPS), 2)]
    for i, pair in enumerate(pairs):
        out.append(f"{thing}, {', '.join(pair)}" if i % 2 == 0 else f"an emoji of {a_thing}, {' and '.join(pair)}")
    if pairs and len(pairs[0]) == 2:
        out.append(" and ".join(pairs[0]))
    return list(dict.fromkeys(out))  # no phrasing twice

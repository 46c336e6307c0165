"""Captions for `shapes` scenes: many templates and synonyms per scene kind.

Words in RESERVED_WORDS are never produced here, so a benchmark can prompt with them to measure
whether a model generalises to phrasings it never saw in training (e.g. "a big ball").
"""

from __future__ import annotations

import re

import numpy as np

from .scene import Obj, Scene

# ---- Wording training captions never use. The paraphrase benchmark (eval/paraphrase.py) writes its prompts
# with these, to measure whether a model understands phrasings it never saw; tests/test_shapes.py checks that
# caption() never produces any of them (RESERVED_WORDS, below, is all of them).
UNSEEN_SHAPE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {  # (singular, plural)
    "circle": (("ball", "balls"), ("disc", "discs"), ("sphere", "spheres")),
    "square": (("box", "boxes"), ("block", "blocks")),
    "triangle": (("pyramid", "pyramids"), ("wedge", "wedges")),
    "diamond": (("lozenge", "lozenges"), ("rhomb", "rhombs")),
    "cross": (("plus symbol", "plus symbols"), ("plus mark", "plus marks")),
}
UNSEEN_COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet"), "green": ("emerald", "lime"), "blue": ("navy", "azure"),
    "yellow": ("golden", "lemon"), "purple": ("violet", "lilac"), "orange": ("tangerine", "amber"),
    "white": ("snowy", "ivory"), "cyan": ("turquoise", "aqua"),
}
UNSEEN_SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("tiny", "little"), "large": ("big", "huge")}
UNSEEN_RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("to the left side of", "west of"), "right of": ("to the right side of", "east of"),
    "above": ("atop", "higher than"), "below": ("beneath", "lower than"),
}
UNSEEN_NUMBER_WORDS: dict[int, tuple[str, ...]] = {2: ("a pair of", "a couple of"), 3: ("a trio of", "a triple of")}
UNSEEN_AND_WORDS: tuple[str, ...] = ("as well as", "along with")  # "a ball as well as a box"
UNSEEN_FORMS: tuple[str, ...] = (  # sentence frames; {x} is the scene
    "please draw {x}", "show me {x}", "i would like {x}", "can you paint {x}", "{x}, please",
    "make a sketch featuring {x}", "render {x} for me",
)
UNSEEN_FORM_MARKERS: tuple[str, ...] = ("please", "show me", "i would like", "can you", "paint", "featuring", "for me")
RESERVED_WORDS: frozenset[str] = frozenset(
    {w for pairs in UNSEEN_SHAPE_WORDS.values() for pair in pairs for w in pair}
    | {w for ws in (*UNSEEN_COLOR_WORDS.values(), *UNSEEN_SIZE_WORDS.values(), *UNSEEN_RELATION_WORDS.values(),
                    *UNSEEN_NUMBER_WORDS.values(), UNSEEN_AND_WORDS, UNSEEN_FORM_MARKERS) for w in ws}
)

P_DROP_COLOR = 0.2
P_DROP_SIZE = 0.3  # GenEval-style prompts never name a size
P_DIGITS = 0.2
P_NO_RELATION = 0.4  # pair captions that name both objects but not where they are ("a and b")

SHAPE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {  # (singular, plural), first is most common
    "circle": (("circle", "circles"),),
    "square": (("square", "squares"),),
    "triangle": (("triangle", "triangles"),),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small",), "large": ("large",)}
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over", "on top of"),
    "below": ("below", "under", "underneath"),
}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = {2: "two", 3: "three"}

# {o}: object phrase with article; {n}: number; {p}: plural phrase; {a}/{b}: objects; {r}: relation;
# {ta}/{tb}: object phrases without article (used after "the").
TEMPLATES: dict[str, tuple[str, ...]] = {
    "single": (
        "{o}",
        "a picture of {o}",
        "an image of {o}",
        "{o} on a black background",
        "a drawing of {o}",
        "there is {o}",
        "{o} in the picture",
        "a simple render of {o}",
        "a black canvas with {o}",
        "a single {t}",
        "just {o}",
        "{o}, alone on black",
    ),
    "pair": (
        "{a} {r} {b}",
        "{a} is {r} {b}",
        "a picture of {a} {r} {b}",
        "an image showing {a} {r} {b}",
        "{a} placed {r} {b}",
        "there is {a} {r} {b}",
        "{a} {r} {b} on a black background",
        "a drawing of {a} {r} {b}",
        "{a} sits {r} {b}",
        "{a} and {b}, the {ta} {r} the {tb}",
        "{a} appears {r} {b}",
        "two shapes: {a} {r} {b}",
    ),
    "count": (
        "{n} {p}",
        "{n} {p} on a black background",
        "a picture of {n} {p}",
        "an image with {n} {p}",
        "there are {n} {p}",
        "exactly {n} {p}",
        "a drawing of {n} {p}",
        "a group of {n} {p}",
        "{n} {p} on a dark canvas",
        "{n} identical {p}",
        "a black canvas with {n} {p}",
        "{n} {p} in the picture",
    ),
}

# Pair scenes described without their relation, as real captions often are (GenEval's "a X and a Y").
PAIR_NO_RELATION_TEMPLATES: tuple[str, ...] = (
    "{a} and {b}",
    "a picture of {a} and {b}",
    "an image with {a} and {b}",
    "{a} and {b} on a black background",
    "there is {a} and {b}",
    "a drawing of {a} and {b}",
    "two shapes: {a} and {b}",
    "{a} together with {b}",
)


def pick(rng: np.random.Generator, seq):
    """One item of seq drawn from rng (one rng.integers draw)."""
    return seq[int(rng.integers(len(seq)))]


def article(phrase: str) -> str:
    """The phrase after "a" or "an": "an orange square"."""
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _phrase(rng: np.random.Generator, obj: Obj, plural: bool = False) -> str:
    """e.g. "large red circle"; colour and size each sometimes left out."""
    words = []
    if rng.random() >= P_DROP_SIZE:
        words.append(pick(rng, SIZE_WORDS[obj.size]))
    if rng.random() >= P_DROP_COLOR:
        words.append(obj.color)
    words.append(pick(rng, SHAPE_WORDS[obj.shape])[1 if plural else 0])
    return " ".join(words)


def caption_and_template(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """A random caption of the scene and the template it came from."""
    kind = scene.kind
    if kind not in TEMPLATES:
        raise ValueError(f"unknown scene kind {kind!r}")
    if kind == "pair" and rng.random() < P_NO_RELATION:
        template = pick(rng, PAIR_NO_RELATION_TEMPLATES)
    else:
        template = pick(rng, TEMPLATES[kind])
    if kind == "single":
        t = _phrase(rng, scene.objects[0])
        text = template.format(o=article(t), t=t)
    elif kind == "pair":
        a, b, rel = scene.objects[0], scene.objects[1], scene.relation
        if rng.random() < 0.5:  # say it the other way round: "b right of a" == "a left of b"
            a, b, rel = b, a, INVERSE[rel]
        ta, tb = _phrase(rng, a), _phrase(rng, b)
        r = pick(rng, RELATION_WORDS[rel])
        text = template.format(a=article(ta), b=article(tb), ta=ta, tb=tb, r=r)
    else:
        k = len(scene.objects)
        n = str(k) if rng.random() < P_DIGITS else NUMBER_WORDS[k]
        text = template.format(n=n, p=_phrase(rng, scene.objects[0], plural=True))
    return text, template


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A random caption of the scene."""
    return caption_and_template(scene, rng)[0]


def reserved_in(text: str) -> list[str]:
    """The RESERVED_WORDS (words or phrases) that occur in text as whole words."""
    t = " ".join(re.findall(r"[a-z0-9]+", text.lower()))
    return sorted(w for w in RESERVED_WORDS if re.search(rf"\b{re.escape(w)}\b", t))

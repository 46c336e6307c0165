"""What a `shapes` prompt asks for, and random scenes that give it.

An ObjSpec is one kind of object a prompt names (a shape, its colour or any colour, how many); a PromptSpec is a
prompt, the objects it names and their relation, under one of GenEval's six categories (the fidelity benchmark,
wordbrush/eval/fidelity.py, draws and judges these). scene_for_spec / render_spec draw a random dataset scene that
satisfies a spec, placed under the dataset's rules (placement.py): the oracle of the benchmark, and the "real
images of one prompt" that training's diversity probe compares against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .captions import NUMBER_WORDS, SHAPE_WORDS, article
from .placement import place_free, place_pair
from .scene import COLORS, RELATIONS, SHAPES, SIZES, Obj, Scene, render, side_px

CATEGORIES: tuple[str, ...] = (
    "single_object", "two_objects", "counting", "colors", "position", "attribute_binding",
)
COLOR_CATEGORIES: tuple[str, ...] = ("counting", "colors", "position", "attribute_binding")  # they name colours


@dataclass(frozen=True)
class ObjSpec:
    shape: str
    color: str | None = None  # None: any colour
    count: int = 1

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {', '.join(SHAPES)}")
        if self.color is not None and self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; expected one of {', '.join(COLORS)}")
        if self.count not in (1, 2, 3):
            raise ValueError(f"count must be 1, 2 or 3 (the dataset's range), got {self.count}")

    def phrase(self) -> str:
        """"a red circle", "an orange square", "three crosses"."""
        singular, plural = SHAPE_WORDS[self.shape][0]
        words = ([self.color] if self.color else []) + [plural if self.count > 1 else singular]
        text = " ".join(words)
        return f"{NUMBER_WORDS[self.count]} {text}" if self.count > 1 else article(text)


@dataclass(frozen=True)
class PromptSpec:
    category: str
    prompt: str
    objects: tuple[ObjSpec, ...]
    relation: str | None = None  # objects[0] <relation> objects[1]

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}; expected one of {', '.join(CATEGORIES)}")
        if not self.objects or sum(o.count for o in self.objects) > 3:
            raise ValueError(f"a spec needs 1 to 3 objects in all, got {self.objects}")
        if self.relation is not None and (self.relation not in RELATIONS or len(self.objects) != 2
                                          or any(o.count != 1 for o in self.objects)):
            raise ValueError(f"relation {self.relation!r} needs one of {RELATIONS} and exactly two objects")

    def named_pairs(self) -> set[tuple[str, str]]:
        """The (colour, shape) pairs the prompt names."""
        return {(o.color, o.shape) for o in self.objects if o.color is not None}

    def slots(self) -> list[tuple[str, str | None]]:
        """One (shape, colour or None) per object the image must hold."""
        return [(o.shape, o.color) for o in self.objects for _ in range(o.count)]


def scene_for_spec(spec: PromptSpec, rng: np.random.Generator, size: int = 64) -> Scene:
    """A random dataset scene that satisfies the spec: wildcard colours filled at random, random
    sizes and placements under the dataset's rules (no overlap; clear relations)."""
    W = size
    for _ in range(100):  # retries only when a placement fails (e.g. three large objects)
        if len(spec.objects) == 1 and spec.objects[0].count > 1:  # counting: identical objects
            o = spec.objects[0]
            color = o.color or COLORS[int(rng.integers(len(COLORS)))]
            sz = tuple(SIZES)[int(rng.integers(len(SIZES)))]
            objs = [(color, o.shape, sz)] * o.count
        else:
            objs = [(o.color or COLORS[int(rng.integers(len(COLORS)))], o.shape,
                     tuple(SIZES)[int(rng.integers(len(SIZES)))]) for o in spec.objects]
        sides = [side_px(sz, W) for _, _, sz in objs]
        if spec.relation is not None:
            corners = place_pair(rng, W, sides[0], sides[1], spec.relation)
        else:
            corners = place_free(rng, W, sides)
        if corners is None:
            continue
        placed = tuple(Obj(c, s, sz, x, y) for (c, s, sz), (x, y) in zip(objs, corners))
        kind = "single" if len(placed) == 1 else ("count" if len(spec.objects) == 1 else "pair")
        return Scene(kind, placed, spec.relation)
    raise RuntimeError(f"could not place a scene for {spec.prompt!r} on a {W}x{W} canvas")


def render_spec(spec: PromptSpec, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8 render of a random scene that satisfies the spec."""
    return render(scene_for_spec(spec, rng, size), size)

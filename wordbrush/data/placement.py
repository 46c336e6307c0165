"""Where objects go on a W×W `shapes` canvas: non-overlapping boxes (at least GAP pixels apart), and pairs whose
relation is clear (the dataset's rule, relation_holds(strict=True)). The dataset's sampler (shapes.py) and the
fidelity benchmark's oracle (specs.py) both place objects with these, so an oracle scene obeys the dataset's rules.

Boxes are squares given by their side in pixels; a placement is the list of their top-left corners (x, y).
Both placers draw from rng in a fixed order, so a placement is determined by the rng's state.
"""

from __future__ import annotations

import numpy as np

from .scene import RELATIONS

GAP = 2  # minimum number of background pixels between two objects' boxes
MIN_AXIS_SEP = 0.25  # pair: centres differ by >= this fraction of W along the relation's axis
MAX_OFF_AXIS = 0.5  # pair: ... and by less than this fraction of that difference along the other axis


def separated(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Boxes (x, y, side) keep at least GAP pixels between them."""
    ax, ay, sa = a
    bx, by, sb = b
    return ax + sa + GAP <= bx or bx + sb + GAP <= ax or ay + sa + GAP <= by or by + sb + GAP <= ay


def place_free(rng: np.random.Generator, W: int, sides: list[int], tries: int = 200) -> list[tuple[int, int]] | None:
    """Non-overlapping top-left corners for boxes of the given sides, or None."""
    placed: list[tuple[int, int, int]] = []
    for s in sides:
        for _ in range(tries):
            x, y = int(rng.integers(W - s + 1)), int(rng.integers(W - s + 1))
            if all(separated((x, y, s), p) for p in placed):
                placed.append((x, y, s))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


def place_pair(rng: np.random.Generator, W: int, s0: int, s1: int, relation: str,
               tries: int = 400) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Corners for objects 0 and 1 such that object 0 is clearly <relation> object 1."""
    for _ in range(tries):
        x0, y0 = int(rng.integers(W - s0 + 1)), int(rng.integers(W - s0 + 1))
        x1, y1 = int(rng.integers(W - s1 + 1)), int(rng.integers(W - s1 + 1))
        if relation_holds((x0 + s0 / 2, y0 + s0 / 2), (x1 + s1 / 2, y1 + s1 / 2), relation, W, strict=True) \
                and separated((x0, y0, s0), (x1, y1, s1)):
            return (x0, y0), (x1, y1)
    return None


def relation_holds(c0: tuple[float, float], c1: tuple[float, float], relation: str, W: int = 64,
                   strict: bool = False, margin: float = 0.0) -> bool:
    """Whether centre c0 is <relation> centre c1 (image y grows downwards).

    strict=False: the centres differ by more than margin·W along the relation's axis, in the right
    direction. strict=True: the dataset's rule (>= MIN_AXIS_SEP·W along the axis, and the
    off-axis difference less than MAX_OFF_AXIS times the on-axis one).
    """
    dx, dy = c1[0] - c0[0], c1[1] - c0[1]  # > 0: c0 is left of / above c1
    if relation == "left of":
        on, off = dx, dy
    elif relation == "right of":
        on, off = -dx, dy
    elif relation == "above":
        on, off = dy, dx
    elif relation == "below":
        on, off = -dy, dx
    else:
        raise ValueError(f"unknown relation {relation!r}; expected one of {', '.join(RELATIONS)}")
    if strict:
        return on >= MIN_AXIS_SEP * W and abs(off) < MAX_OFF_AXIS * on
    return on > margin * W

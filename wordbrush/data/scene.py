"""A `shapes` scene and how it is drawn: the palette, shapes, sizes and relations (DESIGN.md's exact values),
objects placed on a W×W canvas, and the hard-edged renderer (every object pixel has exactly its palette colour,
so the scene checker, wordbrush/eval/scene_checker.py, can recover a scene from its pixels).

Sampling scenes is shapes.py's job, placing objects placement.py's, describing them in words captions.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "orange": (255, 140, 0),
    "yellow": (255, 230, 0),
    "green": (0, 200, 0),
    "cyan": (0, 220, 220),
    "blue": (30, 80, 255),
    "purple": (150, 50, 220),
    "white": (255, 255, 255),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0)}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
SIZES: dict[str, float] = {"small": 0.20, "large": 0.35}
KINDS: tuple[str, ...] = ("single", "pair", "count")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")


def side_px(size: str, W: int) -> int:
    """Box side in pixels of an object of the given size name on a W×W canvas."""
    return int(np.floor(SIZES[size] * W + 0.5))


@dataclass(frozen=True)
class Obj:
    color: str
    shape: str
    size: str
    x: int  # top-left of the box, pixels
    y: int

    def side(self, W: int = 64) -> int:
        return side_px(self.size, W)

    def box(self, W: int = 64) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1/y1 exclusive."""
        s = self.side(W)
        return (self.x, self.y, self.x + s, self.y + s)

    def center(self, W: int = 64) -> tuple[float, float]:
        s = self.side(W)
        return (self.x + s / 2, self.y + s / 2)

    def describe(self) -> str:
        return f"{self.size} {self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    kind: str
    objects: tuple[Obj, ...]
    relation: str | None = None  # pairs: objects[0] <relation> objects[1]
    background: str = "black"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "objects": [asdict(o) for o in self.objects],
            "relation": self.relation,
            "background": self.background,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(
            kind=d["kind"],
            objects=tuple(Obj(**o) for o in d["objects"]),
            relation=d.get("relation"),
            background=d.get("background", "black"),
        )


# ---------------------------------------------------------------------------------------------
# Rendering


@lru_cache(maxsize=None)
def shape_mask(shape: str, s: int) -> np.ndarray:
    """Boolean (s, s) mask of a shape filling a box of side s (pixel-centre tests, no antialiasing)."""
    c = np.arange(s) + 0.5  # pixel centres
    u, v = c[None, :], c[:, None]  # u: x (columns), v: y (rows)
    h = s / 2
    if shape == "circle":
        m = (u - h) ** 2 + (v - h) ** 2 <= h * h
    elif shape == "square":
        m = np.ones((s, s), dtype=bool)
    elif shape == "triangle":  # apex at top centre, base along the bottom edge
        m = np.abs(u - h) <= np.maximum(v / 2, 0.5)
    elif shape == "diamond":  # vertices at the midpoints of the box's edges
        m = np.abs(u - h) + np.abs(v - h) <= h
    elif shape == "cross":  # two bars of width s/3 spanning the box
        m = (np.abs(u - h) <= s / 6) | (np.abs(v - h) <= s / 6)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    m = np.broadcast_to(m, (s, s)).copy()
    m.setflags(write=False)
    return m


def render_into(canvas: np.ndarray, scene: Scene) -> np.ndarray:
    """Draw a scene into an existing (W, W, 3) uint8 array (overwritten) and return it."""
    W = canvas.shape[0]
    canvas[...] = BACKGROUNDS[scene.background]
    for o in scene.objects:
        s = o.side(W)
        if o.x < 0 or o.y < 0 or o.x + s > W or o.y + s > W:
            raise ValueError(f"{o.describe()} at ({o.x}, {o.y}) does not fit a {W}x{W} canvas")
        region = canvas[o.y : o.y + s, o.x : o.x + s]  # (s, s, 3) view
        region[shape_mask(o.shape, s)] = PALETTE[o.color]
    return canvas


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """Render a scene to a (size, size, 3) uint8 array."""
    return render_into(np.empty((size, size, 3), dtype=np.uint8), scene)


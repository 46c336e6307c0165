"""The built-in `shapes` dataset: procedural scenes of coloured shapes on black, exactly checkable.

A scene is one object ("single"), two objects with a spatial relation ("pair"), or two or three
identical objects ("count"). Rendering is hard-edged (every object pixel has exactly its palette
colour), so the scene checker (wordbrush/eval/scene_checker.py) can recover scenes from pixels.
Item i of a dataset is fully determined by (seed, i): ``np.random.default_rng([seed, i])``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

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
KIND_PROBS: tuple[float, ...] = (0.40, 0.35, 0.25)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
SPLITS: tuple[str, ...] = ("train", "holdout", "all")
DEFAULT_HOLDOUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("blue", "circle"), ("green", "cross"), ("yellow", "diamond")}
)

GAP = 2  # minimum number of background pixels between two objects' boxes
MIN_AXIS_SEP = 0.25  # pair: centres differ by >= this fraction of W along the relation's axis
MAX_OFF_AXIS = 0.5  # pair: ... and by less than this fraction of that difference along the other axis
MIN_SIZE = 16


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


def render_image(scene: Scene, size: int = 64) -> Image.Image:
    return Image.fromarray(render(scene, size), "RGB")


# ---------------------------------------------------------------------------------------------
# Sampling


def _check_holdout(holdout: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    hs = frozenset(tuple(p) for p in holdout)
    for c, s in hs:
        if c not in PALETTE or s not in SHAPES:
            raise ValueError(f"holdout pair ({c!r}, {s!r}) is not a known colour and shape")
    return hs


@lru_cache(maxsize=64)
def _pairs(split: str, holdout: frozenset) -> tuple[tuple[str, str], ...]:
    all_pairs = tuple((c, s) for c in COLORS for s in SHAPES)
    if split == "train":
        return tuple(p for p in all_pairs if p not in holdout)
    if split == "holdout":
        return tuple(p for p in all_pairs if p in holdout)
    return all_pairs


def _choice(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _separated(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Boxes (x, y, side) keep at least GAP pixels between them."""
    ax, ay, sa = a
    bx, by, sb = b
    return ax + sa + GAP <= bx or bx + sb + GAP <= ax or ay + sa + GAP <= by or by + sb + GAP <= ay


def _place_free(rng, W: int, sides: list[int], tries: int = 200) -> list[tuple[int, int]] | None:
    """Non-overlapping top-left corners for boxes of the given sides, or None."""
    placed: list[tuple[int, int, int]] = []
    for s in sides:
        for _ in range(tries):
            x, y = int(rng.integers(W - s + 1)), int(rng.integers(W - s + 1))
            if all(_separated((x, y, s), p) for p in placed):
                placed.append((x, y, s))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


def _place_pair(rng, W: int, s0: int, s1: int, relation: str, tries: int = 400):
    """Corners for objects 0 and 1 such that object 0 is clearly <relation> object 1."""
    for _ in range(tries):
        x0, y0 = int(rng.integers(W - s0 + 1)), int(rng.integers(W - s0 + 1))
        x1, y1 = int(rng.integers(W - s1 + 1)), int(rng.integers(W - s1 + 1))
        if relation_holds((x0 + s0 / 2, y0 + s0 / 2), (x1 + s1 / 2, y1 + s1 / 2), relation, W, strict=True) \
                and _separated((x0, y0, s0), (x1, y1, s1)):
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


def sample_scene(rng: np.random.Generator, size: int = 64, split: str = "train",
                 holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT) -> Scene:
    """Draw one random scene. split: "train" (no held-out colour-shape pair), "holdout" (at least one
    object uses a held-out pair) or "all"."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")
    hs = holdout if isinstance(holdout, frozenset) else _check_holdout(holdout)
    allowed = _pairs(split, hs)
    if not allowed:
        raise ValueError(f"split {split!r} has no colour-shape pairs with holdout={sorted(hs)}")
    W = size
    sizes = tuple(SIZES)
    while True:  # retries only when a placement fails (rare)
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_PROBS))]
        if kind == "single":
            (c, s), sz = _choice(rng, allowed), _choice(rng, sizes)
            side = side_px(sz, W)
            x, y = int(rng.integers(W - side + 1)), int(rng.integers(W - side + 1))
            return Scene("single", (Obj(c, s, sz, x, y),))
        if kind == "count":
            (c, s), sz = _choice(rng, allowed), _choice(rng, sizes)
            n = int(rng.integers(2, 4))
            corners = _place_free(rng, W, [side_px(sz, W)] * n)
            if corners is None:
                continue
            return Scene("count", tuple(Obj(c, s, sz, x, y) for x, y in corners))
        # pair: two objects differing in colour or shape (or both)
        if split == "holdout":
            a = _choice(rng, allowed)
            others = _pairs("all", hs)
        else:
            a = _choice(rng, allowed)
            others = allowed
        b = _choice(rng, others)
        if b == a:
            continue
        if split == "holdout" and rng.random() < 0.5:
            a, b = b, a
        sz0, sz1 = _choice(rng, sizes), _choice(rng, sizes)
        relation = _choice(rng, RELATIONS)
        corners = _place_pair(rng, W, side_px(sz0, W), side_px(sz1, W), relation)
        if corners is None:
            continue
        (x0, y0), (x1, y1) = corners
        return Scene("pair", (Obj(a[0], a[1], sz0, x0, y0), Obj(b[0], b[1], sz1, x1, y1)), relation)


# ---------------------------------------------------------------------------------------------
# Dataset


class ShapesDataset:
    """Procedural image-caption dataset. Item i is determined by (seed, i).

    ``ds[i]`` and iteration give ``(image: PIL RGB, caption: str, scene: Scene)``; ``n=None`` makes
    iteration infinite. ``render_batch(indices)`` is the fast path for training image models.
    """

    def __init__(self, n: int | None = None, size: int = 64, seed: int = 0, split: str = "train",
                 holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT):
        if n is not None and n < 1:
            raise ValueError(f"n must be >= 1 (or None for an infinite dataset), got {n}")
        if size < MIN_SIZE:
            raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.n, self.size, self.seed, self.split = n, size, seed, split
        self.holdout = _check_holdout(holdout)
        if not _pairs(split, self.holdout):
            raise ValueError(f"split {split!r} is empty with holdout={sorted(self.holdout)}")

    def __len__(self) -> int:
        if self.n is None:
            raise TypeError("an infinite ShapesDataset (n=None) has no len()")
        return self.n

    def _index(self, i: int) -> int:
        i = int(i)
        if self.n is not None:
            if i < 0:
                i += self.n
            if not 0 <= i < self.n:
                raise IndexError(f"index {i} out of range for ShapesDataset of {self.n} items")
        elif i < 0:
            raise IndexError("negative index on an infinite ShapesDataset")
        return i

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, i])

    def scene(self, i: int) -> Scene:
        return sample_scene(self._rng(self._index(i)), self.size, self.split, self.holdout)

    def item_arrays(self, i: int) -> tuple[np.ndarray, str, Scene]:
        """(image (H, W, 3) uint8, caption, scene) of item i."""
        from .captions import caption

        rng = self._rng(self._index(i))
        scene = sample_scene(rng, self.size, self.split, self.holdout)
        return render(scene, self.size), caption(scene, rng), scene

    def __getitem__(self, i: int) -> tuple[Image.Image, str, Scene]:
        arr, text, scene = self.item_arrays(i)
        return Image.fromarray(arr, "RGB"), text, scene

    def __iter__(self) -> Iterator[tuple[Image.Image, str, Scene]]:
        i = 0
        while self.n is None or i < self.n:
            yield self[i]
            i += 1

    def render_batch(self, indices: Iterable[int]) -> np.ndarray:
        """Images of the given items, (N, H, W, 3) uint8, without captions."""
        idx = [self._index(i) for i in indices]
        out = np.empty((len(idx), self.size, self.size, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            render_into(out[k], self.scene(i))
        return out


def write_dataset(out_dir: str | Path, n: int, size: int = 64, seed: int = 0, split: str = "train",
                  holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT, progress: bool = True) -> Path:
    """Write n items as NNNNNN.png + NNNNNN.txt pairs and scenes.jsonl into out_dir; return out_dir."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {str(out)!r} exists and is not a directory")
    ds = ShapesDataset(n, size=size, seed=seed, split=split, holdout=holdout)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    width = max(6, len(str(n - 1)))
    with open(out / "scenes.jsonl", "w", encoding="utf-8") as f:
        for i in tqdm(range(n), desc="shapes", unit="img", disable=not progress):
            arr, text, scene = ds.item_arrays(i)
            name = f"{i:0{width}d}"
            Image.fromarray(arr, "RGB").save(out / f"{name}.png")
            (out / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
            rec = {"index": i, "file": f"{name}.png", "caption": text, "scene": scene.to_dict()}
            f.write(json.dumps(rec) + "\n")
    return out

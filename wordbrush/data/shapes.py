"""The built-in `shapes` dataset: procedural scenes of coloured shapes on black, exactly checkable.

A scene is one object ("single"), two objects with a spatial relation ("pair"), or two or three
identical objects ("count"). Rendering is hard-edged (every object pixel has exactly its palette
colour), so the scene checker (wordbrush/eval/scene_checker.py) can recover scenes from pixels.
Item i of a dataset is fully determined by (seed, i): ``np.random.default_rng([seed, i])``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from .captions import caption
from .placement import place_free, place_pair
from .scene import COLORS, KINDS, PALETTE, RELATIONS, SHAPES, SIZES, Obj, Scene, render, render_into, side_px

KIND_PROBS: tuple[float, ...] = (0.40, 0.35, 0.25)
SPLITS: tuple[str, ...] = ("train", "holdout", "all")
DEFAULT_HOLDOUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("blue", "circle"), ("green", "cross"), ("yellow", "diamond")}
)

MIN_SIZE = 16


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
            corners = place_free(rng, W, [side_px(sz, W)] * n)
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
        corners = place_pair(rng, W, side_px(sz0, W), side_px(sz1, W), relation)
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

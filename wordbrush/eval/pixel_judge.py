"""A judge of emoji images that knows nothing of the model: pixel nearest-neighbour retrieval.

The references are one image per concept of an emoji manifest (data/emoji.py's metadata.jsonl, both splits): the
google-style image of the base emoji (the row whose code_point is the concept), the twitter-style one where there
is no google image. Every image, reference or judged, is brought to 32x32 with PIL's box filter (the mean of each
2x2 block of a 64x64 image) and compared by Euclidean distance in RGB in [0, 1]. An image is a hit for a concept
when that concept's reference is among its k nearest (k = 20 of ~1,911). No CLIP, the model's or another, takes
part, so reranking with the model's CLIP cannot grade its own choices here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import WordbrushError

JUDGE_SIZE = 32
K = 20
STYLE_ORDER = ("google", "twitter")  # the reference's style: the first one a concept has
COLUMNS = ("file", "caption", "code_point", "concept", "style")


@dataclass(frozen=True)
class ConceptRow:
    concept: str
    caption: str  # the dataset's own caption of the reference image ("hot beverage; food and drink; ...")
    label: str
    split: str
    file: Path  # the reference image
    other_style: Path | None  # the same emoji in another style, where the manifest has one


@dataclass
class References:
    rows: list[ConceptRow]
    vectors: np.ndarray  # (N, 32*32*3) float32 in [0, 1], row i the reference of rows[i]
    index: dict[str, int]  # concept -> row

    def __len__(self) -> int:
        return len(self.rows)


def read_concepts(manifest: str | Path) -> dict[str, ConceptRow]:
    """The reference row of every concept in an emoji manifest, in the manifest's order. One-line errors for a
    path that is not a readable JSONL manifest or one without the emoji columns."""
    path = Path(manifest)
    if not path.is_file():
        raise WordbrushError(f"{path}: no such manifest (build one with `wordbrush data emoji --out DIR`)")
    if path.suffix != ".jsonl":
        raise WordbrushError(f"{path}: the emoji benchmark reads a .jsonl manifest (wordbrush data emoji's "
                             "metadata.jsonl)")
    base: dict[str, dict[str, dict]] = {}  # concept -> style -> row
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise WordbrushError(f"{path}:{n}: not a JSON line") from None
            missing = [c for c in COLUMNS if not isinstance(rec, dict) or c not in rec]
            if missing:
                raise WordbrushError(f"{path}:{n}: no {', '.join(missing)} column; the emoji benchmark needs an "
                                     "emoji manifest (wordbrush data emoji)")
            if rec["code_point"] == rec["concept"]:
                base.setdefault(str(rec["concept"]), {}).setdefault(str(rec["style"]), rec)
    if not base:
        raise WordbrushError(f"{path}: no base emoji rows (code_point == concept)")
    out: dict[str, ConceptRow] = {}
    for concept, styles in base.items():
        order = [s for s in STYLE_ORDER if s in styles] + sorted(set(styles) - set(STYLE_ORDER))
        ref = styles[order[0]]
        other = styles[order[1]] if len(order) > 1 else None
        out[concept] = ConceptRow(concept, str(ref["caption"]), str(ref.get("label", "")),
                                  str(ref.get("split", "unknown")), path.parent / ref["file"],
                                  path.parent / other["file"] if other else None)
    return out


def to_vectors(images: list[Image.Image] | np.ndarray) -> np.ndarray:
    """Images (PIL, any size; or an (N, H, W, 3) uint8 array) -> (N, 32*32*3) float32 in [0, 1], box-filtered."""
    if isinstance(images, np.ndarray):
        images = [Image.fromarray(a, "RGB") for a in images]
    out = np.empty((len(images), JUDGE_SIZE * JUDGE_SIZE * 3), np.float32)
    for i, im in enumerate(images):
        small = im.convert("RGB").resize((JUDGE_SIZE, JUDGE_SIZE), Image.BOX)
        out[i] = np.asarray(small, np.float32).reshape(-1) / 255
    return out


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise WordbrushError(f"{path}: cannot read the reference image ({e})") from None


def load_references(manifest: str | Path) -> References:
    """One reference per concept of the manifest (both splits), as vectors."""
    rows = list(read_concepts(manifest).values())
    vectors = to_vectors([load_image(r.file) for r in rows])
    return References(rows, vectors, {r.concept: i for i, r in enumerate(rows)})


def distances(refs: References, vectors: np.ndarray) -> np.ndarray:
    """(M, D) judged vectors -> (M, N) Euclidean distances to every reference."""
    sq = (vectors**2).sum(1)[:, None] + (refs.vectors**2).sum(1)[None, :] - 2 * vectors @ refs.vectors.T
    return np.sqrt(np.maximum(sq, 0))  # (M, N)


def target_ranks(refs: References, vectors: np.ndarray, targets: list[str]) -> np.ndarray:
    """The rank of each image's target concept among all references by distance (0 = the nearest; ties count
    against the target: every reference at least as near as the target, other than itself, is ahead of it)."""
    if len(targets) != len(vectors):
        raise ValueError(f"{len(vectors)} images but {len(targets)} targets")
    unknown = [t for t in targets if t not in refs.index]
    if unknown:
        raise WordbrushError(f"concept {unknown[0]} is not in the manifest's references")
    d = distances(refs, vectors)  # (M, N)
    cols = np.array([refs.index[t] for t in targets])
    own = d[np.arange(len(targets)), cols][:, None]  # (M, 1)
    return (d <= own).sum(1) - 1  # (M,)


def hits(refs: References, vectors: np.ndarray, targets: list[str], k: int = K) -> np.ndarray:
    """(M,) bool: is the target concept's reference among the k nearest of each image?"""
    return target_ranks(refs, vectors, targets) < k

"""Recover `shapes` objects from pixels and judge an image against a scene (GenEval-style).

Pipeline, from pixels only:
1. Colour: each pixel is read as alpha·C + error for each palette colour C (a blend of C with the
   black background, which is what blur and resampling produce). The pixel belongs to the colour with
   the smallest error if alpha >= 0.5 and the error is small; otherwise it is background.
2. Connected components (4-connected, same colour) by vectorised label propagation with pointer
   jumping (no scipy). Components smaller than a fraction of the smallest shape are noise.
3. Extent: the component's box, grown by its neighbouring pixels of at least _EXTENT_ALPHA coverage
   (sharp tips survive blur / compression). Size = nearest of the dataset's small / large sides;
   a component whose extent fits neither (within SIZE_TOL) is unrecognised.
4. Shape: the component's soft coverage map (alpha of its colour, with the unclassified halo around
   it) is compared by soft IoU with every shape's template at box sides near the nominal one and at
   several blur levels, placed by centroid. A poor best score (MIN_IOU) or an unclear winner
   (MIN_MARGIN) leaves the component unrecognised; check_scene fails on unrecognised components.
Reliable for canvases of 24 px and up; at 16 px a small object is 3 px wide and circle = square,
diamond = cross in pixels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import permutations

import numpy as np
from PIL import Image

from ..data.scene import PALETTE, SHAPES, SIZES, Scene, shape_mask, side_px

_COLOR_NAMES = tuple(PALETTE)
_C = np.array([PALETTE[c] for c in _COLOR_NAMES], dtype=np.float32)  # (K, 3)
_C2 = (_C**2).sum(1)  # (K,)

MIN_ALPHA = 0.5  # fraction of a palette colour's intensity a pixel needs to count as that colour
MAX_ALPHA = 1.5
MAX_RESIDUAL = 48.0  # L2 distance (0-255 scale) of a pixel from the line alpha·C
MIN_AREA_FRAC = 0.35  # components below this fraction of the smallest shape's area are noise
SIZE_TOL = 0.2  # a box side may differ from the size's side by this fraction (at least 2 px)
MIN_IOU = 0.72  # best template IoU needed to recognise a shape
MIN_MARGIN = 0.04  # ... and by how much it must beat the second best


@dataclass(frozen=True)
class DetectedObj:
    color: str
    shape: str | None  # None: unrecognised component
    size: str | None
    cx: float  # centre of the bounding box, pixels
    cy: float
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive
    area: int  # pixels in the component
    score: float  # template IoU of the best shape

    @property
    def center(self) -> tuple[float, float]:
        return (self.cx, self.cy)

    @property
    def recognised(self) -> bool:
        return self.shape is not None and self.size is not None

    def describe(self) -> str:
        if not self.recognised:
            return f"unrecognised {self.color} blob ({self.area} px at {self.cx:.0f},{self.cy:.0f})"
        return f"{self.size} {self.color} {self.shape}"


@dataclass
class CheckResult:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    detected: list[DetectedObj] = field(default_factory=list)
    unrecognised: list[DetectedObj] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def _to_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"expected a square RGB image (H, W, 3), got shape {arr.shape}")
    if arr.shape[0] < 16:
        raise ValueError(f"image too small for the scene checker: {arr.shape[0]} px (need >= 16)")
    return arr


def pixel_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel and palette colour: blend factor alpha (pixel ≈ alpha·C) and squared residual.

    Returns (alpha (H, W, K), resid2 (H, W, K)) with K = len(PALETTE).
    """
    H, W, _ = arr.shape
    p = arr.reshape(-1, 3).astype(np.float32)  # (N, 3)
    dots = p @ _C.T  # (N, K)
    alpha = dots / _C2  # best blend factor along each colour's line
    resid2 = (p**2).sum(1, keepdims=True) - dots * alpha  # squared distance from the line
    return alpha.reshape(H, W, -1), resid2.reshape(H, W, -1)


def classify_pixels(arr: np.ndarray, alpha: np.ndarray | None = None,
                    resid2: np.ndarray | None = None) -> np.ndarray:
    """(H, W) int map: index into PALETTE's colours, or -1 for background / unknown."""
    if alpha is None or resid2 is None:
        alpha, resid2 = pixel_alpha(arr)
    r = np.where((alpha < MIN_ALPHA) | (alpha > MAX_ALPHA), np.inf, resid2)
    k = r.argmin(-1)
    best = np.take_along_axis(r, k[..., None], -1)[..., 0]
    k[~(best <= MAX_RESIDUAL**2)] = -1
    return k


def label_components(cls: np.ndarray) -> np.ndarray:
    """4-connected components of equal, non-negative class: (H, W) int labels, -1 for background.

    A label is the flat index of the component's first pixel (row-major), so labels are stable.
    """
    H, W = cls.shape
    fg = cls >= 0
    idx = np.arange(H * W).reshape(H, W)
    big = H * W
    lab = np.where(fg, idx, big)
    # same-class links to the right and downwards
    right = fg[:, :-1] & (cls[:, :-1] == cls[:, 1:])
    down = fg[:-1, :] & (cls[:-1, :] == cls[1:, :])
    flat_ext = np.empty(H * W + 1, dtype=lab.dtype)
    while True:
        new = lab.copy()
        m = np.minimum(lab[:, :-1], lab[:, 1:])
        new[:, :-1] = np.where(right, np.minimum(new[:, :-1], m), new[:, :-1])
        new[:, 1:] = np.where(right, np.minimum(new[:, 1:], m), new[:, 1:])
        m = np.minimum(lab[:-1, :], lab[1:, :])
        new[:-1, :] = np.where(down, np.minimum(new[:-1, :], m), new[:-1, :])
        new[1:, :] = np.where(down, np.minimum(new[1:, :], m), new[1:, :])
        # pointer jumping: a label is a pixel of the same component; take that pixel's label
        flat_ext[:-1] = new.ravel()
        flat_ext[-1] = big
        for _ in range(3):
            new = np.minimum(new, flat_ext[new])
            flat_ext[:-1] = new.ravel()
        if np.array_equal(new, lab):
            break
        lab = new
    return np.where(fg, lab, -1)


_PAD = 3  # template margin around the box, room for blur
_SIGMAS = (0.0, 0.6, 1.0, 1.5)  # blur levels the templates are matched at
_SIDE_DELTAS = (-2, -1, 0, 1, 2)  # box sides tried around the size's nominal side
_SOFT_FLOOR = 0.15  # soft coverage below this is treated as background (noise)
_EXTENT_ALPHA = 0.3  # soft coverage that counts towards an object's extent (box, size)


def _gauss_blur(m: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a 2-D array (zero outside), as G @ m @ G.T with a Gaussian matrix G."""
    if sigma <= 0:
        return m
    i = np.arange(m.shape[0])
    G = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    G /= np.exp(-0.5 * (np.arange(-3 * m.shape[0], 3 * m.shape[0] + 1) / sigma) ** 2).sum()
    return G @ m @ G.T


@lru_cache(maxsize=None)
def _templates(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft templates of every shape at every blur level for a box side, padded by _PAD.

    Returns (T (len(SHAPES)*len(_SIGMAS), L, L) float32, their (cy, cx) centroids, shape index per row).
    """
    L = side + 2 * _PAD
    ts, cents, which = [], [], []
    yy, xx = np.mgrid[0:L, 0:L] + 0.5
    for si, shape in enumerate(SHAPES):
        base = np.zeros((L, L), np.float64)
        base[_PAD : _PAD + side, _PAD : _PAD + side] = shape_mask(shape, side)
        for sigma in _SIGMAS:
            t = _gauss_blur(base, sigma)
            t = np.where(t >= _SOFT_FLOOR, np.clip(t, 0, 1), 0.0)
            ts.append(t.astype(np.float32))
            cents.append(((t * yy).sum() / t.sum(), (t * xx).sum() / t.sum()))
            which.append(si)
    return np.stack(ts), np.array(cents), np.array(which)


def _best_shape(soft: np.ndarray, cy: float, cx: float, nominal: int) -> tuple[str, int, float, float]:
    """Match a soft coverage map against shape templates placed by centroid (cy, cx).

    soft: (H, W) coverage of one component (0 elsewhere), in a frame padded enough that every
    placement fits. Score = soft IoU, with the component's mass outside the template window added
    to the union. Returns (best shape, its box side, its score, best score among the other shapes).
    """
    scores = np.zeros(len(SHAPES))
    side_of = np.full(len(SHAPES), nominal)
    total = float(soft.sum())
    for d in _SIDE_DELTAS:
        side = nominal + d
        if side < 3:
            continue
        T, cents, which = _templates(side)  # (S*G, L, L), (S*G, 2), (S*G,)
        L = T.shape[1]
        places = set()
        for c in cents[:: len(_SIGMAS)]:  # each shape's unblurred centroid
            fy, fx = cy - c[0], cx - c[1]
            for ty in {int(np.floor(fy)), int(np.ceil(fy))}:
                for tx in {int(np.floor(fx)), int(np.ceil(fx))}:
                    places.add((ty, tx))
        for ty, tx in places:
            win = soft[ty : ty + L, tx : tx + L]  # (L, L)
            inside = float(win.sum())
            inter = np.minimum(T, win[None]).sum((1, 2))
            union = np.maximum(T, win[None]).sum((1, 2)) + (total - inside)
            iou = inter / union  # (S*G,)
            per_shape = iou.reshape(len(SHAPES), len(_SIGMAS)).max(1)
            better = per_shape > scores
            scores[better] = per_shape[better]
            side_of[better] = side
    order = np.argsort(-scores)
    return SHAPES[order[0]], int(side_of[order[0]]), float(scores[order[0]]), float(scores[order[1]])


def analyse(image) -> tuple[list[DetectedObj], list[DetectedObj]]:
    """(recognised objects, unrecognised components) found in an image."""
    arr = _to_array(image)
    W = arr.shape[0]
    alpha, resid2 = pixel_alpha(arr)
    cls = classify_pixels(arr, alpha, resid2)
    lab = label_components(cls)
    flat = lab.ravel()
    fg = flat >= 0
    if not fg.any():
        return [], []
    labels, inv, counts = np.unique(flat[fg], return_inverse=True, return_counts=True)
    s_small, s_large = side_px("small", W), side_px("large", W)
    min_area = MIN_AREA_FRAC * min(int(shape_mask(sh, s_small).sum()) for sh in SHAPES)
    M = s_large + 2 * _PAD + max(_SIDE_DELTAS) + 2  # frame padding: any placement fits
    pos = np.flatnonzero(fg)
    ys, xs = pos // W, pos % W
    gy, gx = np.mgrid[0:W, 0:W] + 0.5  # pixel centres
    found, unknown = [], []
    for j in np.flatnonzero(counts >= min_area):
        sel = inv == j
        py, px = ys[sel], xs[sel]
        y0, y1, x0, x1 = int(py.min()), int(py.max()) + 1, int(px.min()), int(px.max()) + 1
        k = int(cls.ravel()[labels[j]])
        color = _COLOR_NAMES[k]
        # soft coverage of this component: its own pixels plus the unclassified halo around it
        # (blurred or compressed edges), within a few pixels of its box
        comp = lab == labels[j]
        mine = comp | (lab < 0)
        near = np.zeros_like(mine)
        near[max(y0 - _PAD, 0) : y1 + _PAD, max(x0 - _PAD, 0) : x1 + _PAD] = True
        cov = np.clip(alpha[..., k], 0.0, 1.0)
        cov = np.where(mine & near & (cov >= _SOFT_FLOOR), cov, 0.0).astype(np.float32)
        # extent from the soft coverage (sharp tips survive blur / compression there)
        grown = comp.copy()  # the component grown by one pixel (4-neighbourhood)
        grown[1:] |= comp[:-1]
        grown[:-1] |= comp[1:]
        grown[:, 1:] |= comp[:, :-1]
        grown[:, :-1] |= comp[:, 1:]
        ext_y, ext_x = np.nonzero(grown & (cov >= _EXTENT_ALPHA))
        y0, y1 = min(y0, int(ext_y.min())), max(y1, int(ext_y.max()) + 1)
        x0, x1 = min(x0, int(ext_x.min())), max(x1, int(ext_x.max()) + 1)
        h, w = y1 - y0, x1 - x0
        side = max(h, w)
        # size: nearest of the dataset's sides, within tolerance; both extents must agree
        size = min(SIZES, key=lambda n: abs(side - side_px(n, W)))
        s_exp = side_px(size, W)
        tol = max(2.0, SIZE_TOL * s_exp)
        shape, score = None, 0.0
        if abs(side - s_exp) <= tol and abs(min(h, w) - s_exp) <= tol:
            soft = np.pad(cov, M)
            tot = float(cov.sum())
            cy, cx = float((cov * gy).sum() / tot) + M, float((cov * gx).sum() / tot) + M
            best, best_side, score, second = _best_shape(soft, cy, cx, s_exp)
            if score >= MIN_IOU and score - second >= MIN_MARGIN:
                shape = best
                size = min(SIZES, key=lambda n: abs(best_side - side_px(n, W)))
        cx_box, cy_box = (x0 + x1) / 2, (y0 + y1) / 2
        obj = DetectedObj(color, shape, size if shape else None, cx_box, cy_box, (x0, y0, x1, y1),
                          int(counts[j]), float(score))
        (found if shape else unknown).append(obj)
    return found, unknown


def detect_objects(image) -> list[DetectedObj]:
    """Recognised objects (colour, shape, size, centre, bbox, area, score) in an image."""
    return analyse(image)[0]


def _key(o, check_size: bool) -> tuple:
    return (o.color, o.shape, o.size) if check_size else (o.color, o.shape)


def _name(key: tuple) -> str:
    return " ".join(reversed(key[:2])) if len(key) == 2 else f"{key[2]} {key[0]} {key[1]}"


def geneval_relations(box_a: tuple, box_b: tuple, threshold: float = 0.1) -> set[str]:
    """Relations of box a to box b, as GenEval judges position.

    The centre offset shrinks by threshold × (sum of the boxes' extents) on each axis; a relation
    holds where the shrunk offset, divided by the offset's length, exceeds 0.5 along its axis (so
    a diagonal placement can be both "left of" and "above"; a small offset is no relation).
    """
    a, b = np.asarray(box_a, float), np.asarray(box_b, float)
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    dim = (a[2:] - a[:2]) + (b[2:] - b[:2])
    off = ca - cb  # (dx, dy); image y grows downwards
    rev = np.maximum(np.abs(off) - threshold * dim, 0) * np.sign(off)
    if np.all(np.abs(rev) < 1e-3):
        return set()
    dx, dy = rev / np.linalg.norm(off)
    rel = set()
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel


def check_scene(image, scene: Scene, check_size: bool = True, position_threshold: float = 0.1,
                allow_unrecognised: bool = False) -> CheckResult:
    """Judge an image against a scene.

    ok iff the recognised objects equal the scene's objects as a multiset of (colour, shape, size)
    (or (colour, shape) with check_size=False): right objects, right counts, no extras; no
    unrecognised coloured blobs (unless allow_unrecognised); and, for pairs, the relation holds
    between the matched objects' boxes as GenEval judges position (geneval_relations, with
    position_threshold).
    """
    arr = _to_array(image)
    found, unknown = analyse(arr)
    reasons: list[str] = []
    want = Counter(_key(o, check_size) for o in scene.objects)
    have = Counter(_key(o, check_size) for o in found)
    for k in sorted(want.keys() | have.keys()):
        if want[k] > have[k]:
            reasons.append(f"missing {want[k] - have[k]} × {_name(k)} (found {have[k]}, want {want[k]})")
        elif have[k] > want[k]:
            reasons.append(f"extra {have[k] - want[k]} × {_name(k)} (found {have[k]}, want {want[k]})")
    if unknown and not allow_unrecognised:
        reasons.append(f"{len(unknown)} unrecognised object(s): " + "; ".join(u.describe() for u in unknown))
    if not reasons and scene.kind == "pair" and scene.relation:
        k0, k1 = _key(scene.objects[0], check_size), _key(scene.objects[1], check_size)
        c0 = [o for o in found if _key(o, check_size) == k0]
        c1 = [o for o in found if _key(o, check_size) == k1]
        pairs = permutations(c0, 2) if k0 == k1 else [(c0[0], c1[0])]  # same key twice: either order
        if not any(scene.relation in geneval_relations(a.bbox, b.bbox, position_threshold) for a, b in pairs):
            reasons.append(f"relation fails: {_name(k0)} is not {scene.relation} {_name(k1)}")
    return CheckResult(ok=not reasons, reasons=reasons, detected=found, unrecognised=unknown)

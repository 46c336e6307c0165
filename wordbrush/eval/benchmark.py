"""The `shapes` prompt-fidelity benchmark, in GenEval's six categories, judged from pixels.

Categories (GenEval, Ghosh et al. 2023, transposed to the shapes world; sizes are never named, so
size is never judged):

=================  ======================================  =========================================
category           example prompt                          passes when the image holds exactly ...
=================  ======================================  =========================================
single_object      "a circle"                              one circle (any colour)
two_objects        "a circle and a square"                 one circle and one square (any colours)
counting           "three red triangles", "two crosses"    N (2 or 3) such objects (colour if named)
colors             "a purple diamond"                      one purple diamond
position           "a red circle to the left of a blue     those two objects, and the relation holds
                   square"                                 (scene_checker.geneval_relations)
attribute_binding  "a red circle and a blue square"        those two objects, each with its colour
=================  ======================================  =========================================

"Exactly" means: no other recognised objects and no unrecognised coloured blobs. Scores: per
category, the share of images judged ok; overall, the mean of the category scores (GenEval's rule).

Prompts use only words of the training captions (data/captions.py), never RESERVED_WORDS, and are
drawn from seeds training never uses. split="holdout" gives only prompts that name a held-out
colour-shape pair, so only the four categories that name colours (colors, position,
attribute_binding, counting with a colour); split="train" gives prompts that name none.

Baselines computed the same way (always report a model beside them): the oracle (renders a scene
matching the prompt; ~1.0) and the shuffled-caption baseline (renders the oracle scene of a
different prompt; low).

    specs = make_prompts(20, split="all")
    res = run_benchmark(pipe_generate, specs, images_per_prompt=4, out_dir="eval/shapes")
    base = {name: run_benchmark(g, specs, progress=False) for name, g in baseline_generators(specs).items()}
    print(format_table({"model": res, **base}))
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from itertools import permutations
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
from PIL import Image

from ..data.captions import NUMBER_WORDS, RELATION_WORDS, SHAPE_WORDS, article
from ..data.placement import place_free, place_pair
from ..data.scene import COLORS, RELATIONS, SHAPES, SIZES, Obj, Scene, render, side_px
from ..data.shapes import DEFAULT_HOLDOUT, SPLITS
from .scene_checker import DetectedObj, analyse, geneval_relations

CATEGORIES: tuple[str, ...] = (
    "single_object", "two_objects", "counting", "colors", "position", "attribute_binding",
)
COLOR_CATEGORIES: tuple[str, ...] = ("counting", "colors", "position", "attribute_binding")
DEFAULT_SEED = 2_000_000  # training draws scenes from small seeds; prompts come from here
POSITION_THRESHOLD = 0.1  # GenEval's, as in scene_checker.geneval_relations

Generator = Callable[[list[str], list[int]], list[Image.Image]]


# ---------------------------------------------------------------------------------------------
# Prompt specs


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


def _spec(category: str, objects: tuple[ObjSpec, ...], relation: str | None = None) -> PromptSpec:
    if relation is not None:
        text = f"{objects[0].phrase()} {RELATION_WORDS[relation][0]} {objects[1].phrase()}"
    else:
        text = " and ".join(o.phrase() for o in objects)
    return PromptSpec(category, text, objects, relation)


def _candidates(category: str) -> list[PromptSpec]:
    """Every prompt of a category (before the split's filter), in a fixed order."""
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    if category == "single_object":
        return [_spec(category, (ObjSpec(s),)) for s in SHAPES]
    if category == "two_objects":
        return [_spec(category, (ObjSpec(a), ObjSpec(b))) for a in SHAPES for b in SHAPES if a != b]
    if category == "counting":
        return [_spec(category, (ObjSpec(s, c, n),))
                for n in NUMBER_WORDS for s in SHAPES for c in (None, *COLORS)]
    if category == "colors":
        return [_spec(category, (ObjSpec(s, c),)) for c, s in pairs]
    if category == "position":  # like the dataset's pairs: differ in colour or shape (or both)
        return [_spec(category, (ObjSpec(a[1], a[0]), ObjSpec(b[1], b[0])), r)
                for a in pairs for b in pairs if a != b for r in RELATIONS]
    if category == "attribute_binding":  # different colours and different shapes
        return [_spec(category, (ObjSpec(a[1], a[0]), ObjSpec(b[1], b[0])))
                for a in pairs for b in pairs if a[0] != b[0] and a[1] != b[1]]
    raise ValueError(f"unknown category {category!r}")


def make_prompts(n_per_category: int = 20, seed: int = DEFAULT_SEED, split: str = "all",
                 holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT) -> list[PromptSpec]:
    """n prompts per category, category-major, determined by (seed, split, holdout).

    Each category draws without replacement from all its prompts and starts over (newly shuffled)
    when it runs out, so small categories repeat (single_object has 5 prompts, two_objects 20).
    A larger n extends a smaller n's list. split="holdout" has only COLOR_CATEGORIES.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if n_per_category < 1:
        raise ValueError(f"n_per_category must be >= 1, got {n_per_category}")
    held = frozenset(tuple(p) for p in holdout)
    out: list[PromptSpec] = []
    for k, category in enumerate(CATEGORIES):
        cands = _candidates(category)
        if split == "holdout":
            cands = [c for c in cands if c.named_pairs() & held]
        elif split == "train":
            cands = [c for c in cands if not c.named_pairs() & held]
        if not cands:
            continue
        rng = np.random.default_rng([seed, k])
        picked: list[PromptSpec] = []
        while len(picked) < n_per_category:
            picked += [cands[i] for i in rng.permutation(len(cands))]
        out += picked[:n_per_category]
    return out


# ---------------------------------------------------------------------------------------------
# Judging


@dataclass
class Judgement:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    detected: list[DetectedObj] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def _slot_name(shape: str, color: str | None) -> str:
    return f"{color} {shape}" if color else shape


def _matches(d: DetectedObj, slot: tuple[str, str | None]) -> bool:
    return d.shape == slot[0] and (slot[1] is None or d.color == slot[1])


def judge(image, spec: PromptSpec, position_threshold: float = POSITION_THRESHOLD) -> Judgement:
    """Whether an image (PIL or (W, W, 3) uint8) shows exactly what the spec asks for.

    The recognised objects must match the spec's objects one to one (shape, and colour where named),
    with no extras and no unrecognised coloured blobs (as check_scene); for position, the relation
    must hold between the matched objects' boxes as GenEval judges it (geneval_relations).
    """
    found, unknown = analyse(image)
    reasons: list[str] = []
    if unknown:
        reasons.append(f"{len(unknown)} unrecognised object(s): " + "; ".join(u.describe() for u in unknown))
    slots = spec.slots()
    want = ", ".join(_slot_name(*s) for s in slots)
    have = ", ".join(f"{d.color} {d.shape}" for d in found) or "nothing"
    if len(found) != len(slots):
        reasons.append(f"found {len(found)} object(s) ({have}), want {len(slots)} ({want})")
    else:
        fits = [p for p in permutations(found) if all(_matches(d, s) for d, s in zip(p, slots))]
        if not fits:
            reasons.append(f"objects do not match: found {have}, want {want}")
        elif spec.relation is not None:
            if not any(spec.relation in geneval_relations(p[0].bbox, p[1].bbox, position_threshold)
                       for p in fits):
                got = sorted(geneval_relations(fits[0][0].bbox, fits[0][1].bbox, position_threshold))
                reasons.append(f"relation fails: {_slot_name(*slots[0])} is not {spec.relation} "
                               f"{_slot_name(*slots[1])} (it is {' and '.join(got) or 'in no relation'})")
    return Judgement(ok=not reasons, reasons=reasons, detected=found)


# ---------------------------------------------------------------------------------------------
# Oracle renders


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


# ---------------------------------------------------------------------------------------------
# Baseline generators: generate(prompts, seeds) -> list[PIL.Image], like a model's


def _spec_table(specs: Mapping[str, PromptSpec] | Iterable[PromptSpec]) -> dict[str, PromptSpec]:
    return dict(specs) if isinstance(specs, Mapping) else {s.prompt: s for s in specs}


def _rng_for(prompt: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(prompt.encode("utf-8"))])


def _lookup(table: dict[str, PromptSpec], prompt: str) -> PromptSpec:
    if prompt not in table:
        raise ValueError(f"the baseline knows no spec for prompt {prompt!r}")
    return table[prompt]


def oracle_generator(specs_by_prompt: Mapping[str, PromptSpec] | Iterable[PromptSpec],
                     size: int = 64) -> Generator:
    """A generator that renders a scene matching each prompt (the ceiling; scores ~1.0)."""
    table = _spec_table(specs_by_prompt)

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return [Image.fromarray(render_spec(_lookup(table, p), _rng_for(p, s), size), "RGB")
                for p, s in zip(prompts, seeds)]

    return generate


def shuffled_generator(specs_by_prompt: Mapping[str, PromptSpec] | Iterable[PromptSpec],
                       size: int = 64) -> Generator:
    """The shuffled-caption baseline: for each (prompt, seed), the oracle render of a different
    prompt drawn at random from the same set. Scores what an image unrelated to its prompt gets."""
    table = _spec_table(specs_by_prompt)
    names = sorted(table)
    if len(names) < 2:
        raise ValueError("the shuffled baseline needs at least two different prompts")

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        out = []
        for p, s in zip(prompts, seeds):
            _lookup(table, p)
            rng = _rng_for(p, s)
            others = [q for q in names if q != p]
            other = others[int(rng.integers(len(others)))]
            out.append(Image.fromarray(render_spec(table[other], rng, size), "RGB"))
        return out

    return generate


def baseline_generators(specs: Mapping[str, PromptSpec] | Iterable[PromptSpec],
                        size: int = 64) -> dict[str, Generator]:
    """{"oracle": ..., "shuffled": ...}: the two baselines every report shows beside a model."""
    table = _spec_table(specs)
    return {"oracle": oracle_generator(table, size), "shuffled": shuffled_generator(table, size)}


# ---------------------------------------------------------------------------------------------
# Running and reporting


def _as_pil(im) -> Image.Image:
    if isinstance(im, Image.Image):
        return im.convert("RGB")
    return Image.fromarray(np.asarray(im, dtype=np.uint8), "RGB")


def _spread(items: list, k: int) -> list:
    """Up to k items evenly spaced over the list (so every category shows up in a grid)."""
    if len(items) <= k:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round()]


def run_benchmark(generate: Generator, specs: list[PromptSpec], images_per_prompt: int = 4,
                  seed: int = 0, out_dir: str | Path | None = None, batch_size: int = 16,
                  progress: bool = True) -> dict:
    """Generate images_per_prompt images per spec (image j of prompt i with seed + i*images_per_prompt + j,
    so a prompt that repeats gets fresh images), judge each, and score: per category the share of images judged ok, overall the mean of the category scores.

    generate(prompts, seeds) -> one image per (prompt, seed) pair; called in batches of batch_size.
    With out_dir: writes results.json, results.md, grid_successes.png and grid_failures.png.
    Returns the results dict (as in results.json).
    """
    if not specs:
        raise ValueError("run_benchmark needs at least one prompt spec")
    if images_per_prompt < 1 or batch_size < 1:
        raise ValueError(f"images_per_prompt and batch_size must be >= 1, got {images_per_prompt}, {batch_size}")
    from tqdm import tqdm

    jobs = [(i, j) for i in range(len(specs)) for j in range(images_per_prompt)]
    per_prompt = [{"category": s.category, "prompt": s.prompt, "spec": asdict(s), "images": []} for s in specs]
    good: list[Image.Image] = []
    bad: list[Image.Image] = []
    with tqdm(total=len(jobs), desc="benchmark", unit="img", disable=not progress) as bar:
        for b in range(0, len(jobs), batch_size):
            chunk = jobs[b : b + batch_size]
            prompts, seeds = [specs[i].prompt for i, _ in chunk], [seed + i * images_per_prompt + j for i, j in chunk]
            images = list(generate(prompts, seeds))
            if len(images) != len(chunk):
                raise ValueError(f"generate returned {len(images)} images for {len(chunk)} prompts")
            for (i, j), im in zip(chunk, images):
                im = _as_pil(im)
                jd = judge(im, specs[i])
                per_prompt[i]["images"].append({"seed": seed + i * images_per_prompt + j, "ok": jd.ok, "reasons": jd.reasons})
                (good if jd.ok else bad).append(im)
            bar.update(len(chunk))
    categories = {}
    for cat in CATEGORIES:
        rows = [p for p in per_prompt if p["category"] == cat]
        if rows:
            oks = [im["ok"] for p in rows for im in p["images"]]
            categories[cat] = {"score": sum(oks) / len(oks), "n_ok": sum(oks), "n_images": len(oks),
                               "n_prompts": len(rows)}
    for p in per_prompt:
        p["score"] = sum(im["ok"] for im in p["images"]) / len(p["images"])
    results = {
        "overall": float(np.mean([c["score"] for c in categories.values()])),
        "categories": categories,
        "images_per_prompt": images_per_prompt,
        "seed": seed,
        "n_prompts": len(specs),
        "n_images": len(jobs),
        "prompts": per_prompt,
    }
    if out_dir is not None:
        _write(results, Path(out_dir), _spread(good, 32), _spread(bad, 32))
    return results


def _write(results: dict, out: Path, good: list[Image.Image], bad: list[Image.Image]) -> None:
    from ..utils.images import save_grid

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = ["| category | score | images |", "|---|---|---|"]
    for cat, c in results["categories"].items():
        lines.append(f"| {cat} | {c['score']:.3f} | {c['n_ok']}/{c['n_images']} |")
    lines.append(f"| **overall** | **{results['overall']:.3f}** | {results['n_images']} |")
    head = (f"# shapes benchmark\n\n{results['n_prompts']} prompts × {results['images_per_prompt']} "
            f"images (seeds {results['seed']}…), judged from pixels by the scene checker; overall = "
            f"mean of the category scores.\n\n")
    (out / "results.md").write_text(head + "\n".join(lines) + "\n", encoding="utf-8")
    tile = (good or bad)[0].size
    for name, images in (("grid_successes.png", good), ("grid_failures.png", bad)):
        if not images:  # keep the file set fixed: an empty grid is one blank tile
            images = [Image.new("RGB", tile, (0, 0, 0))]
        save_grid(images, out / name, scale=2)


def format_table(results: Mapping[str, dict]) -> str:
    """Markdown table of several named results side by side: rows = categories + overall."""
    if not results:
        raise ValueError("format_table needs at least one named result")
    names = list(results)
    cats = [c for c in CATEGORIES if any(c in r["categories"] for r in results.values())]
    lines = ["| category | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for cat in cats:
        cells = [f"{r['categories'][cat]['score']:.3f}" if cat in r["categories"] else "–"
                 for r in results.values()]
        lines.append(f"| {cat} | " + " | ".join(cells) + " |")
    lines.append("| **overall** | " + " | ".join(f"**{r['overall']:.3f}**" for r in results.values()) + " |")
    return "\n".join(lines)

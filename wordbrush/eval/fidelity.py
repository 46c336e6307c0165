"""The `shapes` prompt-fidelity benchmark, in GenEval's six categories, judged from pixels: the runner and its
tables. Prompts come from prompts.py, the judge from judge.py, the baselines from oracle.py.

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
Always report a model beside the baselines computed the same way (oracle.py):

    specs = make_prompts(20, split="all")
    res = run_fidelity(draw, specs, images_per_prompt=4, out_dir="eval/shapes")
    base = {name: run_fidelity(d, specs, progress=False) for name, d in baseline_draws(specs).items()}
    print(format_table({"model": res, **base}))
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from PIL import Image

from ..data.specs import CATEGORIES, PromptSpec
from .judge import judge

# draw(prompts, seeds) -> one image per (prompt, seed) pair: a model's (pipe.draw) or a baseline's
DrawFn = Callable[[list[str], list[int]], list[Image.Image]]
GRID_IMAGES = 32  # images per success / failure grid


def _as_pil(im) -> Image.Image:
    if isinstance(im, Image.Image):
        return im.convert("RGB")
    return Image.fromarray(np.asarray(im, dtype=np.uint8), "RGB")


def _spread(items: list, k: int) -> list:
    """Up to k items evenly spaced over the list (so every category shows up in a grid)."""
    if len(items) <= k:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round()]


def run_fidelity(draw: DrawFn, specs: list[PromptSpec], images_per_prompt: int = 4, seed: int = 0,
                 out_dir: str | Path | None = None, batch_size: int = 16, progress: bool = True,
                 desc: str = "fidelity") -> dict:
    """Draw images_per_prompt images per spec (image j of prompt i with seed + i*images_per_prompt + j, so a
    prompt that repeats gets fresh images), judge each, and score: per category the share of images judged ok,
    overall the mean of the category scores.

    draw(prompts, seeds) -> one image per (prompt, seed) pair; called in batches of batch_size. desc labels the
    progress bar. With out_dir: writes results.json, results.md, grid_successes.png and grid_failures.png (each
    image captioned with its prompt). Returns the results dict (as in results.json).
    """
    if not specs:
        raise ValueError("run_fidelity needs at least one prompt spec")
    if images_per_prompt < 1 or batch_size < 1:
        raise ValueError(f"images_per_prompt and batch_size must be >= 1, got {images_per_prompt}, {batch_size}")
    from tqdm import tqdm

    jobs = [(i, j) for i in range(len(specs)) for j in range(images_per_prompt)]
    per_prompt = [{"category": s.category, "prompt": s.prompt, "spec": asdict(s), "images": []} for s in specs]
    good: list[tuple[str, Image.Image]] = []  # (prompt, image)
    bad: list[tuple[str, Image.Image]] = []
    with tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress) as bar:
        for b in range(0, len(jobs), batch_size):
            chunk = jobs[b : b + batch_size]
            prompts, seeds = [specs[i].prompt for i, _ in chunk], [seed + i * images_per_prompt + j for i, j in chunk]
            images = list(draw(prompts, seeds))
            if len(images) != len(chunk):
                raise ValueError(f"draw returned {len(images)} images for {len(chunk)} prompts")
            for (i, j), im in zip(chunk, images):
                im = _as_pil(im)
                jd = judge(im, specs[i])
                per_prompt[i]["images"].append({"seed": seed + i * images_per_prompt + j, "ok": jd.ok, "reasons": jd.reasons})
                (good if jd.ok else bad).append((specs[i].prompt, im))
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
        _write(results, Path(out_dir), _spread(good, GRID_IMAGES), _spread(bad, GRID_IMAGES))
    return results


def _write(results: dict, out: Path, good: list[tuple[str, Image.Image]], bad: list[tuple[str, Image.Image]]) -> None:
    from ..utils.images import save_captioned_grid

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
    tile = (good or bad)[0][1].size
    for name, cells in (("grid_successes.png", good), ("grid_failures.png", bad)):
        if not cells:  # keep the file set fixed: an empty grid is one blank tile
            cells = [("(none)", Image.new("RGB", tile, (0, 0, 0)))]
        save_captioned_grid([(prompt, [im]) for prompt, im in cells], out / name, cols=8, scale=2)


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

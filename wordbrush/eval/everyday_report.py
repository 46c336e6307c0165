"""`wordbrush eval --model M --data EMOJI_MANIFEST --everyday`: the natural-prompt benchmark for emoji models.

For each everyday prompt (eval/everyday.py: "a cup of hot coffee" for hot beverage, all train-split concepts) the
model draws n images; so it does for the dataset's own structured caption of the same concept ("hot beverage; food
and drink; beverage, cafe, caffeine"), with the same seeds. The pixel judge (eval/pixel_judge.py) scores every
image: a hit when the intended concept's reference is among its 20 nearest of all the manifest's concepts. Three
figures, side by side:

- everyday: the images of prompt i against concept i;
- structured: the images of concept i's caption against concept i (what the model can do when it is asked in its
  training language: the ceiling everyday prompts are measured against);
- shuffled: the images of prompt i against concept pi(i), pi a fixed derangement (a single cycle, so no prompt is
  scored for its own concept): chance for images drawn from these prompts, the floor.

Beside them, for scale, the judge on the dataset's other-style image of each concept (twitter for a google
reference): a real drawing of the right emoji that is not the reference's pixels.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import WordbrushError
from ..utils.images import save_captioned_grid
from .everyday import EVERYDAY_PROMPTS, EverydayPrompt
from .pixel_judge import JUDGE_SIZE, K, References, load_image, target_ranks, to_vectors

CONDITIONS = ("everyday", "structured", "shuffled")
GRID_PROMPTS = 16
DERANGEMENT_SEED = 22  # issue 22


def derangement(n: int, seed: int = DERANGEMENT_SEED) -> np.ndarray:
    """A permutation p of range(n) with p[i] != i for every i: one cycle through a seeded random order."""
    if n < 2:
        raise ValueError("a derangement needs at least two items")
    order = np.random.default_rng(seed).permutation(n)
    p = np.empty(n, dtype=np.int64)
    p[order] = np.roll(order, -1)  # order[j] -> order[j + 1]
    return p


def check_prompts(refs: References, prompts: tuple[EverydayPrompt, ...] | list[EverydayPrompt]) -> None:
    """Every prompt's concept is in the manifest and in its train split (one line naming the first that is not)."""
    if len(prompts) < 2:
        raise WordbrushError(f"the everyday benchmark needs at least 2 prompts, got {len(prompts)}")
    for p in prompts:
        if p.concept not in refs.index:
            raise WordbrushError(f"everyday prompt {p.prompt!r}: concept {p.concept} ({p.label}) is not in the "
                                 "manifest")
        split = refs.rows[refs.index[p.concept]].split
        if split != "train":
            raise WordbrushError(f"everyday prompt {p.prompt!r}: concept {p.concept} is in the manifest's {split!r} "
                                 "split, not 'train'")


def plan(n_prompts: int, images: int, candidates: int, n_refs: int) -> str:
    best = f", each the best of {candidates}" if candidates > 1 else ""
    return (f"everyday eval: {n_prompts} prompts × {images} images × 2 (everyday prompts and the dataset's captions"
            f"{best}) = {2 * n_prompts * images} images, judged against {n_refs} reference emoji at "
            f"{JUDGE_SIZE}×{JUDGE_SIZE} (hit: the intended one among the {K} nearest)")


def _draw(pipe, prompts: list[str], seeds: list[int], options, desc: str, progress: bool) -> list[Image.Image]:
    with tqdm(total=len(prompts), desc=desc, unit="img", disable=not progress) as bar:
        images, _ = pipe.draw(prompts, seeds, options, callback=lambda first, batch: bar.update(len(batch)))
    return images


def evaluate_everyday(pipe, refs: References, out_dir: str | Path, prompts=EVERYDAY_PROMPTS,
                      images_per_prompt: int = 4, options=None, seed: int = 0, k: int = K,
                      progress: bool = True) -> dict[str, Any]:
    """Draw, judge and write report.json, report.md, grid.png (16 everyday prompts, one image each) and
    grid_all.png (every prompt: its images and, last, the reference) into out_dir; return the report."""
    prompts = list(prompts)
    check_prompts(refs, prompts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = options or pipe.sampling
    n, m = len(prompts), images_per_prompt
    concepts = [p.concept for p in prompts]
    rows = [refs.rows[refs.index[c]] for c in concepts]
    seeds = [seed + i * m + j for i in range(n) for j in range(m)]  # image j of prompt i, in every condition
    if progress:
        print(plan(n, m, options.candidates, len(refs)), file=sys.stderr)
    read_as = pipe.revise([p.prompt for p in prompts], options)[0]  # as generate draws them (a model's rewriter)
    captions = pipe.revise([r.caption for r in rows], options)[0]
    everyday_images = _draw(pipe, [q for q in read_as for _ in range(m)], seeds, options,
                            "everyday: everyday prompts", progress)
    structured_images = _draw(pipe, [c for c in captions for _ in range(m)], seeds, options,
                              "everyday: dataset captions", progress)
    swap = derangement(n)
    per_image = [c for c in concepts for _ in range(m)]
    ranks = {"everyday": target_ranks(refs, to_vectors(everyday_images), per_image),
             "structured": target_ranks(refs, to_vectors(structured_images), per_image),
             "shuffled": target_ranks(refs, to_vectors(everyday_images), [concepts[swap[i]] for i in range(n)
                                                                           for _ in range(m)])}
    hit = {name: (r < k).reshape(n, m) for name, r in ranks.items()}  # (prompts, images)
    others = [r.other_style for r in rows]
    real = None
    if all(o is not None for o in others):
        real = float(np.mean(target_ranks(refs, to_vectors([load_image(o) for o in others]), concepts) < k))
    rates = {name: float(h.mean()) for name, h in hit.items()}
    unknown = pipe.tokenizer.encode(read_as, pipe.text_len).unknown_words
    report: dict[str, Any] = {
        "benchmark": "emoji everyday prompts, pixel nearest-neighbour judge",
        "prompts": n, "images_per_prompt": m, "seed": seed, "k": k, "judge_size": JUDGE_SIZE,
        "references": len(refs), "options": vars(options), "rewriter": pipe.rewriter is not None and options.rewrite,
        "hit_rate": {name: round(v, 4) for name, v in rates.items()},
        "ratio_everyday_to_structured": _ratio(rates["everyday"], rates["structured"]),
        "ratio_everyday_to_shuffled": _ratio(rates["everyday"], rates["shuffled"]),
        "other_style_real_hit_rate": None if real is None else round(real, 4),
        "per_prompt": [
            {**asdict(p), "caption": rows[i].caption, "shuffled_against": concepts[swap[i]],
             **{f"{name}_hits": [bool(x) for x in hit[name][i]] for name in CONDITIONS},
             **{f"{name}_ranks": [int(x) for x in ranks[name].reshape(n, m)[i]] for name in CONDITIONS},
             "read_as": read_as[i], "unknown_words": list(dict.fromkeys(unknown[i]))}
            for i, p in enumerate(prompts)],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    show = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(GRID_PROMPTS, n))})
    grid = save_captioned_grid([(prompts[i].prompt, [everyday_images[i * m]]) for i in show], out / "grid.png",
                               cols=4, scale=2)
    grid_all = save_captioned_grid(
        [(f"{p.prompt} [{int(hit['everyday'][i].sum())}/{m}; last: {p.label}]",
          [*everyday_images[i * m : (i + 1) * m], load_image(rows[i].file)]) for i, p in enumerate(prompts)],
        out / "grid_all.png", cols=4, scale=1)
    (out / "report.md").write_text(markdown(report, grid.name, grid_all.name), encoding="utf-8")
    return report


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def _fmt_ratio(r: float | None) -> str:
    return "∞ (the denominator is 0)" if r is None else f"{r:.2f}×"


def markdown(report: dict[str, Any], grid: str, grid_all: str) -> str:
    rate, m, k = report["hit_rate"], report["images_per_prompt"], report["k"]
    real = report["other_style_real_hit_rate"]
    lines = [
        "# Emoji: everyday prompts", "",
        f"{report['prompts']} everyday prompts for train-split concepts (wordbrush/eval/everyday.py), {m} images each "
        f"(seeds {report['seed']}.., image j of prompt i: seed + {m}·i + j in every condition). Judge: pixel "
        f"nearest-neighbour retrieval among {report['references']} reference emoji at "
        f"{report['judge_size']}×{report['judge_size']} (box filter, L2 in RGB); a hit is the intended emoji among "
        f"the {k} nearest. No CLIP takes part in judging.", "",
        "| prompts | hit rate |", "|---|---|",
        f"| everyday prompts | **{100 * rate['everyday']:.1f}%** |",
        f"| the dataset's captions of the same concepts (structured) | {100 * rate['structured']:.1f}% |",
        f"| shuffled (prompt i's images scored for another prompt's concept) | {100 * rate['shuffled']:.1f}% |", "",
        f"- everyday / structured: **{_fmt_ratio(report['ratio_everyday_to_structured'])}** (the bar: ≥ 0.60×)",
        f"- everyday / shuffled: **{_fmt_ratio(report['ratio_everyday_to_shuffled'])}** (the bar: ≥ 10×)",
    ]
    if real is not None:
        lines.append(f"- for scale, the judge on the dataset's other-style (twitter) image of each concept: "
                     f"{100 * real:.1f}% (a real drawing of the right emoji, not the reference's pixels)")
    if report.get("rewriter"):
        lines.append("- prompts went through the model's prompt rewriter (text/rewriter.py), as `wordbrush generate` "
                     "draws them; the table lists what each was read as")
    lines += ["", f"Sampling: {report['options']}.", "",
              f"![16 everyday prompts, one image each]({grid})", "",
              f"Every prompt, its {m} images and (last) the reference: [{grid_all}]({grid_all})", "",
              "## Per prompt", "",
              f"Hits out of {m}; rank: the median rank of the intended emoji among all references (0 = nearest).", "",
              "| group | prompt | emoji | everyday | structured | shuffled | rank everyday | rank structured | "
              "read as | words the model never saw |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in report["per_prompt"]:
        lines.append(
            f"| {p['group']} | {p['prompt']} | {p['label']} ({p['concept']}) | {sum(p['everyday_hits'])} | "
            f"{sum(p['structured_hits'])} | {sum(p['shuffled_hits'])} | {int(np.median(p['everyday_ranks']))} | "
            f"{int(np.median(p['structured_ranks']))} | {'' if p.get('read_as', p['prompt']) == p['prompt'] else p['read_as']} | "
            f"{', '.join(p['unknown_words'])} |")
    return "\n".join(lines) + "\n"

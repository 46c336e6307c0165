"""`wordbrush eval --model M` for a text-to-image pipeline: the shapes fidelity benchmark on prompts from held-out
seeds, beside the two baselines computed the same way (oracle renders of each prompt's scene, and oracle
renders of a shuffled prompt), on all colour-shape pairs, on the pairs held out of training, and on the first
set's prompts paraphrased in words training never uses (eval/paraphrase.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..data.specs import PromptSpec
from ..generators.options import SampleOptions
from .fidelity import format_table, run_fidelity
from .oracle import baseline_draws
from .paraphrase import make_paraphrase_prompts
from .prompts import DEFAULT_SEED, make_prompts


def plan(sets: list[tuple[str, list[PromptSpec]]], images_per_prompt: int) -> str:
    """One line saying what the evaluation will draw: per prompt set, categories × prompts × images."""
    parts, total = [], 0
    for name, specs in sets:
        cats = len({s.category for s in specs})
        n = len(specs) * images_per_prompt
        total += n
        parts.append(f"{name} {cats} categories × {len(specs) // cats} prompts × {images_per_prompt} images = {n}")
    return (f"shapes fidelity eval: {'; '.join(parts)}: {total} images from the model "
            f"(+ the oracle and shuffled baselines, rendered)")


def evaluate_pipeline(pipe, out_dir: str | Path, n_per_category: int = 20, images_per_prompt: int = 4,
                      seed: int = DEFAULT_SEED, options: SampleOptions | None = None,
                      progress: bool = True) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = options or SampleOptions(guidance_scale=3.0)

    def draw(prompts: list[str], seeds: list[int]):  # each prompt as the model reads it (its rewriter, if any)
        return pipe.draw(pipe.revise(prompts, options)[0], seeds, options)[0]

    report: dict[str, Any] = {"options": vars(options), "n_per_category": n_per_category,
                              "images_per_prompt": images_per_prompt, "prompt_seed": seed}
    md = ["# Shapes benchmark", "",
          f"{images_per_prompt} images per prompt, prompts drawn from seed {seed} (never used in training), "
          f"judged from pixels by the scene checker. Sampling: {vars(options)}.", ""]
    sections = (("all", "All colour-shape pairs", make_prompts(n_per_category, seed=seed, split="all")),
                ("holdout", "Colour-shape pairs held out of training",
                 make_prompts(n_per_category, seed=seed, split="holdout")),
                ("paraphrase", "Paraphrased prompts: the first table's scenes in words training never uses",
                 make_paraphrase_prompts(n_per_category, seed=seed)))
    if progress:
        print(plan([(split, specs) for split, _, specs in sections], images_per_prompt), file=sys.stderr)
    for split, title, specs in sections:
        runs = {"model": run_fidelity(draw, specs, images_per_prompt, out_dir=out / split, progress=progress,
                                      desc=f"fidelity {split}")}
        for name, baseline in baseline_draws(specs).items():
            runs[name] = run_fidelity(baseline, specs, images_per_prompt, progress=False)
        report[split] = {name: {"overall": r["overall"], "categories": {c: v["score"] for c, v in r["categories"].items()}}
                         for name, r in runs.items()}
        md += [f"## {title}", "", format_table(runs), "",
               f"Grids (each image under its prompt): `{split}/grid_successes.png`, `{split}/grid_failures.png`.", ""]
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text("\n".join(md))
    return report

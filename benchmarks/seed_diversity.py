"""How far 16 seeds of one prompt spread, against 16 real pictures of it, for several prompts and models.

Issue 23's diversity bar: 16 seeds of one prompt spread at least half as much as 16 real images of it. A gan run
checks this for one prompt while it trains ("a red circle", train/gan_collapse.py); a caption that leaves the
colour open ("a circle") is where a gan drops modes first, so this measures the first prompts of the chosen
categories too. Every model is measured in the features of one fixed CLIP (default: the built-in shapes model's
NegCLIP), so the ratios compare across models; the real pictures are data/specs.py's renderings of each prompt.

    python benchmarks/seed_diversity.py --models shapes runs/gan-shapes-slots-negclip
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from wordbrush.checkpoint import builtin_path
from wordbrush.clip import CLIPScorer
from wordbrush.data.specs import ObjSpec, PromptSpec, render_spec
from wordbrush.eval.prompts import make_prompts
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.train.gan_collapse import diversity_ratio
from wordbrush.utils.images import to_tensor


def prompts(categories: list[str], per_category: int, seed: int) -> list[PromptSpec]:
    """The collapse check's own prompt first, then the first distinct prompts of each category."""
    out = [PromptSpec("colors", "a red circle", (ObjSpec("circle", "red"),))]
    specs = make_prompts(20, seed=seed)
    for category in categories:
        distinct: dict[str, PromptSpec] = {}
        for s in specs:
            if s.category == category:
                distinct.setdefault(s.prompt, s)
        out += list(distinct.values())[:per_category]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="model folders or built-in names")
    ap.add_argument("--clip", default=str(builtin_path("shapes") / "clip"), help="the CLIP whose features measure")
    ap.add_argument("--categories", nargs="+", default=["single_object", "two_objects", "counting", "position"])
    ap.add_argument("--per-category", type=int, default=2, help="distinct prompts per category")
    ap.add_argument("--prompt-seed", type=int, default=3_000_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = CLIPScorer.from_pretrained(args.clip)
    specs = prompts(args.categories, args.per_category, args.prompt_seed)
    pipes = {m: TextToImagePipeline.from_pretrained(m) for m in args.models}
    print("| prompt | " + " | ".join(args.models) + " |")
    print("|---" * (1 + len(args.models)) + "|")
    worst = {m: float("inf") for m in args.models}
    for spec in specs:
        rng = np.random.default_rng(0)
        real = to_tensor(np.stack([render_spec(spec, rng) for _ in range(16)]))
        row = []
        for m, pipe in pipes.items():
            out = pipe(spec.prompt, num_images_per_prompt=16, seed=1)
            fake = to_tensor(np.stack([np.asarray(im.convert("RGB")) for im in out.images]))
            ratio = diversity_ratio(fake, real, clip)
            worst[m] = min(worst[m], ratio)
            row.append(f"{ratio:.2f}x")
        print(f"| {spec.prompt} | " + " | ".join(row) + " |")
    print("| **lowest** | " + " | ".join(f"**{worst[m]:.2f}x**" for m in args.models) + " |")


if __name__ == "__main__":
    main()

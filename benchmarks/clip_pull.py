"""Where a gan's CLIP term pulls: the CLIP's similarity of a prompt to real pictures of it and to the gan's.

The gan's alignment term (train/gan.py, clip_weight) raises the cosine of each image to its caption in the CLIP.
For a caption that leaves the colour open ("a diamond") that cosine is highest for no real picture: a blend of the
colours the caption allows sits nearer the caption's vector than any one colour does. This prints, for the first
prompts of chosen categories, the mean and best similarity of 16 real renderings (data/specs.py's render_spec) and
of 16 of the gan's images (one candidate each): where the gan's mean beats the reals' best, the term is pulling
the images off the data.

    python benchmarks/clip_pull.py --model RUNS/gan-shapes-slots --clip RUNS/clip-shapes
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from wordbrush.clip import CLIPScorer
from wordbrush.data.specs import render_spec
from wordbrush.eval.prompts import make_prompts
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.utils.images import to_tensor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a gan pipeline folder")
    ap.add_argument("--clip", required=True, help="the CLIP folder the gan was trained against")
    ap.add_argument("--categories", nargs="+", default=["single_object", "two_objects", "colors"])
    ap.add_argument("--per-category", type=int, default=4, help="distinct prompts per category")
    ap.add_argument("--prompt-seed", type=int, default=3_000_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = CLIPScorer.from_pretrained(args.clip)
    pipe = TextToImagePipeline.from_pretrained(args.model)
    print("| prompt | real: mean | real: best | gan: mean | gan: best |\n|---|---|---|---|---|")
    specs = make_prompts(20, seed=args.prompt_seed)
    for category in args.categories:
        distinct: dict = {}
        for s in specs:
            if s.category == category:
                distinct.setdefault(s.prompt, s)
        for spec in list(distinct.values())[: args.per_category]:
            rng = np.random.default_rng(0)
            real = to_tensor(np.stack([render_spec(spec, rng) for _ in range(16)]))
            out = pipe(spec.prompt, num_images_per_prompt=16, seed=1, candidates=1)
            fake = to_tensor(np.stack([np.asarray(im.convert("RGB")) for im in out.images]))
            r, f = (clip.similarity(x, [spec.prompt] * 16) for x in (real, fake))
            print(f"| {spec.prompt} | {r.mean():.3f} | {r.max():.3f} | {f.mean():.3f} | {f.max():.3f} |")


if __name__ == "__main__":
    main()

"""What `wordbrush generate PROMPT -n 4` spends drawing, under different sampling settings of one model: the
pipeline call itself (no process start or model load, which do not depend on the settings), settings interleaved
round by round, median seconds per call over several prompts.

    python benchmarks/generate_time.py --model shapes --compare rerank=likelihood rerank=clip+likelihood
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from wordbrush.pipeline import TextToImagePipeline

PROMPTS = ("a red circle and a blue square", "three green triangles", "a large yellow cross above a small white "
           "diamond", "an orange square")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes")
    ap.add_argument("--compare", nargs="+", default=["defaults"], metavar="KEY=VALUE",
                    help="settings to time: 'defaults' (the model's own) or KEY=VALUE overrides joined by commas")
    ap.add_argument("-n", type=int, default=4, help="images per prompt, as generate -n")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = TextToImagePipeline.from_pretrained(args.model)
    settings = {}
    for spec in args.compare:
        kw = {}
        if spec != "defaults":
            for item in spec.split(","):
                key, value = item.split("=", 1)
                kw[key] = json.loads(value) if value[:1].isdigit() or value[:1] in "[{" else value
        settings[spec] = kw
    times: dict[str, list[float]] = {k: [] for k in settings}
    for r in range(args.rounds + 1):  # round 0 warms up
        for name, kw in settings.items():
            t = time.perf_counter()
            for i, prompt in enumerate(PROMPTS):
                pipe(prompt, num_images_per_prompt=args.n, seed=i, **kw)
            if r:
                times[name].append((time.perf_counter() - t) / len(PROMPTS))
    print(f"{args.model}, -n {args.n}, {args.threads} threads, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}: seconds per generate call (median of {args.rounds} rounds x "
          f"{len(PROMPTS)} prompts)")
    base = None
    for name, ts in times.items():
        med = sorted(ts)[len(ts) // 2]
        base = base or med
        print(f"  {name}: {med:.3f} s ({med / base:.2f}x the first)")


if __name__ == "__main__":
    main()

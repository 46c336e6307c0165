"""Images per second of whole pipelines (any generator: dalle, maskgit, gan), side by side in one run.

    python benchmarks/sampling_speed.py --models shapes shapes-gan --batch 64 --repeats 5 [--dtype bfloat16]

Each model draws `batch` images of shapes-benchmark prompts in one pipe.draw call (1 candidate, the model's other
saved sampling defaults unless --guidance is given; --candidates 0: each model's saved candidates and reranking, so
the rate is of the images a user gets by default); the models take turns round by round and the median of the
timed rounds is reported, with the ratio of each model's rate to the first's. --dtype bfloat16 converts every
model's generator weights (pipe.to(dtype=...)), so that both sides of a ratio run at the same precision.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wordbrush.eval.prompts import make_prompts
from wordbrush.pipeline import TextToImagePipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["shapes", "shapes-gan"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--guidance", type=float, help="override every model's guidance scale (default: its own)")
    ap.add_argument("--candidates", type=int, default=1, help="candidates per image (0: each model's saved default)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="generators' weights")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipes = {m: TextToImagePipeline.from_pretrained(m).to(dtype=getattr(torch, args.dtype)) for m in args.models}
    prompts = [s.prompt for s in make_prompts(20)][: args.batch]
    prompts = (prompts * (args.batch // len(prompts) + 1))[: args.batch]
    seeds = list(range(args.batch))
    options = {m: p.sampling_options(candidates=args.candidates or None, guidance_scale=args.guidance)
               for m, p in pipes.items()}
    times: dict[str, list[float]] = {m: [] for m in pipes}
    for r in range(args.repeats + 1):  # round 0 warms up
        for m, pipe in pipes.items():
            t = time.perf_counter()
            pipe.draw(prompts, seeds, options[m], batch_size=args.batch)
            if r > 0:
                times[m].append(time.perf_counter() - t)
    first = None
    print(f"batch {args.batch}, {args.threads} threads, {args.dtype}, torch {torch.__version__}, "
          f"median of {args.repeats}")
    for m, ts in times.items():
        rate = args.batch / statistics.median(ts)
        first = first or rate
        print(f"{m:>16}: {rate:8.1f} images/s  ({rate / first:5.1f}x the first)  options {vars(options[m])}")


if __name__ == "__main__":
    main()

"""Batch-1 latency of maskgit (parallel decoding) against dalle (one token per step, KV cache), both at
reference config R1, untrained, through the public API, measured in one run with the cases interleaved.

    python benchmarks/maskgit_latency.py [--threads 2] [--repeats 20] [--steps 12] [--guidance 1,3] [--dtype bfloat16]

The figure is the median latency of pipe.draw() for one prompt (text encoding, sampling, VAE decode).
"""

import argparse
import platform
import statistics
import time

import torch

from wordbrush.generators.options import SampleOptions
from wordbrush.pipeline import TextToImagePipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--steps", type=int, default=12, help="maskgit decoding steps")
    ap.add_argument("--guidance", default="1,3", help="guidance scales, comma-separated")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="both generators' weights")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipes = {g: TextToImagePipeline.from_config("r1", generator=g).to(dtype=getattr(torch, args.dtype))
             for g in ("dalle", "maskgit")}
    prompt = ["a red circle to the left of a blue square"]
    print(f"R1, batch 1, {args.threads} threads, {args.dtype}, median of {args.repeats} interleaved runs; "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    for guidance in (float(x) for x in args.guidance.split(",")):
        opts = SampleOptions(guidance_scale=guidance, steps=args.steps)
        times: dict[str, list[float]] = {g: [] for g in pipes}
        for r in range(args.repeats + 2):  # the first two rounds warm up
            for g, pipe in pipes.items():
                t = time.perf_counter()
                pipe.draw(prompt, [r], opts)
                if r >= 2:
                    times[g].append(time.perf_counter() - t)
        med = {g: statistics.median(v) for g, v in times.items()}
        print(f"  guidance {guidance:g}: dalle (KV cache) {med['dalle'] * 1e3:.1f} ms, maskgit ({args.steps} steps) "
              f"{med['maskgit'] * 1e3:.1f} ms -> maskgit takes {med['maskgit'] / med['dalle']:.2f}x dalle's time")


if __name__ == "__main__":
    main()

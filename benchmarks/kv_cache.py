"""Sampling speed with and without the KV cache, through the public API, at reference config R1.

    python benchmarks/kv_cache.py [--threads 2] [--batch 16] [--repeats 3]

Both paths draw the same tokens for the same seeds (tests/test_dalle.py checks it); this measures the time.
"""

import argparse
import platform
import time

import torch

from wordbrush.generators.options import SampleOptions
from wordbrush.pipeline import TextToImagePipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = TextToImagePipeline.from_config("r1")
    g = pipe.generator
    text = pipe.tokenizer.encode(["a red circle to the left of a blue square"] * args.batch, g.cfg.text_len).ids
    opts = SampleOptions(guidance_scale=1.0)
    print(f"R1, batch {args.batch}, {args.threads} threads, guidance off, float32; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    rates = {}
    for use_cache in (True, False):
        g.sample(text[:2], [torch.Generator().manual_seed(i) for i in range(2)], opts, use_cache=use_cache)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            gens = [torch.Generator().manual_seed(i) for i in range(args.batch)]
            t = time.perf_counter()
            g.sample(text, gens, opts, use_cache=use_cache)
            best = min(best, time.perf_counter() - t)
        rates[use_cache] = args.batch / best
        print(f"  {'KV cache' if use_cache else 'no cache'}: {rates[use_cache]:.1f} images/s (best of {args.repeats})")
    print(f"  speed-up from the cache: {rates[True] / rates[False]:.1f}x")


if __name__ == "__main__":
    main()

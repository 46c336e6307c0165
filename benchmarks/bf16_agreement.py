"""How often bf16 sampling draws the float32 tokens: R1 (untrained, reference config) or a saved model, both
pipelines compiled as `wordbrush bench --bf16 --compile` runs them, the same prompts and seeds.

    python benchmarks/bf16_agreement.py                 # R1, 16 prompts x 64 tokens, guidance off
    python benchmarks/bf16_agreement.py --model shapes --guidance 3
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch

from wordbrush import TextToImagePipeline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="r1", help="r1 (the reference config) or a model name / folder")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--guidance", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    pipe = (TextToImagePipeline.from_config("r1") if args.model == "r1"
            else TextToImagePipeline.from_pretrained(args.model))
    low = copy.deepcopy(pipe).to(dtype=torch.bfloat16, decoder_dtype=torch.bfloat16).compile()
    pipe.compile()
    prompts = ["a red circle to the left of a blue square", "two green triangles", "a yellow cross",
               "three purple diamonds"] * (args.images // 4 + 1)
    prompts, seeds = prompts[:args.images], list(range(args.images))
    opts = pipe.sampling_options(guidance_scale=args.guidance, candidates=1)
    with torch.no_grad():
        a = pipe.draw(prompts, seeds, opts, batch_size=args.images)[1]
        b = low.draw(prompts, seeds, opts, batch_size=args.images)[1]
    same = (a == b).float().mean().item()
    print(f"{args.model}: bf16 draws the float32 token at {100 * same:.1f}% of {a.numel()} positions "
          f"({args.images} images, guidance {args.guidance:g}); first token of each image equal: "
          f"{100 * (a[:, 0] == b[:, 0]).float().mean().item():.0f}%")


if __name__ == "__main__":
    main()

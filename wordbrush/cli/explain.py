"""`wordbrush explain PROMPT`: an image and a panel of where the generator attended to each word of the prompt."""

from __future__ import annotations

import argparse
import sys
import warnings

from .common import add_sampling_args, list_of, nonneg_int, sampling_overrides
from .generate import output_folder


def add_parser(sub) -> None:
    ex = sub.add_parser("explain", help="draw an image and a panel of where it attends to each word of the prompt")
    ex.add_argument("prompt", metavar="PROMPT", help="what to draw (one prompt, quoted)")
    ex.add_argument("--model", default="shapes", help="built-in model name or saved folder (default: shapes)")
    ex.add_argument("--seed", type=nonneg_int, default=0, help="seed of the image (default 0)")
    ex.add_argument("--layers", type=list_of(nonneg_int), metavar="I,I,...",
                    help="generator layers to average (default: all), e.g. 4,5")
    ex.add_argument("--out", default="wordbrush-explain", help="output folder: image.png and explain.png")
    add_sampling_args(ex)
    ex.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import torch

    from ..explain import explain, save_panel
    from ..pipeline import TextToImagePipeline
    from ..utils.images import save_png

    pipe = TextToImagePipeline.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).compile(args.compile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expl = explain(pipe, args.prompt, seed=args.seed, layers=list(args.layers) if args.layers else None,
                       **sampling_overrides(args))
    for w in caught:
        print(f"wordbrush: warning: {w.message}", file=sys.stderr)
    folder = output_folder(args.out)
    print(save_png(expl.image, folder / "image.png"))
    print(save_panel(expl, folder / "explain.png"))

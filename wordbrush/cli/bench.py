"""`wordbrush bench`: sampling and training speed as a table, optionally against the reference dalle-pytorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..generators import registry
from .common import finite_float, list_of, positive_int


def add_parser(sub) -> None:
    bn = sub.add_parser("bench", help="sampling and training speed (optionally against dalle-pytorch), as a table")
    bn.add_argument("--model", default="r1", help="reference config (r1: untrained), built-in name or saved folder")
    bn.add_argument("--generator", choices=tuple(registry.FAMILIES), default="dalle",
                    help="generator family to build for a reference config (one that writes VAE codes; default dalle)")
    bn.add_argument("--threads", type=positive_int, default=2, help="torch threads, ours and the reference's")
    bn.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="where to run (default: cuda if present)")
    bn.add_argument("--batch-sizes", type=list_of(positive_int), metavar="B,B,...",
                    help="sampling batches (default 1,16,64)")
    bn.add_argument("--guidance", type=list_of(finite_float), metavar="G,G,...", help="guidance scales (default 1,3)")
    bn.add_argument("--repeats", type=positive_int, help="timed runs per case; the median is reported (default 5)")
    bn.add_argument("--train-batch", type=positive_int, default=32, help="training batch (default 32)")
    bn.add_argument("--train-steps", type=positive_int, help="AdamW steps per timed training run (default 3)")
    bn.add_argument("--bf16", action="store_true",
                    help="also measure bfloat16: sampling with bf16 weights, training under bf16 autocast")
    bn.add_argument("--compile", action="store_true",
                    help="sample and train through torch.compile (the warm-up run of each case pays the compile)")
    bn.add_argument("--train", action=argparse.BooleanOptionalAction, default=True, help="measure training")
    bn.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True, help="measure sampling")
    bn.add_argument("--against", choices=("dalle-pytorch",), help="also run this reference implementation")
    bn.add_argument("--reference-venv", metavar="VENV",
                    help="its venv (bash ../shared/anchors/install-dalle-pytorch.sh VENV)")
    bn.add_argument("--out", metavar="FILE.md", help="append a dated section to this Markdown file")
    bn.add_argument("--json", metavar="FILE", help="write the full results as JSON")
    bn.add_argument("--quick", action="store_true", help="1 timed run, 1 step per training run: a smoke test")
    bn.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    bn.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..bench import BenchConfig, append_markdown, format_markdown, run_bench

    cfg = BenchConfig(model=args.model, generator=args.generator, threads=args.threads, device=args.device,
                      batch_sizes=args.batch_sizes or BenchConfig.batch_sizes,
                      guidance_scales=args.guidance or BenchConfig.guidance_scales,
                      dtypes=("float32", "bfloat16") if args.bf16 else ("float32",),
                      sample=args.sample, compile=args.compile, train=args.train, train_batch=args.train_batch,
                      train_steps=args.train_steps or (1 if args.quick else BenchConfig.train_steps),
                      repeats=args.repeats or (1 if args.quick else BenchConfig.repeats),
                      against=args.against, reference_venv=args.reference_venv)
    results = run_bench(cfg, progress=not args.quiet)
    print(format_markdown(results), end="")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.out:
        print(f"appended to {append_markdown(args.out, results)}")

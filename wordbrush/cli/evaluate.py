"""`wordbrush eval --model M`: the shapes benchmark, realism and alignment on a dataset (--data), the emoji
natural-prompt benchmark (--data MANIFEST --everyday), or a VAE's figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import WordbrushError
from .common import (
    add_sampling_args,
    nonneg_int,
    positive_int,
    sampling_options,
)


def add_parser(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a saved model: the shapes benchmark or, with --data, realism and "
                        "alignment on a dataset (pipelines); PSNR/usage (VAEs)")
    ev.add_argument("--model", required=True, help="built-in name or saved model folder")
    ev.add_argument("--data", metavar="PATH", help="pipelines: measure FD/KID/FJD, CLIP score and R-precision on "
                    "this dataset (a folder of images + .txt, or a .jsonl/.csv manifest) instead of the shapes "
                    "benchmark")
    ev.add_argument("--everyday", action="store_true",
                    help="with --data (an emoji manifest): the natural-prompt benchmark: everyday prompts for "
                    "training concepts beside the dataset's captions and shuffled prompts, judged by pixel "
                    "nearest-neighbour retrieval (no CLIP)")
    ev.add_argument("--split", default="heldout", help="with --data: the manifest split to use ('all': every row)")
    ev.add_argument("--max-items", type=nonneg_int, default=0, help="with --data: at most this many items (0: all); "
                    "with --everyday: this many prompts, spread over the list")
    ev.add_argument("--clip", metavar="DIR", help="with --data: the CLIP to measure with (default: the model's own; "
                    "an independently trained one keeps --rerank clip from flattering the model)")
    ev.add_argument("--out", help="report folder (default: eval-<model>)")
    ev.add_argument("--prompts-per-category", type=positive_int, default=20, help="pipelines: prompts per category")
    ev.add_argument("--images", type=positive_int, default=4, help="pipelines: images per prompt")
    add_sampling_args(ev)
    ev.add_argument("-n", type=positive_int, default=1024, help="VAEs: held-out scenes")
    ev.add_argument("--seed", type=nonneg_int, default=0,
                    help="VAEs: offset of the held-out seed; --data: seed of the split and the sampling")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..checkpoint import model_folder, read_header

    folder = model_folder(args.model)
    kind, _ = read_header(folder, "model")  # checked as every model folder is (checkpoint.py)
    if args.everyday:
        _everyday(args, folder, kind)
        return
    if kind == "vae":
        from ..image.vae import load_vae
        from ..train.vae import EVAL_SEED_OFFSET, evaluate_vae

        vae = load_vae(folder)
        figures = evaluate_vae(vae, n=args.n, seed=EVAL_SEED_OFFSET + args.seed, size=vae.cfg.image_size,
                               progress_bar=not args.quiet)
        print(json.dumps(figures, indent=2))
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "vae_eval.json").write_text(json.dumps(figures, indent=2) + "\n")
        return
    if kind != "pipeline":
        raise WordbrushError(f"{folder}: cannot evaluate a model of kind {kind!r}")
    import torch

    from ..eval.report import evaluate_pipeline
    from ..pipeline import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(folder, dtype=getattr(torch, args.dtype)).compile(args.compile)
    options = sampling_options(pipe, args)
    out = Path(args.out or f"eval-{folder.name}")
    if args.data:
        from ..clip import CLIPScorer
        from ..eval.realism import evaluate_on_dataset, load_eval_set

        clip = CLIPScorer.from_pretrained(args.clip) if args.clip else pipe.clip  # pipe.clip still reranks
        if clip is None:
            raise WordbrushError(f"{folder} has no CLIP to measure with; pass --clip DIR (wordbrush train clip)")
        data = load_eval_set(args.data, args.split, pipe.image_size, args.max_items)
        evaluate_on_dataset(pipe, clip, data, out, options, seed=args.seed, progress=not args.quiet)
        print((out / "report.md").read_text())
        print(f"wrote {out / 'report.md'}, {out / 'report.json'}, {out / 'grid.png'} and {out / 'figures.png'}")
        return
    evaluate_pipeline(pipe, out, n_per_category=args.prompts_per_category, images_per_prompt=args.images,
                      options=options, progress=not args.quiet)
    print((out / "report.md").read_text())
    print(f"wrote {out / 'report.md'}, {out / 'report.json'} and image grids under {out}")


def _everyday(args: argparse.Namespace, folder: Path, kind: str) -> None:
    """The emoji natural-prompt benchmark; the manifest is read (and refused in one line) before the model loads."""
    if kind != "pipeline":
        raise WordbrushError(f"{folder}: --everyday evaluates a text-to-image pipeline, not a model of kind {kind!r}")
    if not args.data:
        raise WordbrushError("--everyday needs --data PATH: the emoji manifest (metadata.jsonl of "
                             "`wordbrush data emoji --out DIR`)")
    import torch

    from ..eval.everyday import EVERYDAY_PROMPTS, spread
    from ..eval.everyday_report import check_prompts, evaluate_everyday
    from ..eval.pixel_judge import load_references
    from ..pipeline import TextToImagePipeline

    refs = load_references(args.data)
    prompts = spread(EVERYDAY_PROMPTS, args.max_items)
    check_prompts(refs, prompts)
    pipe = TextToImagePipeline.from_pretrained(folder, dtype=getattr(torch, args.dtype))
    options = sampling_options(pipe, args)
    out = Path(args.out or f"eval-{folder.name}-everyday")
    report = evaluate_everyday(pipe, refs, out, prompts, images_per_prompt=args.images, options=options,
                               seed=args.seed, progress=not args.quiet)
    rate = report["hit_rate"]
    print(f"everyday {100 * rate['everyday']:.1f}%  structured {100 * rate['structured']:.1f}%  "
          f"shuffled {100 * rate['shuffled']:.1f}%  (hit: the intended emoji among the {report['k']} nearest)")
    print(f"everyday/structured {report['ratio_everyday_to_structured']}  "
          f"everyday/shuffled {report['ratio_everyday_to_shuffled']}")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}, {out / 'grid.png'} and {out / 'grid_all.png'}")

"""The `wordbrush` command. Every user error is one line on stderr and a non-zero exit, never a traceback
(set WORDBRUSH_DEBUG=1 to see one anyway)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from . import __version__
from .errors import WordbrushError
from .generators.common import RERANKERS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


# ------------------------------------------------------------------------------------------------ commands


def cmd_data_shapes(args: argparse.Namespace) -> None:
    from .data.shapes import ShapesDataset, write_dataset
    from .utils.images import save_grid

    out = write_dataset(args.out, args.n, size=args.size, seed=args.seed, split=args.split,
                        progress=not args.quiet)
    ds = ShapesDataset(args.n, size=args.size, seed=args.seed, split=args.split)
    k = min(args.n, 64)
    grid = save_grid([ds[i][0] for i in range(k)], out / "grid.png", cols=8, scale=2)
    print(f"wrote {args.n} images with captions and scenes.jsonl to {out}")
    print(f"grid of the first {k}: {grid}")
    for i in range(min(k, 4)):
        print(f"  {i}: {ds[i][1]}")


def _color(text: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a colour name, #rrggbb or rgb(r,g,b), got {text!r}") from None


def cmd_data_emoji(args: argparse.Namespace) -> None:
    from PIL import Image

    from .data.emoji import write_emoji_dataset
    from .utils.images import save_grid

    res = write_emoji_dataset(args.out, style=args.style, size=args.size, cache=args.cache,
                              background=args.background, progress=not args.quiet)
    out, records = res["out"], res["records"]
    total = sum(sum(v.values()) for v in res["images"].values())
    print(f"wrote {total} images with captions, metadata.jsonl and LICENSES.md to {out}")
    for style, splits in res["images"].items():
        print(f"  {style}: " + ", ".join(f"{n} {split}" for split, n in splits.items()))
    print("  concepts: " + ", ".join(f"{n} {split}" for split, n in res["concepts"].items()))
    if res["skipped"]:
        print("  skipped: " + ", ".join(f"{n} {k}" for k, n in sorted(res["skipped"].items())))
    if records:
        k, n_styles = min(64, len(records)), len(res["images"])
        # spread over the dataset; with both styles, odd cells show the twitter image of the next emoji
        picks = [records[min(i * len(records) // k // n_styles * n_styles + i % n_styles, len(records) - 1)]
                 for i in range(k)]
        grid = save_grid([Image.open(out / r["file"]).convert("RGB") for r in picks], out / "grid.png", cols=8,
                         scale=max(1, 128 // args.size))
        print(f"grid of {len(picks)} spread over the dataset: {grid}")
        for r in picks[:4]:
            print(f"  {r['file']}: {r['caption']}")


def cmd_data_inspect(args: argparse.Namespace) -> None:
    from .data.folder import open_dataset
    from .utils.images import save_grid

    ds = open_dataset(args.path, size=args.size, seed=args.seed)
    first, n = [], 0
    for img, caption in ds:  # one full pass: counts every usable item (tar shards are streamed)
        if len(first) < 64:
            first.append((img, caption))
        n += 1
    print(f"{n} usable items in {args.path} ({ds.kind})")
    skipped = sum(ds.skipped.values())
    print(f"skipped {skipped}" + (": " + ", ".join(f"{v} {k}" for k, v in sorted(ds.skipped.items()))
                                  if skipped else ""))
    if first:
        grid = save_grid([im for im, _ in first], args.grid, cols=8, scale=max(1, 128 // args.size))
        print(f"grid of the first {len(first)}: {grid}")
        for i, (_, caption) in enumerate(first[:4]):
            print(f"  {i}: {caption}")


def _train_config(cls, args: argparse.Namespace):
    """The config file (or the defaults), with the command line's overrides (--out, --vae, --max-...)."""
    from .config import load_config

    cfg = load_config(cls, args.config) if args.config else cls()
    for name in ("out", "vae", "clip", "max_steps", "max_minutes"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    if getattr(args, "data", None) is not None:
        cfg.data = replace(cfg.data, path=args.data)  # replace() runs the checks again
    return cfg


# `wordbrush train PART`: PART -> (its config class in config.py, what it trains)
TRAIN_PARTS = {
    "vae": ("VAETrainConfig", "the discrete VAE image tokenizer"),
    "dalle": ("DalleTrainConfig", "the autoregressive transformer (DALL·E) on a trained VAE's tokens"),
    "maskgit": ("MaskGITTrainConfig", "the parallel-decoding transformer (MaskGIT) on a trained VAE's tokens"),
    "clip": ("CLIPTrainConfig", "the contrastive text-image model (reranking and the metrics' feature space)"),
    "gan": ("GANTrainConfig", "the one-pass GAN generator against its discriminator, reading text through a CLIP"),
}


def cmd_train(args: argparse.Namespace) -> None:
    from . import config

    if args.part == "vae":
        from .train.vae import train_vae as train
    elif args.part == "clip":
        from .train.clip import train_clip as train
    elif args.part == "gan":
        from .train.gan import train_gan as train
    else:
        from .train.generator import train_generator as train
    cfg = _train_config(getattr(config, TRAIN_PARTS[args.part][0]), args)
    result = train(cfg, resume=args.resume, progress_bar=not args.quiet)
    print(json.dumps(result, indent=2))
    print(f"saved to {cfg.out}")


def cmd_generate(args: argparse.Namespace) -> None:
    import re

    import torch

    from .pipeline import TextToImagePipeline
    from .utils.images import save_grid

    pipe = TextToImagePipeline.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are printed below, once, as one line each
        out = pipe(args.prompts, num_images_per_prompt=args.n, seed=args.seed, guidance_scale=args.guidance,
                   temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, num_inference_steps=args.steps,
                   candidates=args.candidates, rerank=args.rerank)
    for note in out.warnings:
        print(f"wordbrush: warning: {note}", file=sys.stderr)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    for k, (img, prompt, seed) in enumerate(zip(out.images, out.prompts, out.seeds)):
        slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "prompt"
        path = folder / f"{k:03d}-{slug}-seed{seed}.png"
        img.save(path)
        print(path)
    grid = save_grid(out.images, folder / "grid.png", cols=args.n, scale=4)
    print(grid)


def cmd_explain(args: argparse.Namespace) -> None:
    import torch

    from .explain import explain, save_panel
    from .pipeline import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expl = explain(pipe, args.prompt, seed=args.seed, layers=list(args.layers) if args.layers else None,
                       guidance_scale=args.guidance, temperature=args.temperature, top_k=args.top_k,
                       top_p=args.top_p, num_inference_steps=args.steps, candidates=args.candidates,
                       rerank=args.rerank)
    for w in caught:
        print(f"wordbrush: warning: {w.message}", file=sys.stderr)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    expl.image.save(folder / "image.png")
    print(folder / "image.png")
    print(save_panel(expl, folder / "explain.png"))


def cmd_eval(args: argparse.Namespace) -> None:
    from .checkpoint import read_json
    from .pipeline import model_folder

    folder = model_folder(args.model)
    kind = read_json(folder / "config.json", "model").get("kind")
    if kind == "vae":
        from .image.vae import load_vae
        from .train.vae import EVAL_SEED_OFFSET, evaluate_vae

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

    from .eval.report import evaluate_pipeline
    from .pipeline import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(folder, dtype=getattr(torch, args.dtype))
    options = pipe.sampling_options(guidance_scale=args.guidance, temperature=args.temperature, top_k=args.top_k,
                                    top_p=args.top_p, steps=args.steps, candidates=args.candidates,
                                    rerank=args.rerank)
    out = Path(args.out or f"eval-{folder.name}")
    if args.data:
        from .eval.realism import evaluate_on_dataset, load_eval_set

        from .clip import CLIPScorer

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


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    """The sampling flags of `generate` and `eval`; each left out takes the model's saved default."""
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (1 = off; default: the model's)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=_positive_int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--steps", type=_positive_int, help="maskgit models: parallel decoding steps")
    p.add_argument("--candidates", type=_positive_int,
                   help="draw this many per image and keep the best for the prompt (see --rerank)")
    p.add_argument("--rerank", choices=RERANKERS,
                   help="how candidates are ranked: the model's likelihood or the model's CLIP (default: the model's)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="the generator's weights; bfloat16 samples faster where the CPU/GPU supports it")


def _list_of(kind):
    def parse(text: str):
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None

    return parse


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import BenchConfig, append_markdown, format_markdown, run_bench

    cfg = BenchConfig(model=args.model, generator=args.generator, threads=args.threads, device=args.device,
                      batch_sizes=args.batch_sizes or BenchConfig.batch_sizes,
                      guidance_scales=args.guidance or BenchConfig.guidance_scales,
                      dtypes=("float32", "bfloat16") if args.bf16 else ("float32",),
                      sample=args.sample, train=args.train, train_batch=args.train_batch,
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="wordbrush", description="Text-to-image models of the DALL·E family in plain PyTorch.")
    p.add_argument("--version", action="version", version=f"wordbrush {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="build datasets")
    data_sub = data.add_subparsers(dest="dataset", required=True, parser_class=_Parser)
    sh = data_sub.add_parser("shapes", help="render the procedural shapes dataset: PNG + .txt captions + scenes.jsonl")
    sh.add_argument("--size", type=_positive_int, default=64, help="canvas side in pixels (>= 16)")
    sh.add_argument("-n", type=_positive_int, default=1000, help="number of images")
    sh.add_argument("--seed", type=_nonneg_int, default=0)
    sh.add_argument("--split", choices=("train", "holdout", "all"), default="train",
                    help="train leaves the held-out colour-shape pairs out; holdout uses only them")
    sh.add_argument("--out", required=True, help="output folder")
    sh.add_argument("-q", "--quiet", action="store_true")
    sh.set_defaults(func=cmd_data_shapes)
    em = data_sub.add_parser("emoji", help="build the emoji dataset from npm packages: PNG + .txt + metadata.jsonl")
    em.add_argument("--out", required=True, help="output folder")
    em.add_argument("--style", choices=("google", "twitter", "both"), default="both",
                    help="Noto Emoji (Apache-2.0), Twemoji (CC-BY 4.0) or both")
    em.add_argument("--size", type=_positive_int, default=64, help="image side in pixels (sources are 64)")
    em.add_argument("--cache", help="folder for the npm packages (default: ~/.cache/wordbrush/npm)")
    em.add_argument("--background", type=_color, default=(255, 255, 255),
                    help="colour behind transparent pixels (default: white)")
    em.add_argument("-q", "--quiet", action="store_true")
    em.set_defaults(func=cmd_data_emoji)
    ins = data_sub.add_parser("inspect", help="count the usable and skipped items of a dataset and write a grid")
    ins.add_argument("path", help="folder of images + .txt, .jsonl/.csv manifest, .tar shard or folder of shards")
    ins.add_argument("--size", type=_positive_int, default=64, help="image side in pixels")
    ins.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the caption choice")
    ins.add_argument("--grid", default="inspect-grid.png", help="grid PNG of the first 64 items")
    ins.set_defaults(func=cmd_data_inspect)

    train = sub.add_parser("train", help="train a part")
    train_sub = train.add_subparsers(dest="part", required=True, parser_class=_Parser)
    for part, (cfg_name, what) in TRAIN_PARTS.items():
        tp = train_sub.add_parser(part, help=f"train {what}")
        tp.add_argument("--config", help=f"JSON or TOML file of {cfg_name} (defaults otherwise)")
        if part == "gan":
            tp.add_argument("--clip", help="trained CLIP folder that reads the captions (overrides the config's clip)")
            tp.add_argument("--vae", help="latent mode: a VAE folder, or a pipeline (a built-in name such as shapes) "
                            "holding one, whose frozen decoder draws the pixels (overrides the config's vae)")
        if part in ("dalle", "maskgit"):
            tp.add_argument("--clip", help="trained CLIP folder to save with the model, to rerank candidates with")
        if part in ("dalle", "maskgit"):
            tp.add_argument("--vae", help="trained VAE folder (overrides the config's vae)")
        tp.add_argument("--out", help="output folder (overrides the config's out)")
        tp.add_argument("--data", metavar="PATH", help="training data (overrides the config's data.path): a folder "
                        "of images + .txt captions, a .jsonl/.csv manifest, a .tar shard or a folder of shards")
        tp.add_argument("--resume", action="store_true", help="continue the run saved in the output folder")
        tp.add_argument("--max-steps", type=_positive_int)
        tp.add_argument("--max-minutes", type=float)
        tp.add_argument("-q", "--quiet", action="store_true")
        tp.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help="draw images from prompts: one PNG per image plus a grid")
    gen.add_argument("prompts", nargs="+", metavar="PROMPT")
    gen.add_argument("--model", default="shapes", help="built-in model name or saved folder (default: shapes)")
    gen.add_argument("-n", type=_positive_int, default=4, help="images per prompt")
    gen.add_argument("--seed", type=_nonneg_int, default=0, help="image k uses seed + k")
    gen.add_argument("--out", default="wordbrush-out", help="output folder")
    _add_sampling_args(gen)
    gen.set_defaults(func=cmd_generate)

    ex = sub.add_parser("explain", help="draw an image and a panel of where it attends to each word of the prompt")
    ex.add_argument("prompt", metavar="PROMPT")
    ex.add_argument("--model", default="shapes", help="built-in model name or saved folder (default: shapes)")
    ex.add_argument("--seed", type=_nonneg_int, default=0)
    ex.add_argument("--layers", type=_list_of(int), metavar="I,I,...",
                    help="generator layers to average (default: all), e.g. 4,5")
    ex.add_argument("--out", default="wordbrush-explain", help="output folder: image.png and explain.png")
    _add_sampling_args(ex)
    ex.set_defaults(func=cmd_explain)

    ev = sub.add_parser("eval", help="evaluate a saved model: the shapes benchmark or, with --data, realism and "
                        "alignment on a dataset (pipelines); PSNR/usage (VAEs)")
    ev.add_argument("--model", required=True, help="built-in name or saved model folder")
    ev.add_argument("--data", metavar="PATH", help="pipelines: measure FD/KID/FJD, CLIP score and R-precision on "
                    "this dataset (a folder of images + .txt, or a .jsonl/.csv manifest) instead of the shapes benchmark")
    ev.add_argument("--split", default="heldout", help="with --data: the manifest split to use ('all': every row)")
    ev.add_argument("--max-items", type=_nonneg_int, default=0, help="with --data: at most this many items (0: all)")
    ev.add_argument("--clip", metavar="DIR", help="with --data: the CLIP to measure with (default: the model's own; "
                    "an independently trained one keeps --rerank clip from flattering the model)")
    ev.add_argument("--out", help="report folder (default: eval-<model>)")
    ev.add_argument("--prompts-per-category", type=_positive_int, default=20, help="pipelines: prompts per category")
    ev.add_argument("--images", type=_positive_int, default=4, help="pipelines: images per prompt")
    _add_sampling_args(ev)
    ev.add_argument("-n", type=_positive_int, default=1024, help="VAEs: held-out scenes")
    ev.add_argument("--seed", type=_nonneg_int, default=0,
                    help="VAEs: offset of the held-out seed; --data: seed of the split and the sampling")
    ev.add_argument("-q", "--quiet", action="store_true")
    ev.set_defaults(func=cmd_eval)

    bn = sub.add_parser("bench", help="sampling and training speed (optionally against dalle-pytorch), as a table")
    bn.add_argument("--model", default="r1", help="reference config (r1: untrained), built-in name or saved folder")
    bn.add_argument("--generator", choices=("dalle", "maskgit"), default="dalle",
                    help="generator to build for a reference config (default dalle)")
    bn.add_argument("--threads", type=_positive_int, default=2, help="torch threads, ours and the reference's")
    bn.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    bn.add_argument("--batch-sizes", type=_list_of(int), metavar="B,B,...", help="sampling batches (default 1,16,64)")
    bn.add_argument("--guidance", type=_list_of(float), metavar="G,G,...", help="guidance scales (default 1,3)")
    bn.add_argument("--repeats", type=_positive_int, help="timed runs per case; the median is reported (default 5)")
    bn.add_argument("--train-batch", type=_positive_int, default=32)
    bn.add_argument("--train-steps", type=_positive_int, help="AdamW steps per timed training run (default 3)")
    bn.add_argument("--bf16", action="store_true",
                    help="also measure bfloat16: sampling with bf16 weights, training under bf16 autocast")
    bn.add_argument("--train", action=argparse.BooleanOptionalAction, default=True, help="measure training")
    bn.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True, help="measure sampling")
    bn.add_argument("--against", choices=("dalle-pytorch",), help="also run this reference implementation")
    bn.add_argument("--reference-venv", metavar="VENV",
                    help="its venv (bash ../shared/anchors/install-dalle-pytorch.sh VENV)")
    bn.add_argument("--out", metavar="FILE.md", help="append a dated section to this Markdown file")
    bn.add_argument("--json", metavar="FILE", help="write the full results as JSON")
    bn.add_argument("--quick", action="store_true", help="1 timed run, 1 step per training run: a smoke test")
    bn.add_argument("-q", "--quiet", action="store_true")
    bn.set_defaults(func=cmd_bench)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"wordbrush: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores the default display on the way out (main() runs in tests)
            warnings.showwarning = _one_line_warning
            args.func(args)
    except KeyboardInterrupt:
        print("wordbrush: interrupted", file=sys.stderr)
        return 130
    except (WordbrushError, ValueError, OSError) as e:
        if os.environ.get("WORDBRUSH_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wordbrush: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

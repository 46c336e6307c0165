"""The `wordbrush` command. Every user error is one line on stderr and a non-zero exit, never a traceback
(set WORDBRUSH_DEBUG=1 to see one anyway)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import WordbrushError


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


def _train_config(cls, args: argparse.Namespace):
    """The config file (or the defaults), with the command line's overrides (--out, --vae, --max-...)."""
    from .config import load_config

    cfg = load_config(cls, args.config) if args.config else cls()
    for name in ("out", "vae", "max_steps", "max_minutes"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    return cfg


def cmd_train(args: argparse.Namespace) -> None:
    from .config import DalleTrainConfig, VAETrainConfig

    if args.part == "vae":
        from .train.vae import train_vae as train

        cfg = _train_config(VAETrainConfig, args)
    else:
        from .train.dalle import train_dalle as train

        cfg = _train_config(DalleTrainConfig, args)
    result = train(cfg, resume=args.resume, progress_bar=not args.quiet)
    print(json.dumps(result, indent=2))
    print(f"saved to {cfg.out}")


def cmd_generate(args: argparse.Namespace) -> None:
    import re
    import warnings

    from .pipeline import TextToImagePipeline
    from .utils.images import save_grid

    pipe = TextToImagePipeline.from_pretrained(args.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are printed below, once, as one line each
        out = pipe(args.prompts, num_images_per_prompt=args.n, seed=args.seed, guidance_scale=args.guidance,
                   temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
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


def cmd_eval(args: argparse.Namespace) -> None:
    from .checkpoint import read_json
    from .pipeline import BUILTIN, builtin_path

    folder = Path(args.model)
    if not folder.is_dir() and args.model in BUILTIN:
        folder = builtin_path(args.model)
    if not folder.is_dir():
        raise WordbrushError(f"model folder not found: {folder}")
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
    from .eval.report import evaluate_pipeline
    from .generators.dalle import SampleOptions
    from .pipeline import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(folder)
    d = pipe.sampling
    options = SampleOptions(guidance_scale=d.guidance_scale if args.guidance is None else args.guidance,
                            temperature=d.temperature if args.temperature is None else args.temperature,
                            top_k=d.top_k if args.top_k is None else args.top_k,
                            top_p=d.top_p if args.top_p is None else args.top_p)
    options.validate(pipe.generator.cfg.image_vocab)
    out = Path(args.out or f"eval-{folder.name}")
    report = evaluate_pipeline(pipe, out, n_per_category=args.prompts_per_category, images_per_prompt=args.images,
                               options=options, progress=not args.quiet)
    print((out / "report.md").read_text())
    print(f"wrote {out / 'report.md'}, {out / 'report.json'} and image grids under {out}")
    _ = report


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

    train = sub.add_parser("train", help="train a part")
    train_sub = train.add_subparsers(dest="part", required=True, parser_class=_Parser)
    tv = train_sub.add_parser("vae", help="train the discrete VAE image tokenizer")
    tv.add_argument("--config", help="JSON or TOML file of VAETrainConfig (defaults otherwise)")
    tv.add_argument("--out", help="output folder (overrides the config's out)")
    tv.add_argument("--resume", action="store_true", help="continue the run saved in the output folder")
    tv.add_argument("--max-steps", type=_positive_int)
    tv.add_argument("--max-minutes", type=float)
    tv.add_argument("-q", "--quiet", action="store_true")
    tv.set_defaults(func=cmd_train)

    td = train_sub.add_parser("dalle", help="train the text-to-image transformer on a trained VAE's tokens")
    td.add_argument("--config", help="JSON or TOML file of DalleTrainConfig (defaults otherwise)")
    td.add_argument("--vae", help="trained VAE folder (overrides the config's vae)")
    td.add_argument("--out", help="output folder (overrides the config's out)")
    td.add_argument("--resume", action="store_true", help="continue the run saved in the output folder")
    td.add_argument("--max-steps", type=_positive_int)
    td.add_argument("--max-minutes", type=float)
    td.add_argument("-q", "--quiet", action="store_true")
    td.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help="draw images from prompts: one PNG per image plus a grid")
    gen.add_argument("prompts", nargs="+", metavar="PROMPT")
    gen.add_argument("--model", default="shapes", help="built-in model name or saved folder (default: shapes)")
    gen.add_argument("-n", type=_positive_int, default=4, help="images per prompt")
    gen.add_argument("--seed", type=_nonneg_int, default=0, help="image k uses seed + k")
    gen.add_argument("--out", default="wordbrush-out", help="output folder")
    gen.add_argument("--guidance", type=float, help="classifier-free guidance scale (1 = off; default: the model's)")
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--top-k", type=_positive_int)
    gen.add_argument("--top-p", type=float)
    gen.set_defaults(func=cmd_generate)

    ev = sub.add_parser("eval", help="evaluate a saved model: the shapes benchmark (pipelines) or PSNR/usage (VAEs)")
    ev.add_argument("--model", required=True, help="built-in name or saved model folder")
    ev.add_argument("--out", help="report folder (default: eval-<model>)")
    ev.add_argument("--prompts-per-category", type=_positive_int, default=20, help="pipelines: prompts per category")
    ev.add_argument("--images", type=_positive_int, default=4, help="pipelines: images per prompt")
    ev.add_argument("--guidance", type=float, help="default: the model's saved sampling options")
    ev.add_argument("--temperature", type=float)
    ev.add_argument("--top-k", type=_positive_int)
    ev.add_argument("--top-p", type=float)
    ev.add_argument("-n", type=_positive_int, default=1024, help="VAEs: held-out scenes")
    ev.add_argument("--seed", type=_nonneg_int, default=0, help="VAEs: offset of the held-out seed")
    ev.add_argument("-q", "--quiet", action="store_true")
    ev.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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

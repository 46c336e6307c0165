"""`wordbrush data shapes|emoji|distill|inspect`: build the built-in datasets, a dalle's distillation set for a
one-step GAN, or check a dataset on disk."""

from __future__ import annotations

import argparse

from .common import Parser, nonneg_int, positive_int


def _color(text: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a colour name, #rrggbb or rgb(r,g,b), got {text!r}") from None


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="build datasets")
    data_sub = data.add_subparsers(dest="dataset", required=True, parser_class=Parser)
    sh = data_sub.add_parser("shapes", help="render the procedural shapes dataset: PNG + .txt captions + scenes.jsonl")
    sh.add_argument("--size", type=positive_int, default=64, help="canvas side in pixels (>= 16)")
    sh.add_argument("-n", type=positive_int, default=1000, help="number of images")
    sh.add_argument("--seed", type=nonneg_int, default=0, help="seed of the scenes")
    sh.add_argument("--split", choices=("train", "holdout", "all"), default="train",
                    help="train leaves the held-out colour-shape pairs out; holdout uses only them")
    sh.add_argument("--out", required=True, help="output folder")
    sh.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sh.set_defaults(func=run_shapes)
    em = data_sub.add_parser("emoji", help="build the emoji dataset from npm packages: PNG + .txt + metadata.jsonl")
    em.add_argument("--out", required=True, help="output folder")
    em.add_argument("--style", choices=("google", "twitter", "both"), default="both",
                    help="Noto Emoji (Apache-2.0), Twemoji (CC-BY 4.0) or both")
    em.add_argument("--size", type=positive_int, default=64, help="image side in pixels (sources are 64)")
    em.add_argument("--cache", help="folder for the npm packages (default: ~/.cache/wordbrush/npm)")
    em.add_argument("--background", type=_color, default=(255, 255, 255),
                    help="colour behind transparent pixels (default: white)")
    em.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    em.set_defaults(func=run_emoji)
    di = data_sub.add_parser("distill", help="a dalle's images drawn with a quantile per position, with their noise "
                             "and captions: what `train gan` with distill reads (train/gan_distill.py)")
    di.add_argument("--teacher", default="shapes", help="a dalle model: built-in name or folder (default: shapes)")
    di.add_argument("--out", required=True, help="output folder (shards already there are kept: a rerun continues)")
    di.add_argument("-n", "--samples", type=positive_int, default=196_608,
                    help="images in all, rounded up to whole shards of 4096 (default 196608)")
    di.add_argument("--data", metavar="PATH", help="where the captions come from: a dataset on disk (default: the "
                    "shapes train split's captions)")
    di.add_argument("--batch", type=positive_int, default=128, help="images a sampling call draws (default 128)")
    di.add_argument("--threads", type=nonneg_int, default=0, help="torch threads (0 = torch's default)")
    di.add_argument("--no-compile", action="store_true", help="sample eagerly (the compile takes ~30 s once)")
    di.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    di.set_defaults(func=run_distill)
    ins = data_sub.add_parser("inspect", help="count the usable and skipped items of a dataset and write a grid")
    ins.add_argument("path", help="folder of images + .txt, .jsonl/.csv manifest, .tar shard or folder of shards")
    ins.add_argument("--size", type=positive_int, default=64, help="image side in pixels")
    ins.add_argument("--seed", type=nonneg_int, default=0, help="seed of the caption choice")
    ins.add_argument("--max-image-pixels", type=positive_int, default=8192 * 8192,
                     help="larger images (by their header) are skipped as too_large, as data.max_image_pixels "
                     "does in training (default 8192*8192)")
    ins.add_argument("--grid", default="inspect-grid.png", help="grid PNG of the first 64 items (a dataset "
                     "folder's reader leaves out files named grid.png and inspect-grid.png that have no caption)")
    ins.set_defaults(func=run_inspect)


def run_shapes(args: argparse.Namespace) -> None:
    from ..data.shapes import ShapesDataset, write_dataset
    from ..utils.images import save_grid

    out = write_dataset(args.out, args.n, size=args.size, seed=args.seed, split=args.split,
                        progress=not args.quiet)
    ds = ShapesDataset(args.n, size=args.size, seed=args.seed, split=args.split)
    k = min(args.n, 64)
    grid = save_grid([ds[i][0] for i in range(k)], out / "grid.png", cols=8, scale=2)
    print(f"wrote {args.n} images with captions and scenes.jsonl to {out}")
    print(f"grid of the first {k}: {grid}")
    for i in range(min(k, 4)):
        print(f"  {i}: {ds[i][1]}")


def run_emoji(args: argparse.Namespace) -> None:
    from PIL import Image

    from ..data.emoji import write_emoji_dataset
    from ..utils.images import save_grid

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


def run_distill(args: argparse.Namespace) -> None:
    from ..data.config import DataConfig
    from ..train.gan_distill import write_distill_set

    data = DataConfig(path=args.data) if args.data else None
    res = write_distill_set(args.teacher, args.out, args.samples, data=data, batch=args.batch, threads=args.threads,
                            compile=not args.no_compile, progress=not args.quiet)
    print(f"{res['samples']} teacher images in {res['shards']} shards in {res['folder']} ({res['written']} written now)")


def run_inspect(args: argparse.Namespace) -> None:
    from ..data.folder import open_dataset
    from ..utils.images import save_grid

    ds = open_dataset(args.path, size=args.size, seed=args.seed, max_pixels=args.max_image_pixels)
    first, n = [], 0
    for img, caption in ds:  # one full pass: counts every usable item (tar shards are streamed)
        if len(first) < 64:
            first.append((img, caption))
        n += 1
    print(f"{n} usable items in {args.path} ({ds.kind})")
    skipped = sum(ds.skipped.values())
    print(f"skipped {skipped}" + (": " + ", ".join(f"{v} {k}" for k, v in sorted(ds.skipped.items()))
                                  if skipped else ""))
    for reason, files in sorted(ds.skipped_files.items()):
        more = ds.skipped[reason] - min(len(files), 3)
        print(f"  {reason}: " + ", ".join(files[:3]) + (f" (+{more} more)" if more > 0 else ""))
    ignored = getattr(ds, "ignored", [])
    if ignored:
        print(f"left out {len(ignored)} preview file{'s' * (len(ignored) > 1)} (not items): "
              + ", ".join(str(p) for p in ignored[:3]))
    if first:
        grid = save_grid([im for im, _ in first], args.grid, cols=8, scale=max(1, 128 // args.size))
        print(f"grid of the first {len(first)}: {grid}")
        for i, (_, caption) in enumerate(first[:4]):
            print(f"  {i}: {caption}")

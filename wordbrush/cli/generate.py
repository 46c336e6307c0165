"""`wordbrush generate PROMPT...`: draw images with a built-in or saved model, one PNG per image (written as soon
as it is drawn, each carrying how to draw it again in its PNG text chunks) plus a grid of them all.

Each call writes into a fresh numbered folder under --out (wordbrush-out/0001/, 0002/, ...), taken with one mkdir
that fails if another call took the number first: calls running at the same time into one --out never share, and
so never overwrite, a file. Every file is written atomically (utils/images.save_png: a temporary file, fsynced,
renamed into place), so a reader never sees half an image or half a grid."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import warnings
from pathlib import Path

from ..errors import WordbrushError
from ..version import __version__
from .common import (
    add_sampling_args,
    nonneg_int,
    positive_int,
    sampling_options,
    sampling_overrides,
)

GRID_MAX = 256  # images in grid.png (all are written one by one)


def add_parser(sub) -> None:
    gen = sub.add_parser("generate", help="draw images from prompts: one PNG per image plus a grid",
                         description="Draw images from prompts. Image k (prompt-major) is drawn with seed SEED + k: "
                         "with -n 4, prompt 0 gets seeds SEED..SEED+3, prompt 1 SEED+4..SEED+7, and so on. Every PNG "
                         "holds its prompt, seed, model and settings as PNG text (\"parameters\", \"wordbrush\").")
    gen.add_argument("prompts", nargs="+", metavar="PROMPT", help="what to draw (quote each prompt)")
    gen.add_argument("--model", default="shapes", help="built-in model name or saved folder (default: shapes)")
    gen.add_argument("-n", type=positive_int, default=4, help="images per prompt (default 4)")
    gen.add_argument("--seed", type=nonneg_int, default=0, help="image k uses seed + k (default 0)")
    gen.add_argument("--out", default="wordbrush-out", help="output folder; each call writes into a fresh numbered "
                     "folder inside it: OUT/0001/, OUT/0002/, ... (default: wordbrush-out)")
    add_sampling_args(gen)
    gen.set_defaults(func=run)


def output_folder(out: str) -> Path:
    """The folder to write into, made if need be; a path that is a file is a clear error."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise WordbrushError(f"--out {out} is a file, not a folder; pass a folder to write the images into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WordbrushError(f"cannot make the output folder {out}: {e.strerror}") from None
    return folder


def run_folder(parent: Path) -> Path:
    """A fresh numbered folder in `parent` for one call's images: one past the highest number there, taken with
    mkdir, which fails if another call took that number first (then the next one is tried)."""
    numbers = [int(p.name) for p in parent.iterdir() if re.fullmatch(r"[0-9]{1,9}", p.name)]
    n = max(numbers, default=0) + 1
    while True:
        folder = parent / f"{n:04d}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1
        except OSError as e:
            raise WordbrushError(f"cannot make the output folder {folder}: {e.strerror}") from None


def image_text(prompt: str, seed: int, model: str, kind: str, size: int, options, dtype: str,
               drawn: str | None = None) -> dict[str, str]:
    """PNG text chunks: "parameters" in the form image tools read (prompt, then a line of settings), and
    "wordbrush" as JSON with the command that draws this image again. drawn: what the model read for the prompt
    (its rewriter's revision), when that is not the prompt."""
    o = options
    settings = {"Seed": seed, "Size": f"{size}x{size}", "Model": model, "Generator": kind,
                "CFG scale": o.guidance_scale,
                "Temperature": o.temperature, "Top-k": o.top_k, "Top-p": o.top_p, "Steps": o.steps,
                "Candidates": o.candidates, "Rerank": o.rerank, "Dtype": dtype, "Version": f"wordbrush {__version__}"}
    parameters = prompt + "\n" + ", ".join(f"{k}: {v}" for k, v in settings.items() if v is not None)
    command = ["wordbrush", "generate", prompt, "--model", model, "-n", "1", "--seed", str(seed),
               "--guidance", f"{o.guidance_scale:g}", "--temperature", f"{o.temperature:g}", "--steps", str(o.steps),
               "--candidates", str(o.candidates), "--rerank", o.rerank, "--dtype", dtype]
    command += ["--top-k", str(o.top_k)] if o.top_k is not None else []
    command += ["--top-p", f"{o.top_p:g}"] if o.top_p is not None else []
    command += [] if o.rewrite else ["--no-rewrite"]
    revised = {} if drawn in (None, prompt) else {"revised_prompt": drawn}
    record = {"prompt": prompt, **revised, "seed": seed, "model": model, "generator": kind, "sampling": vars(o).copy(),
              "dtype": dtype, "wordbrush_version": __version__, "command": shlex.join(command)}
    return {"parameters": parameters, "wordbrush": json.dumps(record)}


def slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "prompt"


def run(args: argparse.Namespace) -> None:
    import torch
    from tqdm import tqdm

    from ..pipeline import TextToImagePipeline
    from ..utils.images import save_grid, save_png

    parent = output_folder(args.out)  # checked before the model loads: a bad --out fails at once
    pipe = TextToImagePipeline.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).compile(args.compile)
    kw = sampling_overrides(args)
    options = sampling_options(pipe, args)
    prompts, drawn, notes, revisions = pipe.read_prompts(args.prompts, options)  # drawn: as a rewriter reads them
    for note in notes:
        print(f"wordbrush: warning: {note}", file=sys.stderr)
    for note in revisions:
        print(f"wordbrush: {note}", file=sys.stderr)
    total = len(prompts) * args.n
    screen = shutil.get_terminal_size()  # a terminal that reports no size (0 x 0) gets 80 x 24, not an empty bar
    bar = tqdm(total=total, unit="img", desc=f"drawing with {args.model}", file=sys.stderr, disable=None,
               ncols=min(screen.columns, 120), nrows=screen.lines)
    all_prompts = [p for p in prompts for _ in range(args.n)]
    all_drawn = [p for p in drawn for _ in range(args.n)]
    made: list[Path] = []  # this call's folder, made when its first image is ready (a call that fails makes none)

    def save(first: int, images) -> None:  # called after each batch: the images are on disk as they are drawn
        if not made:
            made.append(run_folder(parent))
        folder = made[0]
        for k, img in enumerate(images, start=first):
            prompt, seed = all_prompts[k], args.seed + k
            text = image_text(prompt, seed, str(args.model), pipe.generator.kind, pipe.image_size, options, args.dtype,
                              all_drawn[k])
            path = save_png(img, folder / f"{k:03d}-{slug(prompt)}-seed{seed}.png", text)
            bar.write(str(path), file=sys.stdout)
        bar.update(len(images))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes were printed above, once, as one line each
        out = pipe(drawn, num_images_per_prompt=args.n, seed=args.seed, callback=save, **{**kw, "rewrite": False})
    bar.close()
    shown = out.images[:GRID_MAX]  # a grid of thousands would be too big to look at
    print(save_grid(shown, made[0] / "grid.png", cols=min(args.n, 16), scale=4 if len(shown) <= 64 else 1))

"""`wordbrush train STAGE`: the image tokenizer (vae), the CLIP, or any generator family the registry can train.

The config is the file's values (or the defaults) with the command line's flags merged in *before* the config is
built and checked, so a check sees the flags the user passed (`--vae` satisfies a config that needs a VAE).
"""

from __future__ import annotations

import argparse
import json
import os

from ..errors import WordbrushError
from ..generators import registry
from .common import Parser, nonneg_float, nonneg_int, positive_int

# stages that are not generator families: name -> (config class, trainer, summary, own flags)
PARTS = {
    "vae": ("wordbrush.train.vae:VAETrainConfig", "wordbrush.train.vae:train_vae",
            "the discrete VAE image tokenizer (images <-> grids of code ids)", ()),
    "clip": ("wordbrush.train.clip:CLIPTrainConfig", "wordbrush.train.clip:train_clip",
             "the contrastive text-image model (reranking and the metrics' feature space)", ()),
}


def stages() -> dict[str, tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    """Every trainable stage: the parts above, then each registered family that names a trainer."""
    out = dict(PARTS)
    for f in registry.FAMILIES.values():
        if f.train_config and f.trainer:
            out[f.name] = (f.train_config, f.trainer, f.summary, f.train_flags)
    return out


def add_parser(sub) -> None:
    train = sub.add_parser("train", help="train a part: " + ", ".join(stages()),
                           description="Train a part. Each stage reads a JSON or TOML config (see configs/); the "
                           "flags below override its values. `--print-config` shows every key.")
    train_sub = train.add_subparsers(dest="part", required=True, parser_class=Parser)
    for name, (cfg_path, _, summary, flags) in stages().items():
        cfg_name = cfg_path.rpartition(":")[2]
        tp = train_sub.add_parser(name, help=f"train {summary}", description=f"Train {summary}.")
        tp.add_argument("--config", help=f"JSON or TOML file of {cfg_name} (default: its defaults)")
        for flag, text in flags:
            tp.add_argument(f"--{flag}", help=text)
        tp.add_argument("--out", help="run folder: checkpoints, log.jsonl, samples and the final model "
                        "(overrides the config's out)")
        tp.add_argument("--data", metavar="PATH", help="training data (overrides the config's data.path): a folder "
                        "of images + .txt captions, a .jsonl/.csv manifest, a .tar shard or a folder of shards")
        tp.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in the "
                        "output folder (bit-identical to a run never stopped, on CPU); none yet: start at step 0")
        tp.add_argument("--max-steps", type=positive_int,
                        help="stop at this many optimizer steps in all; a resumed run counts the steps it had")
        tp.add_argument("--max-minutes", type=nonneg_float,
                        help="also stop once this much training time is spent, counted over the whole run: a "
                        "resumed run counts the minutes it had (0 = no time budget)")
        tp.add_argument("--threads", type=nonneg_int,
                        help="torch threads (default: the config's threads, unless OMP_NUM_THREADS is set, "
                        "which wins over the config; 0 = torch's default)")
        tp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set lr=3e-4 --set data.size=32 (VALUE is read as "
                        "JSON where it can be, else as a string); repeatable")
        tp.add_argument("--print-config", action="store_true",
                        help="print the config this run would use (every key, defaults included) and exit")
        tp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        tp.set_defaults(func=run)


def overrides(args: argparse.Namespace, flags: tuple[tuple[str, str], ...]) -> dict:
    """The command line's values as dotted config keys."""
    out: dict = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WordbrushError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    named = {"out": args.out, "max_steps": args.max_steps, "max_minutes": args.max_minutes, "data.path": args.data}
    named.update({flag: getattr(args, flag) for flag, _ in flags})
    if args.threads is not None:
        named["threads"] = args.threads
    elif os.environ.get("OMP_NUM_THREADS"):
        named["threads"] = 0  # torch's default follows OMP_NUM_THREADS
    out.update({k: v for k, v in named.items() if v is not None})
    return out


def run(args: argparse.Namespace) -> None:
    from ..config import load_config, to_dict

    cfg_path, trainer, _, flags = stages()[args.part]
    cfg = load_config(registry.load(cfg_path), args.config, overrides(args, flags))
    if args.print_config:
        print(json.dumps(to_dict(cfg), indent=2))
        return
    result = registry.load(trainer)(cfg, resume=args.resume, progress_bar=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(json.dumps(result, indent=2))
        print(f"saved to {cfg.out}")

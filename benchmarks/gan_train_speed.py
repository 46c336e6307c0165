"""Training samples/s of the `gan` generator's real loop (train_gan), in float32 and under bf16 autocast.

    python benchmarks/gan_train_speed.py --config configs/gan-shapes.json --clip RUNS/clip-shapes [--steps 300]

Each precision runs `wordbrush train gan` from fresh weights for --steps steps into a temporary folder (data,
D and G steps, MA-GP on every gp_every-th step, EMA, logging; no sample grids or checkpoints on the way) and
reports the median of the logged samples/s after the first log interval (warm-up). On a CPU without native
bfloat16 (training would fall back to float32) only float32 is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from wordbrush.config import load_config
from wordbrush.train.gan import GANTrainConfig, train_gan
from wordbrush.utils.hardware import cpu_has_fast_bf16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/gan-shapes.json")
    ap.add_argument("--clip", required=True, help="a trained CLIP folder on the same data")
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {args.config}, {args.steps} steps")
    for bf16 in (False, True) if cpu_has_fast_bf16() or torch.cuda.is_available() else (False,):
        cfg = load_config(GANTrainConfig, args.config)
        with tempfile.TemporaryDirectory() as tmp:
            cfg.clip, cfg.out, cfg.bf16, cfg.max_steps, cfg.max_minutes = args.clip, tmp, bf16, args.steps, 0.0
            cfg.log_every, cfg.sample_every = 50, 10**9
            cfg.checkpoint_every = cfg.diversity_every = 10**9
            train_gan(cfg, progress_bar=False)
            log = [json.loads(line) for line in (Path(tmp) / "log.jsonl").read_text().splitlines()]
        rate = statistics.median(r["samples_per_s"] for r in log[1:])
        print(f"{'bf16 autocast' if bf16 else 'float32':>14}: {rate:6.1f} samples/s (batch {cfg.batch_size}, "
              f"MA-GP every {cfg.gp_every} steps)")


if __name__ == "__main__":
    main()

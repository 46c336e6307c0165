"""Where one `gan` training step's time goes: the real step (GANStage.step: data, D step, G step, EMA) timed and then
run under torch.profiler, ops grouped by input shape.

    python benchmarks/gan_step_profile.py --config configs/gan-shapes-codes.json --clip RUNS/clip-shapes [--steps 15]

The step runs in float32 unless --bf16 (and the CPU has native bfloat16); the CLIP's weights do not change the
step's cost, so a CLIP trained for half a minute will do. Writes nothing but a temporary run folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from wordbrush.config import load_config
from wordbrush.train.gan import GANStage, GANTrainConfig
from wordbrush.train.runtime import Runtime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/gan-shapes-codes.json")
    ap.add_argument("--clip", required=True, help="a CLIP folder on the same data")
    ap.add_argument("--steps", type=int, default=15, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--profiled", type=int, default=6, help="steps under the profiler")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast as the config asks (default: float32)")
    ap.add_argument("--rows", type=int, default=25, help="rows of the profile table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(GANTrainConfig, args.config, {"clip": args.clip, "out": tmp, "bf16": args.bf16})
        with Runtime(cfg, False, False) as rt:
            stage = GANStage(cfg, rt, False)
            for s in range(3):
                stage.step(s, 0.0)
            t = time.perf_counter()
            for s in range(3, 3 + args.steps):
                stage.step(s, 0.0)
            dt = (time.perf_counter() - t) / args.steps
            print(f"{cfg.batch_size} a batch, {torch.get_num_threads()} threads, bf16 {cfg.bf16}: "
                  f"{dt * 1000:.0f} ms a step, {cfg.batch_size / dt:.1f} samples/s")
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                for s in range(3 + args.steps, 3 + args.steps + args.profiled):
                    stage.step(s, 0.0)
            print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total",
                                                                      row_limit=args.rows))


if __name__ == "__main__":
    main()

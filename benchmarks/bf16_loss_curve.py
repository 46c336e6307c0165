"""Does bfloat16 autocast train like float32? Two runs of the dalle training loop at R1's transformer shape
(width 256, depth 6, 8 heads, 32 text tokens; batch 32) from the same seed on the same shapes data, one in
float32 and one under bf16 autocast, then their loss curves on one plot.

    python benchmarks/bf16_loss_curve.py --vae runs/vae-shapes [--steps 600] [--out runs/bf16-check]

Writes OUT/curves.png and OUT/summary.json (final losses over the last 100 steps, samples/s of each).
"""

import argparse
import json
from pathlib import Path

from wordbrush.generators.dalle import DalleConfig
from wordbrush.train.tokens import DalleTrainConfig, train_generator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", required=True, help="a trained VAE folder (wordbrush train vae)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--out", default="runs/bf16-check")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    logs = {}
    for bf16 in (False, True):
        name = "bfloat16" if bf16 else "float32"
        cfg = DalleTrainConfig(model=DalleConfig(text_len=32, dim=256, depth=6, heads=8), vae=args.vae,
                               out=str(out / name), batch_size=32, max_steps=args.steps, warmup_steps=100,
                               bf16=bf16, threads=args.threads, log_every=20, sample_every=10**9,
                               checkpoint_every=10**9)
        train_generator(cfg, progress_bar=False)
        logs[name] = [json.loads(line) for line in (out / name / "log.jsonl").read_text().splitlines()]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, records in logs.items():
        ax.plot([r["step"] for r in records], [r["image_loss"] for r in records], label=name, lw=1.2)
    ax.set_xlabel("step (batch 32)")
    ax.set_ylabel("image-token loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("dalle, R1 shape: float32 vs bf16 autocast")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    tail = {name: [r for r in records if r["step"] > args.steps - 100] for name, records in logs.items()}
    summary = {name: {"final_image_loss": sum(r["image_loss"] for r in rs) / len(rs),
                      "samples_per_s": sum(r["samples_per_s"] for r in rs) / len(rs)} for name, rs in tail.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

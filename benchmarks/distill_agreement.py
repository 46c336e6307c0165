"""How closely a distilled gan follows its dalle teacher on noise and captions it never trained on.

    python benchmarks/distill_agreement.py --model runs/gan-shapes-distill [--teacher shapes] [-n 512]

Fresh captions (the shapes train stream far from any distillation shard) and fresh noise z; the teacher draws
with the quantiles Phi(z) (train/gan_distill.py), the gan writes its likeliest code at each position from the same
z. Reports the share of positions where the two agree, the share of whole grids that agree exactly, and the
agreement by grid row (where in raster order the student loses the teacher).
"""

from __future__ import annotations

import argparse

import torch

from wordbrush.data.config import DataConfig
from wordbrush.data.training import TrainingData
from wordbrush.generators.gan import GAN
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.train.gan_distill import uniforms

FRESH = 9_000_000  # scenes this far into the stream: no shard reads them


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the distilled gan's folder")
    ap.add_argument("--teacher", default="shapes")
    ap.add_argument("-n", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    student = TextToImagePipeline.from_pretrained(args.model)
    teacher = TextToImagePipeline.from_pretrained(args.teacher)
    gan: GAN = student.generator
    dalle = teacher.generator
    captions = TrainingData(DataConfig(split="train")).batch(FRESH // args.n, args.n).captions
    z = torch.randn(args.n, dalle.cfg.image_len, generator=torch.Generator().manual_seed(FRESH))
    want, got = [], []
    for s in range(0, args.n, 64):
        ids = teacher.tokenizer.encode(captions[s : s + 64], dalle.cfg.text_len).ids
        want.append(dalle.sample(ids, [torch.Generator()] * len(ids), teacher.sampling,
                                 quantiles=uniforms(z[s : s + 64])))
        text = gan.read_text(student.tokenizer.encode(captions[s : s + 64], gan.text_len).ids)
        got.append(gan.code_scores(z[s : s + 64], text).argmax(-1))
    want, got = torch.cat(want), torch.cat(got)
    same = (want == got).float()  # (n, N)
    g = dalle.cfg.image_grid
    print(f"{args.model} against {args.teacher}, {args.n} fresh captions and noise")
    print(f"positions agreeing: {same.mean():.3f}; whole grids: {same.all(1).float().mean():.3f}")
    print("by row: " + " ".join(f"{r}: {same.view(-1, g, g)[:, r].mean():.3f}" for r in range(g)))


if __name__ == "__main__":
    main()

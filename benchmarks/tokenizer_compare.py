"""Image tokenizers side by side on held-out images: PSNR and rFD-wbCLIP of their reconstructions.

    python benchmarks/tokenizer_compare.py --vaes runs/vae-emoji runs/vqgan-emoji \\
        --data data/emoji/metadata.jsonl --split heldout --clip runs/clip-emoji-eval --grid docs/images/x.png

rFD-wbCLIP is the Fréchet distance between the CLIP image features of the reconstructions and of the originals
(torchmetrics' FrechetInceptionDistance with the CLIP's image tower, as in wordbrush/eval/realism.py): the
"reconstruction FID" of VQGAN's paper, in a feature space that exists offline. Measure with a CLIP that did not
train either tokenizer's perceptual term. The grid shows the originals on top and each tokenizer's
reconstructions below.
"""

from __future__ import annotations

import argparse
import json

import torch

from wordbrush.clip import CLIPScorer
from wordbrush.eval.realism import CLIPImageFeatures, load_eval_set
from wordbrush.image.metrics import psnr
from wordbrush.image.vae import load_vae
from wordbrush.utils.images import save_grid, to_pil, to_tensor


@torch.no_grad()
def main() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vaes", nargs="+", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--clip", required=True, help="the CLIP to measure with")
    ap.add_argument("--grid", help="PNG: originals, then one row of reconstructions per tokenizer")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = CLIPScorer.from_pretrained(args.clip)
    vaes = {v: load_vae(v) for v in args.vaes}
    data = load_eval_set(args.data, args.split, next(iter(vaes.values())).cfg.image_size)
    real = to_tensor(data.images)
    fid = FrechetInceptionDistance(feature=CLIPImageFeatures(clip), reset_real_features=False)
    fid.update(real, real=True)
    figures, rows = {}, [to_pil(real[:12])]
    for name, vae in vaes.items():
        recon = torch.cat([vae.decode(vae.encode(real[s : s + 256])) for s in range(0, len(real), 256)])
        fid.reset()
        fid.update(recon, real=False)
        figures[name] = {"psnr_db": round(psnr(recon, real).mean().item(), 3), "rfd_wbclip": round(fid.compute().item(), 3),
                         "images": len(real), "num_codes": vae.num_codes}
        rows.append(to_pil(recon[:12]))
        print(f"{name}: PSNR {figures[name]['psnr_db']:.2f} dB, rFD-wbCLIP {figures[name]['rfd_wbclip']:.3f}")
    if args.grid:
        save_grid([im for row in rows for im in row], args.grid, cols=12, scale=2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()

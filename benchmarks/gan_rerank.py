"""How much picking among a gan's candidates helps, and by which judge, on the shapes benchmark's prompts.

For each prompt of `make_prompts` (a prompt seed of your choice: keep the benchmark's own, 2,000,000, for the
final figures and tune on another), each image's C candidates are drawn as the pipeline draws them (candidate
c of seed s from candidate_rng(s, c)), every candidate is judged by the scene checker, and scored by:
- "disc": the gan's discriminator on what it reads (the code grid and the caption): an estimate of
  log p_data(x | t) - log p_G(x | t), so keeping the highest is discriminator rejection sampling's greedy form
  (Azadi et al. 2019);
- "clip": the pipeline's CLIP (cosine similarity of image and prompt); "clip2": a second CLIP folder's (e.g. the
  built-in shapes model's reranker, trained with swapped captions as hard negatives);
- "teacher": a dalle's log-likelihood of the candidate's image tokens given the prompt (--teacher, e.g. the
  built-in shapes): the slow model that knows composition judges the fast one's drafts, one forward pass each;
and the table gives the benchmark score when each image is the first candidate, the best of k by each judge
(and sums of standardised judges), and the best by the checker itself (an oracle: the ceiling of picking).

    python benchmarks/gan_rerank.py --model RUNS/gan-shapes-codes --candidates 16 --prompt-seed 3000000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from wordbrush.clip import CLIPScorer
from wordbrush.data.specs import CATEGORIES
from wordbrush.eval.judge import judge
from wordbrush.eval.prompts import make_prompts
from wordbrush.generators.gan_discriminator import Discriminator
from wordbrush.generators.sampling import candidate_rng, standardised
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.utils.images import to_pil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a gan run folder or checkpoint with discriminator.safetensors")
    ap.add_argument("--disc", help="the discriminator's weights (default: MODEL/discriminator.safetensors)")
    ap.add_argument("--clip2", default="wordbrush/models/shapes/clip", help="a second CLIP folder to rank by")
    ap.add_argument("--teacher", help="a dalle model (name or folder) whose log-likelihood ranks too")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--n", type=int, default=20, help="prompts per category")
    ap.add_argument("--images", type=int, default=4, help="images per prompt")
    ap.add_argument("--prompt-seed", type=int, default=3_000_000)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the table's numbers here as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from safetensors.torch import load_file

    pipe = TextToImagePipeline.from_pretrained(args.model)
    g = pipe.generator
    d = Discriminator(g.cfg)
    d.load_state_dict(load_file(args.disc or str(Path(args.model) / "discriminator.safetensors")))
    d.eval()
    clip2 = CLIPScorer.from_pretrained(args.clip2)
    teacher = TextToImagePipeline.from_pretrained(args.teacher) if args.teacher else None
    specs = make_prompts(args.n, seed=args.prompt_seed)
    C = args.candidates
    ok = np.zeros((len(specs), args.images, C), bool)
    scores = {k: np.zeros((len(specs), args.images, C)) for k in ("disc", "clip", "clip2", "teacher")}
    with torch.no_grad():
        for i, spec in enumerate(specs):
            ids = pipe.tokenizer.encode([spec.prompt], g.text_len).ids
            t = g.read_text(ids)
            if teacher is not None:  # the prompt as the teacher reads it, once for all its candidates
                words = teacher.tokenizer.encode([spec.prompt] * C, teacher.text_len).ids
            for j in range(args.images):
                seed = args.prompt_seed + i * args.images + j
                z = torch.stack([torch.randn(g.cfg.noise_dim, generator=candidate_rng(seed, c)) for c in range(C)])
                text = type(t)(*(x.expand(C, *x.shape[1:]) for x in t))
                layout = g.sampled_layout(z * args.temperature, text)  # snapped to codes with snap_codes
                pixels = g.draw(layout).float().clamp(0, 1)
                scores["disc"][i, j] = d(layout, text).float().numpy()
                scores["clip"][i, j] = pipe.clip.similarity(pixels, [spec.prompt] * C).numpy()
                scores["clip2"][i, j] = clip2.similarity(pixels, [spec.prompt] * C).numpy()
                images = to_pil(pixels)
                ok[i, j] = [judge(im, spec).ok for im in images]
                if teacher is not None:
                    scores["teacher"][i, j] = teacher.generator.log_likelihood(
                        words, teacher.encode_images(images)).float().numpy()
            if i % 20 == 19:
                print(f"{i + 1}/{len(specs)} prompts", flush=True)
    cats = [s.category for s in specs]

    def score(pick: np.ndarray) -> dict:  # pick: (P, I) candidate index -> per-category share ok, overall
        hit = np.take_along_axis(ok, pick[..., None], 2)[..., 0]
        per = {c: float(hit[[k for k, x in enumerate(cats) if x == c]].mean()) for c in CATEGORIES if c in cats}
        return {"overall": float(np.mean(list(per.values()))), **per}

    def best(judges: tuple[str, ...], k: int) -> np.ndarray:
        s = sum(standardised(torch.from_numpy(scores[n][..., :k]).reshape(-1, k)).numpy() for n in judges)
        return s.reshape(len(specs), args.images, k).argmax(-1)

    rows = {"first candidate": score(np.zeros(ok.shape[:2], int))}
    for k in sorted({4, 8, C} & set(range(2, C + 1))):
        judged = (("clip",), ("clip2",), ("disc",), ("disc", "clip"), ("disc", "clip2"))
        if teacher is not None:
            judged += (("teacher",), ("teacher", "disc"), ("teacher", "clip2"), ("teacher", "disc", "clip2"))
        for judges in judged:
            rows[f"best of {k} by {'+'.join(judges)}"] = score(best(judges, k))
        rows[f"best of {k} by the checker (oracle)"] = score(ok[..., :k].argmax(-1))
    head = ["overall", *[c for c in CATEGORIES if c in cats]]
    print("| picking | " + " | ".join(head) + " |\n|---|" + "---|" * len(head))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[h]:.3f}" for h in head) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

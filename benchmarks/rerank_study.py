"""Which reranker picks the right image among a dalle's candidates? Draws C candidates for each image of shapes
benchmark prompts (a prompt seed of its own, not the benchmark's), judges every candidate with the scene checker,
and scores each reranker by the share of images whose pick is judged right, for the first 1, 2, 4, ..., C
candidates: the model's likelihood log p(x | prompt), the pointwise mutual information log p(x | prompt) -
log p(x | empty prompt), a CLIP's similarity, and the oracle (any candidate right).

    python benchmarks/rerank_study.py --model shapes --clip runs/negclip-shapes --candidates 8
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from wordbrush.clip import CLIPScorer
from wordbrush.eval.judge import judge
from wordbrush.eval.prompts import make_prompts
from wordbrush.pipeline import TextToImagePipeline, candidate_rng
from wordbrush.text.tokenizer import PAD_ID
from wordbrush.utils.images import to_pil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes")
    ap.add_argument("--clip", help="a CLIP folder to rerank with as well")
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--prompts-per-category", type=int, default=10)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--prompt-seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the table as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = TextToImagePipeline.from_pretrained(args.model).compile()
    clip = CLIPScorer.from_pretrained(args.clip) if args.clip else None
    opts = replace(pipe.sampling, candidates=1)
    g, C = pipe.generator, args.candidates
    specs = make_prompts(args.prompts_per_category, seed=args.prompt_seed)
    rows = []  # per image: category, ok (C,), scores {name: (C,)}
    with torch.no_grad():
        for i, spec in enumerate(specs):
            seeds = [i * args.images + j for j in range(args.images)]
            n = len(seeds) * C
            text = pipe.tokenizer.encode([spec.prompt] * n, pipe.text_len).ids
            rngs = [candidate_rng(s, c) for s in seeds for c in range(C)]
            tokens = g.sample(text, rngs, opts)  # (n, N)
            pixels = pipe.vae.decode(tokens)
            ok = np.array([judge(im, spec).ok for im in to_pil(pixels)])
            cond = g.log_likelihood(text, tokens)
            uncond = g.log_likelihood(torch.full_like(text, PAD_ID), tokens)
            scores = {"likelihood": cond, "pmi": cond - uncond, "pmi/2": cond - 0.5 * uncond}
            if clip is not None:
                scores["clip"] = clip.similarity(pixels, [spec.prompt] * n)
                # both standardised within each image's candidates, then summed: neither scale dominates
                z = lambda v: (v - v.view(-1, C).mean(1).repeat_interleave(C)) / (v.view(-1, C).std(1).repeat_interleave(C) + 1e-6)  # noqa: E731
                scores["likelihood+clip"] = z(cond) + z(scores["clip"])
                scores["likelihood+clip/2"] = z(cond) + 0.5 * z(scores["clip"])
            for j in range(len(seeds)):
                sl = slice(j * C, (j + 1) * C)
                rows.append({"category": spec.category, "ok": ok[sl],
                             "scores": {k: v[sl].float().cpu().numpy() for k, v in scores.items()}})
            print(f"{i + 1}/{len(specs)} {spec.category}: {spec.prompt!r} {ok.mean():.2f}", flush=True)
    cats = sorted({r["category"] for r in rows})
    table = {}
    for k in [c for c in (1, 2, 4, 8, 16, 32) if c <= C]:
        for name in ["first", "oracle", *rows[0]["scores"]]:
            per = {}
            for cat in cats:
                hits = []
                for r in (r for r in rows if r["category"] == cat):
                    okk = r["ok"][:k]
                    if name == "first":
                        hits.append(okk[0])
                    elif name == "oracle":
                        hits.append(okk.any())
                    else:
                        hits.append(okk[int(np.argmax(r["scores"][name][:k]))])
                per[cat] = float(np.mean(hits))
            per["overall"] = float(np.mean([per[c] for c in cats]))
            table[f"{name} of {k}"] = per
    print("| reranker | " + " | ".join(cats) + " | overall |")
    print("|---|" + "---|" * (len(cats) + 1))
    for name, per in table.items():
        print(f"| {name} | " + " | ".join(f"{per[c]:.3f}" for c in cats) + f" | {per['overall']:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"table": table, "rows": [{"category": r["category"], "ok": r["ok"].tolist(),
                                                 "scores": {k: v.tolist() for k, v in r["scores"].items()}}
                                                for r in rows]}, f)


if __name__ == "__main__":
    main()

"""Realism and alignment of generated images on any dataset, measured in a wordbrush CLIP's feature space.

No Inception (or OpenAI CLIP) weights can be had offline, so the metrics are named for the network they use:
- FD-wbCLIP: the Fréchet distance between Gaussian fits of the CLIP image tower's pooled features of two image
  sets (torchmetrics' FrechetInceptionDistance with that tower as its feature extractor). Like FID, it compares
  distributions and ignores which caption an image was drawn for.
- KID-wbCLIP: the kernel (MMD, cubic polynomial kernel) distance on the same features, unbiased at small n
  (torchmetrics' KernelInceptionDistance), reported x 1000.
- FJD-wbCLIP: the Fréchet distance of the joint [image embedding ; caption embedding] (DeVries et al. 2019,
  Fréchet Joint Distance): it grows when images do not go with their captions, which FD cannot see.
- CLIP score: 100 * mean of max(cos(image, its caption), 0).
- R-precision: does an image pick its own caption out of 32 (its own + 31 of items from other groups)?
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from ..clip import CLIPScorer
from ..data.config import DataConfig
from ..data.training import TrainingData
from ..errors import WordbrushError
from ..utils.images import save_captioned_grid, to_tensor


def retrieval_top1(image_emb: torch.Tensor, text_emb: torch.Tensor, groups: list[str], pool: int = 32,
                   seed: int = 0) -> float:
    """R-precision at R = 1: the share of images i whose similarity to caption i beats (strictly) that to each
    of pool - 1 distractor captions, drawn at random from items of other groups. (N, E) x (N, E) unit vectors."""
    n = len(groups)
    if n < 2:
        raise ValueError("retrieval needs at least two items")
    sims = (image_emb.float() @ text_emb.float().T).cpu()  # (N, N)
    codes = np.unique(np.asarray(groups), return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(n):
        others = np.flatnonzero(codes != codes[i])
        if len(others) == 0:
            raise ValueError("retrieval needs items of at least two groups")
        distract = rng.choice(others, size=min(pool - 1, len(others)), replace=False)
        hits += bool(sims[i, i] > sims[i, torch.from_numpy(distract)].max())
    return hits / n


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> float:
    """100 * mean over pairs of max(cos, 0) (Hessel et al. 2021 without their w = 2.5)."""
    return 100 * (image_emb.float() * text_emb.float()).sum(-1).clamp_min(0).mean().item()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussian fits of (N, D) and (M, D) features; the
    trace of the square root is the sum of the square roots of the eigenvalues of S_a S_b."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_trace = torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()
    return ((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * root_trace).item()


# ---------------------------------------------------------------------------------------------------- the report


@dataclass
class EvalSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    captions: list[str]
    groups: list[str]  # items of one group are never each other's distractors
    split: str = "unknown"  # which split the items really are (TrainingData.actual_split); "all": training images too


def load_eval_set(path: str | Path, split: str, size: int, max_items: int = 0,
                  background: tuple[int, int, int] = (255, 255, 255)) -> EvalSet:
    """The items of a dataset on disk (a manifest's `split` rows; other kinds: every item), first caption each. The
    set's split says what they really are: "all" when the data has no split column, whatever split was asked."""
    data = TrainingData(DataConfig(path=str(path), size=size, split=split, background=background))
    if not data.in_memory:
        raise WordbrushError("dataset evaluation needs a folder or a manifest (tar shards are streamed)")
    n = len(data) if max_items <= 0 else min(max_items, len(data))
    return EvalSet(data.images[:n], [c[0] for c in data.captions[:n]], data.groups[:n], data.actual_split)


class CLIPImageFeatures(nn.Module):
    """The CLIP image tower as torchmetrics' feature extractor: (N, 3, H, W) in [0, 1] -> (N, F)."""

    def __init__(self, scorer: CLIPScorer):
        super().__init__()
        self.scorer = scorer
        self.num_features = scorer.model.image.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scorer.image_features(images)


def mismatched(groups: list[str], rng: np.random.Generator) -> np.ndarray:
    """A permutation p with groups[p[i]] != groups[i] wherever the groups allow it: who gets whose caption."""
    n = len(groups)
    p = rng.permutation(n)
    for i in range(n):
        for _ in range(100):
            if groups[p[i]] != groups[i]:
                break
            j = int(rng.integers(n))
            if groups[p[j]] != groups[i] and groups[p[i]] != groups[j]:
                p[i], p[j] = p[j], p[i]
    return p


SETS = ("real images", "model", "shuffled captions")  # real: the evaluation half's own; report["data_split"]: which
ROWS_PER_DRAW = 64  # pipe.draw's batch, candidates included: chunks of 64 // C images give the images of one call
METRICS = (("fd", "FD-wbCLIP ↓"), ("kid_x1000", "KID-wbCLIP ×1000 ↓"), ("fjd", "FJD-wbCLIP ↓"),
           ("clip_score", "CLIP score ↑"), ("r_precision", "R-precision@32 ↑"))


@torch.no_grad()
def evaluate_on_dataset(pipe, clip: CLIPScorer, data: EvalSet, out_dir: str | Path, options=None, seed: int = 0,
                        progress: bool = True) -> dict[str, Any]:
    """Split the items at random into a reference half and an evaluation half. For the evaluation half's captions,
    three image sets: the real images, the model's images, and the model's images for another item's caption
    (shuffled). Each set is scored against the evaluation half's captions and, for FD/KID/FJD, against the
    reference half's real images, so the real set's distances are the floor a perfect model would reach.
    With progress: one line to stderr first (items, halves, images to draw, and which split the items are), then a
    labelled bar per image set."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = options or pipe.sampling
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data.captions))
    ref, ev = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    if len(ref) < 8:
        raise WordbrushError(f"dataset evaluation needs at least 16 items, got {len(perm)}")
    captions = [data.captions[i] for i in ev]
    groups = [data.groups[i] for i in ev]
    swap = mismatched(groups, rng)
    seeds = [seed + k for k in range(len(ev))]
    if progress:
        print(plan(data, len(ref), len(ev), options.candidates), file=sys.stderr)
    model_images = _draw(pipe, captions, seeds, options, "realism: model images", progress)
    shuffled_images = _draw(pipe, [captions[j] for j in swap], seeds, options, "realism: shuffled-caption images",
                            progress)
    sets = {SETS[0]: to_tensor(data.images[ev]), SETS[1]: _stack(model_images), SETS[2]: _stack(shuffled_images)}

    real_ref = to_tensor(data.images[ref])
    ref_joint = torch.cat([clip.embed_images(real_ref), clip.embed_texts([data.captions[i] for i in ref])], 1)
    text_emb = clip.embed_texts(captions)
    features = CLIPImageFeatures(clip)
    fid = FrechetInceptionDistance(feature=features, reset_real_features=False)
    fid.update(real_ref, real=True)
    subset = min(len(ref), len(ev), 100)
    with warnings.catch_warnings():  # "will save all extracted features": a few hundred vectors here
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=features, subsets=100, subset_size=subset, reset_real_features=False)
    kid.update(real_ref, real=True)
    figures: dict[str, dict[str, float]] = {}
    for name, images in tqdm(sets.items(), desc="realism: metrics", unit="set", disable=not progress):
        fid.reset()
        kid.reset()
        fid.update(images, real=False)
        kid.update(images, real=False)
        image_emb = clip.embed_images(images)
        figures[name] = {
            "fd": round(fid.compute().item(), 3),
            "kid_x1000": round(1000 * _seeded(seed, kid.compute)[0].item(), 3),
            "fjd": round(frechet_distance(torch.cat([image_emb, text_emb], 1), ref_joint), 4),
            "clip_score": round(clip_score(image_emb, text_emb), 3),
            "r_precision": round(retrieval_top1(image_emb, text_emb, groups, seed=seed), 4),
        }
    report = {"items": len(perm), "reference_items": len(ref), "evaluated_items": len(ev), "seed": seed,
              "data_split": data.split, "options": vars(options), "figures": figures,
              # best-of-N by the very CLIP that measures: its alignment figures flatter the model
              "reranked_by_measuring_clip": options.candidates > 1 and options.rerank == "clip" and pipe.clip is clip}
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    grid = save_captioned_grid([(captions[k], [sets[SETS[0]][k], sets[SETS[1]][k]]) for k in range(min(64, len(ev)))],
                               out / "grid.png")
    plot = _plot(figures, out / "figures.png")
    (out / "report.md").write_text(_markdown(report, grid.name, plot.name), encoding="utf-8")
    return report


def split_note(split: str) -> str:
    """What the real images are, in words, from EvalSet.split."""
    if split == "all":
        return "every item of the data: it has no split, so they include any images the model was trained on"
    if split == "unknown":
        return "items whose split was not given"
    return f"the data's `{split}` split"


def plan(data: EvalSet, n_ref: int, n_ev: int, candidates: int) -> str:
    """One line saying what evaluate_on_dataset will take."""
    best = f", each the best of {candidates}" if candidates > 1 else ""
    return (f"realism eval: {n_ref + n_ev} items, {n_ref} reference + {n_ev} evaluated; the model draws {2 * n_ev} "
            f"images ({n_ev} for their captions + {n_ev} for shuffled captions{best}); the items are "
            f"{split_note(data.split)}")


def _draw(pipe, captions: list[str], seeds: list[int], options, desc: str, progress: bool) -> list[Image.Image]:
    """pipe.draw in chunks the size of its own batches (so the images are those of one call), under a bar."""
    step = max(1, ROWS_PER_DRAW // options.candidates)
    images: list[Image.Image] = []
    with tqdm(total=len(captions), desc=desc, unit="img", disable=not progress) as bar:
        for s in range(0, len(captions), step):
            images += pipe.draw(captions[s : s + step], seeds[s : s + step], options)[0]
            bar.update(len(captions[s : s + step]))
    return images


def _seeded(seed: int, fn):
    """Run fn under a fixed torch seed (torchmetrics' KID draws its subsets from the global generator), then
    restore the global generator's state."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return fn()
    finally:
        torch.set_rng_state(state)


def _stack(images: list[Image.Image]) -> torch.Tensor:
    return to_tensor(np.stack([np.asarray(im) for im in images]))


def _markdown(report: dict[str, Any], grid: str, plot: str) -> str:
    head = "| images | " + " | ".join(title for _, title in METRICS) + " |"
    rows = [head, "|" + "---|" * (len(METRICS) + 1)]
    for name, f in report["figures"].items():
        rows.append(f"| {name} | " + " | ".join(f"{f[key]:.4g}" for key, _ in METRICS) + " |")
    return "\n".join([
        "# Realism and alignment on a dataset", "",
        f"{report['evaluated_items']} evaluated items (their captions drawn once each: seed k for item k) against a "
        f"reference half of {report['reference_items']} real images, split at random (seed {report['seed']}). "
        f"The items are {split_note(report['data_split'])}. "
        "All figures use the wordbrush CLIP named in the command (trained here: no Inception weights exist offline), "
        "so they are comparable only between reports made with the same CLIP.", "",
        *rows, "",
        "- *real images*: the evaluation half's own images (the floor of FD/KID/FJD and the ceiling of "
        "CLIP score and R-precision at this n).",
        "- *shuffled captions*: the model's images for another item's caption, scored against the item's own: "
        "chance alignment. Their FD equals the model's in expectation (the same captions, reordered); FJD, which "
        "pairs each image with its caption, separates them.",
        "- R-precision@32: the share of images whose own caption beats 31 captions of other groups.", "",
        f"Sampling: {report['options']}." + (" **The candidates were reranked by the CLIP that measures here, so the "
                                            "model's CLIP score and R-precision are optimistic.**"
                                            if report["reranked_by_measuring_clip"] else ""), "",
        f"![real and generated]({grid}) ![figures]({plot})", ""])


def _plot(figures: dict[str, dict[str, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.2))
    colors = ("#4c72b0", "#dd8452", "#8c8c8c")
    for ax, (key, title) in zip(axes, METRICS):
        ax.bar(range(len(figures)), [f[key] for f in figures.values()], color=colors)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(figures)), ["real", "model", "shuffled"])
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

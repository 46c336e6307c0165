"""The gan's collapse check: the spread of 16 seeds for one prompt, in CLIP features, against that of 16 real
images of it (train/gan.py stops a run whose ratio falls below collapse_ratio, and reports it at the end)."""

from __future__ import annotations

import numpy as np
import torch

from ..clip import CLIPScorer
from ..data.config import DataConfig
from ..data.specs import ObjSpec, PromptSpec, render_spec
from ..data.training import TrainingData
from ..generators.gan import GAN
from ..generators.gan_discriminator import mean_pairwise_distance
from ..text.tokenizer import TextTokenizer
from ..utils.images import to_tensor

COLLAPSE_SEED = 4_000_000


def collapse_probe(cfg: DataConfig, data: TrainingData) -> tuple[str, torch.Tensor]:
    """A prompt and 16 real images of it: shapes renders 16 scenes of one caption; a dataset on disk gives the
    first caption and the first 16 images (spread of real data, a looser reference)."""
    if not cfg.path:
        return shapes_probe(cfg.size)
    b = data.batch(0, 16)
    return b.captions[0], to_tensor(b.images)


def shapes_probe(size: int = 64, prompt: str = "a red circle") -> tuple[str, torch.Tensor]:
    """A shapes prompt and 16 real renders of it (random positions and sizes), the reference spread."""
    spec = PromptSpec("colors", prompt, (ObjSpec("circle", "red"),))
    return prompt, to_tensor(np.stack([render_spec(spec, np.random.default_rng([COLLAPSE_SEED, k]), size)
                                       for k in range(16)]))


def diversity_ratio(images: torch.Tensor, real: torch.Tensor, clip: CLIPScorer) -> float:
    """Mean pairwise distance of the images' CLIP features over that of the real images'."""
    return mean_pairwise_distance(clip.image_features(images)) / max(mean_pairwise_distance(clip.image_features(real)),
                                                                     1e-12)


@torch.no_grad()
def seed_diversity(gan: GAN, tokenizer: TextTokenizer, clip: CLIPScorer, probe: tuple[str, torch.Tensor]) -> float:
    prompt, real = probe
    was_training = gan.training
    gan.eval()
    ids = tokenizer.encode([prompt] * 16, gan.text_len).ids.to(gan.first_weight.device)
    images = gan.sample(ids, [torch.Generator().manual_seed(k) for k in range(16)])
    gan.train(was_training)
    return diversity_ratio(images, real, clip)

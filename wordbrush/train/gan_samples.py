"""The sample grids a gan run writes as it trains (train/gan.py): its sample prompts through the EMA pipeline,
and for a cVAE-GAN the redraws of real images beside draws from the prior."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..data.training import TrainingData
from ..generators.gan import GAN
from ..generators.gan_discriminator import NoiseEncoder
from ..image.vae import DiscreteVAE
from ..pipeline import TextToImagePipeline
from ..text.tokenizer import TextTokenizer
from ..utils.images import save_grid, to_pil, to_tensor


def write_samples(pipe: TextToImagePipeline, prompts: tuple[str, ...], path: Path) -> None:
    """4 images of each prompt, a row each."""
    with warnings.catch_warnings():  # a prompt's unknown words are the sample grid's business, not the log's
        warnings.simplefilter("ignore")
        out = pipe(list(prompts), num_images_per_prompt=4, seed=0)
    save_grid(out.images, path, cols=4, scale=2)


@torch.no_grad()
def write_redraws(g: GAN, enc: NoiseEncoder, vae: DiscreteVAE, tokenizer: TextTokenizer, data: TrainingData,
                  path: Path) -> None:
    """cVAE-GAN: 8 training images (row 1), G's redraw of each from E's mean noise (row 2: what the reconstruction
    term teaches), and G's drawing of the same captions from prior noise (row 3: what sampling gives)."""
    was_training = g.training
    g.eval()
    batch = data.batch(0, 8)
    device = g.first_weight.device
    real = to_tensor(batch.images).to(device)
    text = g.read_text(tokenizer.encode(batch.captions, g.text_len).ids.to(device))
    mu, _ = enc(vae.code_vectors(real), text)
    prior = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0)).to(device)
    rows = [real, g(mu, text), g(prior, text)]
    g.train(was_training)
    save_grid(to_pil(torch.cat(rows).float().clamp(0, 1)), path, cols=8, scale=2)

"""Shared test helpers: tiny, untrained models that run in milliseconds on the CPU."""

import torch

from wordbrush.config import DalleConfig, MaskGITConfig, VAEConfig
from wordbrush.data.shapes import ShapesDataset
from wordbrush.generators.dalle import DALLE
from wordbrush.generators.maskgit import MaskGIT
from wordbrush.image.vae import DiscreteVAE
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.text.tokenizer import TextTokenizer


def tiny_pipeline(image_size: int = 32, text_len: int = 12, captions: int = 400, seed: int = 0,
                  generator: str = "dalle") -> TextToImagePipeline:
    """BPE on `captions` shapes captions, a 2-level VAE with 32 codes, a 2-layer generator of width 32."""
    ds = ShapesDataset(captions, size=image_size)
    tokenizer = TextTokenizer.train((ds.item_arrays(i)[1] for i in range(captions)), vocab_size=300)
    torch.manual_seed(seed)
    vae = DiscreteVAE(VAEConfig(image_size=image_size, channels=(8, 16), num_codes=32, code_dim=8))
    vae.quantizer.initialised.fill_(True)
    shape = dict(text_vocab=tokenizer.vocab_size, text_len=text_len, image_vocab=32, image_grid=vae.grid_size,
                 dim=32, depth=2, heads=4)
    model = MaskGIT(MaskGITConfig(**shape, text_depth=1)) if generator == "maskgit" else DALLE(DalleConfig(**shape))
    return TextToImagePipeline(tokenizer, model, vae)


def generators(seeds) -> list[torch.Generator]:
    """One torch.Generator per image, seeded: what a generator's sample() takes."""
    return [torch.Generator().manual_seed(s) for s in seeds]

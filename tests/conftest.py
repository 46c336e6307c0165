"""Shared test helpers: tiny, untrained models that run in milliseconds on the CPU."""

import torch

from wordbrush.data.shapes import ShapesDataset
from wordbrush.generators.dalle import DALLE, DalleConfig
from wordbrush.generators.maskgit import MaskGIT, MaskGITConfig
from wordbrush.image.vae import DiscreteVAE, VAEConfig
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.text.minilm import load_tokenizer as load_minilm_tokenizer
from wordbrush.text.tokenizer import TextTokenizer


def tiny_pipeline(image_size: int = 32, text_len: int = 12, captions: int = 400, seed: int = 0,
                  generator: str = "dalle", text_encoder: str = "scratch",
                  train_layers: int = 0) -> TextToImagePipeline:
    """A 2-level VAE with 32 codes and a 2-layer generator of width 32, reading BPE trained on `captions` shapes
    captions (scratch) or the pretrained all-MiniLM-L6-v2 with its own tokenizer (minilm)."""
    torch.manual_seed(seed)
    if text_encoder == "minilm":
        tokenizer = load_minilm_tokenizer()
    else:
        ds = ShapesDataset(captions, size=image_size)
        tokenizer = TextTokenizer.train((ds.item_arrays(i)[1] for i in range(captions)), vocab_size=300)
    vae = DiscreteVAE(VAEConfig(image_size=image_size, channels=(8, 16), num_codes=32, code_dim=8))
    vae.quantizer.initialised.fill_(True)
    shape = dict(text_vocab=tokenizer.vocab_size, text_len=text_len, image_vocab=32, image_grid=vae.grid_size,
                 dim=32, depth=2, heads=4, text_encoder=text_encoder, text_encoder_train_layers=train_layers)
    if generator == "maskgit":
        model = MaskGIT(MaskGITConfig(**shape, text_depth=1))
    else:
        model = DALLE(DalleConfig(**shape, text_loss_weight=0.125 if text_encoder == "scratch" else 0.0))
    return TextToImagePipeline(tokenizer, model, vae)


def generators(seeds) -> list[torch.Generator]:
    """One torch.Generator per image, seeded: what a generator's sample() takes."""
    return [torch.Generator().manual_seed(s) for s in seeds]

"""Untrained models at named reference configs, so that speed is measured through the public API at the same
shape as the reference implementation's (TextToImagePipeline.from_config; benchmarks/dalle_pytorch_probe.py)."""

from __future__ import annotations

import torch

from .errors import WordbrushError
from .generators import registry
from .generators.base import ImageGenerator
from .image.vae import DiscreteVAE, VAEConfig
from .text.tokenizer import TextTokenizer

# name -> (generator shape, VAE config). "r1": 64x64 images, a VAE with 3 downsamples and 512 codes, transformer
# width 256, depth 6, 8 heads, 32 text tokens, text vocabulary 1000 (maskgit: its image trunk has this depth, its
# own text encoder its default text_depth on top). The VAE has the reference's decoder widths (dalle-pytorch's
# DiscreteVAE at hidden_dim 64, codebook_dim 256, no residual blocks), so that both sides decode with about the same
# work (ours 0.22 GFLOP an image, its 0.20); our trained models' VAEs are wider.
REFERENCE_CONFIGS = {
    "r1": lambda: (dict(text_vocab=1000, text_len=32, image_vocab=512, image_grid=8, dim=256, depth=6, heads=8),
                   VAEConfig(image_size=64, channels=(64, 64, 64), res_blocks=0, code_dim=256, num_codes=512)),
}


def reference_parts(name: str, seed: int = 0, generator: str = "dalle"
                    ) -> tuple[TextTokenizer, ImageGenerator, DiscreteVAE]:
    """The tokenizer (trained on 2,000 shapes captions), the untrained generator of family `generator` (one that
    writes VAE codes) and the untrained VAE of reference config `name`."""
    if name not in REFERENCE_CONFIGS:
        raise WordbrushError(f"unknown reference config {name!r} (known: {', '.join(REFERENCE_CONFIGS)})")
    model_cls = registry.get(generator).model_class()
    if model_cls.output != "codes":
        raise WordbrushError(f"reference configs are for generators that write VAE codes, not {generator!r}")
    shape, vcfg = REFERENCE_CONFIGS[name]()
    gcfg = model_cls.config_class(**shape)
    from .data.shapes import ShapesDataset

    torch.manual_seed(seed)
    ds = ShapesDataset(2000, size=vcfg.image_size, seed=seed)
    tokenizer = TextTokenizer.train((ds.item_arrays(i)[1] for i in range(len(ds))), gcfg.text_vocab)
    vae = DiscreteVAE(vcfg)
    vae.quantizer.initialised.fill_(True)
    return tokenizer, model_cls(gcfg), vae

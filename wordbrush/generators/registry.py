"""The one registry of generator families, read by the pipeline, the command line, training and bench.

Plain Python: an entry names its class by import path, so listing the families (for `--help`, for choices) loads
no torch. Adding a family is one module with an `ImageGenerator` subclass plus one `register(Family(...))`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..errors import WordbrushError


@dataclass(frozen=True)
class Family:
    name: str  # = the class's `kind`: a saved config.json's "generator"
    model: str | type  # "package.module:Class" (imported on first use) or the class itself
    summary: str  # one line for help texts
    # `wordbrush train NAME`: the training config class and the function that trains it (it takes the config,
    # resume and progress_bar), as "package.module:name" ("" = the command line does not train this family)
    train_config: str = ""
    trainer: str = ""
    # the stage's own path flags beside the shared ones, as (field of the config, help): e.g. ("vae", "...")
    train_flags: tuple[tuple[str, str], ...] = ()
    # the family's critic, "package.module:Class" built from the generator's config (the gan's discriminator), whose
    # weights a saved pipeline keeps as the generator's critic_file ("" = none)
    critic: str = ""

    def model_class(self) -> Any:
        """The ImageGenerator subclass (its module is imported now)."""
        cls = load(self.model) if isinstance(self.model, str) else self.model
        if getattr(cls, "kind", None) != self.name:
            raise WordbrushError(f"generator family {self.name!r}: {cls.__name__}.kind is "
                                 f"{getattr(cls, 'kind', None)!r}")
        return cls


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family; a name already taken is an error (unregister it first)."""
    if family.name in FAMILIES:
        raise WordbrushError(f"a generator family named {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    FAMILIES.pop(name, None)


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise WordbrushError(f"unknown generator {name!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[name]


def load(path: str) -> Any:
    """The object an entry names as "package.module:name" (its module is imported now)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


VAE_FLAG = ("vae", "the trained VAE whose codes it writes: a `wordbrush train vae` folder, a pipeline folder "
                   "or a built-in name such as shapes (overrides the config's vae)")
CLIP_FLAG = ("clip", "a trained CLIP folder (wordbrush train clip) saved with the model to rerank candidates")
TOKENS_TRAINER = "wordbrush.train.tokens:train_generator"  # one loop for every family that writes codes

register(Family("dalle", "wordbrush.generators.dalle:DALLE",
                "the autoregressive transformer (DALL·E): image tokens one by one, on a trained VAE's codes",
                train_config="wordbrush.train.tokens:DalleTrainConfig", trainer=TOKENS_TRAINER,
                train_flags=(VAE_FLAG, CLIP_FLAG)))
register(Family("maskgit", "wordbrush.generators.maskgit:MaskGIT",
                "the parallel-decoding transformer (MaskGIT): all image tokens in a few steps, on a VAE's codes",
                train_config="wordbrush.train.tokens:MaskGITTrainConfig", trainer=TOKENS_TRAINER,
                train_flags=(VAE_FLAG, CLIP_FLAG)))
register(Family("gan", "wordbrush.generators.gan:GAN",
                "the one-pass GAN: pixels from noise + text, against a discriminator, reading text through a CLIP",
                train_config="wordbrush.train.gan:GANTrainConfig", trainer="wordbrush.train.gan:train_gan",
                critic="wordbrush.generators.gan_discriminator:Discriminator",
                train_flags=(("clip", "the trained CLIP folder that reads the captions (overrides the config's clip)"),
                             ("vae", "latent mode: a VAE folder, or a pipeline (a built-in name such as shapes) "
                                     "holding one, whose frozen decoder draws the pixels (overrides the config's "
                                     "vae)"))))

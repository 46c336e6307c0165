"""DataConfig: which training data, at what size, which split (read by data/training.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check
from .reading import DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class DataConfig:
    """Training data: the built-in procedural shapes (path "") or a dataset on disk: a folder of images with
    same-stem .txt captions, a .jsonl/.csv manifest, a .tar shard or a folder of shards (wordbrush.data.folder)."""

    path: str = ""  # "" = the built-in shapes dataset
    size: int = 64
    seed: int = 0
    # shapes: "train" leaves the held-out colour-shape pairs out ("holdout": only them, "all": both).
    # A manifest with a `split` column keeps the rows with this value ("all": every row); other datasets use all items.
    split: str = "train"
    background: tuple[int, ...] = (255, 255, 255)  # behind transparent pixels of images on disk
    # an image on disk whose header states more pixels is skipped as too_large before it is decoded (a 12000 x 12000
    # PNG would take ~2 GB and seconds to decode and shrink to data.size); images past PIL's own decompression-bomb
    # limit (~179 million pixels) are too_large whatever this says
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    # a .jsonl manifest with a `label` column: train on everyday phrasings of the label and its `keywords` beside
    # the row's caption, one of them drawn per epoch ("a red apple", "an apple emoji": data/phrasings.py)
    everyday_captions: bool = False

    def __post_init__(self) -> None:
        check(self.size >= 16, f"data.size must be >= 16, got {self.size}")
        if not self.path:
            check(self.split in ("train", "holdout", "all"),
                  f"data.split must be train, holdout or all for the shapes dataset, not {self.split!r}")
        check(bool(self.split), "data.split must not be empty")
        check(self.max_image_pixels >= self.size * self.size,
              f"data.max_image_pixels must be at least data.size squared ({self.size * self.size}), "
              f"got {self.max_image_pixels}")
        check(len(self.background) == 3 and all(0 <= c <= 255 for c in self.background),
              f"data.background must be three numbers in 0..255, got {list(self.background)}")

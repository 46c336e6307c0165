"""Datasets.

- the built-in procedural `shapes` dataset: scene.py (objects, palette, rendering), placement.py (where objects
  go), captions.py (their words), shapes.py (sampling scenes, the dataset), specs.py (what a prompt asks for,
  and scenes that give it);
- your own data: folder.py (folders, manifests, open_dataset), shards.py (tar shards), reading.py (the per-item
  rules every reader shares); training.py (the batches a training loop reads);
- the emoji dataset builder: emoji.py.
"""

from .captions import RESERVED_WORDS, caption
from .folder import FolderDataset, ManifestDataset, open_dataset
from .reading import prepare_image
from .scene import COLORS, PALETTE, SHAPES, SIZES, Obj, Scene, render
from .shapes import DEFAULT_HOLDOUT, ShapesDataset, sample_scene, write_dataset
from .shards import TarShardDataset, write_webdataset

__all__ = ["COLORS", "DEFAULT_HOLDOUT", "PALETTE", "RESERVED_WORDS", "SHAPES", "SIZES", "FolderDataset",
           "ManifestDataset", "Obj", "Scene", "ShapesDataset", "TarShardDataset", "caption", "open_dataset",
           "prepare_image", "render", "sample_scene", "write_dataset", "write_webdataset"]

"""Datasets. The built-in procedural `shapes` dataset: scene.py (objects, palette, rendering), placement.py (where
objects go), captions.py (their words) and shapes.py (sampling scenes, the dataset); your own
data (folders, manifests, tar shards) in folder.py; the emoji dataset builder in emoji.py."""

from .captions import RESERVED_WORDS, caption
from .folder import (FolderDataset, ManifestDataset, TarShardDataset, open_dataset, prepare_image,
                     write_webdataset)
from .scene import COLORS, PALETTE, SHAPES, SIZES, Obj, Scene, render
from .shapes import DEFAULT_HOLDOUT, ShapesDataset, sample_scene, write_dataset

__all__ = ["COLORS", "DEFAULT_HOLDOUT", "PALETTE", "RESERVED_WORDS", "SHAPES", "SIZES", "FolderDataset",
           "ManifestDataset", "Obj", "Scene", "ShapesDataset", "TarShardDataset", "caption", "open_dataset",
           "prepare_image", "render", "sample_scene", "write_dataset", "write_webdataset"]

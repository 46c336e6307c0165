"""Datasets. The built-in procedural `shapes` dataset lives in shapes.py (captions in captions.py)."""

from .captions import RESERVED_WORDS, caption
from .shapes import (COLORS, DEFAULT_HOLDOUT, PALETTE, SHAPES, SIZES, Obj, Scene, ShapesDataset, render,
                     sample_scene, write_dataset)

__all__ = ["COLORS", "DEFAULT_HOLDOUT", "PALETTE", "RESERVED_WORDS", "SHAPES", "SIZES", "Obj", "Scene",
           "ShapesDataset", "caption", "render", "sample_scene", "write_dataset"]

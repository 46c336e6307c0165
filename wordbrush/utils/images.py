"""Images for looking at: tensors <-> PIL, grids written as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 (rounded, clamped)."""
    return images.detach().float().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(a, "RGB") for a in to_uint8(images)]


def make_grid(images: list[Image.Image], cols: int | None = None, pad: int = 2, scale: int = 1,
              background: tuple[int, int, int] = (40, 40, 40)) -> Image.Image:
    """Tile equally sized images into one picture, row-major, `pad` pixels apart, upscaled by `scale`."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    w, h = w * scale, h * scale
    grid = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), background)
    for k, im in enumerate(images):
        if scale != 1:
            im = im.resize((w, h), Image.NEAREST)
        r, c = divmod(k, cols)
        grid.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def save_grid(images: list[Image.Image], path: str | Path, cols: int | None = None, scale: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, cols=cols, scale=scale).save(path)
    return path

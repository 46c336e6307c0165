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
    return save_png(make_grid(images, cols=cols, scale=scale), path)


def save_captioned_grid(rows: list[tuple[str, list]], path: str | Path, cols: int = 4, scale: int = 2,
                        caption_lines: int = 3) -> Path:
    """A grid of cells, each a caption under its images side by side (PIL images or (3, H, W) tensors in [0, 1]):
    for a person to check images against their prompts."""
    import textwrap

    from PIL import ImageDraw, ImageFont

    def as_pil(im) -> Image.Image:
        return im if isinstance(im, Image.Image) else to_pil(im.unsqueeze(0))[0]

    cells = [(text, [as_pil(im) for im in ims]) for text, ims in rows]
    if not cells:
        raise ValueError("save_captioned_grid needs at least one row")
    w, h = cells[0][1][0].size
    w, h = w * scale, h * scale
    per = max(len(ims) for _, ims in cells)
    font = ImageFont.load_default()
    line_h = 12
    cell_w, cell_h = per * w + (per - 1) * 2, h + caption_lines * line_h + 6
    width = max(12, cell_w // 6)  # characters per caption line
    n_rows = math.ceil(len(cells) / cols)
    grid = Image.new("RGB", (cols * (cell_w + 8) + 8, n_rows * (cell_h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for k, (text, ims) in enumerate(cells):
        r, c = divmod(k, cols)
        x, y = 8 + c * (cell_w + 8), 8 + r * (cell_h + 8)
        for j, im in enumerate(ims):
            grid.paste(im.resize((w, h), Image.NEAREST), (x + j * (w + 2), y))
        lines = textwrap.wrap(text, width)[:caption_lines]
        for i, line in enumerate(lines):
            draw.text((x, y + h + 3 + i * line_h), line, fill=(0, 0, 0), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def save_png(image: Image.Image, path: str | Path, text: dict[str, str] | None = None) -> Path:
    """Write a PNG atomically (utils/atomic.py: a reader never sees half a file), with `text` as PNG text chunks
    (iTXt): how the image was made, for whoever opens it."""
    import io

    from PIL.PngImagePlugin import PngInfo

    from .atomic import write_bytes

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return write_bytes(path, buf.getvalue())

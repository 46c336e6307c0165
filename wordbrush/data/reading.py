"""Reading one item of your own data, the same way for every reader (folder.py, shards.py): an image of any size
and mode made a size x size RGB image (prepare_image), a caption source split into usable lines (parse_captions),
and the base every dataset shares (skip counts, caption choice, summary). The rules are folder.py's docstring's.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from ..errors import WordbrushError

IMAGE_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_CAPTION_CHARS = 2000
WHITE = (255, 255, 255)


def to_rgb(img: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """RGB version of any PIL image; transparent pixels are composited onto `background`."""
    if img.mode == "P" and "transparency" in img.info or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        img = img.convert("RGBA")
        out = Image.new("RGB", img.size, tuple(background))
        out.paste(img, mask=img.getchannel("A"))
        return out
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float grayscale: scale to 8 bits
        a = np.asarray(img, dtype=np.float64)
        if a.size and a.max() > 255:
            a = a / 257.0
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def prepare_image(img: Image.Image, size: int, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """EXIF-rotate, make RGB (compositing transparency on `background`), shorter side to `size`, centre crop."""
    img = ImageOps.exif_transpose(img) or img
    img = to_rgb(img, background)
    if img.size == (size, size):
        return img
    return ImageOps.fit(img, (size, size), Image.LANCZOS, centering=(0.5, 0.5))


def decode_image(source, size: int, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Open (a path or bytes), fully decode and prepare an image; raises on anything unreadable."""
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    with Image.open(fp) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # decode large JPEGs at a reduced scale (still >= size)
        im.load()
        return prepare_image(im, size, background)


def parse_captions(text: str) -> tuple[list[str], str | None]:
    """(usable caption lines, reason when there are none: 'empty_caption' or 'caption_too_long')."""
    lines = [" ".join(ln.split()) for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return [], "empty_caption"
    ok = [ln for ln in lines if len(ln) <= MAX_CAPTION_CHARS]
    return (ok, None) if ok else ([], "caption_too_long")


class Reader:
    """What every dataset of your own data shares: size, seed, background, skip counts (reason -> count) and the
    choice of one caption line per access."""

    kind = "dataset"

    def __init__(self, size: int, seed: int, background: tuple[int, int, int]):
        if size < 1:
            raise WordbrushError(f"size must be >= 1, got {size}")
        self.size, self.seed, self.background = int(size), int(seed), tuple(background)
        self.skipped: dict[str, int] = {}

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _choose(self, index: int, captions: list[str], access: int) -> str:
        if len(captions) == 1:
            return captions[0]
        rng = np.random.default_rng([self.seed, index, access])
        return captions[int(rng.integers(len(captions)))]

    def summary(self) -> str:
        n = self._usable_count()
        skipped = sum(self.skipped.values())
        detail = ", ".join(f"{v} {k}" for k, v in sorted(self.skipped.items()))
        return f"{self.kind}: {n} usable items, {skipped} skipped" + (f" ({detail})" if detail else "")

    def _usable_count(self) -> int:
        return len(self)  # type: ignore[arg-type]

    def actual_split(self) -> str:
        """Which split the items really are: "all" here, for data with no split to choose from (a folder, tar
        shards), whatever split was asked for. A report must say this, not the split it asked for."""
        return "all"

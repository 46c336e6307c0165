"""Reading one item of your own data, the same way for every reader (folder.py, shards.py): an image of any size
and mode made a size x size RGB image (decode_image, prepare_image), a caption source made usable lines
(read_caption_file, decode_captions, parse_captions), what a path on disk is (check_path), and the base every
dataset shares (skip counts and the skipped files by reason, caption choice, summary). The rules and the skip
reasons are folder.py's docstring's.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import WordbrushError

IMAGE_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# images in formats wordbrush does not read: counted as unsupported_format, never passed over without a word
OTHER_IMAGE_EXTS: tuple[str, ...] = (".heic", ".heif", ".avif", ".jxl", ".svg", ".psd", ".raw", ".cr2", ".nef",
                                     ".arw", ".dng")
MAX_CAPTION_CHARS = 2000  # a caption line longer than this is dropped
MAX_CAPTION_BYTES = 1 << 20  # a caption file / member larger than this is caption_too_long, without reading it
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192  # DataConfig.max_image_pixels: larger images (by their header) are too_large
MAX_LISTED = 100  # skipped files kept per reason (the counts are complete)
PREVIEW_NAMES = ("grid.png", "inspect-grid.png")  # what `wordbrush data` writes into a dataset folder
WHITE = (255, 255, 255)


class Skip(Exception):
    """An item that cannot be used; `reason` is one of folder.py's skip reasons."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _gray8(img: Image.Image) -> Image.Image:
    """8-bit grayscale of a 16-bit, 32-bit integer or float image: I;16 is always 0..65535; I and F are read as
    0..65535 when a value exceeds 255, F as 0..1 when none exceeds 1, else as 0..255."""
    a = np.asarray(img, dtype=np.float64)
    top = float(a.max()) if a.size else 0.0
    if img.mode.startswith("I;16") or top > 255:
        a = a / 257.0
    elif img.mode == "F" and top <= 1.0:
        a = a * 255.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """RGB version of any PIL image; transparent pixels are composited onto `background`."""
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info or img.mode == "PA":
        img = img.convert("RGBA")  # a palette, gray or RGB image with a transparent colour (tRNS)
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        img = img.convert("RGBA")
        out = Image.new("RGB", img.size, tuple(background))
        out.paste(img, mask=img.getchannel("A"))
        return out
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _gray8(img)
    elif img.mode == "LAB":  # PIL's plain convert reads LAB as if it were RGB
        from PIL import ImageCms

        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        return ImageCms.applyTransform(img, ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, HSV, RGB


def prepare_image(img: Image.Image, size: int, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """EXIF-rotate, make RGB (compositing transparency on `background`), shorter side to `size`, centre crop."""
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a damaged EXIF block: the pixels are still good, use them unrotated
        pass
    img = to_rgb(img, background)
    if img.size == (size, size):
        return img
    return ImageOps.fit(img, (size, size), Image.LANCZOS, centering=(0.5, 0.5))


def decode_image(source, size: int, background: tuple[int, int, int] = WHITE,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Open (a path or bytes), check the size its header states, fully decode and prepare an image.

    Raises Skip: "empty_file", "too_large" (more than max_pixels by the header, checked before any pixel is
    decoded; or past PIL's own decompression-bomb limit) or "unreadable_image" (not an image, truncated, ...)."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise Skip("empty_file")
        fp = io.BytesIO(source)
    else:
        fp = source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the bound below is ours
            with Image.open(fp) as im:  # lazy: reads the header only
                w, h = im.size
                if w * h > max_pixels:
                    raise Skip("too_large", f"{w}x{h} pixels, more than {max_pixels}")
                if im.format == "JPEG":
                    im.draft("RGB", (size, size))  # decode large JPEGs at a reduced scale (still >= size)
                im.load()
                return prepare_image(im, size, background)
    except Skip:
        raise
    except Image.DecompressionBombError as e:
        raise Skip("too_large", str(e)) from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise Skip("unreadable_image", f"{type(e).__name__}: {e}") from None


def check_path(path: Path) -> int:
    """The size of a regular file at `path` (following symlinks); raises Skip naming what else it is:
    missing_file, dangling_symlink, symlink_loop, not_a_file (a folder, a pipe, a device) or unreadable_file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise Skip("dangling_symlink" if os.path.islink(path) else "missing_file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Skip("symlink_loop") from None
        raise Skip("unreadable_file", e.strerror or str(e)) from None
    if not stat.S_ISREG(st.st_mode):
        raise Skip("not_a_file", "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
    return st.st_size


def decode_captions(data: bytes) -> tuple[list[str], str | None]:
    """parse_captions of bytes that must be UTF-8 (a byte-order mark is allowed): 'caption_not_utf8' when they
    are not. Text in another encoding is skipped rather than read as replacement characters the model would learn."""
    if len(data) > MAX_CAPTION_BYTES:
        return [], "caption_too_long"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], "caption_not_utf8"
    return parse_captions(text)


def read_caption_file(path: Path) -> tuple[list[str], str | None]:
    """The caption lines of a .txt file: (lines, None), or ([], reason) with reason missing_caption (no such
    file), unreadable_caption (a folder, a loop, a dangling link, no permission), caption_too_long,
    caption_not_utf8 or empty_caption."""
    try:
        n = check_path(path)
    except Skip as e:
        return [], "missing_caption" if e.reason == "missing_file" else "unreadable_caption"
    if n > MAX_CAPTION_BYTES:
        return [], "caption_too_long"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CAPTION_BYTES + 1)
    except OSError:
        return [], "unreadable_caption"
    return decode_captions(data)


def parse_captions(text: str) -> tuple[list[str], str | None]:
    """(usable caption lines, reason when there are none: 'empty_caption' or 'caption_too_long')."""
    lines = [" ".join(ln.split()) for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return [], "empty_caption"
    ok = [ln for ln in lines if len(ln) <= MAX_CAPTION_CHARS]
    return (ok, None) if ok else ([], "caption_too_long")


class Reader:
    """What every dataset of your own data shares: size, seed, background, the image bound, skip counts
    (reason -> count), the skipped files (reason -> at most MAX_LISTED paths) and the choice of one caption
    line per access."""

    kind = "dataset"

    def __init__(self, size: int, seed: int, background: tuple[int, int, int],
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        if size < 1:
            raise WordbrushError(f"size must be >= 1, got {size}")
        self.size, self.seed, self.background = int(size), int(seed), tuple(background)
        self.max_pixels = int(max_pixels)
        self.skipped: dict[str, int] = {}
        self.skipped_files: dict[str, list[str]] = {}

    def _skip(self, reason: str, where: object = None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if where is not None:
            listed = self.skipped_files.setdefault(reason, [])
            if len(listed) < MAX_LISTED:
                listed.append(str(where))

    def _decode(self, source) -> Image.Image:
        return decode_image(source, self.size, self.background, self.max_pixels)

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

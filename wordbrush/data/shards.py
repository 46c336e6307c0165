"""WebDataset-style tar shards: read streamed (TarShardDataset) and written (write_webdataset). Items and skip
reasons are folder.py's docstring's."""

from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

from ..errors import WordbrushError
from .reading import (DEFAULT_MAX_IMAGE_PIXELS, IMAGE_EXTS, MAX_CAPTION_BYTES, OTHER_IMAGE_EXTS, WHITE, Reader, Skip,
                      decode_captions)


def max_member_bytes(max_pixels: int) -> int:
    """The largest image member a shard reader reads into memory: 8 bytes a pixel (16-bit RGBA, uncompressed)
    at max_pixels, plus 1 MiB of metadata. A larger member is too_large, and is not read."""
    return 8 * max_pixels + (1 << 20)


def _ext_kind(ext: str) -> str | None:
    last = "." + ext.rsplit(".", 1)[-1]
    return "image" if last in IMAGE_EXTS else "other_image" if last in OTHER_IMAGE_EXTS else None


class TarShardDataset(Reader):
    """WebDataset-style tar shards, streamed (nothing is held in memory but one sample).

    Members are grouped into samples by key (the path up to the first '.' of the file name, as in
    WebDataset): ``000123.png`` + ``000123.txt``. A sample needs one image member and one .txt member.
    The ``index`` of a sample (for caption choice) is its running position over all shards.

    ``skipped`` and ``skipped_files`` count the pass being read; ``complete_skipped`` holds the counts of the
    last pass read to its end (None before one has), which are every broken sample's.
    """

    kind = "tar shards"

    def __init__(self, shards: Iterable[str | Path], size: int = 64, seed: int = 0, background=WHITE,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        super().__init__(size, seed, background, max_pixels)
        self.shards = [Path(s) for s in shards]
        if not self.shards:
            raise WordbrushError("no .tar shards given")
        self.seen = 0  # usable samples yielded by the last complete or running pass
        self.complete_skipped: dict[str, int] | None = None
        self.complete_skipped_files: dict[str, list[str]] | None = None
        self._accesses: dict[int, int] = {}

    def _usable_count(self) -> int:
        return self.seen

    def _member(self, tf: tarfile.TarFile, m: tarfile.TarInfo, ext: str):
        """A member's bytes, or a Skip for one that is not read (too large, a link)."""
        kind = _ext_kind(ext)
        if not m.isfile():
            return Skip("not_a_file", "a link member")
        if ext == "txt" and m.size > MAX_CAPTION_BYTES:
            return Skip("caption_too_long")
        if kind == "image" and m.size > max_member_bytes(self.max_pixels):
            return Skip("too_large", f"a member of {m.size} bytes")
        f = tf.extractfile(m)
        return f.read() if f is not None else b""

    def _samples(self, shard: Path) -> Iterator[tuple[str, dict[str, bytes | Skip]]]:
        key, parts = None, {}
        try:
            with tarfile.open(shard, "r|*") as tf:
                for m in tf:
                    name = m.name.rsplit("/", 1)
                    stem, dot, ext = name[-1].partition(".")
                    ext = ext.lower() if dot else ""
                    if not m.isfile() and not ((m.issym() or m.islnk()) and (ext == "txt" or _ext_kind(ext))):
                        continue  # folders and other members that are not samples
                    k = (name[0] + "/" if len(name) == 2 else "") + stem
                    if k != key and key is not None:
                        yield key, parts
                        parts = {}
                    key = k
                    parts[ext] = self._member(tf, m, ext)
        except (tarfile.TarError, OSError, EOFError, zlib.error):  # zlib.error: a damaged .tar.gz:
            self._skip("broken_shard", shard)
        if key is not None:
            yield key, parts

    def _check(self, parts: dict[str, bytes | Skip]) -> tuple[list[str], bytes]:
        """(caption lines, image bytes) of a sample, or Skip."""
        img_ext = next((e for e in parts if _ext_kind(e)), None)
        if _ext_kind(img_ext) == "other_image":
            raise Skip("unsupported_format")
        if "txt" not in parts:
            raise Skip("missing_caption")
        for part in (parts["txt"], parts[img_ext]):
            if isinstance(part, Skip):
                raise part
        captions, reason = decode_captions(parts["txt"])
        if reason:
            raise Skip(reason)
        return captions, parts[img_ext]

    def __iter__(self) -> Iterator[tuple[Image.Image, str]]:
        self.skipped, self.skipped_files = {}, {}
        self.seen = 0
        index = 0
        for shard in self.shards:
            for key, parts in self._samples(shard):
                if not any(_ext_kind(e) for e in parts):
                    if "txt" in parts:
                        self._skip("missing_file", f"{shard}:{key}")
                    continue  # other members (e.g. .json) without an image are not samples
                try:
                    captions, data = self._check(parts)
                    img = self._decode(data)
                except Skip as e:
                    self._skip(e.reason, f"{shard}:{key}")
                    continue
                k = self._accesses.get(index, 0)
                self._accesses[index] = k + 1
                self.seen += 1
                yield img, self._choose(index, captions, k)
                index += 1
        self.complete_skipped = dict(self.skipped)
        self.complete_skipped_files = {k: list(v) for k, v in self.skipped_files.items()}


def _add_member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def write_webdataset(dataset: Iterable, out_dir: str | Path, shard_size: int = 1000, progress: bool = False,
                     prefix: str = "shard") -> list[Path]:
    """Write the (image, caption, ...) items of a dataset as tar shards ``<prefix>-000000.tar``, ... with
    members ``NNNNNNNN.png`` + ``NNNNNNNN.txt`` (the prepared size x size images); return the shard paths."""
    if shard_size < 1:
        raise WordbrushError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WordbrushError(f"output path {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    paths: list[Path] = []
    tf = None
    try:
        for n, item in enumerate(tqdm(dataset, desc="shards", unit="img", disable=not progress)):
            img, caption = item[0], item[1]
            if n % shard_size == 0:
                if tf is not None:
                    tf.close()
                paths.append(out / f"{prefix}-{len(paths):06d}.tar")
                tf = tarfile.open(paths[-1], "w", format=tarfile.PAX_FORMAT)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            _add_member(tf, f"{n:08d}.png", buf.getvalue())
            _add_member(tf, f"{n:08d}.txt", (caption + "\n").encode("utf-8"))
    finally:
        if tf is not None:
            tf.close()
    return paths

"""Your own image-caption data: a folder of images with .txt captions, a JSONL/CSV manifest, or WebDataset
tar shards. Every item is ``(PIL RGB image of size x size, caption)``.

Images of any size and mode are converted the same way (``prepare_image``): EXIF rotation applied,
transparency (RGBA, LA, P with a transparent colour) composited on ``background`` (white by default),
grayscale and 16-bit images made RGB, the shorter side resized to ``size`` (LANCZOS) and the centre cropped.

A caption source (a .txt file, a manifest cell, a tar member) may hold several captions, one per line;
blank lines are ignored, and each access picks one with ``np.random.default_rng([seed, index, k])`` where
k counts earlier accesses of that item in this dataset object (so a fresh dataset with the same seed
gives the same captions in the same order). A caption line longer than MAX_CAPTION_CHARS is dropped,
never cut mid-sentence.

Broken items are skipped and counted, never fatal; ``ds.skipped`` maps reason -> count:
  empty_file         the image file has zero bytes
  unreadable_image   not an image, truncated or otherwise undecodable
  missing_caption    no caption file / cell for the image
  empty_caption      the caption is empty or only whitespace
  caption_too_long   every caption line is longer than MAX_CAPTION_CHARS
  missing_file       a manifest row names a file that does not exist (in a shard: a .txt without image)
  bad_row            a manifest row that cannot be parsed or lacks the image column
  broken_shard       a tar shard that cannot be read (the items read before the damage are kept)
Folder and manifest datasets check every item when they are built (their len() counts usable items);
tar shards are streamed, so their counts grow as they are read.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps

from ..errors import WordbrushError

IMAGE_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_CAPTION_CHARS = 2000
WHITE = (255, 255, 255)
IMAGE_KEYS = ("file", "image")
CAPTION_KEYS = ("caption", "text")


# ---------------------------------------------------------------------------------------------
# Images and captions


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


def _caption_cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Datasets


class _Base:
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


class _Indexed(_Base):
    """A map-style dataset over (image path, caption lines) pairs checked when it is built."""

    def __init__(self, size: int, seed: int, background):
        super().__init__(size, seed, background)
        self.items: list[tuple[Path, list[str]]] = []
        self.groups: list[str] = []  # per item: what counts as "the same thing" (a manifest's concept/group column;
        # else the first caption), so that retrieval metrics draw distractors from other groups
        self._accesses: dict[int, int] = {}

    def _add(self, path: Path, caption_text: str | None, group: str | None = None) -> None:
        if caption_text is None:
            return self._skip("missing_caption")
        captions, reason = parse_captions(caption_text)
        if reason:
            return self._skip(reason)
        try:
            if path.stat().st_size == 0:
                return self._skip("empty_file")
            decode_image(path, self.size, self.background)
        except FileNotFoundError:
            return self._skip("missing_file")
        except Exception:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
            return self._skip("unreadable_image")
        self.items.append((path, captions))
        self.groups.append(group or captions[0])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Image.Image, str]:
        i = int(i)
        if i < 0:
            i += len(self.items)
        if not 0 <= i < len(self.items):
            raise IndexError(f"index {i} out of range for a dataset of {len(self.items)} items")
        path, captions = self.items[i]
        k = self._accesses.get(i, 0)
        self._accesses[i] = k + 1
        try:
            img = decode_image(path, self.size, self.background)
        except Exception as e:  # changed on disk since the dataset was built
            raise WordbrushError(f"{path}: image became unreadable after the dataset was built: {e}") from None
        return img, self._choose(i, captions, k)

    def __iter__(self) -> Iterator[tuple[Image.Image, str]]:
        for i in range(len(self.items)):
            yield self[i]


class FolderDataset(_Indexed):
    """Images anywhere under `root` with a same-stem .txt caption file beside each (one caption per line)."""

    kind = "folder"

    def __init__(self, root: str | Path, size: int = 64, seed: int = 0, background=WHITE):
        super().__init__(size, seed, background)
        self.root = Path(root)
        if not self.root.is_dir():
            raise WordbrushError(f"not a folder: {self.root}")
        for path in sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file()):
            txt = path.with_suffix(".txt")
            text = None
            if txt.is_file():
                try:
                    text = txt.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    text = None
            self._add(path, text)


class ManifestDataset(_Indexed):
    """A JSONL or CSV manifest with an image column (`file` or `image`, relative to the manifest's folder)
    and a caption column (`caption` or `text`; in JSONL also a list of captions). Optional columns: `split`
    (with split="train", say, only those rows are items; other rows are left out, not counted as skipped) and
    `concept` or `group` (items of one group are the same thing: retrieval metrics never use one as another's
    distractor)."""

    kind = "manifest"

    def __init__(self, manifest: str | Path, size: int = 64, seed: int = 0, background=WHITE,
                 split: str = "all"):
        super().__init__(size, seed, background)
        self.split = split
        self.other_split = 0  # rows of another split
        self.manifest = Path(manifest)
        suffix = self.manifest.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise WordbrushError(f"manifest must be .jsonl or .csv: {self.manifest}")
        try:
            text = self.manifest.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise WordbrushError(f"cannot read manifest {self.manifest}: {e.strerror or e}") from None
        rows = self._jsonl_rows(text) if suffix == ".jsonl" else self._csv_rows(text)
        base = self.manifest.parent
        for row in rows:
            if not isinstance(row, dict):
                self._skip("bad_row")
                continue
            file = next((row[k] for k in IMAGE_KEYS if row.get(k)), None)
            if not isinstance(file, str):
                self._skip("bad_row")
                continue
            if split != "all" and row.get("split") not in (None, "", split):
                self.other_split += 1
                continue
            caption = next((_caption_cell(row[k]) for k in CAPTION_KEYS if row.get(k) is not None), None)
            group = next((str(row[k]) for k in ("concept", "group") if row.get(k) not in (None, "")), None)
            self._add(base / file, caption, group)

    def _jsonl_rows(self, text: str) -> Iterator:
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield None

    def _csv_rows(self, text: str) -> Iterator:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not any(k in reader.fieldnames for k in IMAGE_KEYS):
            raise WordbrushError(f"{self.manifest}: CSV header needs a 'file' or 'image' column and a 'caption' "
                                 f"or 'text' column, got {reader.fieldnames}")
        try:
            yield from reader
        except csv.Error:
            yield None


class TarShardDataset(_Base):
    """WebDataset-style tar shards, streamed (nothing is held in memory but one sample).

    Members are grouped into samples by key (the path up to the first '.' of the file name, as in
    WebDataset): ``000123.png`` + ``000123.txt``. A sample needs one image member and one .txt member.
    The ``index`` of a sample (for caption choice) is its running position over all shards.
    """

    kind = "tar shards"

    def __init__(self, shards: Iterable[str | Path], size: int = 64, seed: int = 0, background=WHITE):
        super().__init__(size, seed, background)
        self.shards = [Path(s) for s in shards]
        if not self.shards:
            raise WordbrushError("no .tar shards given")
        self.seen = 0  # usable samples yielded by the last complete or running pass
        self._accesses: dict[int, int] = {}

    def _usable_count(self) -> int:
        return self.seen

    def _samples(self, shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
        key, parts = None, {}
        try:
            with tarfile.open(shard, "r|*") as tf:
                for m in tf:
                    if not m.isfile():
                        continue
                    name = m.name.rsplit("/", 1)
                    stem, dot, ext = name[-1].partition(".")
                    k = (name[0] + "/" if len(name) == 2 else "") + stem
                    if k != key and key is not None:
                        yield key, parts
                        parts = {}
                    key = k
                    f = tf.extractfile(m)
                    parts[ext.lower() if dot else ""] = f.read() if f is not None else b""
        except (tarfile.TarError, OSError, EOFError):
            self._skip("broken_shard")
        if key is not None:
            yield key, parts

    def __iter__(self) -> Iterator[tuple[Image.Image, str]]:
        self.skipped = {}
        self.seen = 0
        index = 0
        for shard in self.shards:
            for key, parts in self._samples(shard):
                img_ext = next((e for e in parts if "." + e.rsplit(".", 1)[-1] in IMAGE_EXTS), None)
                if img_ext is None:
                    if "txt" in parts:
                        self._skip("missing_file")
                    continue  # other members (e.g. .json) without an image are not samples
                if "txt" not in parts:
                    self._skip("missing_caption")
                    continue
                captions, reason = parse_captions(parts["txt"].decode("utf-8", errors="replace"))
                if reason:
                    self._skip(reason)
                    continue
                data = parts[img_ext]
                if not data:
                    self._skip("empty_file")
                    continue
                try:
                    img = decode_image(data, self.size, self.background)
                except Exception:
                    self._skip("unreadable_image")
                    continue
                k = self._accesses.get(index, 0)
                self._accesses[index] = k + 1
                self.seen += 1
                yield img, self._choose(index, captions, k)
                index += 1


# ---------------------------------------------------------------------------------------------
# Opening and writing


def open_dataset(path: str | Path, size: int = 64, seed: int = 0, background: tuple[int, int, int] = WHITE,
                 split: str = "all"):
    """The right dataset for a path: a folder of images + .txt, a .jsonl/.csv manifest, a .tar shard, or a
    folder of .tar shards. split selects rows of a manifest's `split` column (other kinds have none)."""
    p = Path(path)
    if not p.exists():
        raise WordbrushError(f"dataset path does not exist: {p}")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".csv"):
            return ManifestDataset(p, size, seed, background, split)
        if suffix == ".tar":
            return TarShardDataset([p], size, seed, background)
    elif p.is_dir():
        if any(q.suffix.lower() in IMAGE_EXTS for q in p.rglob("*") if q.is_file()):
            return FolderDataset(p, size, seed, background)
        shards = sorted(q for q in p.glob("*.tar") if q.is_file())
        if shards:
            return TarShardDataset(shards, size, seed, background)
        raise WordbrushError(f"no images or .tar shards in folder: {p}")
    raise WordbrushError(f"dataset path is not a folder, manifest or tar shard: {p}")


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

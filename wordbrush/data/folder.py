"""Your own image-caption data: a folder of images with .txt captions, a JSONL/CSV manifest, or WebDataset
tar shards (shards.py); open_dataset picks the reader for a path. Every item is ``(PIL RGB image of size x size,
caption)``, read by the rules below (reading.py holds the per-item code every reader shares).

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
from pathlib import Path
from typing import Iterator

from PIL import Image

from ..errors import WordbrushError
from .reading import IMAGE_EXTS, WHITE, Reader, decode_image, parse_captions
from .shards import TarShardDataset

IMAGE_KEYS = ("file", "image")
CAPTION_KEYS = ("caption", "text")


def _caption_cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return str(value)


class _Indexed(Reader):
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
        self.split_named = 0  # items whose row names the split asked for (the rest have no split value)
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
            before = len(self.items)
            self._add(base / file, caption, group)
            self.split_named += len(self.items) > before and row.get("split") not in (None, "")

    def actual_split(self) -> str:
        """Which split the items really are: the split asked for when every item's row names it; "all" when
        split="all" or no row names a split (every item, training images included); "<split> + N without a
        split" when only some rows name it (rows without a split value belong to every split)."""
        if self.split == "all" or self.split_named == 0:
            return "all"
        unnamed = len(self.items) - self.split_named
        return self.split if unnamed == 0 else f"{self.split} + {unnamed} without a split"

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

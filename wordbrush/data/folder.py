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

Broken items are skipped and counted, never fatal and never silent: ``ds.skipped`` maps reason -> count and
``ds.skipped_files`` reason -> the first MAX_LISTED paths (a manifest's rows as ``manifest:line``, a shard's
samples as ``shard.tar:key``). The reasons:
  empty_file         the image file has zero bytes
  unreadable_image   not an image (a .png that holds text), truncated or otherwise undecodable; an image whose
                     name says another format (a .png that is a JPEG) is read as what it is
  too_large          the image's header states more than max_image_pixels pixels (DataConfig; 8192 x 8192 by
                     default), or more than PIL's own decompression-bomb limit: refused before decoding
  unsupported_format an image in a format wordbrush does not read (.heic, .avif, .svg, ...; OTHER_IMAGE_EXTS)
  not_a_file         a folder, pipe or device named like an image (in a shard: a link member)
  dangling_symlink   a symbolic link to nothing
  symlink_loop       a symbolic link that leads back to itself, or a folder link to a folder above it
  unreadable_file    the image cannot be opened at all (no permission, an I/O error)
  missing_caption    no caption file / cell for the image
  unreadable_caption the caption file is a folder, a loop, a dangling link or cannot be read
  empty_caption      the caption is empty or only whitespace
  caption_too_long   every caption line is longer than MAX_CAPTION_CHARS, or the caption file / member is larger
                     than MAX_CAPTION_BYTES (not read)
  caption_not_utf8   the caption is not UTF-8 text (a byte-order mark is fine): skipped, not guessed at
  missing_file       a manifest row names a file that does not exist (in a shard: a .txt without image)
  bad_row            a manifest row that cannot be parsed (bad JSON, a CSV error, a file name that is not UTF-8)
                     or lacks the image column, or whose caption is neither text nor a list of texts
  broken_shard       a tar shard that cannot be read (the items read before the damage are kept)
Folder and manifest datasets check every item when they are built (their len() counts usable items);
tar shards are streamed, so their counts grow as they are read.

A folder reader follows symbolic links to files and to folders (a link to a folder above it is a loop, counted
once). It leaves out the previews `wordbrush data shapes|emoji|inspect` write (grid.png, inspect-grid.png) when no
caption file is beside them; they are listed in ``ds.ignored`` and named in the summary, not counted as skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ..errors import WordbrushError
from .reading import (DEFAULT_MAX_IMAGE_PIXELS, IMAGE_EXTS, OTHER_IMAGE_EXTS, PREVIEW_NAMES, WHITE, Reader, Skip,
                      check_path, parse_captions, read_caption_file)
from .phrasings import everyday_phrasings
from .shards import TarShardDataset

IMAGE_KEYS = ("file", "image")
CAPTION_KEYS = ("caption", "text")


def _not_utf8(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _caption_cell(value) -> str | None:
    """The caption text of a manifest cell: a string or a list of strings (one caption each); else ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    raise ValueError(f"a caption must be text or a list of texts, got {type(value).__name__}")


def _everyday(row: dict, caption: str) -> list[str]:
    """A manifest row's everyday phrasings (ManifestDataset's everyday option); lists of non-text are ignored."""
    keywords = next((row[k] for k in ("keywords", "tags") if isinstance(row.get(k), list)), [])
    style = row.get("style") if isinstance(row.get("style"), str) else ""
    return everyday_phrasings(row["label"], [k for k in keywords if isinstance(k, str)],
                              style if style and f"{style} style" in caption else "")


def walk_folder(root: Path) -> tuple[list[tuple[Path, str | None]], list[Path]]:
    """Every entry under `root` that is, or is named like, an image: (path, reason it is broken or None), sorted
    by path; and the previews left out. Links to files and folders are followed; a folder link that leads to a
    folder above it, or a link that cannot be resolved, is a symlink_loop (counted once, not followed)."""
    found: list[tuple[Path, str | None]] = []
    ignored: list[Path] = []

    def visit(folder: Path, above: frozenset[str]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            found.append((folder, "unreadable_file"))
            return
        for e in entries:
            path = Path(e.path)
            ext = path.suffix.lower()
            try:
                is_dir = e.is_dir()  # follows links; False for a loop or a dangling link
            except OSError:
                is_dir = False
            if is_dir and ext not in IMAGE_EXTS:
                real = os.path.realpath(path)
                if real in above:
                    found.append((path, "symlink_loop"))
                else:
                    visit(path, above | {real})
                continue
            if ext in OTHER_IMAGE_EXTS:
                found.append((path, "unsupported_format"))
            elif ext in IMAGE_EXTS:
                if e.name in PREVIEW_NAMES and not path.with_suffix(".txt").exists() and e.is_file():
                    ignored.append(path)
                    continue
                try:
                    check_path(path)
                    found.append((path, None))
                except Skip as s:
                    found.append((path, s.reason))
            elif ext != ".txt" and e.is_symlink() and not os.path.exists(path):  # (.txt: the caption's reader)
                try:
                    check_path(path)
                except Skip as s:  # a loop that is not named like anything: still broken data
                    if s.reason == "symlink_loop":
                        found.append((path, "symlink_loop"))

    visit(root, frozenset({os.path.realpath(root)}))
    found.sort(key=lambda item: str(item[0]))
    return found, ignored


class _Indexed(Reader):
    """A map-style dataset over (image path, caption lines) pairs checked when it is built. With keep_images the
    decoded images are kept (``arrays``, one (size, size, 3) uint8 array per item), so that a loader holding the
    data in memory decodes every file once and cannot meet a file that changed after the check."""

    def __init__(self, size: int, seed: int, background, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 keep_images: bool = False, progress: bool = False):
        super().__init__(size, seed, background, max_pixels)
        self.items: list[tuple[Path, list[str]]] = []
        self.groups: list[str] = []  # per item: what counts as "the same thing" (a manifest's concept/group column;
        # else the first caption), so that retrieval metrics draw distractors from other groups
        self.keep_images = keep_images
        self.arrays: list[np.ndarray] = []
        self.progress = progress
        self._accesses: dict[int, int] = {}

    def _add(self, path: Path, captions: list[str], reason: str | None, group: str | None = None,
             where: object = None) -> None:
        where = path if where is None else where
        if reason:
            return self._skip(reason, where)
        try:
            if check_path(path) == 0:
                raise Skip("empty_file")
            img = self._decode(path)
        except Skip as e:
            return self._skip(e.reason, where)
        self.items.append((path, captions))
        self.groups.append(group or captions[0])
        if self.keep_images:
            self.arrays.append(np.asarray(img))

    def _bar(self, items, desc: str):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="img", disable=not self.progress)

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
        if self.keep_images:
            return Image.fromarray(self.arrays[i], "RGB"), self._choose(i, captions, k)
        try:
            img = self._decode(path)
        except Skip as e:  # changed on disk since the dataset was built
            raise WordbrushError(f"{path}: image became unusable after the dataset was built ({e})") from None
        return img, self._choose(i, captions, k)

    def __iter__(self) -> Iterator[tuple[Image.Image, str]]:
        for i in range(len(self.items)):
            yield self[i]


class FolderDataset(_Indexed):
    """Images anywhere under `root` with a same-stem .txt caption file beside each (one caption per line)."""

    kind = "folder"

    def __init__(self, root: str | Path, size: int = 64, seed: int = 0, background=WHITE,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, keep_images: bool = False, progress: bool = False,
                 walked: tuple | None = None):
        super().__init__(size, seed, background, max_pixels, keep_images, progress)
        self.root = Path(root)
        if not self.root.is_dir():
            raise WordbrushError(f"not a folder: {self.root}")
        entries, self.ignored = walked or walk_folder(self.root)  # walked: open_dataset's walk of root
        for path, broken in self._bar(entries, "check images"):
            if broken:
                self._skip(broken, path)
                continue
            captions, reason = read_caption_file(path.with_suffix(".txt"))
            self._add(path, captions, reason)

    def summary(self) -> str:
        out = super().summary()
        if self.ignored:
            names = ", ".join(str(p.relative_to(self.root)) for p in self.ignored[:3])
            out += f"; left out {len(self.ignored)} preview{'s' * (len(self.ignored) > 1)} ({names})"
        return out


class ManifestDataset(_Indexed):
    """A JSONL or CSV manifest with an image column (`file` or `image`, relative to the manifest's folder)
    and a caption column (`caption` or `text`; in JSONL also a list of captions). Optional columns: `split`
    (with split="train", say, only those rows are items; other rows are left out, not counted as skipped) and
    `concept` or `group` (items of one group are the same thing: retrieval metrics never use one as another's
    distractor). The manifest is UTF-8; a row whose bytes are not is skipped (bad_row when its file name is
    damaged, caption_not_utf8 when its caption is). With everyday=True a row with a `label` column also gets
    the everyday phrasings of its label and `keywords` (or `tags`) beside its caption(s) (data/phrasings.py); a
    `style` that the row's caption names ("twitter style") is named in one of them."""

    kind = "manifest"

    def __init__(self, manifest: str | Path, size: int = 64, seed: int = 0, background=WHITE,
                 split: str = "all", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, keep_images: bool = False,
                 progress: bool = False, everyday: bool = False):
        super().__init__(size, seed, background, max_pixels, keep_images, progress)
        self.split = split
        self.other_split = 0  # rows of another split
        self.split_named = 0  # items whose row names the split asked for (the rest have no split value)
        self.manifest = Path(manifest)
        suffix = self.manifest.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise WordbrushError(f"manifest must be .jsonl or .csv: {self.manifest}")
        try:
            data = self.manifest.read_bytes()
        except OSError as e:
            raise WordbrushError(f"cannot read manifest {self.manifest}: {e.strerror or e}") from None
        text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
        rows = self._jsonl_rows(text) if suffix == ".jsonl" else self._csv_rows(text)
        base = self.manifest.parent
        for line, row in self._bar(rows, "check images"):
            where = f"{self.manifest}:{line}"
            if not isinstance(row, dict):
                self._skip(row if isinstance(row, str) else "bad_row", where)
                continue
            file = next((row[k] for k in IMAGE_KEYS if row.get(k)), None)
            if not isinstance(file, str) or _not_utf8(file):
                self._skip("bad_row", where)
                continue
            if split != "all" and row.get("split") not in (None, "", split):
                self.other_split += 1
                continue
            try:
                caption = next((_caption_cell(row[k]) for k in CAPTION_KEYS if row.get(k) is not None), None)
            except ValueError:
                self._skip("bad_row", where)
                continue
            if caption is None:
                captions, reason = [], "missing_caption"
            elif _not_utf8(caption):
                captions, reason = [], "caption_not_utf8"
            else:
                captions, reason = parse_captions(caption)
                if everyday and not reason and isinstance(row.get("label"), str) and row["label"].strip():
                    captions = captions + _everyday(row, caption)
            group = next((str(row[k]) for k in ("concept", "group") if row.get(k) not in (None, "")), None)
            before = len(self.items)
            self._add(base / file, captions, reason, group, where=f"{where} ({file})")
            self.split_named += len(self.items) > before and row.get("split") not in (None, "")

    def actual_split(self) -> str:
        """Which split the items really are: the split asked for when every item's row names it; "all" when
        split="all" or no row names a split (every item, training images included); "<split> + N without a
        split" when only some rows name it (rows without a split value belong to every split)."""
        if self.split == "all" or self.split_named == 0:
            return "all"
        unnamed = len(self.items) - self.split_named
        return self.split if unnamed == 0 else f"{self.split} + {unnamed} without a split"

    def _jsonl_rows(self, text: str) -> Iterator[tuple[int, object]]:
        """(line number, the parsed row or None when the line is not JSON)."""
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: a line nested thousands deep
                yield n, None

    def _csv_rows(self, text: str) -> Iterator[tuple[int, object]]:
        """(line number, the row, or None / a skip reason for a row the csv module refuses); reading goes on
        after a bad row."""
        reader = csv.DictReader(io.StringIO(text))
        try:
            fields = reader.fieldnames
        except csv.Error as e:
            raise WordbrushError(f"{self.manifest}: cannot read the CSV header: {e}") from None
        if not fields or not any(k in fields for k in IMAGE_KEYS):
            raise WordbrushError(f"{self.manifest}: CSV header needs a 'file' or 'image' column and a 'caption' "
                                 f"or 'text' column, got {fields}")
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # e.g. a field larger than csv.field_size_limit()
                yield line, "caption_too_long" if "field larger than field limit" in str(e) else None
                continue
            yield line, row


def open_dataset(path: str | Path, size: int = 64, seed: int = 0, background: tuple[int, int, int] = WHITE,
                 split: str = "all", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, keep_images: bool = False,
                 progress: bool = False, everyday: bool = False):
    """The right dataset for a path: a folder of images + .txt, a .jsonl/.csv manifest, a .tar shard, or a
    folder of .tar shards. split selects rows of a manifest's `split` column (other kinds have none);
    max_pixels bounds an image's header size (too_large); keep_images keeps the decoded images of a folder or
    manifest (_Indexed); progress shows a bar while a folder or manifest is checked; everyday adds a manifest's
    everyday phrasings (ManifestDataset)."""
    p = Path(path)
    if not p.exists():
        raise WordbrushError(f"dataset path does not exist: {p}")
    indexed = dict(max_pixels=max_pixels, keep_images=keep_images, progress=progress)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".csv"):
            return ManifestDataset(p, size, seed, background, split, **indexed, everyday=everyday)
        if suffix == ".tar":
            return TarShardDataset([p], size, seed, background, max_pixels)
    elif p.is_dir():
        walked = walk_folder(p)
        if walked[0]:
            return FolderDataset(p, size, seed, background, **indexed, walked=walked)
        shards = sorted(q for q in p.glob("*.tar") if q.is_file())
        if shards:
            return TarShardDataset(shards, size, seed, background, max_pixels)
        raise WordbrushError(f"no images or .tar shards in folder: {p}")
    raise WordbrushError(f"dataset path is not a folder, manifest or tar shard: {p}")

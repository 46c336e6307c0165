"""The batches a training loop reads, from the built-in shapes or from a dataset on disk (DataConfig).

    data = TrainingData(cfg.data)
    batch = data.batch(step, batch_size)     # images (B, H, W, 3) uint8, captions (B,), index (B,) or None

A batch is addressed by its step, so a resumed run reads the same stream as an uninterrupted one:
- shapes: scenes step*B .. step*B+B-1 of the infinite procedural stream;
- a folder or manifest: every usable image is decoded once into memory when the dataset is opened (broken files
  are skipped and counted by reason, never fatal: folder.py's docstring), then read in a fresh permutation each epoch; an item
  with several caption lines gets one of them at random each epoch. `index` says which items a batch holds,
  so a loop may cache per-item work (the generator loop encodes each image with the VAE once);
- tar shards: streamed through a shuffle buffer, for data that does not fit in memory (the order after a
  resume is not the uninterrupted one's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import WordbrushError
from .config import DataConfig
from .folder import open_dataset
from .reading import MAX_LISTED
from .shapes import ShapesDataset
from .shards import TarShardDataset

SHUFFLE_BUFFER = 2048  # tar shards: samples held to shuffle the stream
TOKENIZER_SEED_OFFSET = 3_000_000  # shapes: the BPE's captions come from their own seed


def epoch_order(seed: int, n: int, step: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Items step*b .. step*b+b-1 of a stream that reads n items in a fresh permutation each epoch (from the seed
    and the epoch): their item ids (b,) and epochs (b,). Addressed by the step, so a resumed run reads the same."""
    pos = np.arange(step * b, (step + 1) * b)
    epochs, offsets = pos // n, pos % n
    index = np.empty(b, dtype=np.int64)
    for e in np.unique(epochs):  # at most two epochs meet in one batch (more if b > n)
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        index[epochs == e] = perm[offsets[epochs == e]]
    return index, epochs


@dataclass
class Batch:
    images: np.ndarray  # (B, H, W, 3) uint8
    captions: list[str]
    index: np.ndarray | None  # (B,) item ids in a dataset held in memory; None for streams


class TrainingData:
    def __init__(self, cfg: DataConfig, progress: bool = False):
        self.cfg = cfg
        self.shapes: ShapesDataset | None = None
        self.stream: TarShardDataset | None = None
        self.images: np.ndarray | None = None  # (N, H, W, 3) uint8, for a dataset held in memory
        self.captions: list[list[str]] = []
        self.groups: list[str] = []
        self.skipped: dict[str, int] = {}  # reason -> count (a stream's: see skipped_by_reason)
        self._skipped_files: dict[str, list[str]] = {}
        self.actual_split = cfg.split  # which split the items really are (see Reader.actual_split)
        if not cfg.path:
            self.shapes = ShapesDataset(None, size=cfg.size, seed=cfg.seed, split=cfg.split)
            return
        ds = open_dataset(cfg.path, size=cfg.size, seed=cfg.seed, background=tuple(cfg.background), split=cfg.split,
                          max_pixels=cfg.max_image_pixels, keep_images=True, progress=progress,
                          everyday=cfg.everyday_captions)
        self.actual_split = ds.actual_split()
        if isinstance(ds, TarShardDataset):
            self.stream = ds
            self._stream_iter: Iterator | None = None
            return
        if len(ds) == 0:
            raise WordbrushError(f"{cfg.path}: no usable items" + (f" in split {cfg.split!r}" if cfg.split != "all" else "")
                                 + f" ({ds.summary()})")
        self.images = np.stack(ds.arrays)  # decoded once, when the dataset checked them
        ds.arrays.clear()
        self.captions = [caps for _, caps in ds.items]
        self.groups = list(ds.groups)
        self.skipped = dict(ds.skipped)
        self._skipped_files = {k: list(v) for k, v in ds.skipped_files.items()}
        self.description = ds.summary()

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def __len__(self) -> int:
        """Items held in memory (0 for the infinite shapes stream and for tar shards)."""
        return 0 if self.images is None else len(self.images)

    def summary(self) -> str:
        if self.shapes is not None:
            return f"shapes (procedural, split {self.cfg.split})"
        if self.stream is not None:
            return self.stream.summary()
        return self.description

    def skipped_count(self) -> int:
        """Items skipped as broken, all reasons together (train_summary.json's skipped_items)."""
        return sum(self.skipped_by_reason().values())

    def skipped_by_reason(self) -> dict[str, int]:
        """reason -> count (the reasons are folder.py's docstring's). Tar shards: the last pass read to its end,
        else the pass being read (whose counts grow as it goes)."""
        if self.stream is not None:
            done = self.stream.complete_skipped
            return dict(done if done is not None else self.stream.skipped)
        return dict(self.skipped)

    def skipped_files(self) -> dict[str, list[str]]:
        """reason -> the skipped files, at most MAX_LISTED (100) a reason, in the order read: paths; a manifest's
        rows as ``manifest:line (file)``; a shard's samples as ``shard.tar:key``."""
        if self.stream is not None:
            done = self.stream.complete_skipped_files
            return {k: list(v) for k, v in (done if done is not None else self.stream.skipped_files).items()}
        return {k: list(v) for k, v in self._skipped_files.items()}

    def skipped_record(self) -> dict:
        """What a run folder's skipped.json holds: {"skipped_items": n, "by_reason": {...}, "files": {...},
        "files_listed_per_reason": MAX_LISTED} (JSON-ready)."""
        return {"skipped_items": self.skipped_count(), "by_reason": self.skipped_by_reason(),
                "files": self.skipped_files(), "files_listed_per_reason": MAX_LISTED}

    # ------------------------------------------------------------------------------------------------ batches

    def batch(self, step: int, b: int) -> Batch:
        if self.shapes is not None:
            items = [self.shapes.item_arrays(i) for i in range(step * b, (step + 1) * b)]
            return Batch(np.stack([it[0] for it in items]), [it[1] for it in items], None)
        if self.stream is not None:
            return self._stream_batch(b)
        index, epochs = epoch_order(self.cfg.seed, len(self.images), step, b)
        captions = [self._caption(int(i), int(e)) for i, e in zip(index, epochs)]
        return Batch(self.images[index], captions, index)

    def _caption(self, i: int, epoch: int) -> str:
        caps = self.captions[i]
        if len(caps) == 1:
            return caps[0]
        return caps[int(np.random.default_rng([self.cfg.seed, i, epoch]).integers(len(caps)))]

    def _stream_batch(self, b: int) -> Batch:
        if self._stream_iter is None:
            self._stream_iter = self._shuffled_stream()
        items = [next(self._stream_iter) for _ in range(b)]
        return Batch(np.stack([np.asarray(im) for im, _ in items]), [c for _, c in items], None)

    def _shuffled_stream(self) -> Iterator:
        rng = np.random.default_rng([self.cfg.seed, 7])
        buf: list = []
        while True:
            got = 0
            for item in self.stream:
                got += 1
                if len(buf) < SHUFFLE_BUFFER:
                    buf.append(item)
                    continue
                j = int(rng.integers(len(buf)))
                yield buf[j]
                buf[j] = item
            if got == 0:
                raise WordbrushError(f"{self.cfg.path}: no usable samples in the tar shards ({self.stream.summary()})")
            rng.shuffle(buf)
            yield from buf[: len(buf) // 2]  # keep half to mix with the next pass
            buf = buf[len(buf) // 2 :]

    # ----------------------------------------------------------------------------------------------- captions

    def caption_texts(self, n: int) -> Iterator[str]:
        """Captions to train a BPE tokenizer on: n procedural ones for shapes, every caption line of a dataset in
        memory, the first n of a stream."""
        if self.shapes is not None:  # captions of other scenes than the training stream's
            ds = ShapesDataset(n, size=self.cfg.size, seed=self.cfg.seed + TOKENIZER_SEED_OFFSET, split=self.cfg.split)
            yield from (ds.item_arrays(i)[1] for i in range(n))
        elif self.stream is not None:
            for k, (_, caption) in enumerate(self.stream):
                if k >= n:
                    break
                yield caption
        else:
            for caps in self.captions:
                yield from caps

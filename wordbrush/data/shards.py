"""WebDataset-style tar shards: read streamed (TarShardDataset) and written (write_webdataset). Items and skip
reasons are folder.py's docstring's."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

from ..errors import WordbrushError
from .reading import IMAGE_EXTS, WHITE, Reader, decode_image, parse_captions


class TarShardDataset(Reader):
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

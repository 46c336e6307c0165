"""TrainingData: the batches a training loop reads, addressed by step (so a resumed run reads the same stream)."""

import json

import numpy as np
import pytest
from PIL import Image

from wordbrush.data.config import DataConfig
from wordbrush.data.shards import write_webdataset
from wordbrush.data.training import TrainingData
from wordbrush.errors import ConfigError, WordbrushError


def manifest(root, n=10):
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        Image.new("RGB", (20, 20), (k * 20, 0, 0)).save(root / f"{k}.png")
        rows.append({"file": f"{k}.png", "caption": [f"item {k}", f"thing {k}"], "split": "heldout" if k < 3 else "train",
                     "concept": f"c{k // 2}"})
    (root / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "m.jsonl"


def test_every_item_once_per_epoch_and_batches_repeat_by_step(tmp_path):
    data = TrainingData(DataConfig(path=str(manifest(tmp_path)), size=16, split="train"))
    assert len(data) == 7 and data.in_memory and data.groups[0] == "c1"
    seen = np.concatenate([data.batch(s, 7).index for s in range(3)])
    for e in range(3):
        assert sorted(seen[7 * e : 7 * e + 7]) == list(range(7))
    assert not np.array_equal(seen[:7], seen[7:14])  # a fresh order each epoch
    b1, b2 = data.batch(5, 4), data.batch(5, 4)
    assert np.array_equal(b1.images, b2.images) and b1.captions == b2.captions
    assert b1.images.shape == (4, 16, 16, 3) and b1.images.dtype == np.uint8
    captions = {data.batch(s, 7).captions[0] for s in range(40)}
    assert any(c.startswith("item") for c in captions) and any(c.startswith("thing") for c in captions)
    assert len(TrainingData(DataConfig(path=str(tmp_path / "m.jsonl"), size=16, split="all"))) == 10


def test_shapes_and_shards_and_errors(tmp_path):
    shapes = TrainingData(DataConfig(size=16))
    assert shapes.batch(0, 3).index is None and len(shapes.batch(0, 3).captions) == 3
    data = TrainingData(DataConfig(path=str(manifest(tmp_path / "m")), size=16, split="all"))
    items = [(Image.fromarray(data.images[i]), data.captions[i][0]) for i in range(10)]
    write_webdataset(items, tmp_path / "shards", shard_size=4)
    stream = TrainingData(DataConfig(path=str(tmp_path / "shards"), size=16))
    assert not stream.in_memory
    got = [c for s in range(5) for c in stream.batch(s, 6).captions]  # more than one pass
    assert set(got) == {f"item {k}" for k in range(10)}
    with pytest.raises(WordbrushError, match="no usable items in split 'nope'"):
        TrainingData(DataConfig(path=str(tmp_path / "m" / "m.jsonl"), size=16, split="nope"))
    with pytest.raises(ConfigError, match="shapes dataset"):
        DataConfig(split="heldout")


def test_actual_split_says_what_the_items_are(tmp_path):
    """Asking for a split the data does not have gives every item: the label must then be "all", not the ask."""
    path = str(manifest(tmp_path / "split"))
    assert TrainingData(DataConfig(path=path, size=16, split="heldout")).actual_split == "heldout"
    assert TrainingData(DataConfig(path=path, size=16, split="all")).actual_split == "all"
    rows = [json.loads(line) for line in (tmp_path / "split" / "m.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("split")
    (tmp_path / "split" / "plain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = TrainingData(DataConfig(path=str(tmp_path / "split" / "plain.jsonl"), size=16, split="heldout"))
    assert len(plain) == 10 and plain.actual_split == "all"  # no split column: the training images too
    rows[0]["split"] = "heldout"  # one row names the split, nine name none (they belong to every split)
    (tmp_path / "split" / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mixed = TrainingData(DataConfig(path=str(tmp_path / "split" / "mixed.jsonl"), size=16, split="heldout"))
    assert mixed.actual_split == "heldout + 9 without a split"
    folder = tmp_path / "folder"
    folder.mkdir()
    for k in range(3):
        Image.new("RGB", (16, 16)).save(folder / f"{k}.png")
        (folder / f"{k}.txt").write_text(f"item {k}")
    assert TrainingData(DataConfig(path=str(folder), size=16, split="heldout")).actual_split == "all"
    assert TrainingData(DataConfig(size=16, split="holdout")).actual_split == "holdout"  # shapes draws its split

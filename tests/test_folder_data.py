"""Your own data: folders of images + .txt, JSONL/CSV manifests and tar shards; broken files are skipped and
counted, never fatal."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from wordbrush.cli import main
from wordbrush.data.folder import FolderDataset, ManifestDataset, open_dataset
from wordbrush.data.reading import MAX_CAPTION_CHARS, parse_captions, to_rgb
from wordbrush.data.shards import TarShardDataset, write_webdataset
from wordbrush.errors import WordbrushError


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_folder(root, n_good=6):
    """n_good usable items of odd sizes and modes, plus one of each kind of broken item."""
    root.mkdir(parents=True, exist_ok=True)
    modes = [("RGB", (40, 30)), ("L", (17, 50)), ("RGBA", (64, 64)), ("P", (33, 33)), ("LA", (20, 20)),
             ("RGB", (100, 64))]
    for k in range(n_good):
        mode, size = modes[k % len(modes)]
        img = Image.new(mode, size, {"RGB": (200, 10, 10), "L": 128, "RGBA": (0, 0, 255, 0), "P": 3,
                                     "LA": (50, 0)}[mode])
        sub = root / ("sub" if k == 5 else "")
        sub.mkdir(exist_ok=True)
        ext = "jpg" if k == 0 else "png"
        img.save(sub / f"good{k}.{ext}")
        (sub / f"good{k}.txt").write_text(f"caption {k} a\n\n  caption {k}   b \n")
    good = _png_bytes(Image.new("RGB", (32, 32), (0, 200, 0)))
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "truncated.txt").write_text("a truncated image")
    (root / "zero.png").write_bytes(b"")
    (root / "zero.txt").write_text("an empty file")
    (root / "text.png").write_text("this is not an image")
    (root / "text.txt").write_text("text named png")
    Image.new("RGB", (8, 8)).save(root / "empty_caption.png")
    (root / "empty_caption.txt").write_text("  \n\t\n")
    Image.new("RGB", (8, 8)).save(root / "long.png")
    (root / "long.txt").write_text("x" * 1_000_000)
    Image.new("RGB", (8, 8)).save(root / "nocaption.png")
    return root


EXPECTED_SKIPS = {"unreadable_image": 2, "empty_file": 1, "empty_caption": 1, "caption_too_long": 1,
                  "missing_caption": 1}


def test_folder_loads_converts_and_counts(tmp_path):
    ds = FolderDataset(make_folder(tmp_path / "d"), size=16)
    assert len(ds) == 6
    assert ds.skipped == EXPECTED_SKIPS
    assert "6 usable items, 6 skipped" in ds.summary()
    for img, caption in ds:
        assert img.mode == "RGB" and img.size == (16, 16)
        assert caption.startswith("caption ") and "  " not in caption
    names = [p.name for p, _ in ds.items]
    rgba = ds[names.index("good2.png")][0]  # fully transparent blue -> the white background
    assert np.asarray(rgba).min() == 255
    la = FolderDataset(tmp_path / "d", size=16, background=(0, 0, 0))[names.index("good4.png")][0]
    assert np.asarray(la).max() == 0
    gray = np.asarray(ds[names.index("good1.png")][0])
    assert (gray == 128).all()


def test_caption_choice_is_seeded(tmp_path):
    make_folder(tmp_path / "d")
    def draws(seed):
        ds = FolderDataset(tmp_path / "d", size=8, seed=seed)
        return [ds[i][1] for _ in range(8) for i in range(len(ds))]
    a, b = draws(0), draws(0)
    assert a == b
    assert draws(1) != a
    assert {c[-1] for c in a} == {"a", "b"}  # both lines get chosen; the blank line never


def test_parse_captions_policy():
    assert parse_captions("one\n\n two  \n") == (["one", "two"], None)
    assert parse_captions(" \n ") == ([], "empty_caption")
    assert parse_captions("y" * (MAX_CAPTION_CHARS + 1)) == ([], "caption_too_long")
    assert parse_captions("short\n" + "y" * (MAX_CAPTION_CHARS + 1)) == (["short"], None)


def test_to_rgb_modes():
    assert to_rgb(Image.new("I;16", (4, 4), 65535)).getpixel((0, 0)) == (255, 255, 255)
    p = Image.new("P", (2, 2), 0)
    p.putpalette([255, 0, 0] * 256)
    p.info["transparency"] = 0
    assert to_rgb(p, (1, 2, 3)).getpixel((0, 0)) == (1, 2, 3)


def test_manifests(tmp_path):
    make_folder(tmp_path / "d")
    rows = [{"file": "d/good1.png", "caption": "gray"}, {"image": "d/good2.png", "text": ["x", "y"]},
            {"file": "d/missing.png", "caption": "gone"}, {"file": "d/zero.png", "caption": "zero"},
            {"file": "d/good3.png", "caption": ""}, {"caption": "no file"}]
    lines = [json.dumps(r) for r in rows] + ["{not json", "[1, 2]"]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    ds = open_dataset(tmp_path / "m.jsonl", size=12)
    assert isinstance(ds, ManifestDataset) and len(ds) == 2
    assert ds.skipped == {"missing_file": 1, "empty_file": 1, "empty_caption": 1, "bad_row": 3}
    assert ds[0][1] == "gray" and ds[1][1] in ("x", "y") and ds[0][0].size == (12, 12)

    (tmp_path / "m.csv").write_text('image,text\nd/good0.jpg,"a, b"\nd/text.png,bad\n')
    ds = open_dataset(tmp_path / "m.csv", size=12)
    assert len(ds) == 1 and ds[0][1] == "a, b" and ds.skipped == {"unreadable_image": 1}
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(WordbrushError, match="'file' or 'image' column"):
        open_dataset(tmp_path / "bad.csv")


def test_webdataset_roundtrip_and_broken_shard(tmp_path):
    src = FolderDataset(make_folder(tmp_path / "d"), size=16)
    shards = write_webdataset(src, tmp_path / "shards", shard_size=4)
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar"]
    with tarfile.open(shards[0]) as tf:
        assert tf.getnames()[:2] == ["00000000.png", "00000000.txt"]
    ds = open_dataset(tmp_path / "shards", size=16, seed=0)
    assert isinstance(ds, TarShardDataset)
    items = list(ds)
    assert len(items) == 6 and ds.skipped == {} and "6 usable items" in ds.summary()
    ref = FolderDataset(tmp_path / "d", size=16)
    for (img, cap), (rimg, _) in zip(items, ref):
        assert img.size == (16, 16) and cap.startswith("caption ")
        assert np.array_equal(np.asarray(img), np.asarray(rimg))
    assert [c for _, c in list(TarShardDataset(shards, size=16))] == [c for _, c in items]  # same seed, same captions

    # a shard with broken members, and one cut off in the middle
    with tarfile.open(tmp_path / "bad.tar", "w") as tf:
        for name, data in [("a.png", _png_bytes(Image.new("RGBA", (9, 5)))), ("a.txt", b"ok"),
                           ("b.png", b""), ("b.txt", b"zero"), ("c.png", b"not png"), ("c.txt", b"text"),
                           ("d.png", _png_bytes(Image.new("RGB", (4, 4)))), ("d.txt", b"   "),
                           ("e.png", _png_bytes(Image.new("RGB", (4, 4))))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(shards[0].read_bytes()[:3000])
    ds = TarShardDataset([tmp_path / "bad.tar", cut], size=8)
    got = list(ds)
    assert [c for _, c in got][0] == "ok"
    assert ds.skipped["empty_file"] == 1 and ds.skipped["unreadable_image"] >= 1
    assert ds.skipped["empty_caption"] == 1 and ds.skipped["missing_caption"] >= 1  # e.png; the cut shard too
    assert ds.skipped["broken_shard"] == 1


def test_open_dataset_errors(tmp_path):
    with pytest.raises(WordbrushError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(WordbrushError, match="dataset path is not a folder, manifest or tar shard"):
        open_dataset(tmp_path / "x.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WordbrushError, match="no images or .tar shards"):
        open_dataset(tmp_path / "empty")


def test_cli_inspect(tmp_path, capsys):
    make_folder(tmp_path / "d")
    assert main(["data", "inspect", str(tmp_path / "d"), "--size", "16", "--grid", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    assert "6 usable items" in out and "1 caption_too_long" in out and "2 unreadable_image" in out
    assert Image.open(tmp_path / "g.png").size[0] > 16
    assert main(["data", "inspect", str(tmp_path / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err

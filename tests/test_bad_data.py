"""Bad data never stops a run and never passes silently: every kind of broken file in a folder, a manifest or a
tar shard is skipped, counted by reason and listed; odd modes and bit depths are converted to the right pixels; a
training run on a folder with ~5% broken files ends, and train_summary.json's skipped_items is the broken count."""

import io
import json
import os
import struct
import tarfile
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from wordbrush.cli import main
from wordbrush.data.config import DataConfig
from wordbrush.data.folder import FolderDataset, ManifestDataset, open_dataset
from wordbrush.data.reading import MAX_CAPTION_BYTES, MAX_LISTED, decode_image, to_rgb
from wordbrush.data.shards import TarShardDataset
from wordbrush.data.training import TrainingData
from wordbrush.errors import ConfigError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(w: int, h: int, rows: int = 0) -> bytes:
    """A grayscale PNG that says w x h; its pixel data holds `rows` zero rows (all of them: a real image that
    decodes to w*h bytes; fewer: a header that lies). Built row by row, so no w*h buffer is ever made."""
    z = zlib.compressobj(9)
    row = b"\0" * (w + 1)
    idat = b"".join(z.compress(row) for _ in range(rows)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


# name -> the reason it is skipped; make_broken writes one of each into a folder
BROKEN = {
    "truncated.png": "unreadable_image", "truncated.jpg": "unreadable_image", "text.png": "unreadable_image",
    "zero.png": "empty_file", "loop.png": "symlink_loop", "dangling.png": "dangling_symlink",
    "folder.png": "not_a_file", "fifo.png": "not_a_file", "sub/up": "symlink_loop", "photo.heic": "unsupported_format",
    "bomb.png": "too_large", "pilbomb.png": "too_large",
    "nocaption.png": "missing_caption", "emptycap.png": "empty_caption", "longline.png": "caption_too_long",
    "hugecap.png": "caption_too_long", "latin1.png": "caption_not_utf8", "capdir.png": "unreadable_caption",
    "caploop.png": "unreadable_caption",
}


def make_broken(root) -> None:
    """One broken item of every kind (BROKEN), plus the dataset's own preview grid.png (not an item)."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    good = _png(Image.new("RGB", (32, 32), (0, 200, 0)))
    jpg = _png(Image.new("RGB", (32, 32), (0, 200, 0)), "JPEG")
    for name in BROKEN:
        if name != "sub/up":
            (root / name).with_suffix(".txt").write_text(f"a broken {name}\n")
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (root / "text.png").write_text("this is not an image")
    (root / "zero.png").write_bytes(b"")
    os.symlink("loop.png", root / "loop.png")
    os.symlink("nowhere.png", root / "dangling.png")
    (root / "folder.png").mkdir()
    os.mkfifo(root / "fifo.png")  # opening it would block for ever
    os.symlink("..", root / "sub" / "up")
    (root / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (root / "bomb.png").write_bytes(png_header_only(12000, 12000, rows=12000))  # under PIL's bomb limit
    (root / "pilbomb.png").write_bytes(png_header_only(20000, 10000))  # over it
    for name in ("nocaption", "emptycap", "longline", "hugecap", "latin1", "capdir", "caploop"):
        (root / f"{name}.png").write_bytes(good)
    (root / "nocaption.txt").unlink()
    (root / "emptycap.txt").write_text(" \n\t\n")
    (root / "longline.txt").write_text("x" * 1_000_000)
    (root / "hugecap.txt").write_text("a short line\n" * (MAX_CAPTION_BYTES // 13 + 1))
    (root / "latin1.txt").write_bytes("une forêt rouge".encode("latin-1"))
    (root / "capdir.txt").unlink()
    (root / "capdir.txt").mkdir()
    (root / "caploop.txt").unlink()
    os.symlink("caploop.txt", root / "caploop.txt")
    Image.new("RGB", (64, 64)).save(root / "grid.png")  # what `wordbrush data shapes` writes: left out


def make_good(root, n: int) -> None:
    """n usable items: plain PNGs, and one of each odd mode, misnamed file, BOM caption and symlink."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (20 + k % 5, 24, 3), dtype=np.uint8)).save(root / f"img{k:04d}.png")
        (root / f"img{k:04d}.txt").write_text(f"picture number {k}\n")
    odd = {"cmyk.jpg": Image.new("CMYK", (20, 20), (255, 0, 0, 0)),
           "gray16.png": Image.fromarray(np.full((20, 20), 40000, np.uint16)),
           "pal.png": _palette_with_transparency(), "la.png": Image.new("LA", (20, 20), (100, 255)),
           "bit.png": Image.new("1", (20, 20), 1), "cmyk.tif": Image.new("CMYK", (20, 20), (0, 0, 0, 255))}
    for name, img in odd.items():
        img.save(root / name)
        (root / name).with_suffix(".txt").write_text(f"odd {name}\n")
    (root / "jpeg.png").write_bytes(_png(Image.new("RGB", (20, 20), (250, 250, 250)), "JPEG"))  # misnamed
    (root / "jpeg.txt").write_text("a jpeg named png")
    (root / "bom.png").write_bytes(_png(Image.new("RGB", (20, 20))))
    (root / "bom.txt").write_bytes("\ufeffune forêt".encode("utf-8"))
    os.symlink("img0000.png", root / "link.png")  # a link to a good file is a good item
    (root / "link.txt").write_text("a link")


def _palette_with_transparency() -> Image.Image:
    p = Image.new("P", (20, 20), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(1, (10, 0, 20, 20))  # right half: blue
    p.info["transparency"] = 0  # left half: transparent
    return p


N_GOOD_EXTRA = 9  # the odd-mode, misnamed, BOM and link items of make_good


def expected() -> dict[str, int]:
    out: dict[str, int] = {}
    for reason in BROKEN.values():
        out[reason] = out.get(reason, 0) + 1
    return out


def test_every_broken_kind_in_a_folder_is_skipped_counted_and_listed(tmp_path):
    make_good(tmp_path / "d", 10)
    make_broken(tmp_path / "d")
    make_good(tmp_path / "elsewhere", 1)
    os.symlink(tmp_path / "elsewhere", tmp_path / "d" / "linked")  # a folder link is followed
    t = time.perf_counter()
    ds = FolderDataset(tmp_path / "d", size=16)
    assert time.perf_counter() - t < 5  # the 12000^2 PNG is refused by its header, never decoded (~9 s, 1.9 GB)
    assert len(ds) == 10 + N_GOOD_EXTRA + 1 + N_GOOD_EXTRA
    assert (tmp_path / "d" / "linked" / "img0000.png", ["picture number 0"]) in ds.items
    assert ds.skipped == expected()
    listed = {os.path.relpath(p, tmp_path / "d") for files in ds.skipped_files.values() for p in files}
    assert listed == set(BROKEN)
    assert [p.name for p in ds.ignored] == ["grid.png"]
    assert f"{len(ds)} usable items, {len(BROKEN)} skipped" in ds.summary() and "grid.png" in ds.summary()
    assert ds[[p.name for p, _ in ds.items].index("bom.png")][1] == "une forêt"  # the BOM is not text


def test_the_bomb_under_pils_limit_decodes_when_allowed(tmp_path):
    """too_large is our bound, not an unreadable file: with a larger bound the same PNG decodes."""
    data = png_header_only(3000, 3000, rows=3000)
    with pytest.raises(Exception, match="too_large"):
        decode_image(data, 16, max_pixels=2999 * 3000)
    assert decode_image(data, 16, max_pixels=3000 * 3000).size == (16, 16)
    cfg = DataConfig(path="x", size=16, max_image_pixels=1000)
    assert cfg.max_image_pixels == 1000
    with pytest.raises(ConfigError, match="max_image_pixels"):
        DataConfig(path="x", size=64, max_image_pixels=1000)


def test_odd_modes_and_bit_depths_give_the_right_pixels(tmp_path):
    make_good(tmp_path / "d", 0)
    ds = FolderDataset(tmp_path / "d", size=16, background=(10, 20, 30))
    px = {p.name: np.asarray(ds[i][0]) for i, (p, _) in enumerate(ds.items)}
    assert (px["cmyk.jpg"] == (0, 255, 255)).all() or np.abs(px["cmyk.jpg"].astype(int) - (0, 255, 255)).max() <= 2
    assert (px["cmyk.tif"] == 0).all()  # full black ink
    assert (px["gray16.png"] == round(40000 / 257)).all()  # 16 bits scaled, not clipped to 255
    assert (px["bit.png"] == 255).all()
    assert (px["la.png"] == 100).all()  # opaque gray
    pal = px["pal.png"]
    assert (pal[:, :3] == (10, 20, 30)).all() and (pal[:, -3:] == (0, 0, 255)).all()  # transparent | blue
    assert np.abs(px["jpeg.png"].astype(int) - 250).max() <= 3  # a JPEG named .png is read as what it is
    # modes a file rarely has, straight through to_rgb
    assert to_rgb(Image.new("I;16", (2, 2), 200)).getpixel((0, 0)) == (1, 1, 1)  # dark 16-bit stays dark
    assert to_rgb(Image.new("F", (2, 2), 0.5)).getpixel((0, 0)) == (128, 128, 128)
    rgb = Image.new("RGB", (2, 2), (5, 5, 5))
    rgb.info["transparency"] = (5, 5, 5)
    assert to_rgb(rgb, (9, 9, 9)).getpixel((0, 0)) == (9, 9, 9)
    lab = to_rgb(Image.new("LAB", (2, 2), (0, 128, 128))).getpixel((0, 0))
    assert max(lab) <= 3  # L=0: black (PIL's plain convert would give a blue)


def test_manifest_rows_of_every_kind(tmp_path):
    d = tmp_path / "d"
    make_good(d, 3)
    make_broken(d)
    rows = [b'{"file": "d/img0000.png", "caption": "fine"}',
            b'{"file": "d/img0001.png", "caption": ["one", "two"]}',
            b'{"file": "d/missing.png", "caption": "gone"}',  # missing_file
            b'{"file": "d/loop.png", "caption": "loop"}',  # symlink_loop
            b'{"file": "d/folder.png", "caption": "a folder"}',  # not_a_file
            b'{"file": "d/bomb.png", "caption": "big"}',  # too_large
            b'{"file": "d/text.png", "caption": "text"}',  # unreadable_image
            b'{"file": "d/img0002.png"}',  # missing_caption
            b'{"file": "d/img0002.png", "caption": "  "}',  # empty_caption
            b'{"file": "d/img0002.png", "caption": "' + b"y" * 5000 + b'"}',  # caption_too_long
            '{"file": "d/img0002.png", "caption": "forêt"}'.encode("latin-1"),  # caption_not_utf8
            '{"file": "d/for\u00eat.png", "caption": "x"}'.encode("latin-1"),  # bad_row: the file name
            b'{"file": "d/img0002.png", "caption": {"en": "x"}}',  # bad_row: a caption that is not text
            b'{"caption": "no file"}', b"{not json", b"[1, 2]", b"[" * 100_000]  # bad_row x 3 (and 1)
    (tmp_path / "m.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    ds = open_dataset(tmp_path / "m.jsonl", size=12)
    assert isinstance(ds, ManifestDataset) and len(ds) == 2
    assert ds.skipped == {"missing_file": 1, "symlink_loop": 1, "not_a_file": 1, "too_large": 1,
                          "unreadable_image": 1, "missing_caption": 1, "empty_caption": 1, "caption_too_long": 1,
                          "caption_not_utf8": 1, "bad_row": 6}
    assert ds.skipped_files["missing_file"] == [f"{tmp_path / 'm.jsonl'}:3 (d/missing.png)"]

    big = "z" * 200_000  # past the csv module's field limit
    csv_text = (f'file,caption\nd/img0000.png,"a, b"\nd/img0001.png,"{big}"\nd/zero.png,zero\n'
                f'd/img0002.png,"forêt"\nd/img0001.png,last\n')
    (tmp_path / "m.csv").write_bytes(csv_text.encode("utf-8").replace("forêt".encode(), "forêt".encode("latin-1")))
    ds = open_dataset(tmp_path / "m.csv", size=12)
    assert [c for _, c in ds] == ["a, b", "last"]  # reading goes on after a bad row
    assert ds.skipped == {"caption_too_long": 1, "empty_file": 1, "caption_not_utf8": 1}


def _tar(path, members) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:  # a link member
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tf.addfile(info)
                continue
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_tar_shards_of_every_kind(tmp_path):
    good = _png(Image.new("RGB", (8, 8), (1, 2, 3)))
    _tar(tmp_path / "a.tar", [
        ("ok.png", good), ("ok.txt", b"fine"),
        ("nocap.png", good),  # missing_caption
        ("orphan.txt", b"no image"),  # missing_file
        ("bomb.png", png_header_only(12000, 12000)), ("bomb.txt", b"big"),  # too_large
        ("trunc.png", good[:40]), ("trunc.txt", b"cut"),  # unreadable_image
        ("zero.png", b""), ("zero.txt", b"zero"),  # empty_file
        ("latin.png", good), ("latin.txt", "forêt".encode("latin-1")),  # caption_not_utf8
        ("huge.png", good), ("huge.txt", b"a\n" * (MAX_CAPTION_BYTES // 2 + 1)),  # caption_too_long
        ("link.png", None), ("link.txt", b"a link"),  # not_a_file
        ("heic.heic", b"\0\0"), ("heic.txt", b"heic"),  # unsupported_format
        ("ok2.png", good), ("ok2.txt", b"fine too"),
    ])
    whole = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[: len(whole) // 2])  # truncated inside huge.txt
    (tmp_path / "empty.tar").write_bytes(b"")
    ds = TarShardDataset([tmp_path / "a.tar", tmp_path / "cut.tar", tmp_path / "empty.tar"], size=8)
    assert ds.complete_skipped is None
    got = [c for _, c in ds]
    per_shard = {"missing_caption": 1, "missing_file": 1, "too_large": 1, "unreadable_image": 1, "empty_file": 1,
                 "caption_not_utf8": 1, "caption_too_long": 1, "not_a_file": 1, "unsupported_format": 1}
    assert got[:2] == ["fine", "fine too"] and got[2] == "fine"
    assert ds.skipped["broken_shard"] == 2
    for reason, n in per_shard.items():
        assert n <= ds.skipped[reason] - (reason in ("missing_caption", "unreadable_image")) <= 2 * n, reason
    assert ds.complete_skipped == ds.skipped
    assert f"{tmp_path / 'a.tar'}:bomb" in ds.skipped_files["too_large"]
    # TrainingData reports the last complete pass, however far the next one has gone
    data = TrainingData(DataConfig(path=str(tmp_path / "a.tar"), size=16))
    data.batch(0, 2)
    want = sum(per_shard.values())
    assert data.skipped_count() == want and data.skipped_record()["skipped_items"] == want
    data.batch(1, 2)
    assert data.skipped_count() == want


def test_the_bar_training_ends_and_counts_every_broken_file(tmp_path, capsys):
    """~5% of the folder is broken in every way above: `wordbrush train vae` runs to the end, and both
    train_summary.json's skipped_items and `wordbrush data inspect` count every broken file."""
    d = tmp_path / "d"
    n_good = 20 * len(BROKEN) - len(BROKEN) - N_GOOD_EXTRA  # broken / (good + broken) = 5%
    make_good(d, n_good)
    make_broken(d)
    assert main(["data", "inspect", str(d), "--size", "16", "--grid", str(d / "inspect-grid.png")]) == 0
    out = capsys.readouterr().out
    assert f"{n_good + N_GOOD_EXTRA} usable items" in out and f"skipped {len(BROKEN)}: " in out
    for reason, n in expected().items():
        assert f"{n} {reason}" in out
    assert "left out 2 preview files" in main_inspect_again(d, capsys)  # its own grid is no item next time

    run = tmp_path / "run"
    assert main(["train", "vae", "--data", str(d), "--out", str(run), "--max-steps", "3", "--threads", "1", "-q",
                 "--set", "model.image_size=16", "--set", "data.size=16", "--set", "model.channels=[8,16]",
                 "--set", "model.num_codes=16", "--set", "model.code_dim=8", "--set", "batch_size=4",
                 "--set", "eval_images=8"]) == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["skipped_items"] == len(BROKEN)
    listed = json.loads((run / "skipped.json").read_text())  # the run folder names every skipped file
    assert listed["skipped_items"] == len(BROKEN) and sum(len(v) for v in listed["files"].values()) == len(BROKEN)
    data = TrainingData(DataConfig(path=str(d), size=16))
    record = data.skipped_record()
    assert record["by_reason"] == expected() and record["skipped_items"] == len(BROKEN)
    assert sum(len(v) for v in record["files"].values()) == len(BROKEN)
    json.dumps(record)


def main_inspect_again(d, capsys) -> str:
    assert main(["data", "inspect", str(d), "--size", "16", "--grid", str(d / "inspect-grid.png")]) == 0
    return capsys.readouterr().out


def test_listing_is_bounded(tmp_path):
    d = tmp_path / "d"
    make_good(d, 1)
    for k in range(MAX_LISTED + 5):
        (d / f"bad{k}.png").write_text("no")
        (d / f"bad{k}.txt").write_text("caption")
    ds = FolderDataset(d, size=16)
    assert ds.skipped["unreadable_image"] == MAX_LISTED + 5 and len(ds.skipped_files["unreadable_image"]) == MAX_LISTED

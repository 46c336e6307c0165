"""The emoji dataset: join of emoji-datasource and emojibase, captions and the held-out split by concept,
on tiny fake packages (no network); one opt-in test runs the real `npm pack`."""

import json
import os

import pytest
from PIL import Image

from wordbrush.cli import main
from wordbrush.data import emoji as E
from wordbrush.errors import WordbrushError

DATASOURCE = [
    {"unified": "1F63A", "image": "1f63a.png", "name": "SMILING CAT FACE WITH OPEN MOUTH", "short_names": ["smiley_cat"],
     "category": "Animals & Nature", "sort_order": 2, "has_img_google": True, "has_img_twitter": True},
    {"unified": "1F44B", "image": "1f44b.png", "name": "WAVING HAND SIGN", "short_names": ["wave"],
     "category": "People & Body", "sort_order": 1, "has_img_google": True, "has_img_twitter": True,
     "skin_variations": {"1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png", "has_img_google": True,
                                   "has_img_twitter": False}}},
    {"unified": "2764-FE0F", "image": "2764-fe0f.png", "name": "HEAVY BLACK HEART", "short_names": ["heart"],
     "category": "Smileys & Emotion", "sort_order": 3, "has_img_google": True, "has_img_twitter": True},
    {"unified": "1FAE9", "image": "1fae9.png", "name": "FACE WITH BAGS UNDER EYES",
     "short_names": ["face_with_bags_under_eyes", "tired"], "category": "Smileys & Emotion", "sort_order": 4,
     "has_img_google": True, "has_img_twitter": False},
]
EMOJIBASE = [
    {"hexcode": "1F63A", "label": "grinning cat", "tags": ["animal", "cat", "face", "grin", "open"], "group": 0},
    {"hexcode": "1F44B", "label": "waving hand", "tags": ["hand", "wave", "waving"], "group": 1,
     "skins": [{"hexcode": "1F44B-1F3FB", "label": "waving hand: light skin tone", "tone": 1}]},
    {"hexcode": "2764-fe0f", "label": "red heart", "tags": ["heart"], "group": 0},
]


def fake_packages(root):
    """Unpacked package/ folders like the ones fetch_package returns."""
    sources = {}
    for style in E.STYLES:
        pkg = root / style / "package"
        img_dir = pkg / "img" / style / "64"
        img_dir.mkdir(parents=True)
        (pkg / "emoji.json").write_text(json.dumps(DATASOURCE))
        (pkg / "LICENSE").write_text("The MIT License (MIT)\nCopyright (c) 2013 Cal Henderson\n")
        (pkg / "package.json").write_text(json.dumps({"version": "16.0.0"}))
        for e in DATASOURCE:
            for v in [e, *(e.get("skin_variations") or {}).values()]:
                if v[f"has_img_{style}"]:
                    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(img_dir / v["image"])
        sources[style] = pkg
    labels = root / "labels" / "package"
    (labels / "en").mkdir(parents=True)
    (labels / "en" / "data.json").write_text(json.dumps(EMOJIBASE))
    (labels / "LICENSE").write_text("MIT License\nCopyright (c) 2017-2019 Miles Johnson\n")
    sources["labels"] = labels
    return sources


def test_normalize_and_split_are_stable():
    assert E.normalize_hex("2764-fe0f") == E.normalize_hex("2764") == "2764"
    assert E.normalize_hex("1f636-200d-1f32b-FE0F") == "1F636-200D-1F32B"
    codes = [f"{c:X}" for c in range(0x1F300, 0x1F300 + 2000)]
    splits = [E.split_of(c) for c in codes]
    assert 0.07 < splits.count("heldout") / len(splits) < 0.13
    assert E.split_of("2764-FE0F") == E.split_of("2764")
    # pinned values: changing the hash would silently move concepts between splits
    assert [c for c in codes[:200] if E.split_of(c) == "heldout"] == PINNED_HELDOUT


PINNED_HELDOUT = ["1F30C", "1F32D", "1F335", "1F339", "1F33E", "1F33F", "1F346", "1F375", "1F391", "1F3A4",
                  "1F3A8", "1F3BF", "1F3C1"]


def test_join_captions_and_fallbacks():
    items = E.join_emoji(DATASOURCE, E.load_emojibase(EMOJIBASE))
    by_code = {it.code_point: it for it in items}
    assert [it.code_point for it in items] == ["1F44B", "1F44B-1F3FB", "1F63A", "2764", "1FAE9"]
    cat = by_code["1F63A"]
    assert cat.caption("google") == "grinning cat; animals and nature; animal, cat, face"
    assert cat.caption("twitter") == "grinning cat; animals and nature; animal, cat, face; twitter style"
    skin = by_code["1F44B-1F3FB"]
    assert skin.label == "waving hand: light skin tone" and skin.tags == ("hand", "wave", "waving")
    assert skin.concept == "1F44B" and skin.split == by_code["1F44B"].split
    assert set(skin.images) == {"google"}
    assert by_code["2764"].label == "red heart"  # joined although the FE0F differs in case and presence
    tired = by_code["1FAE9"]  # missing from emojibase: emoji-datasource's name and short names
    assert tired.caption("google") == "face with bags under eyes; smileys and emotion; tired"


def test_write_dataset_from_fake_packages(tmp_path):
    res = E.write_emoji_dataset(tmp_path / "out", style="both", size=32, sources=fake_packages(tmp_path / "pk"),
                                background=(0, 0, 255), progress=False)
    out = tmp_path / "out"
    recs = [json.loads(ln) for ln in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(recs) == 5 + 3
    assert sum(sum(v.values()) for v in res["images"].values()) == 8 and res["skipped"] == {}
    for r in recs:
        img = Image.open(out / r["file"])
        assert img.mode == "RGB" and img.size == (32, 32)
        assert img.getpixel((0, 0)) == (0, 0, 255)  # transparent -> the background
        assert (out / r["file"]).with_suffix(".txt").read_text().strip() == r["caption"]
        assert set(r) >= {"file", "caption", "code_point", "label", "category", "tags", "style", "split"}
        assert r["split"] == E.split_of(r["concept"])
        assert r["caption"].endswith("twitter style") == (r["style"] == "twitter")
    lic = (out / "LICENSES.md").read_text()
    for needle in ("Apache License", "CC-BY 4.0", "Twitter, Inc and other contributors", "Miles Johnson",
                   "Cal Henderson", "RGB(0, 0, 255)", "resized from 64x64 to 32x32"):
        assert needle in lic
    only = E.write_emoji_dataset(tmp_path / "g", style="google", sources=fake_packages(tmp_path / "pk2"),
                                 progress=False)
    assert list(only["images"]) == ["google"] and "CC-BY" not in (tmp_path / "g" / "LICENSES.md").read_text()
    E.write_emoji_dataset(out, style="google", sources=fake_packages(tmp_path / "pk3"), progress=False)
    assert not list((out / "images").glob("twitter_*"))  # a rebuild leaves no stale images behind


def test_missing_npm_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(E.shutil, "which", lambda name: None)
    with pytest.raises(WordbrushError, match="npm is not installed"):
        E.fetch_package("emojibase-data", "17.0.0", cache=tmp_path)
    assert main(["data", "emoji", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "npm is not installed" in err
    with pytest.raises(WordbrushError, match="unknown emoji style"):
        E.write_emoji_dataset(tmp_path / "o", style="apple")


def test_npm_failure_is_one_line(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "npm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'npm ERR! code ENOTFOUND' >&2\necho 'npm ERR! network down' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent), prepend=os.pathsep)
    with pytest.raises(WordbrushError, match="npm pack emojibase-data@17.0.0 failed.*ENOTFOUND"):
        E.fetch_package("emojibase-data", "17.0.0", cache=tmp_path / "c")


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("WORDBRUSH_NETWORK_TESTS") != "1", reason="set WORDBRUSH_NETWORK_TESTS=1")
def test_real_npm_pack(tmp_path):
    pkg = E.fetch_package(*E.LABEL_PACKAGE, cache=tmp_path)
    data = json.loads((pkg / "en" / "data.json").read_text())
    assert len(data) > 1000 and (pkg / "LICENSE").is_file()

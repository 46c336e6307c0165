"""Everyday phrasings (data/phrasings.py) and the manifest option that trains on them (data.everyday_captions)."""

import json

from PIL import Image

from wordbrush.data.config import DataConfig
from wordbrush.data.folder import open_dataset
from wordbrush.data.phrasings import everyday_phrasings, label_phrase, with_article
from wordbrush.data.training import TrainingData


def test_label_forms_and_articles():
    assert label_phrase("flag: France") == "the flag of France"
    assert label_phrase("woman pilot: light skin tone") == "woman pilot with light skin tone"
    assert label_phrase("couple with heart: woman, man") == "couple with heart, woman, man"
    assert label_phrase("  red   apple ") == "red apple"
    assert with_article("apple") == "an apple" and with_article("red apple") == "a red apple"
    assert with_article("the flag of France") == "the flag of France"
    assert with_article("busts in silhouette") == "busts in silhouette"  # a plural takes no article
    assert with_article("glass of milk") == "a glass of milk"


def test_phrasings_use_label_and_keywords_and_are_stable():
    kws = ["beverage", "cafe", "caffeine", "chai", "coffee", "drink", "hot", "morning", "steaming", "tea"]
    out = everyday_phrasings("hot beverage", kws)
    assert out == everyday_phrasings("hot beverage", list(kws))  # no global random state
    assert out[:3] == ["a hot beverage", "a hot beverage emoji", "a picture of a hot beverage"]
    used = set(kws) & set(" ".join(out[3:]).replace("hot beverage", "").replace(",", " ").split())
    assert {"beverage", "hot"}.isdisjoint(used)  # the label's own words add nothing
    assert len(used) == 8  # four pairs of the eight other keywords
    assert any(" and " in p and "beverage" not in p for p in out)  # the keywords alone, without the label
    assert len(out) == len(set(out))
    assert everyday_phrasings("printer") == ["a printer", "a printer emoji", "a picture of a printer"]
    styled = everyday_phrasings("flag: France", ["FR", "flag"], style="twitter")
    assert "the flag of France emoji in twitter style" in styled
    assert sum("twitter" in p for p in styled) == 1


def _manifest(tmp_path, rows):
    for r in rows:
        Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / r["file"])
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path / "m.jsonl"


def test_manifest_option_adds_phrasings_beside_the_caption(tmp_path):
    rows = [{"file": "a.png", "caption": "red apple; food and drink; apple", "label": "red apple",
             "keywords": ["fruit", "ripe", 3], "style": "google"},
            {"file": "b.png", "caption": "red apple; food and drink; apple; twitter style", "label": "red apple",
             "tags": ["fruit"], "style": "twitter"},
            {"file": "c.png", "caption": "no label here"},
            {"file": "d.png", "caption": "a label that is not text", "label": ["x"]}]
    path = _manifest(tmp_path, rows)
    plain = open_dataset(path, size=16)
    assert [caps for _, caps in plain.items] == [[r["caption"]] for r in rows]
    ds = open_dataset(path, size=16, everyday=True)
    caps = [c for _, c in ds.items]
    assert caps[0][0] == rows[0]["caption"] and "a red apple" in caps[0] and len(caps[0]) > 3
    assert any("fruit" in c for c in caps[0]) and not any("3" in c for c in caps[0][1:])
    assert not any("twitter" in c for c in caps[0])  # a style the caption does not name is not named
    assert "a red apple emoji in twitter style" in caps[1]
    assert caps[2] == ["no label here"] and caps[3] == ["a label that is not text"]
    # training draws the phrasings: over many epochs every caption of an item comes up
    data = TrainingData(DataConfig(path=str(path), size=16, split="all", everyday_captions=True))
    seen = {data.batch(step, 4).captions[0] for step in range(200)}
    assert "a red apple" in seen and len(seen) > 4

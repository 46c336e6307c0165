"""The emoji natural-prompt benchmark: its prompt list, its pixel judge on known answers, the shuffled mapping, the
report on a tiny model, and the command line's bad-input lines."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wordbrush.cli import main
from wordbrush.data.emoji import split_of
from wordbrush.errors import WordbrushError
from wordbrush.eval.everyday import EVERYDAY_PROMPTS, EverydayPrompt, spread
from wordbrush.eval.everyday_report import check_prompts, derangement, evaluate_everyday
from wordbrush.eval.pixel_judge import (
    hits,
    load_image,
    load_references,
    read_concepts,
    target_ranks,
    to_vectors,
)

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = Path(os.environ.get("WORDBRUSH_EMOJI_MANIFEST", ROOT / "data" / "emoji" / "metadata.jsonl"))
needs_manifest = pytest.mark.skipif(not MANIFEST.is_file(), reason=f"emoji dataset not built at {MANIFEST} "
                                    "(wordbrush data emoji --out data/emoji, or set WORDBRUSH_EMOJI_MANIFEST)")


def fake_manifest(folder: Path, n: int = 60, seed: int = 0, split: str = "train") -> Path:
    """n concepts, each a google image (random blocky colours) and a twitter image (the same, slightly noisy), and a
    skin-tone variant row that is not a reference."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        concept = f"1F{i:03X}"
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)  # (64, 64, 3)
        noisy = np.clip(base.astype(int) + rng.integers(-10, 11, base.shape), 0, 255).astype(np.uint8)
        for style, img, code in (("google", base, concept), ("twitter", noisy, concept),
                                 ("google", 255 - base, f"{concept}-1F3FB")):
            name = f"images/{style}_{code.lower()}.png"
            Image.fromarray(img).save(folder / name)
            rows.append({"file": name, "caption": f"thing {i}; objects; tag{i}" + ("; twitter style" if style ==
                         "twitter" else ""), "code_point": code, "concept": concept, "label": f"thing {i}",
                         "category": "objects", "tags": [f"tag{i}"], "style": style, "split": split})
    path = folder / "metadata.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------------------ the prompt list


def test_prompt_list_is_large_varied_and_of_train_concepts():
    assert len(EVERYDAY_PROMPTS) >= 64
    assert len({p.prompt for p in EVERYDAY_PROMPTS}) == len(EVERYDAY_PROMPTS)
    assert len({p.concept for p in EVERYDAY_PROMPTS}) == len(EVERYDAY_PROMPTS)  # one prompt per concept
    groups = Counter(p.group for p in EVERYDAY_PROMPTS)
    assert len(groups) >= 8 and max(groups.values()) <= len(EVERYDAY_PROMPTS) // 4, groups
    # the split is a hash of the code point (data/emoji.py), so this holds for any build of the dataset
    assert [p for p in EVERYDAY_PROMPTS if split_of(p.concept) != "train"] == []


def test_prompts_are_written_as_people_write_not_as_captions():
    assert [p.prompt for p in EVERYDAY_PROMPTS if ";" in p.prompt or "style" in p.prompt] == []

    def bare(text: str) -> str:
        text = text.lower()
        return text.split(" ", 1)[1] if text.split(" ", 1)[0] in ("a", "an", "the") else text

    same = [p.prompt for p in EVERYDAY_PROMPTS if bare(p.prompt) == bare(p.label)]
    assert len(same) <= len(EVERYDAY_PROMPTS) // 10, same  # a few everyday names are the label; most are not


@needs_manifest
def test_every_prompt_concept_is_a_train_concept_of_the_built_manifest():
    concepts = read_concepts(MANIFEST)
    for p in EVERYDAY_PROMPTS:
        assert p.concept in concepts, p
        assert concepts[p.concept].split == "train", p
        assert concepts[p.concept].label == p.label, (p, concepts[p.concept].label)  # the code point is the emoji meant


def test_spread_takes_every_group_in_a_small_subset():
    few = spread(EVERYDAY_PROMPTS, 12)
    assert len(few) == 12 and len(set(few)) == 12 and few[0] == EVERYDAY_PROMPTS[0] and few[-1] == EVERYDAY_PROMPTS[-1]
    assert len({p.group for p in few}) >= 8
    assert spread(EVERYDAY_PROMPTS, 0) == EVERYDAY_PROMPTS and spread(EVERYDAY_PROMPTS, 1) == EVERYDAY_PROMPTS[:1]


# ------------------------------------------------------------------------------------------------ the judge


def test_reference_image_itself_is_a_hit_at_k1(tmp_path):
    refs = load_references(fake_manifest(tmp_path))
    assert len(refs) == 60  # one per concept: the skin-tone rows are not references
    own = [load_image(r.file) for r in refs.rows]
    concepts = [r.concept for r in refs.rows]
    assert hits(refs, to_vectors(own), concepts, k=1).all()
    assert (target_ranks(refs, to_vectors(own), concepts) == 0).all()
    # ... and is not a hit for another concept at k = 1
    assert not hits(refs, to_vectors(own), concepts[1:] + concepts[:1], k=1).any()
    # the other style (a noisy copy) is found too; the skin-tone variant (inverted colours) is not the reference
    other = [load_image(r.other_style) for r in refs.rows]
    assert hits(refs, to_vectors(other), concepts, k=1).all()


def test_random_noise_mostly_misses(tmp_path):
    refs = load_references(fake_manifest(tmp_path, n=200))
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (100, 64, 64, 3), dtype=np.uint8)
    targets = [refs.rows[i].concept for i in rng.integers(0, len(refs), 100)]
    assert hits(refs, to_vectors(noise), targets, k=10).mean() < 0.2  # chance: 10 / 200


@needs_manifest
def test_judge_on_the_real_references():
    refs = load_references(MANIFEST)
    assert len(refs) > 1000
    pick = [refs.index[p.concept] for p in EVERYDAY_PROMPTS[:20]]
    concepts = [refs.rows[i].concept for i in pick]
    assert hits(refs, refs.vectors[pick], concepts, k=1).all()
    noise = np.random.default_rng(0).integers(0, 256, (50, 64, 64, 3), dtype=np.uint8)
    assert hits(refs, to_vectors(noise), (concepts * 3)[:50]).mean() < 0.1


def test_judge_refuses_a_concept_it_has_no_reference_for(tmp_path):
    refs = load_references(fake_manifest(tmp_path, n=3))
    with pytest.raises(WordbrushError, match="not in the manifest"):
        hits(refs, refs.vectors[:1], ["2615"])


# ------------------------------------------------------------------------------------------------ shuffled mapping


@pytest.mark.parametrize("n", [2, 3, 7, 64, len(EVERYDAY_PROMPTS)])
def test_shuffled_mapping_never_maps_a_prompt_to_its_own_concept(n):
    p = derangement(n)
    assert sorted(p.tolist()) == list(range(n))
    assert (p != np.arange(n)).all()
    assert (derangement(n) == p).all()  # fixed
    if n == len(EVERYDAY_PROMPTS):
        concepts = [x.concept for x in EVERYDAY_PROMPTS]
        assert all(concepts[p[i]] != concepts[i] for i in range(n))


# ------------------------------------------------------------------------------------------------ the report


def test_report_on_a_tiny_model(tmp_path):
    from conftest import tiny_pipeline

    refs = load_references(fake_manifest(tmp_path / "d", n=30))
    prompts = [EverydayPrompt(f"a picture of thing number {i}", refs.rows[i].concept, f"thing {i}", "objects")
               for i in range(3)]
    pipe = tiny_pipeline()
    report = evaluate_everyday(pipe, refs, tmp_path / "out", prompts, images_per_prompt=2, progress=False)
    assert report["prompts"] == 3 and report["images_per_prompt"] == 2 and report["references"] == 30
    assert set(report["hit_rate"]) == {"everyday", "structured", "shuffled"}
    assert report["other_style_real_hit_rate"] == 1.0
    for row, p in zip(report["per_prompt"], prompts):
        assert row["concept"] == p.concept and row["shuffled_against"] != p.concept
        assert len(row["everyday_hits"]) == len(row["structured_ranks"]) == 2
        assert row["caption"] == refs.rows[refs.index[p.concept]].caption
    for name in ("report.json", "report.md", "grid.png", "grid_all.png"):
        assert (tmp_path / "out" / name).is_file()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["hit_rate"] == report["hit_rate"]


def test_prompts_of_heldout_concepts_are_refused(tmp_path):
    refs = load_references(fake_manifest(tmp_path, n=4, split="heldout"))
    with pytest.raises(WordbrushError, match="'heldout' split"):
        check_prompts(refs, [EverydayPrompt("x", refs.rows[0].concept, "", "g"),
                             EverydayPrompt("y", refs.rows[1].concept, "", "g")])


# ------------------------------------------------------------------------------------------------ command line


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", "wordbrush.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args_fn, msg", [
    (lambda t: ["eval", "--model", "emoji", "--everyday"], "--everyday needs --data"),
    (lambda t: ["eval", "--model", "emoji", "--everyday", "--data", str(t / "missing.jsonl")], "no such manifest"),
    (lambda t: ["eval", "--model", "emoji", "--everyday", "--data", str(t / "plain.jsonl")],
     "no code_point, concept, style column"),
    (lambda t: ["eval", "--model", "emoji", "--everyday", "--data", str(t / "d" / "metadata.jsonl")],
     "is not in the manifest"),
    (lambda t: ["eval", "--model", "emoji", "--everyday", "--data", str(t / "captions.csv")], "a .jsonl manifest"),
])
def test_everyday_cli_bad_input_is_one_line(tmp_path, args_fn, msg):
    (tmp_path / "plain.jsonl").write_text(json.dumps({"file": "a.png", "caption": "a cat"}) + "\n")
    (tmp_path / "captions.csv").write_text("file,caption\na.png,a cat\n")
    fake_manifest(tmp_path / "d", n=3)
    r = _run(args_fn(tmp_path), tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and msg in lines[0], r.stderr


@needs_manifest
def test_everyday_cli_end_to_end_on_the_builtin_model(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "--model", "emoji", "--everyday", "--data", str(MANIFEST), "--images", "1",
                 "--max-items", "2", "--candidates", "1", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "everyday " in printed and "structured " in printed and "shuffled " in printed
    report = json.loads((out / "report.json").read_text())
    assert report["prompts"] == 2 and report["options"]["candidates"] == 1
    assert (out / "grid.png").is_file() and (out / "report.md").is_file()

"""The prompt rewriter (text/rewriter.py): a prompt in a person's words is read as the nearest of a model's own
captions through the frozen MiniLM; training captions and prompts near no concept are drawn as typed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_pipeline
from PIL import Image

from wordbrush import TextToImagePipeline
from wordbrush.cli import main
from wordbrush.errors import CheckpointError
from wordbrush.text.rewriter import REWRITER_FOLDER, PromptRewriter

CONCEPTS = {  # label -> (structured caption, tags): the form the emoji manifest has
    "hot beverage": ("hot beverage; food and drink; beverage, cafe, caffeine", ["coffee", "tea", "drink", "steaming"]),
    "rocket": ("rocket; travel and places; space", ["launch", "spaceship", "nasa"]),
    "dog face": ("dog face; animals and nature; dog, face", ["pet", "puppy", "woof"]),
    "red apple": ("red apple; food and drink; apple, fruit", ["red", "fruit", "apple"]),
}


def manifest(folder):
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, (label, (caption, tags)) in enumerate(CONCEPTS.items()):
        for style in ("google", "twitter"):
            name = f"images/{style}_{i}.png"
            Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / name)
            rows.append({"file": name, "caption": caption + ("; twitter style" if style == "twitter" else ""),
                         "concept": f"C{i}", "label": label, "keywords": tags, "style": style, "split": "train"})
    path = folder / "metadata.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def rewriter(tmp_path_factory):
    return PromptRewriter.from_dataset(manifest(tmp_path_factory.mktemp("data")), min_similarity=0.3)


def test_everyday_words_are_read_as_the_concepts_caption(rewriter):
    asked = ["a cup of hot coffee", "a spaceship taking off", "a cute puppy", "a shiny apple"]
    drawn = [r.drawn for r in rewriter.rewrite(asked)]
    assert drawn == [c for c, _ in CONCEPTS.values()]  # the default style: no words of a style were asked for
    assert all(r.revised and 0.3 <= r.similarity < 1 for r in rewriter.rewrite(asked))
    styled = rewriter.rewrite(["a cup of hot coffee in twitter style"])[0].drawn
    assert styled == CONCEPTS["hot beverage"][0] + "; twitter style"


def test_training_captions_and_far_prompts_are_drawn_as_typed(rewriter):
    typed = ["rocket; travel and places; space; twitter style", "Dog face;  animals and nature; dog, face"]
    assert [r.drawn for r in rewriter.rewrite(typed)] == typed  # a training caption, in any case or spacing
    far = rewriter.rewrite(["a cup of hot coffee"], min_similarity=0.99)[0]  # near, but not that near
    assert far.drawn == "a cup of hot coffee" and not far.revised and far.similarity < 0.99


def test_a_pipeline_draws_the_revision_and_rewrite_false_draws_as_typed(rewriter, tmp_path):
    pipe = tiny_pipeline()
    pipe.rewriter = rewriter
    drawn = []
    real_draw = pipe.draw
    pipe.draw = lambda prompts, *a, **kw: drawn.append(list(prompts)) or real_draw(prompts, *a, **kw)
    with pytest.warns(UserWarning, match="was read as the model's caption 'rocket; travel"):
        out = pipe("a spaceship taking off", num_images_per_prompt=2, seed=3)
    assert out.prompts == ["a spaceship taking off"] * 2
    assert out.revised_prompts == drawn[-1] == ["rocket; travel and places; space"] * 2  # the revision is drawn
    typed = pipe("a spaceship taking off", num_images_per_prompt=2, seed=3, rewrite=False)
    assert typed.revised_prompts == typed.prompts == drawn[-1]
    del pipe.draw

    pipe.save_pretrained(tmp_path / "m")  # saved and loaded with the model
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "m")
    assert loaded.rewriter.captions == rewriter.captions
    assert torch.equal(loaded.rewriter.points.centroids, rewriter.points.centroids)
    assert loaded.revise(["a cute puppy"])[0] == ["dog face; animals and nature; dog, face"]


def test_a_broken_rewriter_folder_is_one_line(rewriter, tmp_path):
    pipe = tiny_pipeline()
    pipe.rewriter = rewriter
    folder = pipe.save_pretrained(tmp_path / "m") / REWRITER_FOLDER
    captions = json.loads((folder / "captions.json").read_text())
    (folder / "captions.json").write_text(json.dumps({"captions": captions["captions"][:2]}))
    with pytest.raises(CheckpointError, match="2 captions for the 8 points"):
        TextToImagePipeline.from_pretrained(tmp_path / "m")
    (folder / "captions.json").write_text(json.dumps({"captions": list(range(8))}))
    with pytest.raises(CheckpointError, match="exactly 'captions', a list of texts"):
        TextToImagePipeline.from_pretrained(tmp_path / "m")


def test_cli_builds_a_models_rewriter_and_shows_it(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path / "m")
    data = manifest(tmp_path / "d")
    assert main(["rewriter", "build", "--model", str(tmp_path / "m"), "--data", str(data), "-q",
                 "--min-similarity", "0.3"]) == 0
    assert "8 captions" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.joinpath("m").iterdir() if p.name.startswith(".")) == []  # no staging
    assert main(["rewriter", "show", "--model", str(tmp_path / "m"), "a cup of hot coffee"]) == 0
    assert "-> hot beverage; food and drink" in capsys.readouterr().out
    assert main(["rewriter", "build", "--model", str(tmp_path / "nothing"), "--data", str(data)]) == 2
    assert "error" in capsys.readouterr().err


def test_the_server_draws_the_revision_and_answers_it_as_revised_prompt(rewriter):
    from test_serve import Spy, post, running

    from wordbrush.serve.app import create_app
    from wordbrush.serve.settings import ServeSettings

    pipe = tiny_pipeline(image_size=16, text_len=8, captions=200)
    pipe.rewriter = rewriter
    spy = Spy(pipe)
    with running(create_app(ServeSettings(max_wait_ms=0), spy)) as base:
        read = post(base, {"prompt": "a cute puppy", "n": 2, "seed": 5})
        typed = post(base, {"prompt": "a cute puppy", "seed": 5, "rewrite": False})
        bad = post(base, {"prompt": "a cute puppy", "rewrite": "no"})
    assert read.status_code == 200 and typed.status_code == 200
    caption = CONCEPTS["dog face"][0]
    assert [d["revised_prompt"] for d in read.json()["data"]] == [caption, caption]
    assert any("was read as the model's caption" in w for w in read.json()["warnings"])
    assert typed.json()["data"][0]["revised_prompt"] == "a cute puppy"
    assert [c[0] for c in spy.calls] == [[caption, caption], ["a cute puppy"]]  # what the model drew
    assert bad.status_code == 400 and "rewrite" in bad.json()["error"]["message"]


def test_a_lexicon_reads_first_and_the_caption_index_after(rewriter, tmp_path):
    from wordbrush.text.lexicon import Lexicon

    lex = Lexicon(frozenset("a cute puppy cup of hot coffee".split()), {"pup": "puppy", "java": "coffee"})
    both = PromptRewriter.reading_through(lex, rewriter)
    assert both.cfg.points == rewriter.cfg.points and both.cfg.lexicon
    back = PromptRewriter.from_pretrained(both.save_pretrained(tmp_path / REWRITER_FOLDER))
    assert torch.equal(back.points.centroids, rewriter.points.centroids) and back.lexicon.table == lex.table
    got = back.rewrite(["a cute pup", "a cup of hot java"])
    assert [r.drawn for r in got] == [CONCEPTS["dog face"][0], CONCEPTS["hot beverage"][0]]

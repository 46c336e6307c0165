"""The one generator contract and the one registry: a new family is one file (tests/toy_generator.py) plus one
registry entry, and then works through the pipeline, save/load and `wordbrush generate` with no other change."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wordbrush.cli import main
from wordbrush.data.shapes import ShapesDataset
from wordbrush.errors import WordbrushError
from wordbrush.generators import registry
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.text.tokenizer import TextTokenizer

sys.path.insert(0, str(Path(__file__).parent))
from toy_generator import ToyConfig, ToyGenerator  # noqa: E402

PACKAGE = Path(__file__).parent.parent / "wordbrush"


@pytest.fixture()
def toy():
    registry.register(registry.Family("toy", ToyGenerator, "a flat colour per image"))  # the one entry
    try:
        ds = ShapesDataset(200, size=16)
        tokenizer = TextTokenizer.train((ds.item_arrays(i)[1] for i in range(200)), vocab_size=300)
        yield TextToImagePipeline(tokenizer, ToyGenerator(ToyConfig(text_vocab=tokenizer.vocab_size)))
    finally:
        registry.unregister("toy")


def test_a_registered_toy_runs_through_the_pipeline_save_load_and_the_cli(toy, tmp_path, capsys):
    out = toy(["a red circle", "two blue squares"], num_images_per_prompt=2, seed=3)
    assert [im.size for im in out.images] == [(16, 16)] * 4 and out.seeds == [3, 4, 5, 6]
    assert out.tokens.shape == (4, 0)
    # an image depends on its seed and prompt alone, not on what it was drawn with
    alone = toy("two blue squares", num_images_per_prompt=1, seed=5).images[0]
    assert np.array_equal(np.asarray(alone), np.asarray(out.images[2]))
    folder = toy.save_pretrained(tmp_path / "toy-model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "tokenizer.json", "toy.safetensors"]
    again = TextToImagePipeline.from_pretrained(folder)
    assert isinstance(again.generator, ToyGenerator)
    assert np.array_equal(np.asarray(again("a red circle", seed=3).images[0]), np.asarray(out.images[0]))
    assert main(["generate", "a red circle", "--model", str(folder), "-n", "2", "--out", str(tmp_path / "o")]) == 0
    pngs = sorted((tmp_path / "o").glob("0001/0*.png"))
    assert len(pngs) == 2 and Image.open(pngs[0]).text["parameters"].startswith("a red circle\nSeed: 0")
    # what the contract refuses, it refuses in one clear line
    with pytest.raises(WordbrushError, match="no likelihood"):
        toy("a red circle", candidates=2)
    with pytest.raises(WordbrushError, match="cannot complete|completes images"):
        toy("a red circle", prime_images=[out.images[0]], prime_rows=1)


def test_a_family_name_is_taken_once_and_unknown_names_are_clear(toy):
    with pytest.raises(WordbrushError, match="already registered"):
        registry.register(registry.Family("toy", ToyGenerator, "again"))
    with pytest.raises(WordbrushError, match="unknown generator 'nope' \\(known: dalle, maskgit, gan, toy\\)"):
        registry.get("nope")


def test_the_pipeline_has_no_branch_on_a_generator_class():
    tree = ast.parse((PACKAGE / "pipeline.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"DALLE", "MaskGIT", "GAN"}, "pipeline.py names a generator class"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "isinstance"]
    assert not [ast.unparse(c) for c in calls if "generator" in ast.unparse(c.args[0])]


def test_help_imports_no_torch():
    """`wordbrush --help` and every command's --help print without loading torch (a slow import)."""
    from wordbrush.cli.train import stages

    commands = [[], ["generate"], ["train"], ["eval"], ["data"], ["data", "shapes"], ["explain"], ["bench"], ["serve"]]
    commands += [["train", s] for s in stages()]
    code = ("import sys, runpy; sys.argv = ['wordbrush'] + sys.argv[1:] + ['--help']\n"
            "try:\n    runpy.run_module('wordbrush', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    for argv in commands:
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
        assert "usage: wordbrush" in r.stdout and r.stderr.strip().endswith("NO-TORCH"), (argv, r.stderr[-300:])

"""`wordbrush explain`: per-word attention maps, the PNG panel, and that colour words point at their objects."""

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_pipeline
from wordbrush.cli import main
from wordbrush.errors import WordbrushError
from wordbrush.eval.prompts import make_prompts
from wordbrush.explain import colour_words_on_their_objects, explain, save_panel
from wordbrush.pipeline import TextToImagePipeline


@pytest.fixture(scope="module", params=["dalle", "maskgit"])
def pipe(request):
    return tiny_pipeline(generator=request.param)


def test_maps_per_word(pipe, tmp_path):
    expl = explain(pipe, "A red circle, left of a blue square", seed=2)
    grid = pipe.generator.cfg.image_grid
    assert expl.words == ["a", "red", "circle", ",", "left", "of", "a", "blue", "square"]
    assert expl.maps.shape == (len(expl.words), grid, grid)
    assert (expl.maps >= 0).all() and expl.maps.sum() > 0
    assert np.allclose(expl.maps.sum(0), 1, atol=1e-4)  # at each image token: shares over the words
    assert explain(pipe, "A red circle, left of a blue square", seed=2).image.tobytes() == expl.image.tobytes()
    one = explain(pipe, "a red circle", seed=2, layers=[1])
    assert one.layers == [1] and not np.allclose(one.maps, explain(pipe, "a red circle", seed=2, layers=[0]).maps)
    png = save_panel(expl, tmp_path / "p.png")
    assert Image.open(png).size[0] > 600
    with pytest.raises(WordbrushError, match="layers"):
        explain(pipe, "a red circle", layers=[7])


def test_cli_explain(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "m")
    assert main(["explain", "a red circle above a blue square", "--model", str(tmp_path / "m"),
                 "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "image.png").is_file() and (tmp_path / "x" / "explain.png").is_file()
    assert main(["explain", "a red circle", "--model", str(tmp_path / "m"), "--layers", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layers" in err[0]


def test_colour_words_peak_on_their_own_objects():
    """On the built-in model, each colour word of a two-object prompt attends most to its own object in most
    images where both objects came out right."""
    pipe = TextToImagePipeline.from_pretrained("shapes")
    prompts = [s.prompt for s in make_prompts(12, seed=777) if s.category in ("attribute_binding", "position")]
    hits, total = colour_words_on_their_objects(pipe, prompts)
    assert total >= 20
    assert hits / total > 0.5, (hits, total)

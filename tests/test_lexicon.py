"""The lexicon (text/lexicon.py, text/lexicon_build.py): a prompt read word by word into a model's own words, from
colour names and WordNet, never from the paraphrase benchmark's lists."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from wordbrush import TextToImagePipeline
from wordbrush.checkpoint import builtin_path
from wordbrush.cli import main
from wordbrush.data.captions import RESERVED_WORDS
from wordbrush.errors import CheckpointError
from wordbrush.text.lexicon import Lexicon
from wordbrush.text.lexicon_build import colour_table, nearest_colour
from wordbrush.text.rewriter import CaptionPoints, PromptRewriter, RewriterConfig

KNOWN = frozenset("a an and red blue green white circle circles square to the left of above two together with".split())


def lexicon(**kw) -> Lexicon:
    table = {"crimson": "red", "navy blue": "blue", "disc": "circle", "discs": "circles", "a pair of": "two"}
    return Lexicon(KNOWN, table, **kw)


def test_read_maps_the_longest_phrase_keeps_known_words_and_drops_the_rest():
    lex = lexicon()
    assert lex.read("Please draw a CRIMSON disc, above a navy blue square!") == "a red circle above a blue square"
    assert lex.read("a pair of crimson discs") == "two red circles"  # "a pair of" before "a"
    assert lex.read("a red circle to the left of a blue square") == "a red circle to the left of a blue square"
    assert lex.reads_as_typed("A red circle, to the left of a blue square.")
    assert not lex.reads_as_typed("a crimson circle")


def test_runs_of_unknown_words_are_read_as_the_models_phrase_the_whole_prompt_keeps_nearest():
    # sentence vectors by hand: each text is the sum of its words' directions, so "as well as" means "and",
    # "beside" is near both "and" and "to the left of" by itself, and "glorp" is near nothing
    axes = {"and": 0, "as": 0, "well": 0, "together": 1, "with": 1, "along": 1, "beside": 2, "left": 2, "west": 2}

    def sentences(texts):
        out = torch.zeros(len(texts), 8)
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, axes.get(w, 3 + hash(w) % 5)] += 1
        return torch.nn.functional.normalize(out + 1e-6, dim=-1)

    lex = lexicon(phrases=["and", "together with", "to the left of"])
    assert lex.read("a crimson disc as well as a blue square", sentences) == "a red circle and a blue square"
    assert lex.read("a red circle along with a blue square", sentences) == "a red circle together with a blue square"
    assert lex.read("a red circle glorp a blue square", sentences) == "a red circle a blue square"  # near nothing
    assert lex.read("a red circle glorp a blue square") == "a red circle a blue square"  # no MiniLM: dropped


def test_colour_names_go_to_the_models_colour_words_by_hue_and_lightness():
    table = colour_table({"red", "green", "blue", "yellow", "white", "circle"})
    assert table["navy blue"] == "blue" and table["royal blue"] == "blue"  # a "royal blue" is a blue
    assert (table["crimson"], table["scarlet"], table["lime"], table["ivory"]) == ("red", "red", "green", "white")
    assert "red" not in table and "circle" not in table  # the model's own words are never rewritten
    palette = {"red": (1.0, 0, 0), "blue": (0.1, 0.3, 1.0), "white": (1.0, 1.0, 1.0)}
    assert nearest_colour((0.8, 0.1, 0.2), palette) == "red"
    assert nearest_colour((0.95, 0.95, 0.9), palette) == "white"
    assert nearest_colour((0.5, 0.5, 0.5), {"red": (1.0, 0, 0)}) is None  # grey, and no achromatic word to be


def test_a_lexicon_rewriter_saves_loads_and_refuses_a_bad_file(tmp_path):
    rw = PromptRewriter(CaptionPoints(RewriterConfig(0, lexicon=True)), [], lexicon(phrases=["and"]))
    got = rw.rewrite(["a crimson disc", "a red circle"])
    assert [(r.drawn, r.revised) for r in got] == [("a red circle", True), ("a red circle", False)]
    folder = rw.save_pretrained(tmp_path / "rewriter")
    back = PromptRewriter.from_pretrained(folder)
    assert back.lexicon.table == rw.lexicon.table and back.lexicon.phrases == ["and"] and back.cfg.points == 0
    data = json.loads((folder / "lexicon.json").read_text())
    data["table"]["mauve"] = "violet"  # a word the model does not know
    (folder / "lexicon.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="'mauve' -> 'violet'"):
        PromptRewriter.from_pretrained(folder)
    (folder / "lexicon.json").write_text(json.dumps({"known": [], "table": {}}))
    with pytest.raises(CheckpointError, match="must hold exactly"):
        PromptRewriter.from_pretrained(folder)
    with pytest.raises(Exception, match="caption points, a lexicon or both"):
        RewriterConfig(0)


def test_the_shipped_shapes_model_reads_words_it_never_saw():
    pipe = TextToImagePipeline.from_pretrained("shapes")
    assert pipe.rewriter is not None and pipe.rewriter.lexicon is not None
    drawn, notes = pipe.revise(["a scarlet disc beneath a cobalt box", "two blue squares"])
    assert drawn[0].split()[-5:] == ["circle", "below", "a", "blue", "square"] and "red" in drawn[0].split()
    assert drawn[1] == "two blue squares" and len(notes) == 1 and "scarlet" in notes[0]
    assert pipe.revise(["a scarlet disc"], pipe.sampling_options(rewrite=False))[0] == ["a scarlet disc"]


@pytest.mark.slow
def test_cli_builds_a_lexicon_from_wordnet_and_colour_names(tmp_path, capsys):
    pytest.importorskip("nltk")
    from wordbrush.text.lexicon_build import open_wordnet

    try:
        open_wordnet()
    except Exception as e:  # noqa: BLE001 - WordNet is a build-time resource; CI installs it
        pytest.skip(f"WordNet is not installed here: {e}")
    folder = tmp_path / "shapes"
    shutil.copytree(builtin_path("shapes"), folder, ignore=shutil.ignore_patterns("rewriter"))
    main(["rewriter", "lexicon", "--model", str(folder), "--data", "shapes", "--captions", "3000"])
    assert "lexicon.json" in capsys.readouterr().out
    lex = PromptRewriter.from_pretrained(folder / "rewriter").lexicon
    # knowledge, not lists: synonyms, kinds, satellites, quantities and colour names, and their plurals
    for word, meant in {"rhomb": "rhombus", "wedge": "triangle", "tiny": "small", "huge": "large", "couple": "two",
                        "trio": "three", "beneath": "below", "emerald": "green", "navy": "blue", "discs": "circles",
                        "a pair of": "two", "rectangle": "square"}.items():
        assert lex.table.get(word) == meant, (word, lex.table.get(word))
    assert "to the left of" in lex.phrases and "and" in lex.phrases and "red" not in lex.phrases
    assert not lex.known & set(lex.table)  # the model's own words are never rewritten
    # the paraphrase benchmark's words are not in the captions (so its figures measure the reading, not training)
    assert not RESERVED_WORDS & lex.known

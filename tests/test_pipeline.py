"""TextToImagePipeline and `wordbrush generate`: contract, save/load, prompt validation, the tokenizer."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import tiny_pipeline
from PIL import Image

from wordbrush.cli import main
from wordbrush.data.shapes import ShapesDataset
from wordbrush.errors import CheckpointError, WordbrushError
from wordbrush.pipeline import TextToImagePipeline, candidate_rng
from wordbrush.text.tokenizer import PAD_ID, TextTokenizer, clean_prompt


@pytest.fixture(scope="module", params=["dalle", "maskgit"])
def pipe(request):
    return tiny_pipeline(image_size=32, text_len=12, generator=request.param)


@pytest.fixture(scope="module")
def tokenizer(pipe):
    return pipe.tokenizer


def test_tokenizer_pads_truncates_and_reports_unknown_words(tokenizer):
    enc = tokenizer.encode(["a red circle", "a big red ball " * 20], length=12)
    assert enc.ids.shape == (2, 12) and enc.ids.dtype == torch.long
    assert (enc.ids[0, 3:] == PAD_ID).all() and (enc.ids[0, :3] != PAD_ID).all()
    assert enc.truncated == [False, True]
    assert enc.unknown_words[0] == [] and {"big", "ball"} <= set(enc.unknown_words[1])
    assert clean_prompt("  A\tRed\x00 circle\n") == "a red circle"
    assert tokenizer.decode(enc.ids[0]) == "a red circle"


def test_tokenizer_save_load(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    again = TextTokenizer.load(tmp_path)
    assert torch.equal(again.encode(["two blue squares"], 8).ids, tokenizer.encode(["two blue squares"], 8).ids)
    (tmp_path / "tokenizer.json").write_text("garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        TextTokenizer.load(tmp_path)


def test_call_contract(pipe):
    out = pipe(["a red circle", "two blue squares"], num_images_per_prompt=3, seed=5)
    assert len(out.images) == 6 and all(isinstance(im, Image.Image) and im.size == (32, 32) for im in out.images)
    assert out.prompts == ["a red circle"] * 3 + ["two blue squares"] * 3  # prompt-major
    assert out.seeds == [5, 6, 7, 8, 9, 10]
    again = pipe("two blue squares", num_images_per_prompt=1, seed=8)  # image k uses seed + k
    assert torch.equal(again.tokens[0], out.tokens[3])


def test_save_load_roundtrip_is_bit_identical(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    header = json.loads((tmp_path / "m" / "config.json").read_text())
    assert header["kind"] == "pipeline" and header["config"]["generator"] == pipe.generator.kind
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "m")
    a = pipe(["a green cross above a white square"], num_images_per_prompt=2, seed=1)
    b = loaded(["a green cross above a white square"], num_images_per_prompt=2, seed=1)
    assert torch.equal(a.tokens, b.tokens)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.images, b.images))


def test_from_pretrained_errors(pipe, tmp_path):
    with pytest.raises(CheckpointError, match="no model folder or built-in model"):
        TextToImagePipeline.from_pretrained(tmp_path / "nothing")
    pipe.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    kind = cfg["config"]["generator"]
    cfg["config"][kind]["dim"] = 64
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=rf"{kind}: tensor '.*' has shape"):
        TextToImagePipeline.from_pretrained(tmp_path / "m")
    cfg["config"]["generator"] = "diffusion"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown generator 'diffusion'"):
        TextToImagePipeline.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("prompt, outcome", [
    ("", "empty"),
    ("   \t\n ", "empty"),
    ("\x00\x01\x1b", "empty"),
    ("a red circle " * 770, "truncated"),  # ~10,000 characters
    ("красный круг и синий квадрат", "never saw"),
    ("一个红色的圆", "never saw"),
    ("a red\x07 circle\x1b[31m", None),
    ("a zebra riding a unicycle", "never saw"),
    ("🟥🔵", "never saw"),
])
def test_hostile_prompts_generate_or_fail_clearly(pipe, prompt, outcome):
    if outcome == "empty":
        with pytest.raises(WordbrushError, match="empty"):
            pipe(prompt)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipe(prompt, seed=0)
    assert len(out.images) == 1
    notes = " ".join(out.warnings)
    if outcome:
        assert outcome in notes and any(outcome in str(w.message) for w in caught)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(num_images_per_prompt=0), "num_images_per_prompt"),
    (dict(seed=-1), "seed"),
    (dict(temperature=0.0), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_k=10_000), "top_k"),
    (dict(num_inference_steps=0), "steps"),
    (dict(candidates=0), "candidates"),
    (dict(candidates=65), "candidates"),
])
def test_bad_arguments(pipe, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        pipe("a red circle", **kwargs)
    with pytest.raises(WordbrushError, match="not a string"):
        pipe(["a red circle", 3])


def test_candidates_keep_the_likeliest_of_those_drawn(pipe):
    """candidates=C draws C token grids per image (candidate 0 is the plain draw of that seed) and keeps the one
    with the highest log_likelihood given the prompt, whatever the batch size."""
    prompts = ["a red circle", "two blue squares"]
    plain = pipe(prompts, seed=5)
    out = pipe(prompts, seed=5, candidates=3)
    small = pipe(prompts, seed=5, candidates=3, batch_size=2)
    assert torch.equal(out.tokens, small.tokens)
    text = pipe.tokenizer.encode(prompts, pipe.generator.cfg.text_len).ids
    for i, seed in enumerate(plain.seeds):
        drawn = torch.cat([pipe.generator.sample(text[i : i + 1], [candidate_rng(seed, c)], pipe.sampling)
                           for c in range(3)])  # (3, N)
        assert torch.equal(drawn[0], plain.tokens[i])
        assert len({tuple(t.tolist()) for t in drawn}) == 3  # the candidates differ
        best = pipe.generator.log_likelihood(text[i : i + 1].repeat(3, 1), drawn).argmax()
        assert torch.equal(out.tokens[i], drawn[best])


def test_dalle_log_likelihood_is_the_training_loss():
    pipe = tiny_pipeline(image_size=32, text_len=12)
    text = pipe.tokenizer.encode(["a red circle", "a blue square"], 12).ids
    image = torch.randint(0, 32, (2, pipe.generator.cfg.image_len))
    loss = pipe.generator(text, image).image  # mean cross-entropy over the image tokens
    ll = pipe.generator.log_likelihood(text, image)
    assert ll.shape == (2,)
    assert torch.allclose(-ll.sum() / image.numel(), loss, atol=1e-5)


def test_priming_keeps_the_top_rows(pipe):
    img = ShapesDataset(1, size=32)[0][0]
    out = pipe(["a red circle"], prime_images=[img], prime_rows=3, num_images_per_prompt=2)
    codes = pipe.encode_images([img])
    assert torch.equal(out.tokens[:, :24], codes[:, :24].repeat(2, 1))
    with pytest.raises(WordbrushError, match="prime_rows"):
        pipe(["a red circle"], prime_images=[img], prime_rows=0)


def test_cli_generate_writes_pngs_and_grid(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "m")
    code = main(["generate", "a red circle", "a blue square to the left of a green cross", "--model",
                 str(tmp_path / "m"), "-n", "2", "--seed", "3", "--out", str(tmp_path / "o")])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 5 and printed[-1].endswith("grid.png")
    assert all(Path(p).parent == tmp_path / "o" / "0001" and Path(p).exists() for p in printed)


def test_cli_generate_bad_prompt_is_one_line(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    r = subprocess.run([sys.executable, "-m", "wordbrush.cli", "generate", "  ", "--model", str(tmp_path / "m")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "empty" in r.stderr


def test_sampling_defaults_are_saved_with_the_model(pipe, tmp_path):
    from wordbrush.generators.options import SampleOptions

    custom = TextToImagePipeline(pipe.tokenizer, pipe.generator, pipe.vae,
                                 SampleOptions(guidance_scale=2.0, temperature=0.8, top_k=5))
    custom.save_pretrained(tmp_path / "m")
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "m")
    assert loaded.sampling == SampleOptions(guidance_scale=2.0, temperature=0.8, top_k=5)
    a = loaded("a red circle", seed=2)  # defaults apply ...
    b = pipe("a red circle", seed=2, guidance_scale=2.0, temperature=0.8, top_k=5)  # ... as if passed
    assert torch.equal(a.tokens, b.tokens)


@pytest.mark.parametrize("generator", ["dalle", "maskgit"])
def test_from_config_r1_builds_the_reference_shapes(generator):
    pipe = TextToImagePipeline.from_config("r1", generator=generator)
    assert pipe.generator.kind == generator
    c = pipe.generator.cfg
    assert (c.dim, c.depth, c.heads, c.text_len, c.text_vocab, c.image_vocab, c.image_grid) == (256, 6, 8, 32, 1000, 512, 8)
    assert pipe.vae.cfg.image_size == 64 and pipe.vae.grid_size == 8
    with pytest.raises(WordbrushError, match="unknown reference config"):
        TextToImagePipeline.from_config("r9")
    with pytest.raises(WordbrushError, match="unknown generator"):
        TextToImagePipeline.from_config("r1", generator="diffusion")


def test_bf16_weights_sample_and_the_vae_stays_float32(pipe, monkeypatch):
    import copy

    import wordbrush.pipeline as pipeline

    monkeypatch.setattr(pipeline, "cpu_has_fast_bf16", lambda: False)  # a CPU that emulates bf16 is told so
    with pytest.warns(UserWarning, match="no native bfloat16"):
        low = copy.deepcopy(pipe).to(dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in low.generator.parameters())
    assert all(p.dtype == torch.float32 for p in low.vae.parameters())
    out = low(["a red circle", "two blue squares"], num_images_per_prompt=2, seed=3, guidance_scale=2.0)
    assert len(out.images) == 4 and out.images[0].size == (32, 32)
    assert ((out.tokens >= 0) & (out.tokens < 32)).all()
    with pytest.raises(WordbrushError, match="floating-point"):
        low.to(dtype=torch.int64)

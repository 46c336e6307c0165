"""CLIP: the contrastive model, its training loop, reranking with it, and the metrics computed in its space."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_pipeline
from PIL import Image

from wordbrush.checkpoint import save_part
from wordbrush.cli import main
from wordbrush.clip import CLIP, CLIPConfig, CLIPScorer
from wordbrush.data.config import DataConfig
from wordbrush.errors import CheckpointError, WordbrushError
from wordbrush.eval.realism import (ROWS_PER_DRAW, EvalSet, _draw, clip_score, evaluate_on_dataset, frechet_distance,
                                    load_eval_set, mismatched, retrieval_top1)
from wordbrush.pipeline import TextToImagePipeline, candidate_rng
from wordbrush.text.tokenizer import TextTokenizer
from wordbrush.train.clip import CLIPTrainConfig, random_shift, train_clip
from wordbrush.utils.images import to_tensor

COLOURS = {"red": (220, 20, 20), "green": (20, 180, 20), "blue": (20, 40, 230), "yellow": (240, 220, 0)}


def colour_folder(root, n_per_colour=24, size=32, broken=True):
    """Flat colour squares on white, captioned by colour (+ the five kinds of broken item when `broken`)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    k = 0
    for name, rgb in COLOURS.items():
        for _ in range(n_per_colour):
            a = np.full((size, size, 3), 255, np.uint8)
            x, y = rng.integers(0, size // 2, 2)
            a[y : y + size // 2, x : x + size // 2] = rgb
            Image.fromarray(a).save(root / f"{k:03d}.png")
            (root / f"{k:03d}.txt").write_text(f"a {name} square\na square that is {name}\n")
            k += 1
    if broken:  # the five kinds the issue names
        good = (root / "000.png").read_bytes()
        (root / "b_trunc.png").write_bytes(good[: len(good) // 2])
        (root / "b_trunc.txt").write_text("a red square")
        (root / "b_zero.png").write_bytes(b"")
        (root / "b_zero.txt").write_text("a red square")
        (root / "b_text.png").write_text("not an image")
        (root / "b_text.txt").write_text("a red square")
        Image.new("RGB", (size, size)).save(root / "b_empty.png")
        (root / "b_empty.txt").write_text("\n  \n")
        Image.new("RGB", (size, size)).save(root / "b_long.png")
        (root / "b_long.txt").write_text("x" * 1_000_000)
    return root


def tiny_clip_config(vocab: int, image_size: int = 32) -> CLIPConfig:
    return CLIPConfig(text_vocab=vocab, text_len=8, text_dim=32, text_depth=1, text_heads=4, image_size=image_size,
                      image_channels=(8, 16), embed_dim=16)


def tiny_scorer(seed=0, image_size=32) -> CLIPScorer:
    torch.manual_seed(seed)
    tok = TextTokenizer.train([f"a {c} square" for c in COLOURS] + ["a red circle to the left of a blue square"], 60)
    return CLIPScorer(CLIP(tiny_clip_config(tok.vocab_size, image_size)), tok)


def test_clip_loss_embeddings_and_strict_roundtrip(tmp_path):
    scorer = tiny_scorer()
    images = torch.rand(4, 3, 32, 32)
    ids = scorer.tokenizer.encode(["a red square"] * 4, 8).ids
    loss = scorer.model(images, ids)
    # one caption for all: each image's softmax over the 4 captions is uniform (log 4); each caption's over the 4
    # images is at least as spread, so log 4 is the floor; the same image 4 times reaches it exactly
    assert loss.item() >= math.log(4) - 1e-5 and loss.requires_grad
    same = scorer.model(images[:1].expand(4, -1, -1, -1), ids)
    assert same.item() == pytest.approx(math.log(4), abs=1e-5)
    emb = scorer.embed_images(images)
    assert emb.shape == (4, 16) and torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert scorer.image_features(torch.rand(3, 3, 48, 48)).shape == (3, 16)  # other sizes are resized
    scorer.save_pretrained(tmp_path / "c")
    again = CLIPScorer.from_pretrained(tmp_path / "c")
    assert torch.equal(again.embed_texts(["a blue square"]), scorer.embed_texts(["a blue square"]))
    bigger = CLIP(CLIPConfig(**{**vars(scorer.model.cfg), "embed_dim": 8}))
    save_part(bigger, tmp_path / "c" / "clip.safetensors")
    with pytest.raises(CheckpointError, match="clip: tensor"):
        CLIPScorer.from_pretrained(tmp_path / "c")


def test_retrieval_known_answers():
    eye = torch.eye(40)
    groups = [str(i) for i in range(40)]
    assert retrieval_top1(eye, eye, groups) == 1.0
    assert retrieval_top1(eye, eye.roll(1, 0), groups) == 0.0  # each image's caption is another's
    # items of one group are not each other's distractors: twins with identical embeddings still count as hits
    twins = torch.cat([eye[:20], eye[:20]])
    assert retrieval_top1(twins, twins, [str(i % 20) for i in range(40)]) == 1.0
    assert clip_score(eye, eye) == pytest.approx(100.0)
    p = mismatched(["a", "a", "b", "b", "c", "c"], np.random.default_rng(0))
    assert sorted(p) == list(range(6)) and all("aabbcc"[i] != "aabbcc"[j] for i, j in enumerate(p))


def test_frechet_distance_matches_torchmetrics_and_grows_with_shift():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Flat(torch.nn.Module):
        num_features = 6

        def forward(self, x):
            return x.flatten(1)[:, :6].double()

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(200, 3, 2, 2, generator=g), torch.rand(150, 3, 2, 2, generator=g) * 0.8 + 0.1
    fid = FrechetInceptionDistance(feature=Flat())
    fid.update(a, real=True)
    fid.update(b, real=False)
    ours = frechet_distance(Flat()(a), Flat()(b))
    assert ours == pytest.approx(fid.compute().item(), rel=1e-4, abs=1e-6)
    base = torch.randn(500, 4, generator=g)
    assert frechet_distance(base, base) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(base, base + 1) == pytest.approx(4.0, rel=1e-6)  # a mean shift of 1 in 4 dims


def test_random_shift_moves_content_and_keeps_shape():
    x = torch.zeros(2, 3, 8, 8)
    x[:, :, 3:5, 3:5] = 1
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.sum() == x.sum()  # the square stays whole inside the frame
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)


def test_train_clip_on_a_folder_with_broken_files(tmp_path):
    """The issue's bar: a folder with broken files (truncated PNG, zero bytes, text named .png, empty caption,
    1 MB caption: 5 of 101) trains to the end, and the skipped count is reported. It also learns colours."""
    folder = colour_folder(tmp_path / "d")
    cfg = CLIPTrainConfig(model=tiny_clip_config(2000), data=DataConfig(path=str(folder), size=32),
                          out=str(tmp_path / "run"), tokenizer_vocab=60, batch_size=32, max_steps=120, lr=3e-3,
                          warmup_steps=10, shift=2, bf16=False, log_every=40, eval_every=40, checkpoint_every=1000,
                          eval_split="all", eval_images=96)
    summary = train_clip(cfg, progress_bar=False)
    assert summary["skipped_items"] == 5 and "96 usable items, 5 skipped" in summary["data"]
    assert summary["steps"] == 120
    scorer = CLIPScorer.from_pretrained(tmp_path / "run")
    red = to_tensor(np.stack([np.asarray(Image.open(folder / f"{k:03d}.png")) for k in range(4)]))
    sims = torch.stack([scorer.similarity(red, [f"a {c} square"] * 4) for c in COLOURS])  # (colours, 4)
    assert (sims.argmax(0) == 0).float().mean() >= 0.75  # red squares are closest to "a red square"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # chance is ln(32) = 3.47; with 8 copies of each caption in a batch the floor is about ln(8) = 2.08
    assert log[-1]["loss"] < 0.75 * np.log(32) and (tmp_path / "run" / "curves.png").is_file()


def test_train_vae_and_dalle_on_a_folder_with_broken_files(tmp_path):
    from wordbrush.generators.dalle import DalleConfig
    from wordbrush.image.vae import VAEConfig
    from wordbrush.train.tokens import DalleTrainConfig, train_generator
    from wordbrush.train.vae import VAETrainConfig, train_vae

    folder = colour_folder(tmp_path / "d", n_per_colour=6)
    data = DataConfig(path=str(folder), size=32)
    vae = train_vae(VAETrainConfig(model=VAEConfig(image_size=32, channels=(8, 16), num_codes=32, code_dim=8),
                                   data=data, out=str(tmp_path / "vae"), batch_size=8, max_steps=3, bf16=False,
                                   eval_split="all", hflip=True), progress_bar=False)
    assert vae["skipped_items"] == 5 and vae["eval_images"] == 24
    gen = train_generator(DalleTrainConfig(model=DalleConfig(text_len=8, dim=32, depth=1, heads=4),
                                           vae=str(tmp_path / "vae"), data=data, out=str(tmp_path / "dalle"),
                                           tokenizer_vocab=60, batch_size=8, max_steps=3, bf16=False,
                                           sample_prompts=("a red square",)), progress_bar=False)
    assert gen["skipped_items"] == 5 and gen["steps"] == 3
    assert TextToImagePipeline.from_pretrained(tmp_path / "dalle")("a blue square").images[0].size == (32, 32)


def test_clip_reranking_keeps_the_candidate_closest_to_the_prompt(tmp_path):
    pipe = tiny_pipeline()
    with pytest.raises(WordbrushError, match="needs a pipeline with a CLIP"):
        pipe("a red circle", candidates=3, rerank="clip")
    pipe.clip = tiny_scorer()
    prompt = "a red circle to the left of a blue square"
    out = pipe(prompt, num_images_per_prompt=2, seed=5, candidates=3, rerank="clip")
    for k in range(2):  # redraw each image's candidates one by one and rank them by the CLIP
        options = pipe.sampling_options(candidates=1)
        text = pipe.tokenizer.encode([prompt], pipe.generator.cfg.text_len).ids
        cands = [pipe.generator.sample(text, [candidate_rng(5 + k, c)], options) for c in range(3)]
        sims = pipe.clip.similarity(pipe.vae.decode(torch.cat(cands)), [prompt] * 3)
        assert torch.equal(out.tokens[k], cands[int(sims.argmax())][0])
    pipe.sampling.rerank = "clip"
    pipe.save_pretrained(tmp_path / "m")
    again = TextToImagePipeline.from_pretrained(tmp_path / "m")
    assert again.clip is not None and again.sampling.rerank == "clip"
    assert torch.equal(again(prompt, seed=5, candidates=3).tokens, out.tokens[:1])


def test_clip_plus_likelihood_reranking_sums_the_standardised_scores():
    pipe = tiny_pipeline()
    with pytest.raises(WordbrushError, match="needs a pipeline with a CLIP"):
        pipe("a red circle", candidates=3, rerank="clip+likelihood")
    pipe.clip = tiny_scorer()
    prompt = "a red circle to the left of a blue square"
    C = 5
    out = pipe(prompt, num_images_per_prompt=3, seed=2, candidates=C, rerank="clip+likelihood")
    text = pipe.tokenizer.encode([prompt], pipe.generator.cfg.text_len).ids
    options = pipe.sampling_options(candidates=1)
    picks = {"clip": [], "likelihood": []}
    for k in range(3):  # redraw each image's candidates and rank them by hand
        cands = torch.cat([pipe.generator.sample(text, [candidate_rng(2 + k, c)], options) for c in range(C)])
        sims = pipe.clip.similarity(pipe.vae.decode(cands), [prompt] * C)
        logp = pipe.generator.log_likelihood(text.expand(C, -1), cands)
        z = lambda v: (v - v.mean()) / v.std(unbiased=False)  # noqa: E731
        assert torch.equal(out.tokens[k], cands[int((z(sims) + z(logp)).argmax())])
        picks["clip"].append(int(sims.argmax()))
        picks["likelihood"].append(int(logp.argmax()))
    assert picks["clip"] != picks["likelihood"]  # the two judges disagree here, so the sum is not either one alone


def test_dataset_report_has_three_sets_and_the_real_set_is_best(tmp_path):
    pipe = tiny_pipeline()
    scorer = tiny_scorer()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8)
    data = EvalSet(images, [f"a {list(COLOURS)[i % 4]} square" for i in range(40)], [str(i % 4) for i in range(40)])
    report = evaluate_on_dataset(pipe, scorer, data, tmp_path / "ev", progress=False)
    figures = report["figures"]
    assert list(figures) == ["real images", "model", "shuffled captions"]
    real, model = figures["real images"], figures["model"]
    assert real["fd"] < model["fd"] and real["kid_x1000"] < model["kid_x1000"]  # noise vs an untrained model
    for name in ("report.md", "report.json", "grid.png", "figures.png"):
        assert (tmp_path / "ev" / name).is_file()
    assert "FD-wbCLIP" in (tmp_path / "ev" / "report.md").read_text()


def test_dataset_report_says_what_split_the_real_images_are(tmp_path, capsys):
    """`--split heldout` (the default) on a folder gives every image, the training ones too: the report must say
    "all", never "heldout" or "held-out". A manifest with a split column reports the split it filtered by."""
    folder = colour_folder(tmp_path / "d", n_per_colour=8, broken=False)
    data = load_eval_set(folder, "heldout", 32)
    assert data.split == "all" and len(data.captions) == 32
    pipe, scorer = tiny_pipeline(), tiny_scorer()
    report = evaluate_on_dataset(pipe, scorer, data, tmp_path / "ev", progress=True)
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("realism eval: 32 items, 16 reference + 16 evaluated; the model draws 32 images "
                                   "(16 for their captions + 16 for shuffled captions); the items are every item of "
                                   "the data: it has no split, so they include any images the model was trained on")
    for bar in ("realism: model images", "realism: shuffled-caption images", "realism: metrics"):
        assert bar + ":" in err, bar
    saved = (tmp_path / "ev" / "report.json").read_text()
    assert report["data_split"] == json.loads(saved)["data_split"] == "all"
    assert "held" not in saved.lower()
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "it has no split" in md and "held-out" not in md
    rows = [json.dumps({"file": f"{k:03d}.png", "caption": f"item {k}", "split": "heldout" if k % 2 else "train"})
            for k in range(32)]
    (folder / "m.jsonl").write_text("\n".join(rows) + "\n")
    split = load_eval_set(folder / "m.jsonl", "heldout", 32)
    assert split.split == "heldout" and len(split.captions) == 16
    evaluate_on_dataset(pipe, scorer, split, tmp_path / "ev2", progress=False)
    assert capsys.readouterr().err == ""  # quiet: no plan, no bars
    assert json.loads((tmp_path / "ev2" / "report.json").read_text())["data_split"] == "heldout"
    assert "the data's `heldout` split" in (tmp_path / "ev2" / "report.md").read_text()


def test_dataset_draws_in_chunks_give_the_images_of_one_call():
    pipe = tiny_pipeline()
    n = ROWS_PER_DRAW + 5  # two chunks
    captions, seeds = [f"a {c} square" for c in list(COLOURS) * n][:n], list(range(100, 100 + n))
    options = pipe.sampling_options()
    chunked = _draw(pipe, captions, seeds, options, "test", progress=False)
    whole = pipe.draw(captions, seeds, options)[0]
    assert len(chunked) == n and all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(chunked, whole))


def test_cli_eval_on_data_needs_a_clip(tmp_path, capsys):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "m")
    folder = colour_folder(tmp_path / "d", n_per_colour=5, broken=False)
    assert main(["eval", "--model", str(tmp_path / "m"), "--data", str(folder), "-q"]) == 2
    assert "has no CLIP to measure with" in capsys.readouterr().err
    tiny_scorer().save_pretrained(tmp_path / "c")
    assert main(["eval", "--model", str(tmp_path / "m"), "--data", str(folder), "--split", "all",
                 "--clip", str(tmp_path / "c"), "--out", str(tmp_path / "ev"), "-q"]) == 0
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["evaluated_items"] == 10


def test_swap_negatives_hold_the_same_words_in_other_places():
    from wordbrush.text.negatives import swap_negative

    rng = np.random.default_rng(0)
    caption = "a purple diamond to the left of a white circle"
    seen = {swap_negative(caption, rng) for _ in range(40)}
    assert seen == {"a white circle to the left of a purple diamond", "a white diamond to the left of a purple circle",
                    "a purple circle to the left of a white diamond"}
    # one chunk of content words, or two that only "and" joins (swapping them whole says the same): no negative
    for same in ("two green triangles", "a cross and a square", "a red circle left of a red circle"):
        assert swap_negative(same, rng) is None
    assert {swap_negative("a red square and a blue circle", rng) for _ in range(20)} == {
        "a blue square and a red circle", "a red circle and a blue square"}  # the colours rebound, not the order
    for caption in ("a small red plus sign under a large blue square", "grinning face, with big eyes"):
        for _ in range(10):
            neg = swap_negative(caption, rng)
            assert neg != caption and sorted(neg.replace(",", "").split()) == sorted(caption.replace(",", "").split())


def test_hard_negatives_join_the_image_to_text_side(tmp_path):
    scorer = tiny_scorer()
    images = torch.rand(4, 3, 32, 32)
    ids = scorer.tokenizer.encode(["a red square", "a blue square", "a green square", "a red square"], 8).ids
    negatives = scorer.tokenizer.encode(["a red circle to the left of a blue square"], 8).ids
    plain, hard = scorer.model(images, ids), scorer.model(images, ids, negatives)
    assert hard.item() > plain.item()  # one more candidate in every image's softmax
    cfg = CLIPTrainConfig(model=tiny_clip_config(2000), data=DataConfig(size=32), out=str(tmp_path / "run"),
                          tokenizer_vocab=200, batch_size=16, max_steps=2, hard_negatives=True, bf16=False,
                          log_every=1, eval_every=1, eval_images=64)
    summary = train_clip(cfg, progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert 0 <= summary["swap_test"] <= 1 and all("swap_test" in r for r in log)

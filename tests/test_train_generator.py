"""The generators' training loop (dalle and maskgit): runs, writes a loadable pipeline folder and sample grids,
resumes."""

import json

import pytest
import torch

from wordbrush.data.config import DataConfig
from wordbrush.generators.dalle import DalleConfig
from wordbrush.generators.maskgit import MaskGITConfig
from wordbrush.image.vae import DiscreteVAE, VAEConfig, save_vae
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.train.tokens import DalleTrainConfig, MaskGITTrainConfig, train_generator


@pytest.fixture()
def vae_dir(tmp_path):
    torch.manual_seed(0)
    vae = DiscreteVAE(VAEConfig(image_size=32, channels=(8, 16), num_codes=32, code_dim=8))
    vae.quantizer.initialised.fill_(True)
    return save_vae(vae, tmp_path / "vae")


def _cfg(tmp_path, vae_dir, steps, kind="dalle"):
    cls, model = ((MaskGITTrainConfig, MaskGITConfig(text_len=12, dim=32, depth=2, heads=4, text_depth=1))
                  if kind == "maskgit" else (DalleTrainConfig, DalleConfig(text_len=12, dim=32, depth=2, heads=4)))
    return cls(model=model, vae=str(vae_dir), data=DataConfig(size=32), out=str(tmp_path / "run"),
               tokenizer_captions=300, batch_size=8, max_steps=steps, warmup_steps=2, log_every=2, sample_every=4,
               checkpoint_every=4, sample_prompts=("a red circle", "two blue squares"))


@pytest.mark.parametrize("kind", ["dalle", "maskgit"])
def test_training_writes_a_pipeline_and_resumes(tmp_path, vae_dir, kind):
    summary = train_generator(_cfg(tmp_path, vae_dir, 6, kind), progress_bar=False)
    run = tmp_path / "run"
    assert summary["steps"] == 6 and summary["samples_seen"] == 48
    assert (run / "samples" / "step_000004.png").exists() and (run / "samples" / "final.png").exists()
    log = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]
    assert all(0 <= r["data_share"] <= 1 and r["samples_per_s"] > 0 for r in log)
    pipe = TextToImagePipeline.from_pretrained(run)
    assert pipe.generator.kind == kind and (run / f"{kind}.safetensors").exists()
    assert pipe.generator.cfg.image_vocab == 32 and pipe.generator.cfg.text_vocab == pipe.tokenizer.vocab_size
    before = pipe("a red circle", seed=0).tokens

    with pytest.raises(ValueError, match="--resume"):
        train_generator(_cfg(tmp_path, vae_dir, 8, kind), progress_bar=False)
    summary = train_generator(_cfg(tmp_path, vae_dir, 8, kind), resume=True, progress_bar=False)
    assert summary["steps"] == 8
    log = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6, 8]
    after = TextToImagePipeline.from_pretrained(run)
    assert after.tokenizer.encode(["a red circle"], 12).ids.equal(pipe.tokenizer.encode(["a red circle"], 12).ids)
    assert before.shape == after("a red circle", seed=0).tokens.shape


def test_train_dalle_refuses_a_vae_of_another_size(tmp_path, vae_dir):
    cfg = _cfg(tmp_path, vae_dir, 2)
    cfg.data = DataConfig(size=64)
    with pytest.raises(ValueError, match="32px"):
        train_generator(cfg, progress_bar=False)


def test_minilm_states_are_cached_once_and_a_resumed_run_is_bit_exact(tmp_path, vae_dir):
    """A frozen minilm encoder on a dataset held in memory: BERT's states of every caption are computed once
    (text/minilm.py's cache_states), and a run stopped and resumed ends with the uninterrupted run's weights."""
    from PIL import Image
    from safetensors.torch import load_file

    rows = []
    for i, (colour, name) in enumerate([((220, 20, 20), "red"), ((20, 20, 220), "blue")] * 3):
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"{i}.png")
        rows.append(json.dumps({"file": f"{i}.png", "caption": f"a {name} square; colours", "label": f"{name} square",
                                "keywords": [name, "square", "box"]}))
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n")

    def cfg(out, steps):
        c = _cfg(tmp_path, vae_dir, steps)
        c.model = DalleConfig(text_len=12, dim=32, depth=2, heads=4, text_encoder="minilm", text_loss_weight=0.0)
        c.data = DataConfig(path=str(tmp_path / "m.jsonl"), size=32, split="all", everyday_captions=True)
        c.out, c.sample_every, c.checkpoint_every = str(tmp_path / out), 100, 2
        return c

    train_generator(cfg("straight", 4), progress_bar=False)
    train_generator(cfg("resumed", 2), progress_bar=False)
    train_generator(cfg("resumed", 4), resume=True, progress_bar=False)
    a, b = (load_file(tmp_path / run / "dalle.safetensors") for run in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_compiled_training_learns_what_eager_training_learns(tmp_path, vae_dir):
    """compile=true: the same weights train through torch.compile; the losses follow the eager run's."""
    logs = {}
    for compile_ in (False, True):
        cfg = _cfg(tmp_path / str(compile_), vae_dir, 6)
        cfg.compile, cfg.bf16, cfg.log_every = compile_, False, 1
        train_generator(cfg, progress_bar=False)
        logs[compile_] = [json.loads(l)["loss"] for l in (tmp_path / str(compile_) / "run" / "log.jsonl").read_text()
                          .splitlines()]
        assert TextToImagePipeline.from_pretrained(tmp_path / str(compile_) / "run").generator.kind == "dalle"
    assert logs[True] == pytest.approx(logs[False], rel=1e-3)


def test_fine_tuning_starts_from_a_trained_model(tmp_path, vae_dir):
    """init: the run starts from a trained model's weights, tokenizer and VAE; a `model` section that differs, or a
    model of another family, is refused in one line."""
    from wordbrush.errors import ConfigError

    train_generator(_cfg(tmp_path, vae_dir, 4), progress_bar=False)
    start = TextToImagePipeline.from_pretrained(tmp_path / "run")
    cfg = DalleTrainConfig(init=str(tmp_path / "run"), data=DataConfig(size=32), out=str(tmp_path / "tuned"),
                           batch_size=8, max_steps=1, lr=1e-9, warmup_steps=0, log_every=1, sample_every=100,
                           sample_prompts=("a red circle",))
    assert train_generator(cfg, progress_bar=False)["steps"] == 1
    tuned = TextToImagePipeline.from_pretrained(tmp_path / "tuned")
    assert tuned.generator.cfg == start.generator.cfg and tuned.tokenizer.vocab_size == start.tokenizer.vocab_size
    a, b = start.generator.state_dict(), tuned.generator.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # one step at lr 1e-9 from the same weights
    assert torch.equal(tuned.vae.quantizer.codebook, start.vae.quantizer.codebook)  # its VAE by default

    other = DalleTrainConfig(init=str(tmp_path / "run"), model=DalleConfig(dim=64), out=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="leave `model` out"):
        train_generator(other, progress_bar=False)
    maskgit = MaskGITTrainConfig(init=str(tmp_path / "run"), out=str(tmp_path / "y"))
    with pytest.raises(ConfigError, match="holds a dalle generator, this stage trains maskgit"):
        train_generator(maskgit, progress_bar=False)

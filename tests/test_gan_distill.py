"""Distillation by coupled noise: a dalle drawn with a quantile per position, the set of its images, and a gan
trained to write them from the same noise."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_pipeline
from test_clip import tiny_scorer
from test_gan import TINY

from wordbrush.cli import main
from wordbrush.clip import CLIPConfig
from wordbrush.data.config import DataConfig
from wordbrush.errors import ConfigError, WordbrushError
from wordbrush.generators.gan import GANConfig
from wordbrush.generators.options import SampleOptions
from wordbrush.generators.sampling import filter_logits, pick_quantile
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.train import gan_distill
from wordbrush.train.gan import GANTrainConfig, train_gan


def test_quantile_pick_draws_the_filtered_distribution():
    """Over uniform u the quantile pick's frequencies are the filtered softmax's; u near 0 is the likeliest code;
    codes top-k filtered out are never picked."""
    torch.manual_seed(0)
    logits = torch.randn(12) * 2
    o = SampleOptions(temperature=0.7, top_k=6)
    u = torch.rand(200_000)
    picked = pick_quantile(logits.expand(len(u), -1), u, o)
    freq = torch.bincount(picked, minlength=12).float() / len(u)
    want = filter_logits(logits, o).softmax(-1)
    assert (freq - want).abs().max() < 0.01
    assert (freq[want == 0] == 0).all()
    assert pick_quantile(logits, torch.tensor(0.0), o) == logits.argmax()
    assert pick_quantile(logits, torch.tensor(1.0 - 1e-7), o) in torch.nonzero(want).flatten()


def test_dalle_with_quantiles_is_a_function_of_them():
    """The same quantiles draw the same tokens whatever the rows' random streams, cached or not, each row by its
    own quantiles alone; a wrong shape is refused."""
    pipe = tiny_pipeline(image_size=32)
    dalle = pipe.generator
    ids = pipe.tokenizer.encode(["a red square", "two blue circles", "a green cross"], dalle.cfg.text_len).ids
    u = gan_distill.uniforms(torch.randn(3, dalle.cfg.image_len, generator=torch.Generator().manual_seed(1)))
    o = SampleOptions(guidance_scale=2.0, temperature=0.7)
    a = dalle.sample(ids, [torch.Generator().manual_seed(s) for s in (1, 2, 3)], o, quantiles=u)
    b = dalle.sample(ids, [torch.Generator().manual_seed(s) for s in (7, 8, 9)], o, quantiles=u, use_cache=False)
    c = dalle.sample(ids[1:], [torch.Generator(), torch.Generator()], o, quantiles=u[1:])
    assert torch.equal(a, b) and torch.equal(a[1:], c)
    other = dalle.sample(ids, [torch.Generator()] * 3, o, quantiles=gan_distill.uniforms(torch.randn(3, 64)))
    assert not torch.equal(a, other)
    with pytest.raises(ConfigError, match="quantiles must be"):
        dalle.sample(ids, [torch.Generator()] * 3, o, quantiles=u[:, :10])


def test_distill_set_written_resumed_read_and_trained_on(tmp_path, monkeypatch, capsys):
    """`wordbrush data distill` writes whole shards whose tokens are the teacher's draw for their noise, a rerun
    writes none again, the set is read in per-epoch permutations addressed by the step, and a gan trains on it;
    a broken shard or an empty folder is one clear error."""
    monkeypatch.setattr(gan_distill, "SHARD", 8)
    monkeypatch.setattr(gan_distill, "cpu_has_fast_bf16", lambda: False)  # float32 teacher: redrawn exactly below
    tiny_pipeline(image_size=32).save_pretrained(tmp_path / "dalle")
    tiny_scorer().save_pretrained(tmp_path / "clip")
    args = ["data", "distill", "--teacher", str(tmp_path / "dalle"), "--out", str(tmp_path / "set"), "-n", "12", "-q",
            "--no-compile"]
    main(args)
    assert "16 teacher images in 2 shards" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["shard_00000.safetensors", "shard_00001.safetensors"]
    main(args)
    assert "(0 written now)" in capsys.readouterr().out

    ds = gan_distill.DistillSet(tmp_path / "set")
    assert len(ds) == 16 and ds.image_len == 64
    teacher = TextToImagePipeline.from_pretrained(tmp_path / "dalle")
    dalle = teacher.generator
    ids = teacher.tokenizer.encode(ds.captions[:8], dalle.cfg.text_len).ids
    redrawn = dalle.sample(ids, [torch.Generator()] * 8, teacher.sampling, quantiles=gan_distill.uniforms(ds.z[:8]))
    assert torch.equal(redrawn, ds.tokens[:8].long())
    first, again = ds.batch(1, 10), ds.batch(1, 10)
    assert first.captions == again.captions and torch.equal(first.z, again.z)
    epoch = torch.cat([ds.batch(k, 4).z for k in range(4)])  # one epoch: every row once
    assert sorted(epoch[:, 0].tolist()) == sorted(ds.z[:, 0].tolist())

    model = GANConfig(clip=CLIPConfig(image_size=32), **{**TINY, "noise_dim": 64, "grid_noise": True,
                                                        "disc_reads": "codes", "disc_channels": (8, 8, 16),
                                                        "trunk": "transformer", "trunk_dim": 16, "trunk_depth": 2,
                                                        "trunk_heads": 2, "trunk_mlp_ratio": 2, "snap_codes": True})
    cfg = {"model": model, "clip": str(tmp_path / "clip"), "vae": str(tmp_path / "dalle"),
           "distill": str(tmp_path / "set"), "data": DataConfig(size=32), "out": str(tmp_path / "run"), "batch_size": 4,
           "max_steps": 3, "log_every": 1, "sample_every": 100, "checkpoint_every": 100, "diversity_every": 100,
           "collapse_ratio": 0.0, "sample_prompts": ("a red square",), "clip_weight": 0.0}
    assert train_gan(GANTrainConfig(**cfg), progress_bar=False)["steps"] == 3
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["g_distill"]) and r["g_distill"] > 0 for r in logged if "g_distill" in r)
    images = TextToImagePipeline.from_pretrained(tmp_path / "run")("a red square", num_images_per_prompt=2).images
    assert len(images) == 2

    with pytest.raises(ConfigError, match="distill needs model.grid_noise"):
        GANTrainConfig(**{**cfg, "model": GANConfig(clip=CLIPConfig(image_size=32), **TINY)})
    with pytest.raises(ConfigError, match="grid_noise needs trunk 'transformer'"):
        GANConfig(clip=CLIPConfig(image_size=32), **{**TINY, "grid_noise": True})
    (tmp_path / "set" / "shard_00001.safetensors").write_bytes(b"not a shard")
    with pytest.raises(WordbrushError, match="not a distillation shard"):
        gan_distill.DistillSet(tmp_path / "set")
    with pytest.raises(WordbrushError, match="no distillation shards"):
        gan_distill.DistillSet(tmp_path / "empty")

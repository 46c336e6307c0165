"""The `minilm` text encoder: offline loading, the [PAD] mask, frozen vs fine-tuned layers, save/load without
the package's weights, and generating with the network cut off."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import tiny_pipeline
from safetensors.torch import load_file

from wordbrush.checkpoint import packaged_keys
from wordbrush.errors import ConfigError, WordbrushError
from wordbrush.generators.dalle import DalleConfig
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.text.minilm import MiniLMText, load_tokenizer
from wordbrush.train.common import param_groups


@pytest.fixture(scope="module", params=["dalle", "maskgit"])
def pipe(request):
    return tiny_pipeline(generator=request.param, text_encoder="minilm")


def test_tokenizer_is_minilm_wordpiece_without_padding_to_128():
    tok = load_tokenizer()
    enc = tok.encode(["a red ball beneath a tiny box", "字"], 12)
    assert enc.ids.shape == (2, 12)
    assert enc.ids[0, 0].item() == tok.tok.token_to_id("[CLS]")
    assert (enc.ids[0, 9:] == 0).all()  # 7 words + [CLS] + [SEP], then [PAD]s
    assert enc.unknown_words == [[], ["字"]]  # a known word in pieces is not unknown; [UNK] is


def test_states_ignore_padding_and_unconditional_rows_are_finite():
    torch.manual_seed(0)
    enc = MiniLMText(32)
    tok = load_tokenizer()
    a = tok.encode(["a red circle"], 8).ids
    b = tok.encode(["a red circle"], 16).ids  # the same words, more [PAD]s
    sa, sb = enc(a), enc(b)
    n = int((a != 0).sum())
    assert torch.allclose(sa[:, :n], sb[:, :n], atol=1e-5)  # padding does not leak into the words' states
    assert torch.equal(sb[0, n], enc.pad)  # a [PAD] position is the learned [PAD] vector
    blank = enc(torch.zeros(2, 8, dtype=torch.long))  # caption dropout: all [PAD]
    assert torch.isfinite(blank).all() and torch.equal(blank[0, 3], enc.pad)


def test_cached_states_are_the_live_ones_and_only_for_a_frozen_encoder():
    torch.manual_seed(0)
    enc = MiniLMText(32)
    tok = load_tokenizer()
    ids = tok.encode(["a red circle", "two blue squares", "a red circle"], 12).ids
    live = enc(ids)
    assert enc.cache_states(torch.cat([ids, torch.zeros_like(ids[:1])]), batch=2) == 3  # distinct rows, + all-[PAD]
    assert enc._cache is not None
    calls = []
    hook = enc.bert.register_forward_hook(lambda *a: calls.append(1))
    torch.testing.assert_close(enc(ids), live, rtol=1e-5, atol=1e-5)
    assert calls == []  # looked up, not recomputed
    other = tok.encode(["a green cross"], 12).ids
    enc(torch.cat([ids[:1], other]))  # a row the cache lacks: the batch is computed
    assert calls == [1]
    hook.remove()
    enc.pad.data.add_(1.0)  # the trained parts still act on cached states
    assert not torch.allclose(enc(torch.zeros_like(ids[:1])), live[:1])
    with pytest.raises(WordbrushError, match="frozen"):
        MiniLMText(32, train_layers=1).cache_states(ids)


def test_frozen_or_top_layers_train_and_get_a_lower_lr():
    frozen = MiniLMText(32, train_layers=0)
    assert not any(p.requires_grad for p in frozen.bert.parameters())
    tuned = MiniLMText(32, train_layers=2)
    trained = {n.split(".")[2] for n, p in tuned.bert.named_parameters() if p.requires_grad}
    assert trained == {"4", "5"}  # encoder.layer.4 and .5 of 6
    groups = param_groups(torch.nn.ModuleDict({"text": tuned}), 0.01, pretrained_lr_ratio=0.1)
    scaled = sum(p.numel() for g in groups if g["lr_scale"] == 0.1 for p in g["params"])
    assert scaled == sum(p.numel() for p in tuned.bert.encoder.layer[4:].parameters())
    x = tuned(load_tokenizer().encode(["a blue square"], 8).ids)
    x.sum().backward()
    assert tuned.bert.encoder.layer[5].output.dense.weight.grad is not None
    assert tuned.bert.encoder.layer[0].output.dense.weight.grad is None


@pytest.mark.parametrize("train_layers", [0, 1])
def test_save_load_keeps_only_what_the_package_does_not_hold(tmp_path, train_layers):
    pipe = tiny_pipeline(text_encoder="minilm", train_layers=train_layers)
    with torch.no_grad():  # make the fine-tuned layer differ from the package's
        for p in pipe.generator.parameters():
            if p.requires_grad:
                p.add_(0.01)
    folder = pipe.save_pretrained(tmp_path / "m")
    saved = load_file(str(folder / "dalle.safetensors"))
    assert not set(saved) & packaged_keys(pipe.generator)
    assert any(".bert.encoder.layer.5." in k for k in saved) == (train_layers == 1)
    assert (folder / "dalle.safetensors").stat().st_size < 10_000_000  # not the 90 MB encoder
    again = TextToImagePipeline.from_pretrained(folder)
    assert again.generator.cfg.text_encoder == "minilm"
    for k, v in pipe.generator.state_dict().items():
        assert torch.equal(v, again.generator.state_dict()[k]), k
    a, b = pipe("a red ball", seed=3, num_images_per_prompt=2), again("a red ball", seed=3, num_images_per_prompt=2)
    assert torch.equal(a.tokens, b.tokens)


def test_generates_with_both_generators(pipe):
    out = pipe(["a crimson ball beneath a tiny box", "two blue squares"], num_images_per_prompt=2, candidates=2)
    assert len(out.images) == 4 and out.tokens.shape == (4, pipe.generator.cfg.image_len)


def test_config_checks():
    with pytest.raises(ConfigError, match="text_encoder must be"):
        DalleConfig(text_encoder="bert-large")
    with pytest.raises(ConfigError, match="text_loss_weight must be 0"):
        DalleConfig(text_encoder="minilm")
    with pytest.raises(ConfigError, match="minilm encoder only"):
        DalleConfig(text_encoder_train_layers=2)


def test_offline_with_no_hub_cache(tmp_path):
    """Save, load and generate with the hub switched off and an empty cache directory."""
    tiny_pipeline(text_encoder="minilm").save_pretrained(tmp_path / "m")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    code = ("from wordbrush import TextToImagePipeline as P; import sys; "
            f"p = P.from_pretrained({str(tmp_path / 'm')!r}); print(len(p('a red ball', num_images_per_prompt=2).images))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"
    assert not any((tmp_path / "hf").rglob("*.safetensors"))  # nothing fetched into the cache

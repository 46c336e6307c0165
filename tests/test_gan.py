"""The gan generator: one forward pass from noise + text, trained against a matching-aware discriminator."""

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_pipeline
from test_clip import tiny_scorer

from wordbrush.cli import main
from wordbrush.clip import CLIPConfig
from wordbrush.data.config import DataConfig
from wordbrush.errors import CheckpointError, ConfigError, WordbrushError
from wordbrush.generators.gan import GAN, GANConfig, Text
from wordbrush.generators.gan_discriminator import (
    Discriminator,
    NoiseEncoder,
    caption_contrast,
    discriminator_loss,
    generator_loss,
    mean_pairwise_distance,
    posterior_loss,
)
from wordbrush.generators.sampling import candidate_rng
from wordbrush.image.vae import load_vae
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.text.tokenizer import PAD_ID
from wordbrush.train.gan import GANTrainConfig, train_gan
from wordbrush.train.gan_teacher import DalleTeacher
from wordbrush.utils.images import to_pil

TINY = dict(image_size=32, noise_dim=8, channels=(16, 16, 8, 8), disc_channels=(8, 8, 16, 16), attn_resolutions=(16,),
            attn_dim=8)


def tiny_gan(scorer) -> GAN:
    g = GAN(GANConfig(clip=scorer.model.cfg, **TINY))
    g.clip.load_state_dict(scorer.model.state_dict())
    return g


def test_generator_discriminator_and_losses():
    scorer = tiny_scorer()
    g, d = tiny_gan(scorer), Discriminator(GANConfig(clip=scorer.model.cfg, **TINY))
    ids = scorer.tokenizer.encode(["a red square", "a blue square", "a green square"], 8).ids
    text = g.read_text(ids)
    fake = g(torch.randn(3, 8), text)
    assert fake.shape == (3, 3, 32, 32) and torch.isfinite(fake).all()
    ld = discriminator_loss(d, torch.rand(3, 3, 32, 32), fake, text)
    assert ld["gp"].item() >= 0 and torch.isfinite(ld["loss"])
    ld["loss"].backward()
    assert all(p.grad is not None for p in d.parameters())
    # the hinge's known answer, with a discriminator whose scores are known: D(x) = 4 * mean(x) - 2
    class KnownD(torch.nn.Module):
        reads_words = False

        def forward(self, images, text):
            return images.flatten(1).mean(1) * 4 - 2

    real = torch.tensor([0.75, 0.5, 1.0])[:, None, None, None].expand(3, 3, 4, 4)  # D: 1, 0, 2
    flat_fake = torch.full((3, 3, 4, 4), 0.25)  # D: -1 each
    swaps = g.read_text(scorer.tokenizer.encode(["a square red", "a square green"], 8).ids)
    easy = discriminator_loss(KnownD(), real, flat_fake, text, gp_weight=0.0)["hinge"]
    # real: relu(1 - [1, 0, 2]) -> 1/3; fake: relu(1 - 1) -> 0; mismatched (items 0, 1 with the next caption):
    # relu(1 + [1, 0]) -> 1.5; with the swaps of items 0 and 2 as well: relu(1 + [1, 0, 1, 2]) -> 2
    assert easy.item() == pytest.approx(1 / 3 + (0 + 1.5) / 2)
    hard = discriminator_loss(KnownD(), real, flat_fake, text, gp_weight=0.0, swapped=(torch.tensor([0, 2]), swaps))
    assert hard["hinge"].item() == pytest.approx(1 / 3 + (0 + 2.0) / 2)
    lg = generator_loss(d, g.clip, fake, text, clip_weight=1.0)
    lg["loss"].backward()
    assert all(p.grad is None for p in g.clip.parameters())  # the CLIP stays frozen
    assert g.fc.weight.grad is not None
    # the same seed gives the same image; the image depends on its own seed only
    a = g.sample(ids[:2], [torch.Generator().manual_seed(s) for s in (1, 2)])
    b = g.sample(ids[1:2], [torch.Generator().manual_seed(2)])
    assert torch.allclose(a[1], b[0], atol=1e-6)
    assert mean_pairwise_distance(torch.eye(3)) == pytest.approx(2 ** 0.5)
    with pytest.raises(ConfigError, match="needs at least 4 entries in channels"):
        GAN(GANConfig(clip=scorer.model.cfg, **{**TINY, "channels": (16, 8)}))


def test_contrastive_clip_term_tells_the_caption_from_its_swap_and_saturates():
    """clip_objective "contrastive": each image must pick its caption out of the batch's captions and their swaps
    in the CLIP (InfoNCE at the CLIP's scale), repeated captions left out; unlike 1 - cosine it stops pulling once
    the image is told apart."""
    captions, negatives = ["a red square", "a blue circle", "a red square"], ["a square red"]
    own = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]]), dim=-1)
    swap = torch.tensor([[0.6, 0, 0.8]])
    pool, same = caption_contrast(captions, own, negatives, swap)
    assert pool.shape == (4, 3) and same.tolist() == [[False, False, True, False], [False] * 4,
                                                      [True, False, False, False]]

    class FixedCLIP(torch.nn.Module):  # the image tower returns the given unit vectors; 1/temperature 10
        def __init__(self, emb):
            super().__init__()
            self.emb, self.logit_scale = emb, torch.nn.Parameter(torch.tensor(10.0).log())

        def encode_image(self, images):
            return self.emb

    class ZeroD(torch.nn.Module):
        def forward(self, images, text):
            return images.flatten(1).sum(1) * 0

    text = Text(torch.zeros(3, 2, 4), own, torch.ones(3, 2, dtype=torch.bool))
    fake = torch.zeros(3, 1, 2, 2, requires_grad=True)

    def term(images_emb, contrast):
        emb = images_emb.clone().requires_grad_(True)
        loss = generator_loss(ZeroD(), FixedCLIP(emb), fake, text, 1.0, contrast=contrast)["clip"]
        loss.backward()
        return loss.item(), emb.grad.norm().item()

    right, swapped = own.clone(), own.clone()
    swapped[0] = swap[0]  # image 0 drawn as its caption's swap
    expected = sum(torch.nn.functional.cross_entropy(10 * right[i : i + 1] @ pool[keep].T, torch.tensor([0])).item()
                   for i, keep in enumerate([[0, 1, 3], [1, 0, 2, 3], [2, 1, 3]])) / 3
    assert term(right, (pool, same))[0] == pytest.approx(expected, rel=1e-5)
    assert term(swapped, (pool, same))[0] > term(right, (pool, same))[0] + 1
    # told apart: the contrastive pull all but stops; the cosine's does not
    assert term(right, (pool, same))[1] < term(right, None)[1] / 5


def test_fusion_before_upsampling_and_float32_penalty_under_bf16():
    """The up block fuses and skips at the low resolution (cheaper); that is the same function as DF-GAN's
    upsample-then-fuse. Under bf16 autocast the MA-GP pass stays float32: the penalty equals float32's."""
    torch.manual_seed(0)
    scorer = tiny_scorer()
    g = tiny_gan(scorer)
    blk = g.blocks[1]
    for p in blk.parameters():  # move the affine heads off their identity start
        p.data.add_(0.1 * torch.randn_like(p))
    x, c = torch.randn(2, 16, 8, 8), torch.randn(2, scorer.model.cfg.embed_dim + 8)
    text = g.read_text(scorer.tokenizer.encode(["a red square", "a blue circle"], 8).ids)
    words, keep = text.words, text.keep
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    reference = blk.skip(up) + blk.c2(blk.f2(blk.c1(blk.f1(up, c)), c))
    reference = blk.attn(reference, words, keep) if blk.attn is not None else reference
    assert torch.allclose(blk(x, c, words, keep), reference, atol=1e-5)

    d = Discriminator(GANConfig(clip=scorer.model.cfg, **TINY))
    real, fake = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    text = Text(torch.randn(4, 8, scorer.model.cfg.text_dim), torch.randn(4, scorer.model.cfg.embed_dim),
                torch.ones(4, 8, dtype=torch.bool))
    fp32 = discriminator_loss(d, real, fake, text, gp_weight=2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = discriminator_loss(d, real, fake, text, gp_weight=2.0)
    assert fp32["gp"].item() > 0
    assert bf16["gp"].item() == pytest.approx(fp32["gp"].item(), rel=1e-5)
    assert bf16["hinge"].item() == pytest.approx(fp32["hinge"].item(), rel=0.05)


def test_train_resume_pipeline_and_checks(tmp_path):
    scorer = tiny_scorer()
    scorer.save_pretrained(tmp_path / "clip")
    cfg = GANTrainConfig(model=GANConfig(clip=CLIPConfig(image_size=32), **TINY), clip=str(tmp_path / "clip"),
                         data=DataConfig(size=32), out=str(tmp_path / "run"), batch_size=4, max_steps=2, log_every=1,
                         sample_every=100, checkpoint_every=100, diversity_every=2, collapse_ratio=0.0,
                         sample_prompts=("a red square",))
    summary = train_gan(cfg, progress_bar=False)
    assert summary["steps"] == 2 and summary["diversity_ratio"] > 0
    cfg.max_steps = 4
    assert train_gan(cfg, resume=True, progress_bar=False)["steps"] == 4
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "diversity_ratio" in log[1]

    pipe = TextToImagePipeline.from_pretrained(tmp_path / "run")
    assert pipe.vae is None and pipe.clip is not None
    out = pipe(["a red square", "a blue square"], num_images_per_prompt=2, seed=3)
    assert len(out.images) == 4 and out.images[0].size == (32, 32) and out.tokens.shape == (4, 0)
    assert pipe("a red square", seed=4, candidates=3, rerank="clip").images[0].size == (32, 32)
    with pytest.raises(WordbrushError, match="no likelihood"):
        pipe("a red square", candidates=2, rerank="likelihood")
    low = copy.deepcopy(pipe).to(dtype=torch.bfloat16)  # bf16 weights (the inner CLIP too): close to float32
    low_out = low(["a red square", "a blue square"], num_images_per_prompt=2, seed=3)
    diff = [np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() / 255
            for a, b in zip(out.images, low_out.images)]
    assert max(diff) < 0.03
    assert low("a red square", seed=4, candidates=3, rerank="clip").images[0].size == (32, 32)
    assert main(["explain", "a red square", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "x")]) == 2

    cfg.collapse_ratio, cfg.max_steps, cfg.out = 1e9, 2, str(tmp_path / "run2")
    with pytest.raises(WordbrushError, match="mode collapse at step 2"):
        train_gan(cfg, progress_bar=False)
    cfg.collapse_ratio, cfg.gp_weight, cfg.out = 0.0, float("inf"), str(tmp_path / "run3")
    with pytest.raises(WordbrushError, match="diverged at step 1"):
        train_gan(cfg, progress_bar=False)


def test_adversarial_tokenizer_terms_and_discriminator_kept_apart(tmp_path):
    from safetensors.torch import load_file

    from wordbrush.image.adversarial import adaptive_weight
    from wordbrush.image.vae import VAEConfig, load_vae
    from wordbrush.train.vae import DISC, VAETrainConfig, train_vae

    tiny_scorer().save_pretrained(tmp_path / "clip")
    cfg = VAETrainConfig(model=VAEConfig(image_size=32, channels=(8, 16), num_codes=32, code_dim=8),
                         data=DataConfig(size=32), out=str(tmp_path / "vae"), batch_size=4, max_steps=4, bf16=False,
                         log_every=1, eval_images=8, adversarial_weight=0.5, adversarial_start=0.5,
                         disc_channels=(8, 16), perceptual_weight=0.1, perceptual_clip=str(tmp_path / "clip"))
    train_vae(cfg, progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "vae" / "log.jsonl").read_text().splitlines()]
    assert "g_adv" not in log[1] and "g_adv" in log[2] and "d_loss" in log[3]  # switched on after the warm-up
    assert all(r["perceptual"] >= 0 for r in log)
    weights = load_file(str(tmp_path / "vae" / "vae.safetensors"))
    assert not any(k.startswith("net.") for k in weights) and (tmp_path / "vae" / DISC).is_file()
    load_vae(tmp_path / "vae")  # strict: the discriminator is not inside the tokenizer's weights
    cfg.max_steps = 6
    assert train_vae(cfg, resume=True, progress_bar=False)["steps"] == 6
    w = torch.ones(3, requires_grad=True)
    lam = adaptive_weight((w * 4).sum(), (w * 2).sum(), w)  # gradient norms 4*sqrt(3) and 2*sqrt(3)
    assert lam.item() == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(ConfigError, match="perceptual_clip"):
        VAETrainConfig(perceptual_weight=1.0)


def test_latent_mode_draws_through_a_frozen_vae_decoder(tmp_path):
    """With --vae the generator writes the VAE's code vectors on its 8x8 grid (one upsampling block, then a block
    at 8x8) and the VAE's decoder, frozen inside the gan, draws the pixels; gradients reach the generator through
    it. The VAE may come from a pipeline folder; a gan pipeline has none to give."""
    scorer = tiny_scorer()
    scorer.save_pretrained(tmp_path / "clip")
    tiny_pipeline(image_size=32).save_pretrained(tmp_path / "dalle")
    vae = load_vae(tmp_path / "dalle")
    model = GANConfig(clip=CLIPConfig(image_size=32), **{**TINY, "channels": (16, 16, 8), "attn_resolutions": (8,)})
    cfg = GANTrainConfig(model=model, clip=str(tmp_path / "clip"), vae=str(tmp_path / "dalle"),
                         data=DataConfig(size=32), out=str(tmp_path / "run"), batch_size=4, max_steps=2, log_every=1,
                         sample_every=100, checkpoint_every=100, diversity_every=2, collapse_ratio=0.0,
                         sample_prompts=("a red square",))
    assert train_gan(cfg, progress_bar=False)["steps"] == 2
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "run")
    g = pipe.generator
    assert pipe.vae is None and g.cfg.vae == vae.cfg and [b.up for b in g.blocks] == [True, False]
    for name, p in vae.decoder.state_dict().items():  # trained, yet the decoder is the VAE's, unchanged
        assert torch.equal(g.decoder.state_dict()[name], p)
    assert pipe(["a red square", "a blue circle"], seed=1).images[0].size == (32, 32)

    ids = scorer.tokenizer.encode(["a red square", "a blue circle"], 8).ids
    fake = g.train()(torch.randn(2, 8), g.read_text(ids))
    assert fake.shape == (2, 3, 32, 32)
    fake.square().mean().backward()
    assert all(p.grad is None for p in g.decoder.parameters()) and g.to_codes[1].weight.grad is not None
    # the decoder's function: its own pixels from the generator's code vectors
    codes = torch.randn(2, vae.cfg.code_dim, 8, 8)
    assert torch.allclose(g.decoder(codes), vae.decoder(codes), atol=1e-6)

    # D may judge the code grids instead of the pixels: a block at 8x8, one down to 4x4; reals are the VAE's codes
    codes_cfg = replace(cfg, model=replace(model, disc_reads="codes", disc_channels=(8, 8, 16),
                                           disc_attn_resolutions=(8,)), out=str(tmp_path / "run-codes"),
                        hard_negatives=True,  # and D's mismatched captions: the captions with words swapped
                        clip_objective="contrastive")  # which the image must be further from in the CLIP too
    assert train_gan(codes_cfg, progress_bar=False)["steps"] == 2
    d = Discriminator(replace(codes_cfg.model, vae=vae.cfg))
    assert [b.down for b in d.blocks] == [False, True] and list(d.attn) == ["0"]
    real = vae.quantizer.embed(vae.encode(torch.rand(3, 3, 32, 32)))  # (3, D, 8, 8)
    assert d(real, g.read_text(scorer.tokenizer.encode(["a"] * 3, 8).ids)).shape == (3,)
    # code_commitment: the distance from G's written vectors to their nearest codes joins G's loss, and falls
    commit_cfg = replace(codes_cfg, model=replace(codes_cfg.model, snap_codes=True), out=str(tmp_path / "run-commit"),
                         code_commitment=10.0, hard_negatives=False, max_steps=6, lr_g=3e-3, clip_weight=0.0)
    assert train_gan(commit_cfg, progress_bar=False)["steps"] == 6
    logged = [json.loads(line)["g_commit"] for line in (tmp_path / "run-commit" / "log.jsonl").read_text().splitlines()
              if "g_commit" in line]
    assert len(logged) == 6 and logged[-1] < 0.5 * logged[0]
    snap_g = TextToImagePipeline.from_pretrained(tmp_path / "run-commit").generator
    assert snap_g.cfg.snap_codes and torch.equal(snap_g.codebook, vae.quantizer.codebook)
    snapped = snap_g.snapped(snap_g.layout(torch.randn(2, 8), g.read_text(ids)))  # every vector one of the codes
    rows = snapped.permute(0, 2, 3, 1).reshape(-1, vae.cfg.code_dim)
    assert torch.cdist(rows, vae.quantizer.codebook).min(1).values.max() < 1e-5
    with pytest.raises(ConfigError, match="code_commitment"):
        replace(commit_cfg, vae="")
    with pytest.raises(ConfigError, match="needs latent mode"):
        GANTrainConfig(model=replace(model, disc_reads="codes", channels=TINY["channels"]), data=DataConfig(size=32))
    with pytest.raises(ConfigError, match="disc_reads must be"):
        GANConfig(clip=CLIPConfig(image_size=32), **{**TINY, "disc_reads": "words"})

    with pytest.raises(ConfigError, match="needs at least 2 entries in channels"):
        GANConfig(clip=CLIPConfig(image_size=32), vae=vae.cfg, **{**TINY, "channels": (16,)})
    with pytest.raises(ConfigError, match="needs at least 4 entries"):  # no --vae: pixels need 4 blocks' worth
        GANTrainConfig(model=model, clip=str(tmp_path / "clip"), data=DataConfig(size=32))
    with pytest.raises(CheckpointError, match="without a VAE"):
        load_vae(tmp_path / "run")
    assert main(["train", "gan", "--clip", str(tmp_path / "clip"), "--vae", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "x")]) == 2


def test_cvae_gan_encoder_and_redraw(tmp_path):
    """recon_weight > 0: an encoder reads a real code grid + caption into noise, G given that noise learns to redraw
    the codes (the loss falls on a fixed batch); the encoder is saved beside D, resumes, and stays out of the
    pipeline; without latent mode the option is refused."""
    torch.manual_seed(0)
    scorer = tiny_scorer()
    scorer.save_pretrained(tmp_path / "clip")
    tiny_pipeline(image_size=32).save_pretrained(tmp_path / "dalle")
    vae = load_vae(tmp_path / "dalle")
    model = GANConfig(clip=CLIPConfig(image_size=32), **{**TINY, "channels": (16, 16, 8), "attn_resolutions": (8,),
                                                        "disc_reads": "codes", "disc_channels": (8, 8, 16)})
    cfg = GANTrainConfig(model=model, clip=str(tmp_path / "clip"), vae=str(tmp_path / "dalle"),
                         data=DataConfig(size=32), out=str(tmp_path / "run"), batch_size=4, max_steps=2, log_every=1,
                         sample_every=100, checkpoint_every=100, diversity_every=100, collapse_ratio=0.0,
                         sample_prompts=("a red square",), recon_weight=1.0)
    assert train_gan(cfg, progress_bar=False)["steps"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["g_recon"] > 0 and log[-1]["g_kl"] > 0
    assert (tmp_path / "run" / "samples" / "redraw_final.png").exists()  # reals, redraws, prior samples
    saved = (tmp_path / "run" / "noise_encoder.safetensors").read_bytes()
    cfg.max_steps = 3
    assert train_gan(cfg, resume=True, progress_bar=False)["steps"] == 3
    assert (tmp_path / "run" / "noise_encoder.safetensors").read_bytes() != saved  # loaded, trained on, saved
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "run")  # sampling needs no encoder: prior noise
    assert pipe("a red square", seed=1).images[0].size == (32, 32)
    with pytest.raises(ConfigError, match="recon_weight needs latent mode"):
        GANTrainConfig(model=GANConfig(clip=CLIPConfig(image_size=32), **TINY), data=DataConfig(size=32),
                       recon_weight=1.0)

    # the two terms: zero at a perfect redraw and at the prior; and E + G learn to redraw a fixed batch
    g = GAN(replace(model, vae=vae.cfg))
    g.clip.load_state_dict(scorer.model.state_dict())
    enc = NoiseEncoder(g.cfg)
    codes = vae.quantizer.embed(vae.encode(torch.rand(4, 3, 32, 32)))  # (4, D, 8, 8)
    zero = torch.zeros(4, g.cfg.noise_dim)
    perfect = posterior_loss(codes, codes, zero, zero)
    assert perfect["recon"] == 0 and perfect["kl"] == 0
    # recon_loss "codes": the real code is the likeliest at a perfect redraw; a vector halfway between two codes
    # costs at least log 2 nats (two codes tie), where the squared distance charges it only a quarter of theirs
    cb = 2 * torch.randn(16, 8)  # (K, D): a codebook whose codes are far apart, as a trained one's are
    ids, other_ids = torch.randint(0, 16, (2, 8, 4, 4)).unbind(0)
    other_ids = torch.where(other_ids == ids, (ids + 1) % 16, other_ids)
    real, other = (cb[i].permute(0, 3, 1, 2) for i in (ids, other_ids))  # (2, D, 4, 4) each
    z0 = torch.zeros(8, 4)
    exact, halfway, wrong = (posterior_loss(v, real, z0, z0, cb)["recon"] for v in (real, (real + other) / 2, other))
    assert exact < 0.1 and halfway > np.log(2) - 1e-4 and wrong > halfway
    text = g.read_text(scorer.tokenizer.encode(["a red square", "a blue circle", "a", "two green stars"], 8).ids)
    opt = torch.optim.Adam([p for p in g.parameters() if p.requires_grad] + list(enc.parameters()), lr=3e-3)
    losses = []
    for _ in range(40):
        mu, logvar = enc(codes, text)
        assert mu.shape == logvar.shape == (4, g.cfg.noise_dim)
        terms = posterior_loss(g.layout(mu + (0.5 * logvar).exp() * torch.randn_like(mu), text), codes, mu, logvar)
        opt.zero_grad()
        (terms["recon"] + 0.01 * terms["kl"]).backward()
        opt.step()
        losses.append(terms["recon"].item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_discriminator_that_reads_words():
    """With disc_attn_resolutions D's features attend over the caption's words: the score depends on them beyond
    the sentence vector, and MA-GP takes their gradient too."""
    torch.manual_seed(0)
    scorer = tiny_scorer()
    d = Discriminator(GANConfig(clip=scorer.model.cfg, **{**TINY, "disc_attn_resolutions": (8,)}))
    assert d.reads_words and list(d.attn) == ["1"]  # blocks write 16, 8, 4 px: the second attends
    for p in d.attn.parameters():  # open the gate (it starts at 0)
        p.data.add_(0.5 * torch.randn_like(p))
    g = tiny_gan(scorer)
    a, b = (g.read_text(scorer.tokenizer.encode([c], 8).ids) for c in
            ("a red square to the left of a blue circle", "a blue square to the left of a red circle"))
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(d(x, a), d(x, Text(b.words, a.sentence, b.keep)))
    text = g.read_text(scorer.tokenizer.encode(["a red square", "a blue circle", "two green stars"], 8).ids)
    ld = discriminator_loss(d, torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32), text, gp_weight=2.0)
    ld["loss"].backward()
    assert ld["gp"].item() > 0 and all(p.grad is not None for p in d.parameters())


def test_gan_reading_through_minilm(tmp_path):
    """text_encoder "minilm": the frozen all-MiniLM-L6-v2 reads the captions (the brief's BERT-family encoder), the
    CLIP only judges and is saved beside the gan; BERT's weights are not saved; a resumed run is the same bits as
    an uninterrupted one (the reader's memo computes every caption the same way whatever batch it came in)."""
    from safetensors.torch import load_file

    from wordbrush.text.minilm import MiniLMReader, load_tokenizer

    reader, tok = MiniLMReader(memo=3, chunk=3), load_tokenizer()
    ids = tok.encode(["a red circle", "a blue square to the left of a red circle", "two green triangles",
                      "a circle"], 16).ids
    words, sentence = reader(ids[:3])
    assert words.shape == (3, 16, 384) and torch.allclose(sentence.norm(dim=-1), torch.ones(3))
    fresh_words, fresh_sentence = MiniLMReader(chunk=3)(ids[[2, 0]])  # another batch, another order
    assert torch.equal(fresh_words[0], words[2]) and torch.equal(fresh_sentence[1], sentence[0])
    again = reader(ids[1:])  # two remembered, one new: over the memo's 3, it starts afresh
    assert torch.equal(again[0][0], words[1]) and len(reader._seen) == 3

    scorer = tiny_scorer()
    scorer.save_pretrained(tmp_path / "clip")
    model = GANConfig(clip=CLIPConfig(image_size=32, text_len=8), text_encoder="minilm", **TINY)

    def run(out: str, steps: int, resume: bool = False) -> dict:
        cfg = GANTrainConfig(model=copy.deepcopy(model), clip=str(tmp_path / "clip"), data=DataConfig(size=32),
                             out=str(tmp_path / out), batch_size=4, max_steps=steps, log_every=1, sample_every=100,
                             checkpoint_every=2, diversity_every=100, collapse_ratio=0.0,
                             sample_prompts=("a red square",))
        return train_gan(cfg, resume=resume, progress_bar=False)

    run("straight", 3)
    run("resumed", 2)
    assert run("resumed", 3, resume=True)["steps"] == 3
    straight, resumed = (load_file(tmp_path / r / "generator_raw.safetensors") for r in ("straight", "resumed"))
    assert not any(k.startswith("reader.") for k in straight)  # BERT comes from the package, not the file
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)

    pipe = TextToImagePipeline.from_pretrained(tmp_path / "straight")
    assert pipe.tokenizer.vocab_size > 30000 and pipe.clip is not None and pipe.generator.clip is None
    out = pipe(["a red square", "a blue square"], num_images_per_prompt=2, seed=3, candidates=2, rerank="clip")
    assert len(out.images) == 4 and out.images[0].size == (32, 32)


def test_transformer_trunk(tmp_path):
    """trunk "transformer" (latent mode): the grid's positions as tokens write the code vectors; it trains, saves
    with the VAE's codebook beside the decoder, samples each image from its own seed, snaps to the codebook when
    asked, learns to redraw a fixed batch under the sharpened cross-entropy, and is refused without a VAE."""
    torch.manual_seed(0)
    scorer = tiny_scorer()
    scorer.save_pretrained(tmp_path / "clip")
    tiny_pipeline(image_size=32).save_pretrained(tmp_path / "dalle")
    vae = load_vae(tmp_path / "dalle")
    model = GANConfig(clip=CLIPConfig(image_size=32), **{**TINY, "disc_reads": "codes", "disc_channels": (8, 8, 16),
                                                        "trunk": "transformer", "trunk_dim": 16, "trunk_depth": 2,
                                                        "trunk_heads": 2, "trunk_mlp_ratio": 2})
    cfg = GANTrainConfig(model=model, clip=str(tmp_path / "clip"), vae=str(tmp_path / "dalle"),
                         data=DataConfig(size=32), out=str(tmp_path / "run"), batch_size=4, max_steps=2, log_every=1,
                         sample_every=100, checkpoint_every=100, diversity_every=100, collapse_ratio=0.0,
                         sample_prompts=("a red square",), recon_weight=1.0, recon_loss="codes",
                         clip_weight=0.0)
    assert train_gan(cfg, progress_bar=False)["steps"] == 2
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "run")
    g = pipe.generator
    assert not hasattr(g, "fc") and len(g.trunk.blocks) == 2
    assert torch.equal(g.codebook, vae.quantizer.codebook)
    ids = scorer.tokenizer.encode(["a red square", "a blue circle"], 8).ids
    a = g.sample(ids, [torch.Generator().manual_seed(s) for s in (1, 2)])
    b = g.sample(ids[1:], [torch.Generator().manual_seed(2)])
    assert a.shape == (2, 3, 32, 32) and torch.allclose(a[1], b[0], atol=1e-5)
    layout = g.layout(torch.randn(2, 8), g.read_text(ids))  # (2, D, 8, 8)
    snapped = g.snapped(layout).permute(0, 2, 3, 1).reshape(-1, vae.cfg.code_dim)
    rows = torch.cdist(snapped, vae.quantizer.codebook).min(1).values
    assert layout.shape == (2, vae.cfg.code_dim, 8, 8) and rows.max() < 1e-5  # every vector is a code
    scores = g.code_scores(torch.randn(2, 8), g.read_text(ids))  # (2, 64, K): snapping picks the likeliest code
    picked = g.picked(scores).permute(0, 2, 3, 1).reshape(2, 64, -1)
    assert torch.equal(picked, vae.quantizer.codebook[scores.argmax(-1)])
    g.cfg.snap_codes = True
    assert not torch.allclose(g.sample(ids, [torch.Generator().manual_seed(s) for s in (1, 2)]), a)

    g = GAN(replace(model, vae=vae.cfg))
    g.clip.load_state_dict(scorer.model.state_dict())
    g.codebook.copy_(vae.quantizer.codebook)
    enc = NoiseEncoder(g.cfg)
    codes = vae.quantizer.embed(vae.encode(torch.rand(4, 3, 32, 32)))
    text = g.read_text(scorer.tokenizer.encode(["a red square", "a blue circle", "a", "two green stars"], 8).ids)
    opt = torch.optim.Adam([p for p in g.parameters() if p.requires_grad] + list(enc.parameters()), lr=3e-3)
    losses = []
    for _ in range(40):
        mu, logvar = enc(codes, text)
        scores = g.code_scores(mu + (0.5 * logvar).exp() * torch.randn_like(mu), text)  # (4, 64, K)
        terms = posterior_loss(g.mixture(scores), codes, mu, logvar, vae.quantizer.codebook, scores)
        opt.zero_grad()
        (terms["recon"] + 0.01 * terms["kl"]).backward()
        opt.step()
        losses.append(terms["recon"].item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    with pytest.raises(ConfigError, match="trunk 'transformer' needs latent mode"):
        GANTrainConfig(model=replace(model, disc_reads="pixels", disc_channels=TINY["disc_channels"]),
                       data=DataConfig(size=32))
    with pytest.raises(ConfigError, match="trunk must be"):
        replace(model, trunk="unet")


def test_dalle_teacher(tmp_path):
    """teacher (distillation): the dalle's expected NLL of G's grid is its exact log-likelihood where the scores
    are certain, falls when the scores descend it, trains inside the gan, and is refused on another VAE's codes or
    without the transformer trunk."""
    torch.manual_seed(0)
    scorer = tiny_scorer()
    scorer.save_pretrained(tmp_path / "clip")
    tiny_pipeline(image_size=32).save_pretrained(tmp_path / "dalle")
    vae = load_vae(tmp_path / "dalle")
    teacher = DalleTeacher(str(tmp_path / "dalle"), vae.quantizer.codebook, torch.device("cpu"))
    captions = ["a red square", "two blue circles"]
    text = teacher.text(captions)  # (2, L)
    codes = torch.randint(0, vae.cfg.num_codes, (2, 64))
    certain = torch.nn.functional.one_hot(codes, vae.cfg.num_codes).float() * 60.0  # softmax ~ one-hot
    exact = -teacher.dalle.log_likelihood(text, codes).mean() / 64
    assert torch.allclose(teacher.loss(text, certain), exact, atol=1e-4)
    unconditional = -teacher.dalle.log_likelihood(torch.full_like(text, PAD_ID), codes).mean() / 64
    assert torch.allclose(teacher.loss(text, certain, "pmi"), exact - unconditional, atol=1e-4)
    scores = torch.zeros(2, 64, vae.cfg.num_codes, requires_grad=True)
    opt = torch.optim.Adam([scores], lr=0.1)
    losses = []
    for _ in range(30):
        loss = teacher.loss(text, scores)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1  # (the untrained teacher is near uniform: its floor is near the start)
    assert teacher.dalle.image_emb.weight.grad is None  # frozen

    model = GANConfig(clip=CLIPConfig(image_size=32), **{**TINY, "disc_reads": "codes", "disc_channels": (8, 8, 16),
                                                        "trunk": "transformer", "trunk_dim": 16, "trunk_depth": 2,
                                                        "trunk_heads": 2, "trunk_mlp_ratio": 2})
    cfg = GANTrainConfig(model=model, clip=str(tmp_path / "clip"), vae=str(tmp_path / "dalle"),
                         teacher=str(tmp_path / "dalle"), teacher_rows=2, data=DataConfig(size=32),
                         out=str(tmp_path / "run"), batch_size=4, max_steps=2, log_every=1, sample_every=100,
                         checkpoint_every=100, diversity_every=100, collapse_ratio=0.0, sample_prompts=("a red square",), clip_weight=0.0,
                         recon_weight=1.0, recon_loss="codes")  # the teacher reads the redraws
    assert train_gan(cfg, progress_bar=False)["steps"] == 2
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["g_teacher"]) and r["g_teacher"] > 0 for r in logged if "g_teacher" in r)
    assert any("g_teacher" in r for r in logged)
    with pytest.raises(ConfigError, match="needs the cVAE's redraws"):
        replace(cfg, recon_weight=0.0)
    with pytest.raises(ConfigError, match="needs trunk 'transformer'"):
        GANTrainConfig(model=replace(model, trunk="conv"), vae="x", teacher="shapes", data=DataConfig(size=32))
    with pytest.raises(WordbrushError, match="another VAE's codes"):
        DalleTeacher(str(tmp_path / "dalle"), torch.randn_like(vae.quantizer.codebook), torch.device("cpu"))


def test_gpu_script_runs_tiny_on_cpu(tmp_path):
    """scripts/gpu-shapes-gan.sh must work the first time a GPU is lent (one device call, no second chance): run it
    for seconds on the CPU, from the source tree as the device machine does, and check that what it brings back
    reassembles into a model folder that loads and draws, beside the benchmark's report."""
    import os
    import subprocess
    import sys
    import tarfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "out"
    env = {**os.environ, "CLIP_MIN": "0.05", "GAN_MIN": "0.05", "PROMPTS": "1", "BATCH": "16",
           "RUNS": str(tmp_path / "runs"), "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(root / "scripts" / "gpu-shapes-gan.sh"), str(out)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all(p.stat().st_size <= 16 << 20 for p in out.iterdir())  # what the device returns
    assert {"log.txt", "report.md", "report.json", "failures.png", "samples.png"} <= set(files)
    parts = sorted(out.glob("model.tar.gz*"))
    (tmp_path / "model.tar.gz").write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        tar.extractall(tmp_path / "model", filter="data")
    folder = tmp_path / "model" / "gan-shapes"
    assert not (folder / "discriminator.safetensors").exists() and not (folder / "checkpoints").exists()
    pipe = TextToImagePipeline.from_pretrained(folder)
    assert pipe("two green triangles", seed=1).images[0].size == (64, 64)
    assert "overall" in json.dumps(json.loads((out / "report.json").read_text()))


def test_discriminator_reranking_keeps_the_candidate_d_likes_best(tmp_path):
    scorer = tiny_scorer()
    g = tiny_gan(scorer)
    torch.manual_seed(0)
    d = Discriminator(g.cfg)
    plain = TextToImagePipeline(scorer.tokenizer, g)
    with pytest.raises(WordbrushError, match="critic"):  # one line: this model kept no discriminator
        plain("a red square", candidates=3, rerank="discriminator")
    pipe = TextToImagePipeline(scorer.tokenizer, g, critic=d)
    prompt, C = "a blue square", 5
    out = pipe(prompt, num_images_per_prompt=3, seed=2, candidates=C, rerank="discriminator")
    ids = scorer.tokenizer.encode([prompt], g.text_len).ids
    options = pipe.sampling_options(candidates=1)
    picks = []
    for k in range(3):  # each image's candidates redrawn and judged by hand: the kept one is D's favourite
        cands = torch.cat([g.sample(ids, [candidate_rng(2 + k, c)], options) for c in range(C)])
        text = g.read_text(ids.expand(C, -1))
        with torch.no_grad():
            scores = d(cands, text)  # a pixel gan's D reads the pixels
        best = int(scores.argmax())
        picks.append(best)
        assert np.array_equal(np.asarray(out.images[k]), np.asarray(to_pil(cands[best : best + 1])[0]))
    assert picks != [0, 0, 0]  # not simply the first candidate
    both = pipe(prompt, seed=2, candidates=C, rerank="clip+discriminator")
    assert both.images[0].size == (32, 32)
    pipe.save_pretrained(tmp_path / "m")  # the critic travels with the model
    again = TextToImagePipeline.from_pretrained(tmp_path / "m")
    assert again.critic is not None
    assert np.array_equal(np.asarray(again(prompt, seed=2, candidates=C, rerank="discriminator").images[0]),
                          np.asarray(out.images[0]))
    with pytest.raises(WordbrushError, match="no discriminator"):
        tiny_pipeline()("a red circle", candidates=2, rerank="discriminator")


def test_object_slots_place_blobs_where_they_say():
    from wordbrush.generators.gan_slots import SlotLayout, cell_centres

    assert torch.allclose(cell_centres(4)[[0, 3, 15]], torch.tensor([[-0.75, -0.75], [0.75, -0.75], [0.75, 0.75]]))
    torch.manual_seed(0)
    lay = SlotLayout(slots=2, noise_dim=8, text_dim=16, dim=16, heads=4, sides=(4, 8), widths=(5, 3))
    with torch.no_grad():  # every slot at the same known place: centre tanh(b) = (0.75, -0.75), width 0.1
        lay.where.weight.zero_()
        lay.where.bias.copy_(torch.tensor([torch.atanh(torch.tensor(0.75)), torch.atanh(torch.tensor(-0.75)), -30.0]))
    words, keep = torch.randn(3, 5, 16), torch.ones(3, 5, dtype=torch.bool)
    small, big = lay(torch.randn(3, 8), words, keep)
    assert small.shape == (3, 5, 4, 4) and big.shape == (3, 3, 8, 8)
    energy = small.square().sum(1)  # (3, 4, 4): all in the top-right cell (row 0, column 3)
    assert torch.allclose(energy.flatten(1).argmax(1), torch.tensor(3)) and energy[:, 0, 3].min() > 0
    assert (energy.flatten(1).sum(1) - energy[:, 0, 3]).max() < 1e-6 * energy[:, 0, 3].min()
    # inside the gan: the slots train with G, and only the conv trunk takes them
    scorer = tiny_scorer()
    g = GAN(GANConfig(clip=scorer.model.cfg, slots=3, slot_dim=8, **TINY))
    text = g.read_text(scorer.tokenizer.encode(["a red square", "a blue square"], 8).ids)
    g(torch.randn(2, 8), text).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.slots.parameters())
    with pytest.raises(ConfigError, match="slots"):
        GANConfig(clip=scorer.model.cfg, slots=2, trunk="transformer", **TINY)


def test_slots_reading_objects_draw_each_object_from_its_own_words(tmp_path):
    """slot_reading "objects": the caption is split into its runs of content words (the vocabulary's roles, saved
    in the gan's weights), each encoded alone; slot k reads phrase k mod n, and what it draws is a function of its
    own phrase and noise only, up to the gate's scale: another object's words cannot lend it their colour."""
    from wordbrush.generators.gan_slots import object_phrases
    from wordbrush.text.minilm import load_tokenizer
    from wordbrush.text.phrases import ROLE_BREAK, ROLE_CONTENT, ROLE_EVERY, token_roles

    scorer = tiny_scorer()
    tok = scorer.tokenizer
    roles = token_roles(tok)
    caps = ["a red circle to the left of a blue square", "a red square", "a the of"]
    packed, order = object_phrases(tok.encode(caps, 12).ids, roles, 3)
    assert packed.shape == (3, 2, 12) and order.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert [[tok.decode(p) for p in row] for row in packed] == [["red circle", "blue square"], ["red square", ""],
                                                                 ["", ""]]
    wp = load_tokenizer()  # WordPiece: [CLS] and [SEP] in every phrase, "##" pieces inside words
    wp_roles = token_roles(wp)
    vocab = wp.tok.get_vocab()
    assert [int(wp_roles[vocab[t]]) for t in ("[CLS]", "[SEP]", "the", "left", ",", "circle", "##s", "[UNK]")] == [
        ROLE_EVERY, ROLE_EVERY, ROLE_BREAK, ROLE_BREAK, ROLE_BREAK, ROLE_CONTENT, ROLE_CONTENT, ROLE_CONTENT]
    packed, _ = object_phrases(wp.encode(["a red circle above two blue squares"], 16).ids, wp_roles, 2)
    assert [wp.tok.decode(p.tolist(), skip_special_tokens=False).replace(" [PAD]", "") for p in packed[0]] == [
        "[CLS] red circle [SEP]", "[CLS] two blue squares [SEP]"]

    g = GAN(GANConfig(clip=scorer.model.cfg, slots=3, slot_dim=8, slot_reading="objects", **TINY))
    g.clip.load_state_dict(scorer.model.state_dict())
    g.set_word_roles(roles)
    for p in g.slots.gate.parameters():  # a gate that depends on the caption, as a trained one does
        torch.nn.init.normal_(p)
    z = torch.randn(1, 8).expand(2, -1)
    text = g.read_text(tok.encode(["a red circle left of a blue square", "a red circle left of a green circle"],
                                  8).ids)
    drawn, _, _ = g.slots.place(z, text.words, text.keep, text.phrases)  # (2, 3, d); slots 0, 2 read "red circle"
    cos = torch.nn.functional.cosine_similarity(drawn[0], drawn[1], dim=-1)
    assert cos[0] > 1 - 1e-5 and cos[2] > 1 - 1e-5 and cos[1] < 0.999
    assert not torch.allclose(drawn[0, 0], drawn[1, 0])  # the gate saw the whole caption
    g(torch.randn(2, 8), text).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.slots.parameters())
    # without the trunk's word attention and sentence vector, the caption reaches the grid only through the slots:
    # the sentence vector is not read at all
    alone = GAN(GANConfig(clip=scorer.model.cfg, slots=3, slot_dim=8, slot_reading="objects",
                          trunk_reads_sentence=False, **{**TINY, "attn_resolutions": ()}))
    alone.clip.load_state_dict(scorer.model.state_dict())
    alone.set_word_roles(roles)
    z = torch.randn(2, 8)
    noisy = text._replace(sentence=torch.randn_like(text.sentence))
    assert torch.equal(alone.layout(z, text), alone.layout(z, noisy))
    other = alone.read_text(tok.encode(["a red square"] * 2, 8).ids)
    assert not torch.equal(alone.layout(z, text), alone.layout(z, other))
    with pytest.raises(ConfigError, match="word roles for 5 tokens"):
        g.set_word_roles(roles[:5])
    with pytest.raises(ConfigError, match="needs slots > 0"):
        GANConfig(clip=scorer.model.cfg, slot_reading="objects", **TINY)
    with pytest.raises(ConfigError, match="slot_reading must be"):
        GANConfig(clip=scorer.model.cfg, slots=2, slot_reading="words", **TINY)

    # trained: the roles come from the run's tokenizer and travel in the saved weights
    scorer.save_pretrained(tmp_path / "clip")
    model = GANConfig(clip=CLIPConfig(image_size=32), slots=2, slot_dim=8, slot_reading="objects", **TINY)
    cfg = GANTrainConfig(model=model, clip=str(tmp_path / "clip"), data=DataConfig(size=32), out=str(tmp_path / "run"),
                         batch_size=4, max_steps=2, log_every=1, sample_every=100, checkpoint_every=100,
                         diversity_every=100, collapse_ratio=0.0, hard_negatives=True,
                         sample_prompts=("a red square",))
    assert train_gan(cfg, progress_bar=False)["steps"] == 2
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "run")
    assert torch.equal(pipe.generator.word_roles, roles)
    assert pipe("a red circle left of a blue square", seed=1, candidates=2, rerank="clip").images[0].size == (32, 32)

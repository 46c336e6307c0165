"""The discrete VAE: shapes, both bottlenecks, strict save/load, bf16 against float32, the training loop."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from wordbrush.checkpoint import load_optimizer, save_optimizer
from wordbrush.data.config import DataConfig
from wordbrush.data.shapes import ShapesDataset
from wordbrush.errors import CheckpointError
from wordbrush.image.metrics import code_usage, psnr
from wordbrush.image.vae import DiscreteVAE, VAEConfig, load_vae, save_vae
from wordbrush.train.vae import VAETrainConfig, train_vae
from wordbrush.utils.images import to_tensor

TINY = dict(image_size=32, channels=(8, 16), num_codes=32, code_dim=8)


def _images(n=8, size=32, seed=0):
    return to_tensor(ShapesDataset(n, size=size, seed=seed, split="all").render_batch(range(n)))


@pytest.mark.parametrize("quantizer", ["vq", "gumbel"])
def test_forward_backward_shapes(quantizer):
    torch.manual_seed(0)
    vae = DiscreteVAE(VAEConfig(**TINY, quantizer=quantizer))
    x = _images()
    out = vae(x)
    assert out.recon.shape == x.shape
    assert out.indices.shape == (8, 8, 8) and out.indices.dtype == torch.int64
    assert 0 <= int(out.indices.min()) and int(out.indices.max()) < 32
    loss = (out.recon - x).pow(2).mean() + out.quant_loss
    loss.backward()
    grads = [p.grad for p in vae.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)  # straight-through / relaxed sample reaches the encoder
    if quantizer == "gumbel":
        assert out.kl is not None and out.kl.item() >= -1e-6  # KL to the uniform prior is non-negative


def test_encode_decode_roundtrip_shapes():
    vae = DiscreteVAE(VAEConfig(**TINY)).eval()
    x = _images(4)
    ids = vae.encode(x)
    assert ids.shape == (4, 8, 8)
    img = vae.decode(ids)
    assert img.shape == (4, 3, 32, 32) and img.min() >= 0 and img.max() <= 1
    assert torch.equal(vae.decode(ids.flatten(1)), img)  # (B, h*w) is accepted too


def test_vq_restarts_dead_codes():
    torch.manual_seed(0)
    vq = DiscreteVAE(VAEConfig(**TINY, restart_threshold=0.5)).quantizer
    vq.train()
    z = torch.randn(16, 8, 8, 8)
    vq(z)  # initialises the codebook from data
    vq.ema_count[:16] = 0.0  # pretend half the codes died
    before = vq.codebook[:16].clone()
    vq(z)
    assert not torch.equal(before, vq.codebook[:16])
    assert (vq.ema_count[:16] >= 0.5).all()


def test_save_load_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    vae = DiscreteVAE(VAEConfig(**TINY))
    vae.train()
    vae(_images())  # initialise + one EMA update, so buffers differ from their defaults
    vae.eval()
    save_vae(vae, tmp_path / "m")
    header = json.loads((tmp_path / "m" / "config.json").read_text())
    assert header["kind"] == "vae" and header["wordbrush_version"] and header["config"]["num_codes"] == 32
    loaded = load_vae(tmp_path / "m")
    x = _images(4, seed=3)
    assert torch.equal(vae.encode(x), loaded.encode(x))
    assert torch.equal(vae.decode(vae.encode(x)), loaded.decode(loaded.encode(x)))


def test_load_wrong_shape_names_the_tensor(tmp_path):
    save_vae(DiscreteVAE(VAEConfig(**TINY)), tmp_path / "m")
    path = tmp_path / "m" / "vae.safetensors"
    state = load_file(str(path))
    state["decoder.net.0.weight"] = torch.zeros(3, 3, 3, 3)
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"decoder\.net\.0\.weight.*shape"):
        load_vae(tmp_path / "m")


def test_load_missing_and_extra_tensors(tmp_path):
    save_vae(DiscreteVAE(VAEConfig(**TINY)), tmp_path / "m")
    path = tmp_path / "m" / "vae.safetensors"
    state = load_file(str(path))
    state.pop("encoder.net.0.bias")
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"encoder\.net\.0\.bias.*missing"):
        load_vae(tmp_path / "m")
    state["encoder.net.0.bias"] = torch.zeros(8)
    state["surplus"] = torch.zeros(1)
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="surplus"):
        load_vae(tmp_path / "m")


def test_load_corrupt_or_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_vae(tmp_path / "nope")
    save_vae(DiscreteVAE(VAEConfig(**TINY)), tmp_path / "m")
    (tmp_path / "m" / "vae.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_vae(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_vae(tmp_path / "m")


def test_bf16_autocast_close_to_float32():
    torch.manual_seed(0)
    vae = DiscreteVAE(VAEConfig(**TINY)).eval()
    vae.quantizer.initialised.fill_(True)
    x = _images(8)
    z32 = vae.encoder(x * 2 - 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z16 = vae.encoder(x * 2 - 1).float()
    rel = (z16 - z32).norm() / z32.norm()
    assert rel < 0.02, f"bf16 encoder output is {rel:.3f} away from float32"


def test_bf16_training_follows_float32(tmp_path, monkeypatch):
    """Same seed, same data: the bf16 loss curve stays within a few percent of float32's."""
    import wordbrush.train.common as common

    monkeypatch.setattr(common, "cpu_has_fast_bf16", lambda: True)  # bf16 even where it is emulated (slow)
    curves = {}
    for bf16 in (False, True):
        cfg = VAETrainConfig(model=VAEConfig(**TINY), data=DataConfig(size=32), out=str(tmp_path / f"b{bf16}"),
                             batch_size=16, max_steps=60, warmup_steps=5, bf16=bf16, log_every=10,
                             sample_every=1000, checkpoint_every=1000, eval_images=16)
        train_vae(cfg, progress_bar=False)
        curves[bf16] = [json.loads(l)["recon"] for l in (tmp_path / f"b{bf16}" / "log.jsonl").read_text().splitlines()]
    assert curves[False][-1] < curves[False][0] * 0.7  # it learns
    assert curves[True] != curves[False]  # and bf16 did run (its rounding shows)
    for a, b in zip(curves[False], curves[True]):
        assert abs(a - b) / a < 0.15, (curves[False], curves[True])


def test_metrics_known_answers():
    x = torch.zeros(1, 3, 4, 4)
    y = x.clone()
    y[0, 0, 0, 0] = 1.0  # MSE = 1/48
    assert psnr(y, x).item() == pytest.approx(10 * torch.log10(torch.tensor(48.0)).item(), rel=1e-5)
    u = code_usage(torch.tensor([0, 1, 2, 3]), 8)
    assert u["used_share"] == 0.5 and u["perplexity"] == pytest.approx(4.0)


def test_train_saves_resumes_and_reports(tmp_path):
    cfg = VAETrainConfig(model=VAEConfig(**TINY), data=DataConfig(size=32), out=str(tmp_path / "run"),
                         batch_size=8, max_steps=6, warmup_steps=2, log_every=2, sample_every=3,
                         checkpoint_every=3, eval_images=16)
    figures = train_vae(cfg, progress_bar=False)
    assert figures["steps"] == 6
    for k in ("psnr_db", "codes_used_share", "code_perplexity", "checker_pass_rate"):
        assert k in figures
    run = tmp_path / "run"
    assert (run / "samples" / "final.png").exists() and (run / "eval.json").exists()
    assert load_vae(run).cfg.num_codes == 32
    with pytest.raises(ValueError, match="--resume"):
        train_vae(cfg, progress_bar=False)
    cfg.max_steps = 9
    figures = train_vae(cfg, resume=True, progress_bar=False)
    assert figures["steps"] == 9


def test_optimizer_state_roundtrip(tmp_path):
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(m.parameters(), lr=0.01)
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_optimizer(opt, tmp_path / "opt.safetensors", {"step": 1})
    opt2 = torch.optim.AdamW(m.parameters(), lr=0.5)
    assert load_optimizer(opt2, tmp_path / "opt.safetensors") == {"step": 1}
    a, b = opt.state_dict(), opt2.state_dict()
    assert b["param_groups"][0]["lr"] == 0.01
    for pid in a["state"]:
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a["state"][pid][k], b["state"][pid][k])


def test_decoding_through_sub_pixel_convs_equals_upsample_then_conv():
    from wordbrush.nn.conv import is_upsampled_conv

    torch.manual_seed(0)
    vae = DiscreteVAE(VAEConfig(image_size=32, channels=(16, 32), num_codes=16, code_dim=8)).eval()
    layers = list(vae.decoder.net)
    assert sum(is_upsampled_conv(a, b) for a, b in zip(layers, layers[1:])) == 2
    z = torch.randn(3, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(vae.decoder(z), vae.decoder.net(z), atol=1e-5, rtol=1e-5)
    assert vae.decoder(z).requires_grad  # training keeps the plain layers (and their gradients)

"""Configs are checked key by key; the CLI turns every user error into one line on stderr and exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wordbrush.cli import main
from wordbrush.config import from_dict, load_config, to_dict
from wordbrush.errors import ConfigError
from wordbrush.image.vae import VAEConfig
from wordbrush.train.vae import VAETrainConfig


def test_config_roundtrip_and_nested():
    cfg = from_dict(VAETrainConfig, {"model": {"channels": [8, 16], "image_size": 32}, "data": {"size": 32},
                                     "lr": 1, "bf16": False})
    assert cfg.model.channels == (8, 16) and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert from_dict(VAETrainConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize("data, msg", [
    ({"modle": {}}, "unknown key 'modle'"),
    ({"model": {"num_codes": "many"}}, "model.num_codes: expected an integer"),
    ({"bf16": "yes"}, "bf16: expected true/false"),
    ({"model": {"channels": 3}}, "model.channels: expected a list"),
    ({"model": {"quantizer": "kmeans"}}, "quantizer must be"),
    ({"model": {"image_size": 60}}, "not divisible"),
    ({"model": {"image_size": 32}}, "differ"),
    ({"data": {"size": -5}}, "data.size must be >= 16"),
    ([1, 2], "expected a table"),
])
def test_config_errors_name_the_key(data, msg):
    with pytest.raises(ConfigError, match=msg):
        from_dict(VAETrainConfig, data)


def test_load_config_files(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('batch_size = 8\n[model]\nnum_codes = 64\n')
    cfg = load_config(VAETrainConfig, p)
    assert cfg.batch_size == 8 and cfg.model.num_codes == 64
    with pytest.raises(ConfigError, match="not found"):
        load_config(VAETrainConfig, tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"batch_size": 8,')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(VAETrainConfig, bad)
    with pytest.raises(ConfigError, match="not a file"):
        load_config(VAETrainConfig, tmp_path)
    assert VAEConfig().grid_size == 8


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", "wordbrush.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args_fn, msg", [
    (lambda t: ["train", "vae", "--config", str(t / "missing.json")], "config file not found"),
    (lambda t: ["train", "vae", "--config", str(t / "corrupt.json")], "cannot read config"),
    (lambda t: ["train", "vae", "--config", str(t / "truncated.json")], "not valid JSON"),
    (lambda t: ["train", "vae", "--config", str(t / "wrongkey.json")], "unknown key"),
    (lambda t: ["data", "shapes", "--size", "-5", "--out", str(t / "d")], "must be >= 1"),
    (lambda t: ["data", "shapes", "--size", "8", "--out", str(t / "d")], "size must be >= 16"),
    (lambda t: ["data", "shapes", "-n", "3", "--out", str(t / "afile")], "not a directory"),
    (lambda t: ["eval", "--model", str(t / "afile")], "not found"),
    (lambda t: ["eval", "--model", str(t)], "config.json not found"),
    (lambda t: ["frobnicate"], "invalid choice"),
])
def test_cli_user_errors_are_one_line(tmp_path, args_fn, msg):
    (tmp_path / "corrupt.json").write_bytes(b"\x00\xff{")
    (tmp_path / "wrongkey.json").write_text(json.dumps({"epochs": 3}))
    (tmp_path / "truncated.json").write_text('{"batch_size": 8,')
    (tmp_path / "afile").write_text("x")
    r = _run(args_fn(tmp_path), tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and msg in lines[0], r.stderr


def test_cli_data_shapes_writes_files_and_grid(tmp_path, capsys):
    assert main(["data", "shapes", "-n", "5", "--size", "32", "--out", str(tmp_path / "d"), "-q"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "d" / "grid.png").exists() and "grid.png" in out
    assert len(list((tmp_path / "d").glob("*.png"))) == 6  # 5 images + the grid
    assert len((tmp_path / "d" / "scenes.jsonl").read_text().splitlines()) == 5


def test_cli_train_and_eval_vae(tmp_path, capsys, monkeypatch):
    import torch

    import wordbrush.train.common as common

    cfg = {"model": {"image_size": 32, "channels": [8, 16], "num_codes": 32, "code_dim": 8},
           "data": {"size": 32}, "batch_size": 8, "max_steps": 4, "warmup_steps": 1, "eval_images": 8, "bf16": True}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    # bf16 on a CPU that only emulates it (~100x slower than float32): float32 instead, and one line that says so
    monkeypatch.setattr(common, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(common, "_warned_bf16", False)
    with pytest.warns(UserWarning, match="no native bfloat16"), common.autocast(torch.device("cpu"), True):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(common, "_warned_bf16", False)
    assert main(["train", "vae", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "v"), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("wordbrush: warning: bf16 is on, but this CPU has no native bfloat16") == 1
    assert "UserWarning" not in err and "autocast(" not in err
    assert main(["eval", "--model", str(tmp_path / "v"), "-n", "8", "-q", "--out", str(tmp_path / "e")]) == 0
    figures = json.loads((tmp_path / "e" / "vae_eval.json").read_text())
    assert 0 <= figures["codes_used_share"] <= 1 and figures["psnr_db"] > 0


SHIPPED_CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    """Every config in configs/ parses into the config class of the stage its name starts with (what
    `wordbrush train STAGE --config FILE` does), and every value in the file is the value the run gets."""
    from wordbrush.cli.train import stages
    from wordbrush.generators import registry

    part = path.name.split("-")[0].replace("vqgan", "vae")
    cfg = to_dict(load_config(registry.load(stages()[part][0]), path))
    written = json.loads(path.read_text())

    def same(file_value, loaded):
        if isinstance(file_value, dict):
            return all(same(v, loaded[k]) for k, v in file_value.items())
        return file_value == loaded

    assert same(written, cfg), f"{path.name}: a value in the file is not the value the config holds"

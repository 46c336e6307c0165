"""The one training runtime (train/runtime.py): checkpoints that are complete or absent, exact resume after SIGKILL,
the bad-step guard, the run-folder lock, same seed -> same bytes, and torchrun (gloo) against one process."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from wordbrush.data.config import DataConfig
from wordbrush.errors import WordbrushError
from wordbrush.generators.dalle import DALLE, DalleConfig
from wordbrush.image.vae import DiscreteVAE, VAEConfig, save_vae
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.train.checkpoints import Checkpoints
from wordbrush.train.runfolder import RunLock
from wordbrush.train.tokens import DalleTrainConfig, train_generator

ROOT = Path(__file__).resolve().parents[1]
TINY_DALLE = {"text_len": 12, "dim": 32, "depth": 2, "heads": 4}


@pytest.fixture()
def vae_dir(tmp_path):
    torch.manual_seed(0)
    vae = DiscreteVAE(VAEConfig(image_size=32, channels=(8, 16), num_codes=32, code_dim=8))
    vae.quantizer.initialised.fill_(True)
    return save_vae(vae, tmp_path / "vae")


def _cfg(tmp_path, vae_dir, steps, out="run", **kw):
    base = dict(model=DalleConfig(**TINY_DALLE), vae=str(vae_dir), data=DataConfig(size=32), out=str(tmp_path / out),
                tokenizer_captions=300, batch_size=8, max_steps=steps, warmup_steps=2, log_every=1, sample_every=1000,
                checkpoint_every=2, bf16=False, sample_prompts=("a red circle",))
    return DalleTrainConfig(**{**base, **kw})


def _config_file(tmp_path, vae_dir, steps, **kw) -> Path:
    path = tmp_path / "dalle.json"
    cfg = {"model": TINY_DALLE, "vae": str(vae_dir), "data": {"size": 32}, "tokenizer_captions": 300,
           "batch_size": 8, "max_steps": steps, "warmup_steps": 2, "log_every": 1, "sample_every": 1000,
           "checkpoint_every": 2, "bf16": False, "sample_prompts": ["a red circle"], **kw}
    path.write_text(json.dumps(cfg))
    return path


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _assert_checkpoints_whole(run: Path) -> None:
    """Every step_N folder on disk is complete; nothing else but leftovers a next save removes (.tmp-/.old-)."""
    store = Checkpoints(run / "checkpoints", keep=3)
    for _, folder in store.folders():
        assert store.problem(folder) is None, folder


def test_same_seed_same_bytes_and_checkpoints_kept(tmp_path, vae_dir):
    train_generator(_cfg(tmp_path, vae_dir, 6, "a", keep_checkpoints=2), progress_bar=False)
    train_generator(_cfg(tmp_path, vae_dir, 6, "b", keep_checkpoints=2), progress_bar=False)
    for name in ("dalle.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == ["step_000004", "step_000006"]
    summary = json.loads((tmp_path / "a" / "train_summary.json").read_text())
    assert summary["skipped_items"] == 0 and summary["skipped_steps"] == 0 and summary["steps"] == 6


def test_gradient_accumulation_takes_the_same_step(tmp_path, vae_dir):
    train_generator(_cfg(tmp_path, vae_dir, 3, "whole"), progress_bar=False)
    train_generator(_cfg(tmp_path, vae_dir, 3, "pieces", micro_batch=3), progress_bar=False)  # 3 + 3 + 2
    for a, b in zip(_log(tmp_path / "whole"), _log(tmp_path / "pieces")):
        assert a["image_loss"] == pytest.approx(b["image_loss"], rel=1e-4)  # float sums in another order
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)  # the text loss: a mean over each piece's tokens


def test_tensorboard_scalars_when_it_is_installed(tmp_path, vae_dir, monkeypatch):
    import types

    scalars = []

    class Writer:
        def __init__(self, folder):
            self.folder = folder

        def add_scalar(self, key, value, step):
            scalars.append((key, value, step))

        def add_image(self, tag, array, step, dataformats):
            images.append((tag, array.shape, step))

        def close(self):
            pass

    images = []
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    train_generator(_cfg(tmp_path, vae_dir, 2, sample_every=2), progress_bar=False)
    assert {("loss", 1), ("loss", 2)} <= {(k, s) for k, _, s in scalars}
    assert [(tag, step) for tag, _, step in images] == [("samples", 2)] and images[0][1][2] == 3


def test_bpe_is_the_same_in_every_process():
    code = ("from wordbrush.data.training import TrainingData; from wordbrush.data.config import DataConfig; "
            "from wordbrush.text.tokenizer import TextTokenizer; "
            "print(TextTokenizer.train(TrainingData(DataConfig(size=32)).caption_texts(300), 1000).tok.to_str())")
    outs = {subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(outs) == 1


def test_resume_is_bit_identical_and_a_bad_checkpoint_is_refused(tmp_path, vae_dir, capsys):
    train_generator(_cfg(tmp_path, vae_dir, 6, "whole"), progress_bar=False)
    train_generator(_cfg(tmp_path, vae_dir, 4, "parts"), progress_bar=False)
    run = tmp_path / "parts"
    newest = run / "checkpoints" / "step_000004" / "state" / "generator.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated: step 4 is refused, step 2 is used
    capsys.readouterr()
    train_generator(_cfg(tmp_path, vae_dir, 6, "parts"), resume=True, progress_bar=False)
    said = capsys.readouterr().out
    assert "checkpoint" in said and "step_000004 refused" in said and "resuming" in said and "at step 2" in said
    assert (run / "dalle.safetensors").read_bytes() == (tmp_path / "whole" / "dalle.safetensors").read_bytes()
    assert [r["step"] for r in _log(run)] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in _log(run)] == [r["loss"] for r in _log(tmp_path / "whole")]


def test_bad_steps_are_skipped_then_stop_the_run(tmp_path, vae_dir, monkeypatch):
    forward = DALLE.forward
    bad_steps = {3}
    calls = {"n": 0}

    def flaky(self, text, image):
        out = forward(self, text, image)
        calls["n"] += 1
        if calls["n"] in bad_steps:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(DALLE, "forward", flaky)
    summary = train_generator(_cfg(tmp_path, vae_dir, 6, "one_bad"), progress_bar=False)
    assert summary["skipped_steps"] == 1
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "one_bad")
    assert all(torch.isfinite(p).all() for p in pipe.generator.parameters())

    calls["n"] = 0
    bad_steps.update(range(5, 100))
    with pytest.raises(WordbrushError, match=r"stopped at step 7: 3 steps in a row .*last good checkpoint: .*step_000004"):
        train_generator(_cfg(tmp_path, vae_dir, 20, "all_bad", max_bad_steps=3, checkpoint_every=4),
                        progress_bar=False)
    good = tmp_path / "all_bad" / "checkpoints" / "step_000004"
    assert Checkpoints(good.parent, 3).problem(good) is None


def test_one_training_per_run_folder(tmp_path, vae_dir):
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out)
    with pytest.raises(WordbrushError, match="in use by another training"):
        train_generator(_cfg(tmp_path, vae_dir, 2), progress_bar=False)
    lock.release()
    # a lock left by a killed process: the file stays, the flock went with the process
    proc = subprocess.Popen([sys.executable, "-c", f"from wordbrush.train.runfolder import RunLock; "
                             f"RunLock(__import__('pathlib').Path({str(out)!r})); import time; time.sleep(60)"],
                            env=_env())
    deadline = time.time() + 20
    while time.time() < deadline and not (out / ".lock").read_text().strip().isdigit():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert train_generator(_cfg(tmp_path, vae_dir, 2), progress_bar=False)["steps"] == 2


@pytest.mark.slow
def test_sigkill_three_times_then_resume_gives_the_same_weights(tmp_path, vae_dir):
    steps = 14
    config = _config_file(tmp_path, vae_dir, steps)
    cmd = [sys.executable, "-m", "wordbrush", "train", "dalle", "--config", str(config), "-q"]
    subprocess.run(cmd + ["--out", str(tmp_path / "whole")], env=_env(), check=True, capture_output=True)
    run = tmp_path / "killed"
    rng = random.Random(0)
    targets = sorted(rng.sample(range(1, steps - 1), 3))
    for target in targets:
        proc = subprocess.Popen(cmd + ["--out", str(run), "--resume"], env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            if (run / "log.jsonl").exists() and any(r["step"] >= target for r in _safe_log(run)):
                time.sleep(rng.uniform(0, 0.05))
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it was killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _assert_checkpoints_whole(run)
    subprocess.run(cmd + ["--out", str(run), "--resume"], env=_env(), check=True, capture_output=True)
    _assert_checkpoints_whole(run)
    assert not [p for p in run.rglob(".*") if p.name != ".lock"]  # no leftovers of the killed writes
    for name in ("dalle.safetensors", "tokenizer.json"):
        assert (run / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert [r["loss"] for r in _log(run)] == [r["loss"] for r in _log(tmp_path / "whole")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_checkpoints_the_step_it_stopped_at_and_resume_goes_on(tmp_path, vae_dir, sig):
    steps = 12
    config = _config_file(tmp_path, vae_dir, steps, checkpoint_every=1000)  # no periodic checkpoint to fall back on
    cmd = [sys.executable, "-m", "wordbrush", "train", "dalle", "--config", str(config), "-q"]
    subprocess.run(cmd + ["--out", str(tmp_path / "whole")], env=_env(), check=True, capture_output=True)
    run = tmp_path / "stopped"
    proc = subprocess.Popen(cmd + ["--out", str(run)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    while proc.poll() is None and not ((run / "log.jsonl").exists() and len(_safe_log(run)) >= 3):
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it was stopped"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert "Traceback" not in out + err and "--resume" in lines[-1], lines[-3:]
    stopped_at = int(lines[-1].split(" at step ")[1].split(";")[0])
    assert 3 <= stopped_at < steps
    assert [step for step, _ in Checkpoints(run / "checkpoints", keep=3).folders()] == [stopped_at]
    _assert_checkpoints_whole(run)
    subprocess.run(cmd + ["--out", str(run), "--resume"], env=_env(), check=True, capture_output=True)
    for name in ("dalle.safetensors", "tokenizer.json"):
        assert (run / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def _safe_log(run: Path) -> list[dict]:
    out = []
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dalle", "vae", "clip", "gan"])
def test_two_processes_follow_one(tmp_path, vae_dir, stage):
    """torchrun --nproc-per-node 2 (gloo) against one process at the same global batch: the same per-step loss
    within 1e-3 relative over 10 steps."""
    if stage == "dalle":
        config = _config_file(tmp_path, vae_dir, 10, checkpoint_every=5)
    elif stage == "vae":
        config = tmp_path / "vae.json"
        config.write_text(json.dumps({"model": {"image_size": 32, "channels": [8, 16], "num_codes": 32, "code_dim": 8},
                                      "data": {"size": 32}, "batch_size": 8, "max_steps": 10, "warmup_steps": 2,
                                      "log_every": 1, "sample_every": 1000, "checkpoint_every": 5, "bf16": False,
                                      "eval_images": 8}))
    elif stage == "gan":
        from test_clip import tiny_scorer
        from test_gan import TINY

        tiny_scorer().save_pretrained(tmp_path / "clip")
        config = tmp_path / "gan.json"
        config.write_text(json.dumps({"model": {**TINY, "clip": {"image_size": 32}}, "clip": str(tmp_path / "clip"),
                                      "data": {"size": 32}, "batch_size": 8, "max_steps": 10, "log_every": 1,
                                      "sample_every": 1000, "checkpoint_every": 5, "diversity_every": 1000,
                                      "collapse_ratio": 0.0, "bf16": False, "sample_prompts": ["a red square"]}))
    else:
        config = tmp_path / "clip.json"
        config.write_text(json.dumps({"model": {"image_size": 32}, "data": {"size": 32}, "batch_size": 8,
                                      "max_steps": 10, "warmup_steps": 2, "log_every": 1, "eval_every": 1000,
                                      "eval_images": 32, "checkpoint_every": 5, "bf16": False,
                                      "tokenizer_captions": 300}))
    args = ["-m", "wordbrush", "train", stage, "--config", str(config), "-q"]
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=_env(), check=True,
                   capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run([*torchrun, *args, "--out", str(tmp_path / "two")], env=_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 11))
    for key in ("d_loss", "g_loss") if stage == "gan" else ("loss",):
        worst = max(abs(a[key] - b[key]) / abs(a[key]) for a, b in zip(one, two))
        print(f"{stage} {key}: worst relative difference, 2 processes vs 1, over 10 steps: {worst:.2e}")
        assert worst <= 1e-3, (key, worst)
    assert json.loads((tmp_path / "two" / "train_summary.json").read_text())["processes"] == 2


def _worker_pid(out: Path, rank: int) -> int | None:
    """The pid of the torchrun worker of `rank` training into `out`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmdline and f"RANK={rank}".encode() in environ and b"wordbrush" in cmdline:
            return int(entry.name)
    return None


@pytest.mark.slow
def test_torchrun_restarts_a_killed_rank_and_ends_where_a_whole_run_ends(tmp_path, vae_dir):
    """torchrun --max-restarts 1 with --resume: one rank SIGKILLed mid-run, every worker restarted from the last
    complete checkpoint, the same weights as a run never interrupted (2 processes both)."""
    config = _config_file(tmp_path, vae_dir, 12, model={**TINY_DALLE, "dropout": 0.1})  # each rank's torch RNG
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "--max-restarts", "1"]
    args = ["-m", "wordbrush", "train", "dalle", "--config", str(config), "-q", "--resume"]
    done = subprocess.run([*torchrun, *args, "--out", str(tmp_path / "whole")], env=_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "killed"
    proc = subprocess.Popen([*torchrun, *args, "--out", str(run)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    killed = False
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not killed:
        if (run / "log.jsonl").exists() and any(r["step"] >= 5 for r in _safe_log(run)):
            pid = _worker_pid(run, 1)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed = True
        time.sleep(0.01)
    assert killed, "the run ended before a rank was killed"
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    assert (run / "dalle.safetensors").read_bytes() == (tmp_path / "whole" / "dalle.safetensors").read_bytes()
    assert [r["loss"] for r in _log(run)] == [r["loss"] for r in _log(tmp_path / "whole")]


def _stage_cfg(tmp_path, stage, steps, out):
    """Tiny configs of the vae (gumbel, hflip: torch RNG and the flip generator), clip and gan stages."""
    from test_clip import tiny_scorer
    from test_gan import TINY

    from wordbrush.clip import CLIPConfig
    from wordbrush.generators.gan import GANConfig
    from wordbrush.train.clip import CLIPTrainConfig
    from wordbrush.train.gan import GANTrainConfig
    from wordbrush.train.vae import VAETrainConfig

    common = dict(data=DataConfig(size=32), out=str(tmp_path / out), batch_size=8, max_steps=steps, log_every=1,
                  checkpoint_every=2, bf16=False)
    if stage == "vae":
        return VAETrainConfig(model=VAEConfig(image_size=32, channels=(8, 16), num_codes=32, code_dim=8,
                                              quantizer="gumbel"), hflip=True, warmup_steps=2, sample_every=1000,
                              eval_images=8, **common)
    if stage == "vq":
        return VAETrainConfig(model=VAEConfig(image_size=32, channels=(8, 16), num_codes=32, code_dim=8),
                              warmup_steps=2, sample_every=1000, eval_images=8, **common)
    if stage == "clip":
        return CLIPTrainConfig(model=CLIPConfig(image_size=32), warmup_steps=2, eval_every=1000, eval_images=32,
                               tokenizer_captions=300, hard_negatives=True, **common)
    if not (tmp_path / "clip").exists():
        tiny_scorer().save_pretrained(tmp_path / "clip")
    return GANTrainConfig(model=GANConfig(clip=CLIPConfig(image_size=32), **TINY), clip=str(tmp_path / "clip"),
                          sample_every=1000, diversity_every=1000, collapse_ratio=0.0, hard_negatives=True,
                          sample_prompts=("a red square",), **common)


@pytest.mark.parametrize("stage", ["vae", "vq", "clip", "gan"])
def test_every_stage_resumes_bit_identically(tmp_path, stage):
    from wordbrush.train.clip import train_clip
    from wordbrush.train.gan import train_gan
    from wordbrush.train.vae import train_vae

    train = {"vae": train_vae, "vq": train_vae, "clip": train_clip, "gan": train_gan}[stage]
    weights = {"vae": "vae.safetensors", "vq": "vae.safetensors", "clip": "clip.safetensors",
               "gan": "generator_raw.safetensors"}[stage]
    train(_stage_cfg(tmp_path, stage, 5, "whole"), progress_bar=False)
    train(_stage_cfg(tmp_path, stage, 5, "parts"), progress_bar=False)  # checkpoints at 2, 4 and 5
    ckpts = tmp_path / "parts" / "checkpoints"
    shutil.rmtree(ckpts / "step_000005")  # as if killed before step 5 was saved
    (ckpts / "step_000004" / "complete.json").unlink()  # ... and while step 4 was being written: back to step 2
    train(_stage_cfg(tmp_path, stage, 5, "parts"), resume=True, progress_bar=False)
    assert (tmp_path / "parts" / weights).read_bytes() == (tmp_path / "whole" / weights).read_bytes()
    key = "d_loss" if stage == "gan" else "loss"
    assert [r[key] for r in _log(tmp_path / "parts")] == [r[key] for r in _log(tmp_path / "whole")]


def test_a_kill_while_an_old_checkpoint_is_deleted_leaves_no_half_checkpoint(tmp_path, monkeypatch):
    """Pruning renames a checkpoint out of the step_* names before deleting it, so a kill in the middle of the
    deletion (here: rmtree removes one file, then the process 'dies') leaves only whole checkpoints."""
    store = Checkpoints(tmp_path / "checkpoints", keep=1)

    def write(folder: Path) -> None:
        for name in ("a.bin", "b.bin"):
            (folder / name).write_bytes(os.urandom(64))

    store.save(1, write, {})
    real_rmtree = shutil.rmtree

    def dies_midway(path, ignore_errors=False):
        path = Path(path)
        if path.is_dir() and (path / "a.bin").exists():
            (path / "a.bin").unlink()
            raise KeyboardInterrupt  # stands for SIGKILL between two unlinks
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(shutil, "rmtree", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        store.save(2, write, {})
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    steps = sorted(p.name for p in store.root.glob("step_*"))
    assert steps == ["step_000002"] and all(store.problem(p) is None for p in store.root.glob("step_*"))
    store.prune_leftovers()
    assert sorted(p.name for p in store.root.iterdir()) == ["step_000002"]

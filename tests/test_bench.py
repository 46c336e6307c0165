"""`wordbrush bench` on a tiny pipeline: the numbers, the tables, the reference probe's protocol (against a fake
dalle_pytorch) and the one-line errors. Speed itself is never asserted."""

import json
import subprocess
import sys

import pytest
import torch

from wordbrush.bench import run as bench_run
from wordbrush.bench import BenchConfig, append_markdown, format_markdown, run_bench
from conftest import tiny_pipeline
from wordbrush.cli import main
from wordbrush.errors import WordbrushError

TINY = dict(batch_sizes=(1, 2), train_batch=4, train_steps=1, repeats=2, threads=1)

FAKE_DALLE_PYTORCH = '''
"""Stands in for lucidrains dalle-pytorch: the same constructor and call signatures, almost no work."""
import torch
import torch.nn.functional as F
from torch import nn

__version__ = "0.0-fake"
print("fake dalle_pytorch imported")  # the real library prints too; the probe must keep stdout clean


class DiscreteVAE(nn.Module):
    def __init__(self, image_size, num_layers, num_tokens, codebook_dim, hidden_dim):
        super().__init__()
        self.image_size, self.num_tokens, self.fmap = image_size, num_tokens, image_size // 2**num_layers
        self.colour = nn.Embedding(num_tokens, 3)

    def decode(self, ids):
        return self.colour(ids).transpose(1, 2).reshape(ids.shape[0], 3, self.fmap, self.fmap)


class DALLE(nn.Module):
    def __init__(self, *, dim, vae, num_text_tokens, text_seq_len, depth, heads, dim_head):
        super().__init__()
        self.vae, self.offset = vae, num_text_tokens
        self.emb = nn.Embedding(num_text_tokens + vae.num_tokens, dim)
        self.head = nn.Linear(dim, vae.num_tokens)

    def forward(self, text, image, return_loss=False):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("this fake does not train in bfloat16")
        logits = self.head(self.emb(torch.cat([text, image + self.offset], 1)).mean(1))
        return F.cross_entropy(logits, image[:, 0])

    @torch.no_grad()
    def generate_images(self, text, *, filter_thres=0.5, use_cache=False, cond_scale=1.0):
        if cond_scale != 1:
            text.zero_()  # as the real one does, in place
        return self.vae.decode(torch.zeros(text.shape[0], self.vae.fmap**2, dtype=torch.long))
'''


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(image_size=16, text_len=8, captions=200)


def _fake_venv(tmp_path, with_package: bool):
    """A 'venv' whose bin/python is this interpreter; optionally a fake dalle_pytorch on its path."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    site = tmp_path / "site"
    site.mkdir()
    if with_package:
        (site / "dalle_pytorch.py").write_text(FAKE_DALLE_PYTORCH)
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return venv


def test_bench_reports_positive_numbers_and_tables(pipe, tmp_path):
    before = {k: v.clone() for k, v in pipe.generator.state_dict().items()}
    res = run_bench(BenchConfig(dtypes=("float32", "bfloat16"), **TINY), pipe=pipe, progress=False)
    assert {"config", "command", "machine", "model", "device", "threads", "timing", "memory_method", "ceiling",
            "ceiling_method", "sample", "train", "reference", "ratios"} <= set(res)
    assert len(res["sample"]) == 2 * 2 * 2  # dtypes x batches x guidance scales
    for s in res["sample"]:
        assert s["images_per_s"] > 0 and s["s_per_image"] > 0 and len(s["seconds"]) == 2
        assert s["peak_mem_mb"] is not None and s["peak_mem_mb"] >= 0
    assert [(t["dtype"], t["batch"]) for t in res["train"]] == [("float32", 4), ("bfloat16", 4)]
    for t in res["train"]:
        assert t["samples_per_s"] > 0 and t["tokens_per_s"] == pytest.approx(t["samples_per_s"] * (8 + 16))
    assert res["reference"] is None and res["ratios"] == []
    assert all(torch.equal(before[k], v) for k, v in pipe.generator.state_dict().items())  # trains a copy
    json.dumps(res)  # serialisable as it is

    md = format_markdown(res)
    assert ("| dtype | guidance | batch | images/s | s / image | GFLOP/s | of ceiling | spread | peak memory (MB) |"
            in md)
    assert "| dtype | batch | samples/s | tokens/s | s / step | GFLOP/s | of ceiling | spread | peak memory (MB) |" in md
    assert md.count("\n| float32 | off | ") == 2 and "| bfloat16 | 3 | 2 |" in md
    out = tmp_path / "docs" / "benchmarks.md"
    append_markdown(out, res)
    append_markdown(out, res)
    text = out.read_text()
    assert text.startswith("# Benchmarks\n") and text.count("## `wordbrush bench` (") == 2
    assert "Machine: " in text and f"torch {torch.__version__}" in text and "`wordbrush bench --model" in text


def test_against_a_reference_runs_in_turns_and_gives_ratios(pipe, tmp_path, monkeypatch):
    venv = _fake_venv(tmp_path, with_package=True)
    order = []
    measure = bench_run.measure
    monkeypatch.setattr(bench_run, "measure", lambda cases, *a: (order.extend(c.key for c in cases),
                                                                 measure(cases, *a)))
    cfg = BenchConfig(**{**TINY, "batch_sizes": (2,), "guidance_scales": (1.0,)}, reference_batch=2,
                      dtypes=("float32", "bfloat16"), against="dalle-pytorch", reference_venv=str(venv))
    res = run_bench(cfg, pipe=pipe, progress=False)
    assert order == ["train/float32/b4", "ref/train/float32/b4", "train/bfloat16/b4", "ref/train/bfloat16/b4",
                     "sample/float32/g1/b2", "ref/sample/default/b2", "ref/sample/cached/b2", "sample/float32/g3/b2",
                     "sample/bfloat16/g1/b2", "sample/bfloat16/g3/b2"]
    ref = res["reference"]
    assert ref["version"] == "0.0-fake" and set(ref["cases"]) == {k for k in order if k.startswith("ref/")}
    failed = ref["cases"].pop("ref/train/bfloat16/b4")  # a reference failure is recorded, the run goes on
    assert "does not train in bfloat16" in failed["error"]
    assert all(c["per_s"] > 0 and len(c["seconds"]) == 2 for c in ref["cases"].values())
    assert len(res["ratios"]) == 8  # training x 2 dtypes; sampling x 2 dtypes x (2 paths off + 1 with guidance)
    assert sum("ours bfloat16" in r["what"] for r in res["ratios"]) == 3  # bf16 sampling vs its float32 paths
    for r in res["ratios"]:
        if r["what"].startswith("training") and "bfloat16" in r["what"]:
            assert r["ratio"] is None and "does not train in bfloat16" in r["error"]
        else:
            assert r["ratio"] == pytest.approx(r["ours"] / r["theirs"]) and r["ratio"] > 0
    md = format_markdown(res)
    assert "| measurement | wordbrush | dalle-pytorch 0.0-fake | wordbrush / dalle-pytorch |" in md
    assert "its cached path" in md and "its default path" in md and "| failed: " in md


def test_reference_that_cannot_import_says_how_to_install(pipe, tmp_path):
    venv = _fake_venv(tmp_path, with_package=False)
    cfg = BenchConfig(**TINY, against="dalle-pytorch", reference_venv=str(venv))
    with pytest.raises(WordbrushError, match=r"cannot import dalle_pytorch.*install-dalle-pytorch\.sh"):
        run_bench(cfg, pipe=pipe, progress=False)


def test_cli_bench_quick_on_a_saved_model(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "m")
    code = main(["bench", "--model", str(tmp_path / "m"), "--quick", "--batch-sizes", "2", "--guidance", "1",
                 "--train-batch", "2", "--threads", "1", "-q", "--out", str(tmp_path / "b.md"),
                 "--json", str(tmp_path / "b.json")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| float32 | off | 2 |" in printed and "appended to" in printed
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["config"]["repeats"] == 1 and res["config"]["train_steps"] == 1
    assert "--repeats 1" in (tmp_path / "b.md").read_text()


def test_cli_against_without_venv_is_one_line(tmp_path, capsys):
    assert main(["bench", "--against", "dalle-pytorch"]) == 2
    assert "needs --reference-venv" in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "wordbrush.cli", "bench", "--against", "dalle-pytorch",
                        "--reference-venv", str(tmp_path / "no-venv")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "no dalle-pytorch venv" in lines[0] and "install-dalle-pytorch.sh" in lines[0]
    assert r.stdout == ""


def test_gpu_figures_script_runs_tiny_on_cpu(tmp_path):
    """The prepared GPU script (benchmarks/gpu_figures.py) must work the first time it meets a GPU: run its tiny
    config on the CPU and check the figures it reports."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from wordbrush.utils.hardware import cpu_has_fast_bf16

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_figures.py"
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--device", "cpu", "--minutes", "0.01", "--batch", "8",
                        "--sample-batch", "4", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fig = json.loads(out.read_text())
    assert fig["train_steps"] >= 1 and fig["tokens_per_s"] > 0 and fig["mfu"] > 0
    if cpu_has_fast_bf16():  # where bf16 is emulated, the "ceiling" (a bf16 matmul) is no ceiling: MFU can pass 1
        assert fig["mfu"] < 1
    assert fig["sample_images_per_s"] > 0 and fig["bf16_matmul_tflops"] > 0

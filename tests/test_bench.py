"""`wordbrush bench` on a tiny pipeline: the numbers, the tables, the reference probe's protocol (against a fake
dalle_pytorch) and the one-line errors. Speed itself is never asserted."""

import json
import statistics
import subprocess
import sys

import pytest
import torch

from wordbrush.bench import BenchConfig, Case, Memory, append_markdown, format_markdown, measure, run_bench, timed
from wordbrush.bench import flops
from wordbrush.bench import run as bench_run
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


def test_bench_figures_are_the_work_over_the_median_of_the_timed_runs(pipe, tmp_path):
    before = {k: v.clone() for k, v in pipe.generator.state_dict().items()}
    res = run_bench(BenchConfig(dtypes=("float32", "bfloat16"), **TINY), pipe=pipe, progress=False)
    assert {"config", "command", "machine", "model", "device", "threads", "timing", "memory_method", "ceiling",
            "ceiling_method", "sample", "train", "reference", "ratios"} <= set(res)
    assert set(res["ceiling"]) == {"float32", "bfloat16"}
    cfg = pipe.generator.cfg
    assert [(s["dtype"], s["batch"], s["guidance"]) for s in res["sample"]] == [
        (d, b, g) for d in ("float32", "bfloat16") for b in (1, 2) for g in (1.0, 3.0)]
    for s in res["sample"]:
        assert len(s["seconds"]) == 2 and s["seconds_median"] == statistics.median(s["seconds"])
        assert s["images_per_s"] == pytest.approx(s["batch"] / s["seconds_median"])
        assert s["s_per_image"] == pytest.approx(s["seconds_median"] / s["batch"])
        assert s["spread"] == pytest.approx((max(s["seconds"]) - min(s["seconds"])) / s["seconds_median"])
        assert s["gflop_per_image"] == pytest.approx(flops.sample_flops(cfg, s["guidance"] != 1.0).total / 1e9)
        assert s["gflop_per_s"] == pytest.approx(s["gflop_per_image"] * s["images_per_s"])
        assert s["peak_share"] == pytest.approx(s["gflop_per_s"] / res["ceiling"][s["dtype"]]["gflop_per_s"])
        assert s["peak_mem_mb"] is not None
    assert [(t["dtype"], t["batch"]) for t in res["train"]] == [("float32", 4), ("bfloat16", 4)]
    for t in res["train"]:
        assert t["samples_per_s"] == pytest.approx(4 * 1 / statistics.median(t["seconds"]))  # batch x steps
        assert t["tokens_per_s"] == pytest.approx(t["samples_per_s"] * (8 + 16))
        assert t["gflop_per_s"] == pytest.approx(flops.train_flops(cfg).total / 1e9 * t["samples_per_s"])
    assert res["reference"] is None and res["ratios"] == []
    assert all(torch.equal(before[k], v) for k, v in pipe.generator.state_dict().items())  # trains a copy
    json.dumps(res)  # serialisable as it is

    md = format_markdown(res)
    cols = "| GFLOP/s | of ceiling | spread | peak memory (MB) |"
    assert "| dtype | guidance | batch | images/s | s / image " + cols in md
    assert "| dtype | batch | samples/s | tokens/s | s / step " + cols in md
    assert md.count("\n| float32 | off | ") == 2 and "| bfloat16 | 3 | 2 |" in md
    f32 = res["ceiling"]["float32"]
    assert f"float32 {f32['gflop_per_s']:,.1f} GFLOP/s (n = {f32['n']})" in md
    s = res["sample"][0]
    assert f"| {s['s_per_image']:.3f} | {s['gflop_per_s']:,.1f} | " in md  # the row carries its own figures
    out = tmp_path / "docs" / "benchmarks.md"
    append_markdown(out, res)
    append_markdown(out, res)
    text = out.read_text()
    assert text.startswith("# Benchmarks\n") and text.count("## `wordbrush bench` (") == 2
    assert "Machine: " in text and f"torch {torch.__version__}" in text and "`wordbrush bench --model" in text


def test_timed_reports_the_clock_around_the_work_only():
    ticks = iter([10.0, 10.25])  # the fake clock: before and after fn
    done = []
    run = timed(lambda: done.append(1), torch.device("cpu"), Memory(torch.device("cpu")), clock=lambda: next(ticks))
    assert run(False) == (0.25, None) and done == [1]


def test_measure_warms_each_case_then_takes_turns_round_by_round():
    calls = []

    def fake(name, seconds, fail_on=None):
        """A case's run: returns the given seconds in turn (peak 7 MB when asked); raises on its fail_on-th call."""
        it = iter(seconds)

        def run(measure_memory):
            calls.append((name, measure_memory))
            if sum(c[0] == name for c in calls) == fail_on:
                raise WordbrushError(f"{name} broke")
            return next(it), (7.0 if measure_memory else None)

        return run

    a = Case("a", fake("a", [9, 9, 0.5, 0.1, 0.3]), work=4, info={}, flops=8e9)  # 2 warm-ups, then 3 timed
    b = Case("b", fake("b", [9, 9, 2.0, 1.0, 4.0]), work=2, info={"batch": 2})
    ref = Case("ref", fake("ref", [9, 9], fail_on=3), work=1, info={}, optional=True)  # fails when first timed
    measure([a, b, ref], warmup=2, repeats=3, progress=False)
    assert calls == [("a", True), ("a", False), ("b", True), ("b", False), ("ref", True), ("ref", False),
                     ("a", False), ("b", False), ("ref", False),  # ref fails here: recorded, then skipped
                     ("a", False), ("b", False), ("a", False), ("b", False)]
    assert a.seconds == [0.5, 0.1, 0.3] and a.peak_mb == 7.0
    sa, sb = a.summary(), b.summary()
    assert sa["seconds_median"] == 0.3 and sa["per_s"] == pytest.approx(4 / 0.3)
    assert sa["spread"] == pytest.approx((0.5 - 0.1) / 0.3) and sa["gflop_per_s"] == pytest.approx(8 / 0.3)
    assert sb["per_s"] == pytest.approx(2 / 2.0) and sb["batch"] == 2 and "gflop_per_s" not in sb
    assert ref.summary() == {"error": "ref broke"}
    broken = Case("x", fake("x", [], fail_on=1), work=1, info={})  # not optional: stops the run
    with pytest.raises(WordbrushError, match="x broke"):
        measure([broken], warmup=1, repeats=1, progress=False)


def test_memory_probe_sees_the_peak_of_a_known_allocation():
    memory = Memory(torch.device("cpu"))
    if not memory.method.startswith("CPU: rise of peak RSS"):
        pytest.skip("no resettable peak RSS here: " + memory.method)
    start = memory.start()
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, written, so resident
    del x  # gone again: the peak must still count it
    assert 60 <= memory.peak_mb(start) < 64 + 48
    start = memory.start()
    assert memory.peak_mb(start) < 16  # after the reset, the old peak no longer counts


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
                     "sample/float32/g1/b2", "ref/sample/default/float32/b2", "ref/sample/cached/float32/b2",
                     "sample/float32/g3/b2", "sample/bfloat16/g1/b2", "ref/sample/default/bfloat16/b2",
                     "ref/sample/cached/bfloat16/b2", "sample/bfloat16/g3/b2"]
    ref = res["reference"]
    assert ref["version"] == "0.0-fake" and set(ref["cases"]) == {k for k in order if k.startswith("ref/")}
    failed = ref["cases"].pop("ref/train/bfloat16/b4")  # a reference failure is recorded, the run goes on
    assert "does not train in bfloat16" in failed["error"]
    assert all(c["per_s"] > 0 and len(c["seconds"]) == 2 for c in ref["cases"].values())
    assert len(res["ratios"]) == 11  # training x 2 dtypes; sampling (2 paths off + 1 with guidance): float32 vs its
    # float32, bf16 vs its bf16 autocast and vs its float32
    assert sum("ours bfloat16" in r["what"] for r in res["ratios"]) == 6
    assert sum("ours bfloat16" in r["what"] and "its bf16-autocast" in r["what"] for r in res["ratios"]) == 3
    ours = {(s["dtype"], s["guidance"]): s["images_per_s"] for s in res["sample"]}
    theirs = {k: c["per_s"] for k, c in ref["cases"].items()}
    md = format_markdown(res)
    for r in res["ratios"]:
        if r["what"].startswith("training") and "bfloat16" in r["what"]:
            assert r["ratio"] is None and "does not train in bfloat16" in r["error"]
            continue
        assert r["ratio"] == pytest.approx(r["ours"] / r["theirs"])
        if r["what"].startswith("sampling"):  # each side's figure is the one its own table reports
            dtype, g = ("bfloat16" if "ours bfloat16" in r["what"] else "float32"), (1.0 if "off" in r["what"] else 3.0)
            path = "default" if "default path" in r["what"] else "cached"
            their_dtype = "bfloat16" if "bf16-autocast" in r["what"] else "float32"
            assert r["ours"] == ours[(dtype, g)] and r["theirs"] == theirs[f"ref/sample/{path}/{their_dtype}/b2"]
        assert f"| {r['ratio']:.2f}× |" in md
    assert "| measurement | wordbrush | dalle-pytorch 0.0-fake | wordbrush / dalle-pytorch |" in md
    assert "its float32 cached path" in md and "its float32 default path" in md and "| failed: " in md
    assert "its bf16-autocast cached path" in md and "its bf16-autocast default path" in md


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


def test_bench_config_imports_without_torch():
    """The CLI can read BenchConfig's defaults for its --help without paying for torch."""
    code = "import sys; from wordbrush.bench import BenchConfig; BenchConfig(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr

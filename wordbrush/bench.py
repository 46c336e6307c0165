"""`wordbrush bench`: sampling and training speed of a pipeline, optionally side by side with the reference
implementation (lucidrains dalle-pytorch 1.6.6), which runs in a venv of its own.

    from wordbrush.bench import BenchConfig, format_markdown, run_bench
    results = run_bench(BenchConfig(model="r1", threads=2))     # a dict; see the keys in run_bench
    print(format_markdown(results))

What is timed:
  sample  pipe.draw() of `batch` prompts -> PIL images, KV cache on: text encoding, sampling, VAE decode.
          Sampling options are the defaults (temperature 1, no top-k / top-p) with the guidance scale set;
          guidance != 1 runs the conditional and unconditional rows in one batch.
  train   `train_steps` AdamW steps of the transformer (a copy; the pipeline is left as it was) on random text
          and image token ids: forward, loss, backward, step. No data loading, no VAE, no clipping.
  ref     the same work in dalle-pytorch, through benchmarks/dalle_pytorch_probe.py run by VENV/bin/python.

Every case gets `warmup` untimed runs, then `repeats` timed ones. The cases take turns round by round (ours,
theirs, ours, theirs, ...) so that a change of machine load hits all of them alike; the figure reported is the
median, with the spread (max - min) / median beside it. Peak memory is taken on the first warm-up run of each
case: on the CPU the rise of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs after
malloc_trim; where that is impossible, the rise of ru_maxrss, a lower bound); on CUDA the rise of
torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import WordbrushError

PROBE = Path(__file__).resolve().parent.parent / "benchmarks" / "dalle_pytorch_probe.py"
INSTALL_SCRIPT = "../shared/anchors/install-dalle-pytorch.sh"
REFERENCES = ("dalle-pytorch",)
DTYPES = ("float32", "bfloat16")
PROMPTS = ("a red circle to the left of a blue square", "two green triangles", "a small white cross",
           "an orange diamond above a purple circle")


@dataclass
class BenchConfig:
    model: str = "r1"  # a reference config (pipeline.REFERENCE_CONFIGS, untrained), a built-in name or a folder
    generator: str = "dalle"  # for a reference config: which generator to build (dalle | maskgit)
    threads: int = 2  # torch.set_num_threads, here and in the reference's process
    device: str = "auto"  # auto | cpu | cuda
    batch_sizes: tuple[int, ...] = (1, 16, 64)  # sampling
    guidance_scales: tuple[float, ...] = (1.0, 3.0)  # 1 = off
    dtypes: tuple[str, ...] = ("float32",)  # "bfloat16": sampling with bf16 weights, training under bf16 autocast
    sample: bool = True
    train: bool = True
    train_batch: int = 32
    train_steps: int = 3  # AdamW steps per timed training run
    repeats: int = 5  # timed runs per case (the median is reported)
    warmup: int = 1  # untimed runs per case before timing
    against: str | None = None  # "dalle-pytorch": also run the reference implementation
    reference_venv: str | None = None  # its venv (install-dalle-pytorch.sh VENV)
    reference_batch: int = 16  # sampling batch of the comparison
    seed: int = 0

    def __post_init__(self) -> None:
        self.batch_sizes = tuple(int(b) for b in self.batch_sizes)
        self.guidance_scales = tuple(float(g) for g in self.guidance_scales)
        self.dtypes = tuple(self.dtypes)
        if self.threads < 1:
            raise WordbrushError(f"threads must be >= 1, got {self.threads}")
        if self.generator not in ("dalle", "maskgit"):
            raise WordbrushError(f"generator must be dalle or maskgit, got {self.generator!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise WordbrushError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise WordbrushError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if not self.guidance_scales or min(self.guidance_scales) < 0:
            raise WordbrushError(f"guidance scales must be >= 0, got {self.guidance_scales}")
        if not self.dtypes or set(self.dtypes) - set(DTYPES):
            raise WordbrushError(f"dtypes must be among {', '.join(DTYPES)}, got {self.dtypes}")
        if min(self.train_batch, self.train_steps, self.repeats, self.reference_batch) < 1 or self.warmup < 0:
            raise WordbrushError("train_batch, train_steps, repeats and reference_batch must be >= 1, warmup >= 0")
        if not (self.sample or self.train):
            raise WordbrushError("nothing to measure: both sampling and training are switched off")
        if self.against is not None:
            if self.against not in REFERENCES:
                raise WordbrushError(f"unknown reference {self.against!r} (known: {', '.join(REFERENCES)})")
            if not self.reference_venv:
                raise WordbrushError(f"--against {self.against} needs --reference-venv VENV "
                                     f"(install one with: bash {INSTALL_SCRIPT} VENV)")

    def command_line(self) -> str:
        """The `wordbrush bench` command that reproduces this configuration (recorded with the results)."""
        d = BenchConfig()
        parts = ["wordbrush bench", f"--model {self.model}", f"--threads {self.threads}"]
        if self.generator != d.generator:
            parts.append(f"--generator {self.generator}")
        if self.device != d.device:
            parts.append(f"--device {self.device}")
        if self.sample and self.batch_sizes != d.batch_sizes:
            parts.append("--batch-sizes " + ",".join(map(str, self.batch_sizes)))
        if self.guidance_scales != d.guidance_scales:
            parts.append("--guidance " + ",".join(f"{g:g}" for g in self.guidance_scales))
        parts.append(f"--repeats {self.repeats}")
        if self.train and self.train_batch != d.train_batch:
            parts.append(f"--train-batch {self.train_batch}")
        if self.train and self.train_steps != d.train_steps:
            parts.append(f"--train-steps {self.train_steps}")
        if "bfloat16" in self.dtypes:
            parts.append("--bf16")
        if not self.sample:
            parts.append("--no-sample")
        if not self.train:
            parts.append("--no-train")
        if self.against:
            parts.append(f"--against {self.against} --reference-venv {self.reference_venv}")
        return " ".join(parts)


# ------------------------------------------------------------------------------------------ measuring


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise OSError(f"{name} not in /proc/self/status")


class Memory:
    """Peak memory rise over one call: CUDA max_memory_allocated, or the CPU process's peak RSS."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            self.method = "CUDA: torch.cuda.max_memory_allocated above the start"
        elif self._reset_peak_rss():
            self.method = "CPU: rise of peak RSS (VmHWM, reset via /proc/self/clear_refs after malloc_trim)"
        else:
            self.method = "CPU: rise of ru_maxrss (a lower bound: only what exceeds earlier peaks counts)"

    @staticmethod
    def _reset_peak_rss() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            _status_kb("VmHWM")
            return True
        except OSError:
            return False

    def start(self) -> int:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed memory back, so that the baseline is honest
        except (OSError, AttributeError):
            pass
        if self.method.startswith("CPU: rise of peak RSS") and self._reset_peak_rss():
            return _status_kb("VmRSS") * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def peak_mb(self, start: int) -> float:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated()
        elif self.method.startswith("CPU: rise of peak RSS"):
            peak = _status_kb("VmHWM") * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - start) / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device: torch.device, dtype: str):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()


@dataclass
class Case:
    """One measured thing. run(memory) does one unit of work and returns (seconds, peak MB or None)."""

    key: str
    run: Callable[[bool], tuple[float, float | None]]
    work: int  # images or samples per run
    info: dict[str, Any]
    optional: bool = False  # a failure is recorded (error) instead of stopping the run: the reference's cases
    seconds: list[float] = field(default_factory=list)
    peak_mb: float | None = None
    error: str | None = None

    def step(self, measure_memory: bool) -> tuple[float, float | None] | None:
        if self.error is not None:
            return None
        try:
            return self.run(measure_memory)
        except WordbrushError as e:
            if not self.optional:
                raise
            self.error = str(e)
            return None

    def summary(self) -> dict[str, Any]:
        if self.error is not None or not self.seconds:
            return {**self.info, "error": self.error or "not measured"}
        med = statistics.median(self.seconds)
        return {**self.info, "seconds_median": med, "seconds": self.seconds,
                "spread": (max(self.seconds) - min(self.seconds)) / med, "per_s": self.work / med,
                "peak_mem_mb": self.peak_mb}


def _ours(fn: Callable[[], None], device: torch.device, memory: Memory) -> Callable[[bool], tuple[float, float | None]]:
    def run(measure_memory: bool) -> tuple[float, float | None]:
        start = memory.start() if measure_memory else 0
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        seconds = time.perf_counter() - t
        return seconds, memory.peak_mb(start) if measure_memory else None

    return run


def sample_case(pipe, batch: int, guidance: float, dtype: str, memory: Memory) -> Case:
    from .generators.common import SampleOptions

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    options = SampleOptions(guidance_scale=guidance)

    def fn() -> None:  # the pipeline's own weights set the dtype (see _build_cases)
        pipe.draw(prompts, list(range(batch)), options, batch_size=batch, use_cache=True)

    return Case(f"sample/{dtype}/g{guidance:g}/b{batch}", _ours(fn, pipe.device, memory), batch,
                {"dtype": dtype, "guidance": guidance, "batch": batch})


def train_case(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: int, steps: int, dtype: str,
               memory: Memory, seed: int = 0) -> Case:
    from .text.tokenizer import PAD_ID

    c, device = model.cfg, next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(PAD_ID + 1, c.text_vocab, (batch, c.text_len), generator=g).to(device)  # (B, L), no PAD
    image = torch.randint(0, c.image_vocab, (batch, c.image_len), generator=g).to(device)  # (B, N)

    def fn() -> None:
        model.train()
        for _ in range(steps):
            with _autocast(device, dtype):
                loss = model(text, image).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    seq = c.text_len + c.image_len
    return Case(f"train/{dtype}/b{batch}", _ours(fn, device, memory), steps * batch,
                {"dtype": dtype, "batch": batch, "steps": steps, "tokens_per_sample": seq})


# ------------------------------------------------------------------------------------- the reference


def reference_python(venv: str | Path) -> Path:
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        raise WordbrushError(f"no dalle-pytorch venv at {venv} (no {python}); install it with: "
                             f"bash {INSTALL_SCRIPT} {venv}")
    return python


class ReferenceProbe:
    """benchmarks/dalle_pytorch_probe.py in the reference's venv, driven one JSON line at a time."""

    def __init__(self, venv: str | Path, config: dict[str, int], threads: int, device: str, seed: int = 0):
        python = reference_python(venv)
        if not PROBE.exists():
            raise WordbrushError(f"the reference probe {PROBE} is missing (it ships in the source repository)")
        self.venv = venv
        self._stderr = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([str(python), str(PROBE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, env=env)
        try:
            self.info = self.ask({"op": "setup", "config": config, "threads": threads, "device": device,
                                  "seed": seed})
        except WordbrushError as e:
            self.close()
            raise WordbrushError(f"cannot run dalle-pytorch from {venv} ({e}); install it with: "
                                 f"bash {INSTALL_SCRIPT} {venv}") from None

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.proc.wait(timeout=30)
            self._stderr.seek(0)
            tail = [l for l in self._stderr.read().splitlines() if l.strip()]
            raise WordbrushError(f"the probe exited with code {self.proc.returncode}"
                                 + (f": {tail[-1].strip()}" if tail else ""))
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise WordbrushError(f"the probe answered something that is not JSON: {line.strip()[:200]}") from None
        if not reply.get("ok"):
            raise WordbrushError(str(reply.get("error", "unknown failure")))
        return reply

    def case(self, key: str, command: dict[str, Any], work: int, info: dict[str, Any]) -> Case:
        def run(measure_memory: bool) -> tuple[float, float | None]:
            try:
                r = self.ask({**command, "memory": measure_memory})
            except WordbrushError as e:
                raise WordbrushError(f"dalle-pytorch {command['op']} failed: {e}") from None
            return r["seconds"], r.get("peak_mb")

        return Case(key, run, work, info, optional=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def reference_config(pipe) -> dict[str, int]:
    """Our pipeline's shapes in the reference's terms (its VAE only decodes here: 3 downsamples for R1)."""
    c, v = pipe.generator.cfg, pipe.vae.cfg
    return {"dim": c.dim, "depth": c.depth, "heads": c.heads, "dim_head": c.dim // c.heads, "text_len": c.text_len,
            "text_vocab": c.text_vocab, "image_size": v.image_size, "vae_layers": len(v.channels),
            "num_codes": c.image_vocab}


# ------------------------------------------------------------------------------------------ the run


def load_pipeline(model: str, device: torch.device, seed: int = 0, generator: str = "dalle"):
    from .pipeline import REFERENCE_CONFIGS, TextToImagePipeline

    if model in REFERENCE_CONFIGS:
        return TextToImagePipeline.from_config(model, seed=seed, generator=generator).to(device)
    pipe = TextToImagePipeline.from_pretrained(model, device=device)
    if pipe.vae is None:
        raise WordbrushError(f"wordbrush bench times token generators (dalle, maskgit); {model} is a "
                             f"{pipe.generator.kind}: time it with benchmarks/sampling_speed.py")
    return pipe


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    mem_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
        load = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        load = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "memory_gb": mem_gb,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "python": platform.python_version(), "torch": torch.__version__, "load_average_1min": load,
            "date": datetime.now().strftime("%Y-%m-%d %H:%M")}


def run_bench(cfg: BenchConfig, pipe=None, progress: bool = True) -> dict[str, Any]:
    """Measure. Returns a JSON-ready dict: "config", "command" (the CLI line that reproduces it), "machine",
    "model", "device", "threads", "timing", "memory_method", "sample" and "train" (one dict per case: the
    seconds of every timed run, their median, spread, rate, peak memory), "reference" (None, or the reference's
    version and cases) and "ratios" (ours / theirs, one per comparison; ratio None where the reference failed).

    pipe: measure this pipeline instead of loading cfg.model (tests pass a tiny one).
    """
    from .config import DalleTrainConfig
    from .pipeline import REFERENCE_CONFIGS
    from .train.common import param_groups

    if cfg.against:
        reference_python(cfg.reference_venv)  # fail before any slow work
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise WordbrushError("--device cuda, but torch sees no CUDA device")
    device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    name = cfg.model if pipe is None else "(given pipeline)"
    if pipe is None and cfg.model in REFERENCE_CONFIGS:
        name += f" {cfg.generator} (untrained, reference config)"
    probe = None
    try:
        pipe = pipe.to(device) if pipe is not None else load_pipeline(cfg.model, device, cfg.seed, cfg.generator)
        if cfg.against:
            probe = ReferenceProbe(cfg.reference_venv, reference_config(pipe), cfg.threads, device.type, cfg.seed)
        memory = Memory(device)
        cases, pairs = _build_cases(cfg, pipe, memory, probe, param_groups, DalleTrainConfig())
        _measure(cases, cfg, progress)
    finally:
        if probe is not None:
            probe.close()
        torch.set_num_threads(threads_before)

    c = pipe.generator.cfg
    by_key = {k.key: k for k in cases}
    results: dict[str, Any] = {
        "config": asdict(cfg),
        "command": cfg.command_line(),
        "machine": machine_info(device),
        "model": {"name": name, "dim": c.dim, "depth": c.depth, "heads": c.heads, "text_len": c.text_len,
                  "image_tokens": c.image_len, "parameters": sum(p.numel() for p in pipe.generator.parameters())},
        "device": device.type,
        "threads": cfg.threads,
        "timing": f"median of {cfg.repeats} after {cfg.warmup} warm-up run(s), cases interleaved round by round",
        "memory_method": memory.method,
        "sample": [], "train": [], "reference": None, "ratios": [],
    }
    for case in cases:
        s = case.summary()
        if case.key.startswith("sample/"):
            s["images_per_s"], s["s_per_image"] = s["per_s"], 1 / s["per_s"]
            results["sample"].append(s)
        elif case.key.startswith("train/"):
            s["samples_per_s"], s["tokens_per_s"] = s["per_s"], s["per_s"] * s["tokens_per_sample"]
            results["train"].append(s)
    if probe is not None:
        results["reference"] = {"name": cfg.against, "version": probe.info.get("version"),
                                "torch": probe.info.get("torch"), "parameters": probe.info.get("params"),
                                "venv": str(cfg.reference_venv),
                                "cases": {k.key: k.summary() for k in cases if k.key.startswith("ref/")}}
        for what, ours, theirs in pairs:
            a, b = by_key[ours].summary(), by_key[theirs].summary()
            if "error" in b:
                results["ratios"].append({"what": what, "ours": a["per_s"], "theirs": None, "ratio": None,
                                          "error": b["error"]})
            else:
                results["ratios"].append({"what": what, "ours": a["per_s"], "theirs": b["per_s"],
                                          "ratio": a["per_s"] / b["per_s"]})
    return results


def _build_cases(cfg: BenchConfig, pipe, memory: Memory, probe: ReferenceProbe | None, param_groups,
                 train_defaults) -> tuple[list[Case], list[tuple[str, str, str]]]:
    """Our cases, each reference case placed right after the one of ours it is compared with."""
    cases: list[Case] = []
    pairs: list[tuple[str, str, str]] = []  # (description, our key, their key)
    rb = cfg.reference_batch
    if cfg.train:
        model = copy.deepcopy(pipe.generator)
        opt = torch.optim.AdamW(param_groups(model, train_defaults.weight_decay), lr=train_defaults.lr,
                                betas=(0.9, 0.95))
        for dtype in cfg.dtypes:
            ours = train_case(model, opt, cfg.train_batch, cfg.train_steps, dtype, memory, cfg.seed)
            cases.append(ours)
            if probe is not None:
                key = f"ref/train/{dtype}/b{cfg.train_batch}"
                cases.append(probe.case(key, {"op": "train", "batch": cfg.train_batch, "steps": cfg.train_steps,
                                              "dtype": dtype}, cfg.train_steps * cfg.train_batch,
                                        {"dtype": dtype, "batch": cfg.train_batch}))
                pairs.append((f"training samples/s, batch {cfg.train_batch}, {dtype}", ours.key, key))
    if cfg.sample:
        combos = {(b, g) for b in cfg.batch_sizes for g in cfg.guidance_scales}
        if probe is not None:
            combos |= {(rb, 1.0), (rb, 3.0)}  # what the comparison needs
        made: set[str] = set()
        for dtype in cfg.dtypes:
            # bfloat16 sampling runs a copy of the pipeline with bf16 weights (pipe.to(dtype=...)), as a user would
            p = pipe if dtype == "float32" else copy.deepcopy(pipe).to(dtype=getattr(torch, dtype))
            for b, gs in sorted(combos):
                ours = sample_case(p, b, gs, dtype, memory)
                cases.append(ours)
                if probe is None or b != rb or gs not in (1.0, 3.0):
                    continue
                paths = (("default", "its default path (cond_scale=1: cache skipped)"),
                         ("cached", "its cached path (cond_scale=1.0001: 2 passes/token)"))
                if gs != 1.0:  # the same work as its cached path: a conditional and an unconditional row per image
                    paths = (("cached", "its cached path (both run conditional + unconditional rows)"),)
                for path, label in paths:
                    key = f"ref/sample/{path}/b{rb}"
                    if key not in made:  # the reference samples in float32 only
                        made.add(key)
                        cases.append(probe.case(key, {"op": "sample", "batch": rb, "path": path}, rb,
                                                {"path": path, "batch": rb}))
                    ours_label = f"ours {dtype}, guidance {'off' if gs == 1.0 else f'{gs:g}'}"
                    pairs.append((f"sampling images/s, batch {rb}: {ours_label} vs {label}", ours.key, key))
    return cases, pairs


def _measure(cases: list[Case], cfg: BenchConfig, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(cases) * (cfg.warmup + cfg.repeats), desc="bench", unit="run", disable=not progress,
               dynamic_ncols=True)
    for case in cases:
        for w in range(cfg.warmup):
            bar.set_postfix_str(f"warm-up {case.key}")
            timed = case.step(w == 0)
            if timed is not None and w == 0:
                case.peak_mb = timed[1]
            bar.update(1)
    for r in range(cfg.repeats):
        for case in cases:
            bar.set_postfix_str(f"round {r + 1}/{cfg.repeats} {case.key}")
            timed = case.step(False)
            if timed is not None:
                case.seconds.append(timed[0])
            bar.update(1)
    bar.close()


# ----------------------------------------------------------------------------------------- reporting


def _mb(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _rate(x: float) -> str:
    return f"{x:,.1f}" if x >= 10 else f"{x:.2f}"


def format_markdown(results: dict[str, Any]) -> str:
    m, c = results["model"], results["machine"]
    lines = [f"Model `{m['name']}`: transformer width {m['dim']}, depth {m['depth']}, {m['heads']} heads, "
             f"{m['text_len']} text + {m['image_tokens']} image tokens, {m['parameters'] / 1e6:.2f}M parameters. "
             f"Device {results['device']}" + (f" ({c['gpu']})" if c.get("gpu") else "")
             + f", {results['threads']} thread{'s' if results['threads'] != 1 else ''}; {results['timing']}. "
             f"Spread = ±half of (max - min) / median. Peak memory: {results['memory_method']}.", ""]
    if results["sample"]:
        lines += ["Sampling (`pipe.draw`, KV cache, prompts to PIL images):", "",
                  "| dtype | guidance | batch | images/s | s / image | spread | peak memory (MB) |",
                  "|---|---|---|---|---|---|---|"]
        for s in results["sample"]:
            g = "off" if s["guidance"] == 1.0 else f"{s['guidance']:g}"
            lines.append(f"| {s['dtype']} | {g} | {s['batch']} | {_rate(s['images_per_s'])} | "
                         f"{s['s_per_image']:.3f} | ±{50 * s['spread']:.0f}% | {_mb(s['peak_mem_mb'])} |")
        lines.append("")
    if results["train"]:
        lines += ["Training (AdamW steps of the transformer on random tokens):", "",
                  "| dtype | batch | samples/s | tokens/s | s / step | spread | peak memory (MB) |",
                  "|---|---|---|---|---|---|---|"]
        for s in results["train"]:
            lines.append(f"| {s['dtype']} | {s['batch']} | {_rate(s['samples_per_s'])} | {s['tokens_per_s']:,.0f} | "
                         f"{s['seconds_median'] / s['steps']:.3f} | ±{50 * s['spread']:.0f}% | "
                         f"{_mb(s['peak_mem_mb'])} |")
        lines.append("")
    ref = results.get("reference")
    if ref:
        name = f"{ref['name']} {ref['version']}"
        lines += [f"Against {name} (torch {ref['torch']}, {ref['parameters'] / 1e6:.2f}M parameters), same config, "
                  f"same threads, measured in turns with ours:", "",
                  f"| measurement | wordbrush | {name} | wordbrush / {ref['name']} |", "|---|---|---|---|"]
        for r in results["ratios"]:
            if r["ratio"] is None:
                lines.append(f"| {r['what']} | {_rate(r['ours'])} | failed: {r['error']} | – |")
            else:
                lines.append(f"| {r['what']} | {_rate(r['ours'])} | {_rate(r['theirs'])} | {r['ratio']:.2f}× |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def append_markdown(path: str | Path, results: dict[str, Any]) -> Path:
    """Append a dated section (machine, command, tables) to a Markdown file such as docs/benchmarks.md."""
    path = Path(path)
    c = results["machine"]
    machine = (f"{c['cpu']}, {c['usable_cores']} of {c['cores']} cores, "
               + (f"{c['memory_gb']} GB memory, " if c.get("memory_gb") else "")
               + (f"GPU {c['gpu']}" if c.get("gpu") else "no GPU")
               + f"; Python {c['python']}, torch {c['torch']}"
               + (f"; load average {c['load_average_1min']:.2f} at the start" if c.get("load_average_1min") is not None
                  else ""))
    section = (f"\n## `wordbrush bench` ({c['date']})\n\n`{results['command']}`\n\nMachine: {machine}.\n\n"
               + format_markdown(results))
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(existing.rstrip("\n") + "\n" + section)
    return path

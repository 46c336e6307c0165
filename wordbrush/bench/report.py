"""The results as a reader sees them: the machine they were measured on, Markdown tables, a dated section
appended to a file such as docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
from datetime import datetime
from pathlib import Path
from typing import Any

import torch


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


def _mb(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _rate(x: float) -> str:
    return f"{x:,.1f}" if x >= 10 else f"{x:.2f}"


def _flops(s: dict[str, Any]) -> str:
    """'GFLOP/s | of ceiling' cells: the rate achieved on the counted work and its share of the dtype's ceiling."""
    if "gflop_per_s" not in s:
        return "– | –"
    share = 100 * s["peak_share"]
    return f"{s['gflop_per_s']:,.1f} | {share:.0f}%" if share >= 10 else f"{s['gflop_per_s']:,.1f} | {share:.1f}%"


def _ceiling_line(results: dict[str, Any]) -> str:
    ceilings = ", ".join(f"{d} {c['gflop_per_s']:,.1f} GFLOP/s (n = {c['n']})" for d, c in results["ceiling"].items())
    return (f"Matmul ceiling, measured first ({results['ceiling_method']}): {ceilings}. GFLOP/s below count the "
            f"transformer's matmuls and attention (wordbrush/bench/flops.py; not the text encoder, VAE decode or "
            f"optimizer), against the ceiling of the same dtype.")


def format_markdown(results: dict[str, Any]) -> str:
    """run_bench's results as Markdown: one line on the model and method, then the tables."""
    m, c = results["model"], results["machine"]
    lines = [f"Model `{m['name']}`: transformer width {m['dim']}, depth {m['depth']}, {m['heads']} heads, "
             f"{m['text_len']} text + {m['image_tokens']} image tokens, {m['parameters'] / 1e6:.2f}M parameters"
             + (f"; VAE decoder widths {tuple(v['channels'])}, {v['res_blocks']} residual block(s) a level, codes of "
                f"{v['code_dim']}" if (v := m.get("vae_decoder")) else "") + ". "
             f"Device {results['device']}" + (f" ({c['gpu']})" if c.get("gpu") else "")
             + f", {results['threads']} thread{'s' if results['threads'] != 1 else ''}; {results['timing']}"
             + ("; sampling and training through torch.compile (each case's warm-up run paid its compile)"
                if results["config"].get("compile") else "") + ". "
             f"Spread = ±half of (max - min) / median. Peak memory: {results['memory_method']}.", "",
             _ceiling_line(results), ""]
    if results["sample"]:
        lines += ["Sampling (`pipe.draw`, KV cache, prompts to PIL images):", "",
                  "| dtype | guidance | batch | images/s | s / image | GFLOP/s | of ceiling | spread "
                  "| peak memory (MB) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for s in results["sample"]:
            g = "off" if s["guidance"] == 1.0 else f"{s['guidance']:g}"
            lines.append(f"| {s['dtype']} | {g} | {s['batch']} | {_rate(s['images_per_s'])} | "
                         f"{s['s_per_image']:.3f} | {_flops(s)} | ±{50 * s['spread']:.0f}% | "
                         f"{_mb(s['peak_mem_mb'])} |")
        lines.append("")
    if results["train"]:
        lines += ["Training (AdamW steps of the transformer on random tokens):", "",
                  "| dtype | batch | samples/s | tokens/s | s / step | GFLOP/s | of ceiling | spread "
                  "| peak memory (MB) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for s in results["train"]:
            lines.append(f"| {s['dtype']} | {s['batch']} | {_rate(s['samples_per_s'])} | {s['tokens_per_s']:,.0f} | "
                         f"{s['seconds_median'] / s['steps']:.3f} | {_flops(s)} | ±{50 * s['spread']:.0f}% | "
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

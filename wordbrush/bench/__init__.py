"""`wordbrush bench`: sampling and training speed of a pipeline, optionally side by side with the reference
implementation (lucidrains dalle-pytorch 1.6.6), which runs in a venv of its own.

    from wordbrush.bench import BenchConfig, format_markdown, run_bench
    results = run_bench(BenchConfig(model="r1", threads=2))     # a dict; see the keys in run_bench
    print(format_markdown(results))

One role per file:
    config.py     BenchConfig (what to measure) and the command line that reproduces it; no torch
    memory.py     Memory: peak RSS (/proc) or CUDA peak over one call
    timing.py     Case (one thing timed) and measure(): warm-up, then the cases in turns, round by round
    cases.py      the sampling and training cases, and which reference case sits beside which of ours
    flops.py      the dalle's FLOPs per image drawn and per sample trained (analytic)
    ceiling.py    matmul_ceiling: the device's best square-matmul rate per dtype, measured first
    reference.py  ReferenceProbe: dalle-pytorch in its own venv, as a JSON-lines subprocess
    report.py     machine_info, format_markdown, append_markdown
    run.py        load_pipeline, run_bench (the results dict: ceilings first, then the cases in turns)

Names are loaded on first use, so `from wordbrush.bench import BenchConfig` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BenchConfig": "config", "DTYPES": "config", "REFERENCES": "config", "INSTALL_SCRIPT": "config",
    "Memory": "memory",
    "Case": "timing", "measure": "timing", "timed": "timing",
    "PROMPTS": "cases", "sample_case": "cases", "train_case": "cases", "build_cases": "cases",
    "PROBE": "reference", "ReferenceProbe": "reference", "reference_config": "reference",
    "reference_python": "reference",
    "machine_info": "report", "format_markdown": "report", "append_markdown": "report",
    "Flops": "flops", "sample_flops": "flops", "train_flops": "flops",
    "Ceiling": "ceiling", "matmul_ceiling": "ceiling",
    "load_pipeline": "run", "run_bench": "run", "ratios": "run", "ceiling_method": "run",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))

"""The unit of measurement (a Case: one thing timed, run after run) and the round-robin that times them all.

Every case gets `warmup` untimed runs, then `repeats` timed ones. The cases take turns round by round (ours,
theirs, ours, theirs, ...) so that a change of machine load hits all of them alike; the figure reported is the
median, with the spread (max - min) / median beside it. Peak memory is taken on the first warm-up run of each
case (see memory.py).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import WordbrushError
from .memory import Memory

Run = Callable[[bool], tuple[float, "float | None"]]  # run(measure_memory) -> (seconds, peak MB or None)


@dataclass
class Case:
    """One measured thing. run(memory) does one unit of work and returns (seconds, peak MB or None)."""

    key: str
    run: Run
    work: int  # images or samples per run
    info: dict[str, Any]
    optional: bool = False  # a failure is recorded (error) instead of stopping the run: the reference's cases
    flops: float | None = None  # floating-point operations per run (flops.py); None where not counted
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
        out = {**self.info, "seconds_median": med, "seconds": self.seconds,
               "spread": (max(self.seconds) - min(self.seconds)) / med, "per_s": self.work / med,
               "peak_mem_mb": self.peak_mb}
        if self.flops is not None:
            out["gflop_per_s"] = self.flops / med / 1e9
        return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], None], device: torch.device, memory: Memory,
          clock: Callable[[], float] = time.perf_counter) -> Run:
    """A Case's run for work done in this process: wall clock around fn (CUDA synchronised), memory on demand."""

    def run(measure_memory: bool) -> tuple[float, float | None]:
        start = memory.start() if measure_memory else 0
        sync(device)
        t = clock()
        fn()
        sync(device)
        seconds = clock() - t
        return seconds, memory.peak_mb(start) if measure_memory else None

    return run


def measure(cases: list[Case], warmup: int, repeats: int, progress: bool = True) -> None:
    """Warm every case up, then time them in turns: round r runs case 0, 1, 2, ... once each."""
    from tqdm import tqdm

    bar = tqdm(total=len(cases) * (warmup + repeats), desc="bench", unit="run", disable=not progress,
               dynamic_ncols=True)
    for case in cases:
        for w in range(warmup):
            bar.set_postfix_str(f"warm-up {case.key}")
            result = case.step(w == 0)
            if result is not None and w == 0:
                case.peak_mb = result[1]
            bar.update(1)
    for r in range(repeats):
        for case in cases:
            bar.set_postfix_str(f"round {r + 1}/{repeats} {case.key}")
            result = case.step(False)
            if result is not None:
                case.seconds.append(result[0])
            bar.update(1)
    bar.close()

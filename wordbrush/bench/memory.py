"""Peak memory over one call: the rise of CUDA's max_memory_allocated, or of the CPU process's peak RSS read
from /proc (VmHWM, reset through /proc/self/clear_refs after malloc_trim; where that is impossible, the rise of
ru_maxrss, a lower bound: only what exceeds earlier peaks counts)."""

from __future__ import annotations

import ctypes
import gc
import resource
from pathlib import Path

import torch


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise OSError(f"{name} not in /proc/self/status")


class Memory:
    """Peak memory rise over one call: CUDA max_memory_allocated, or the CPU process's peak RSS.

        start = memory.start(); work(); mb = memory.peak_mb(start)
    """

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
        """Bytes in use now (the baseline); resets the peak where it can."""
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
        """The peak since start() above its baseline, in MiB (never negative)."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated()
        elif self.method.startswith("CPU: rise of peak RSS"):
            peak = _status_kb("VmHWM") * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - start) / 2**20

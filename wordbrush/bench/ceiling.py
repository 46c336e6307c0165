"""The hardware limit each figure is set against: the device's matmul rate for a dtype, measured first, at the
benchmark's thread count. Square n x n x n products (2 n^3 FLOPs), n doubled from 256 until one product takes
`min_seconds` (or n reaches the cap: 2048 on a CPU, 8192 on CUDA), then the best of `repeats` at that n: the
ceiling is the fastest the machine was seen to multiply, not a typical rate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from .timing import sync

MAX_N = {"cpu": 2048, "cuda": 8192}


@dataclass(frozen=True)
class Ceiling:
    dtype: str
    n: int  # the side of the product timed
    seconds: float  # the best time of one product
    gflop_per_s: float


def product_timer(device: torch.device, dtype: str) -> Callable[[int], float]:
    """time_one(n): seconds for one n x n @ n x n product in dtype on device (operands made once per n, warm)."""
    held: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def time_one(n: int) -> float:
        if n not in held:
            held.clear()
            g = torch.Generator(device=device).manual_seed(0)
            a, b = (torch.randn(n, n, generator=g, device=device).to(getattr(torch, dtype)) for _ in range(2))
            held[n] = (a, b, torch.empty_like(a))
            torch.matmul(a, b, out=held[n][2])  # warm: kernels chosen, pages touched
        a, b, out = held[n]
        sync(device)
        t = time.perf_counter()
        torch.matmul(a, b, out=out)
        sync(device)
        return time.perf_counter() - t

    return time_one


def matmul_ceiling(device: torch.device, dtype: str, repeats: int = 5, min_seconds: float = 0.02,
                   max_n: int | None = None, time_one: Callable[[int], float] | None = None) -> Ceiling:
    """The best matmul rate seen for dtype on device (see the module's docstring); time_one(n) replaces the
    real timer in tests."""
    time_one = time_one or product_timer(device, dtype)
    cap = max_n or MAX_N.get(device.type, 2048)
    n = min(256, cap)
    while time_one(n) < min_seconds and n * 2 <= cap:
        n *= 2
    best = min(time_one(n) for _ in range(repeats))
    return Ceiling(dtype, n, best, 2 * n**3 / best / 1e9)

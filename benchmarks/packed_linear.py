"""The R1 decoding step's linears at batch 16, one after another as a step runs them (6 layers x qkv, proj, up, down,
then the image head), through F.linear (MKL, which repacks each weight every call) and through nn/packed.py's
oneDNN linear over weights packed once (its custom op, called directly: small_linear packs float32 only), in
float32 and bfloat16. Cases interleaved round by round; median ms a step.

    python benchmarks/packed_linear.py [--threads 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from wordbrush.nn.packed import PACKING, packed_linear


def step_fn(layers: list[nn.Linear], packed: bool):
    def small_linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        return packed_linear(x.contiguous(), layer.weight, layer.bias)

    def step(x: torch.Tensor) -> torch.Tensor:
        for i in range(0, len(layers) - 1, 4):
            qkv, proj, up, down = layers[i : i + 4]
            q = small_linear(x, qkv) if packed else qkv(x)
            y = small_linear(q[:, : x.shape[1]].contiguous(), proj) if packed else proj(q[:, : x.shape[1]])
            h = small_linear(y, up) if packed else up(y)
            x = small_linear(h, down) if packed else down(h)
        return small_linear(x, layers[-1]) if packed else layers[-1](x)
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rows", type=int, default=16)
    args = ap.parse_args()
    if not PACKING:
        raise SystemExit("this torch has no oneDNN weight packing (or WORDBRUSH_NO_PACKING is set)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = 256
    times: dict[str, list[float]] = {}
    cases = {}
    for dtype in (torch.float32, torch.bfloat16):
        layers = [nn.Linear(i, o, bias=b).to(dtype) for _ in range(6)
                  for i, o, b in ((d, 3 * d, False), (d, d, False), (d, 4 * d, True), (4 * d, d, True))]
        layers.append(nn.Linear(d, 512, bias=False).to(dtype))
        x = torch.randn(args.rows, d, dtype=dtype)
        for packed in (False, True):
            cases[f"{str(dtype)[6:]:8s} {'packed oneDNN' if packed else 'F.linear'}"] = (step_fn(layers, packed), x)
    with torch.no_grad():
        for _ in range(args.rounds):
            for name, (step, x) in cases.items():
                for _ in range(10):
                    step(x)
                n, t = 100, time.perf_counter()
                for _ in range(n):
                    step(x)
                times.setdefault(name, []).append((time.perf_counter() - t) / n * 1e3)
    print(f"{args.rows} rows, {args.threads} threads, torch {torch.__version__}: ms per step of 25 linears (median)")
    for name, ts in times.items():
        print(f"  {name}: {sorted(ts)[len(ts) // 2]:.2f}")


if __name__ == "__main__":
    main()

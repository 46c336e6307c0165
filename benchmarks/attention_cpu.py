"""Causal attention forward+backward on the CPU at the shapes of this project's transformer:
scaled_dot_product_attention against the explicit softmax(q k^T / sqrt d) v, float32 and bfloat16.

    python benchmarks/attention_cpu.py [--threads 2] [--batch 64] [--tokens 87]
"""

import argparse
import time

import torch
import torch.nn.functional as F


def explicit(q, k, v):
    t = q.shape[-2]
    att = (q @ k.transpose(-1, -2)).float() / q.shape[-1] ** 0.5
    att = att.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    return att.softmax(-1).to(q.dtype) @ v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=87)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"B={a.batch}, 8 heads x 32, T={a.tokens}, {a.threads} threads, torch {torch.__version__}")
    for dtype in (torch.float32, torch.bfloat16):
        for name, fn in (("sdpa", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
                         ("explicit", explicit)):
            q, k, v = (torch.randn(a.batch, 8, a.tokens, 32, dtype=dtype, requires_grad=True) for _ in range(3))
            fn(q, k, v).float().sum().backward()
            t = time.perf_counter()
            for _ in range(a.repeats):
                fn(q, k, v).float().sum().backward()
            print(f"  {str(dtype):15s} {name:9s} {(time.perf_counter() - t) / a.repeats * 1e3:7.1f} ms fwd+bwd")


if __name__ == "__main__":
    main()

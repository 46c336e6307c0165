"""Shared transformer blocks: pre-norm residual blocks, attention through scaled_dot_product_attention,
and a preallocated key/value cache for fast autoregressive sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def use_explicit_attention(q: torch.Tensor) -> bool:
    """scaled_dot_product_attention everywhere except CPU training in bfloat16: for this project's short
    sequences (~100 tokens, head width 32) the CPU flash kernel's backward in bf16 measured ~5x slower than
    the explicit softmax(q k^T) v (benchmarks/attention_cpu.py). Both give the same result (tests/test_dalle.py)."""
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and torch.is_grad_enabled() and q.requires_grad


class KVCache:
    """Keys and values of every layer, preallocated for the whole sequence: (layers, B, heads, T_max, d_head).
    `length` is how many positions are filled; appending writes in place, never concatenates."""

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, d_head: int,
                 device: torch.device, dtype: torch.dtype):
        self.k = torch.empty(layers, batch, heads, max_len, d_head, device=device, dtype=dtype)
        self.v = torch.empty_like(self.k)
        self.length = 0

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, heads, t, d) at the current position; return all keys/values so far."""
        t0, t1 = self.length, self.length + k.shape[2]
        self.k[layer, :, :, t0:t1] = k
        self.v[layer, :, :, t0:t1] = v
        return self.k[layer, :, :, :t1], self.v[layer, :, :, :t1]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.dropout = dropout
        self.last_weights: torch.Tensor | None = None  # (B, heads, t, T) when record_weights is set
        self.record_weights = False

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        causal = True
        if cache is not None:
            prefix = cache.length
            k, v = cache.store(layer, k, v)  # (B, h, prefix + t, d)
            causal = q.shape[2] > 1  # one new query may see every cached key
            if causal and prefix > 0:
                raise ValueError("a multi-token step on a non-empty cache is not supported")
        if self.record_weights:
            self.last_weights = self._weights(q, k, causal)
        if use_explicit_attention(q):
            y = F.dropout(self._weights(q, k, causal, q.dtype), self.dropout, self.training) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.proj(rearrange(y, "b h t d -> b t (h d)"))

    @staticmethod
    def _weights(q: torch.Tensor, k: torch.Tensor, causal: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) with the causal mask: (B, h, t, T), softmax taken in float32."""
        att = (q @ k.transpose(-1, -2)).float() / q.shape[-1] ** 0.5
        if causal:
            t, T = att.shape[-2:]
            mask = torch.ones(t, T, dtype=torch.bool, device=q.device).tril(T - t)
            att = att.masked_fill(~mask, float("-inf"))
        return att.softmax(-1).to(dtype)


class Block(nn.Module):
    """x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))

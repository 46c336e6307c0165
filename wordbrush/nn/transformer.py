"""Shared transformer blocks: pre-norm residual blocks (causal or bidirectional, optionally with cross-attention
to a context such as text states), attention through scaled_dot_product_attention, and a preallocated key/value
cache for fast autoregressive sampling."""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .packed import small_linear


def init_weights(m: nn.Module) -> None:
    """GPT-2's initialisation for the generators (module.apply(init_weights)): N(0, 0.02) weights, zero biases."""
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def grid_positions(row_pos: torch.Tensor, col_pos: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """2-D positions of image tokens start..start+n-1 in row-major order: row + column embeddings, (n, D)."""
    idx = torch.arange(start, start + n, device=row_pos.device)
    g = col_pos.shape[0]
    return row_pos[idx // g] + col_pos[idx % g]


def use_explicit_attention(q: torch.Tensor) -> bool:
    """scaled_dot_product_attention everywhere except two CPU cases where the explicit softmax(q k^T) v is faster
    (benchmarks/attention_cpu.py): training in bfloat16, where the CPU flash kernel's backward measured ~5x slower
    at this project's short sequences (~100 tokens, head width 32), and one-query decoding steps with a KV cache,
    where the flash kernel's set-up dominates (~195 vs ~20 us a call at R1, batch 16). Both forms give the same
    result (tests/test_dalle.py)."""
    if q.device.type != "cpu":
        return False
    return q.shape[-2] == 1 or (q.dtype == torch.bfloat16 and torch.is_grad_enabled() and q.requires_grad)


@contextmanager
def recording(attentions: list[nn.Module]):
    """Within the block, these SelfAttention / CrossAttention modules keep their last weights (.last_weights,
    (B, heads, t, T)); afterwards they stop and drop them."""
    for a in attentions:
        a.record_weights = True
    try:
        yield attentions
    finally:
        for a in attentions:
            a.record_weights, a.last_weights = False, None


class KVCache:
    """Keys and values of every layer, preallocated for the whole sequence; `length` is how many positions are
    filled; appending writes in place, never concatenates. Two layouts:
    - plain: one (B, heads, T_max, d_head) tensor per layer for keys and one for values, zero-filled: the one-token
      decoding step attends over all T_max positions with the unfilled ones masked (and 0 * garbage could be NaN);
    - prefix_only (the CPU's compiled decoding step): keys stored transposed, (B, heads, d_head, T_max), values
      (B, heads, T_max, d_head), not zero-filled: each step attends over the filled prefix alone (its length a
      variable of the step's one compiled package), and prefix_attention()'s scores run over the keys' contiguous
      positions."""

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, d_head: int,
                 device: torch.device, dtype: torch.dtype, prefix_only: bool = False):
        make = torch.empty if prefix_only else torch.zeros
        keys = (batch, heads, d_head, max_len) if prefix_only else (batch, heads, max_len, d_head)
        self.k = [make(keys, device=device, dtype=dtype) for _ in range(layers)]
        self.v = [make(batch, heads, max_len, d_head, device=device, dtype=dtype) for _ in range(layers)]
        self.length, self.prefix_only = 0, prefix_only

    @classmethod
    def over(cls, k: list[torch.Tensor], v: list[torch.Tensor], prefix_only: bool = False) -> KVCache:
        """A cache over existing per-layer tensors, empty (length 0): what a compiled step that fills them sees."""
        cache = cls.__new__(cls)
        cache.k, cache.v, cache.length, cache.prefix_only = list(k), list(v), 0, prefix_only
        return cache

    def with_rows(self, batch: int) -> KVCache:
        """An empty cache of this one's layers, layout, length, heads and dtype for `batch` rows."""
        v = self.v[0]  # (B, heads, T_max, d_head) in either layout
        return KVCache(len(self.v), batch, v.shape[1], v.shape[2], v.shape[3], v.device, v.dtype, self.prefix_only)

    @staticmethod
    def storage_dtype(device: torch.device, compute: torch.dtype, compiled: bool = False) -> torch.dtype:
        """The compute dtype, but float32 for eager steps on the CPU: there one-query attention over a bf16 cache
        measured ~3x slower than over a float32 one (R1, batch 16), while the ahead-of-time compiled step over a
        bf16 cache is ~1.26x faster than over a float32 one (bf16 weights, R1, batch 16: 157 -> 124 ms a batch)."""
        return torch.float32 if device.type == "cpu" and not compiled else compute

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, heads, t, d) at the current position; return all keys/values so far, (B, heads, t', d)."""
        t0, t1 = self.length, self.length + k.shape[2]
        self.v[layer][:, :, t0:t1] = v
        if self.prefix_only:
            self.k[layer][..., t0:t1] = k.transpose(-1, -2)
            return self.k[layer][..., :t1].transpose(-1, -2), self.v[layer][:, :, :t1]
        self.k[layer][:, :, t0:t1] = k
        return self.k[layer][:, :, :t1], self.v[layer][:, :, :t1]

    def prefix(self, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's first n positions as views (prefix_only): keys (B, heads, d, n), values (B, heads, n, d)."""
        return [k[..., :n] for k in self.k], [v[:, :, :n] for v in self.v]

    def copy_rows(self, other: KVCache, rows: torch.Tensor, n: int) -> None:
        """Positions [0, n) of every row r from row rows[r] of other (the same layout); the rest left as it was."""
        for full, part in zip(self.k, other.k):
            if self.prefix_only:
                full[..., :n] = part[..., :n].index_select(0, rows)
            else:
                full[:, :, :n] = part[:, :, :n].index_select(0, rows)
        for full, part in zip(self.v, other.v):
            full[:, :, :n] = part[:, :, :n].index_select(0, rows)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """One query per row over a whole static cache: q (B, h, 1, d), k and v (B, h, T_max, d), keep (T_max,) bool
    (the filled positions) -> (B, h, 1, d). On the CPU the explicit softmax(q k^T) v of attend() (masked keys weigh
    exactly 0: the same tokens as attending over the filled prefix alone); elsewhere scaled_dot_product_attention
    with the mask."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    att = (q @ k.transpose(-1, -2)).float() / q.shape[-1] ** 0.5  # (B, h, 1, T_max)
    return att.masked_fill(~keep, float("-inf")).softmax(-1).to(q.dtype) @ v


def prefix_attention(q: torch.Tensor, kt: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One query per row over every position given: q (B, h, 1, d), keys transposed kt (B, h, d, T), values v
    (B, h, T, d) -> (B, h, 1, d), in float32 inside. Written as products and sums, not matmuls, for inductor's C++:
    the scores then sum over d with each vector holding 16 keys, instead of reducing every key's 32 products across
    a vector (R1's six attentions alone, batch 16, bf16, 2 threads: 449 -> 312 us at T = 96; docs/benchmarks.md)."""
    scores = (q.float().transpose(-1, -2) * kt.float()).sum(-2, keepdim=True) / q.shape[-1] ** 0.5  # (B, h, 1, T)
    p = scores.softmax(-1).transpose(-1, -2)  # (B, h, T, 1)
    return (p * v.float()).sum(-2, keepdim=True).to(q.dtype)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, dropout: float = 0.0) -> torch.Tensor:
    """Attention over (B, h, t, d) queries and (B, h, T, d) keys/values -> (B, h, t, d); dropout > 0 only in training."""
    if use_explicit_attention(q):
        return F.dropout(attention_weights(q, k, causal, q.dtype), dropout, dropout > 0) @ v
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)


def attention_weights(q: torch.Tensor, k: torch.Tensor, causal: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)), causal mask aligned to the last keys: (B, h, t, T), softmax taken in float32."""
    att = (q @ k.transpose(-1, -2)).float() / q.shape[-1] ** 0.5
    if causal:
        t, T = att.shape[-2:]
        mask = torch.ones(t, T, dtype=torch.bool, device=q.device).tril(T - t)
        att = att.masked_fill(~mask, float("-inf"))
    return att.softmax(-1).to(dtype)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0, causal: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.dropout = dropout
        self.last_weights: torch.Tensor | None = None  # (B, heads, t, T) when record_weights is set
        self.record_weights = False

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        causal = self.causal
        if cache is not None:
            if not causal:
                raise ValueError("a KV cache needs causal attention")
            prefix = cache.length
            k, v = cache.store(layer, k, v)  # (B, h, prefix + t, d)
            causal = q.shape[2] > 1  # one new query may see every cached key
            if causal and prefix > 0:
                raise ValueError("a multi-token step on a non-empty cache is not supported")
        if self.record_weights:
            self.last_weights = attention_weights(q, k, causal)
        y = attend(q.to(k.dtype), k, v, causal, self.dropout if self.training else 0.0).to(x.dtype)  # cache may be fp32
        return self.proj(rearrange(y, "b h t d -> b t (h d)"))

    def decode(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
               keep: torch.Tensor | None = None) -> torch.Tensor:
        """One token per row (torch.compile-able): x (B, D); writes its key and value at position pos ((1,) long)
        in place and attends -> (B, D). With keep (T_max,) bool: over a whole plain cache k_cache, v_cache
        (B, h, T_max, d), where keep is set. Without: over views of a prefix_only cache's filled prefix (keys
        (B, h, d, T), values (B, h, T, d)), pos its last position."""
        B = x.shape[0]
        q, k, v = rearrange(small_linear(x, self.qkv), "b (three h d) -> three b h 1 d", three=3, h=self.heads)
        v_cache.index_copy_(2, pos, v.to(v_cache.dtype))
        if keep is None:
            k_cache.index_copy_(3, pos, k.transpose(-1, -2).to(k_cache.dtype))
            y = prefix_attention(q.to(k_cache.dtype), k_cache, v_cache)
        else:
            k_cache.index_copy_(2, pos, k.to(k_cache.dtype))
            y = decode_attention(q.to(k_cache.dtype), k_cache, v_cache, keep)
        return small_linear(y.to(x.dtype).reshape(B, -1), self.proj)  # (B, h, 1, d) -> (B, h*d)


class CrossAttention(nn.Module):
    """Queries from x (B, t, D), keys and values from a context (B, s, D), e.g. text states; no mask."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.dropout = dropout
        self.last_weights: torch.Tensor | None = None  # (B, heads, t, s) when record_weights is set
        self.record_weights = False

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(x), "b t (h d) -> b h t d", h=self.heads)
        k, v = rearrange(self.kv(context), "b s (two h d) -> two b h s d", two=2, h=self.heads)
        if self.record_weights:
            self.last_weights = attention_weights(q, k, False)
        y = attend(q, k, v, False, self.dropout if self.training else 0.0)
        return self.proj(rearrange(y, "b h t d -> b t (h d)"))


class Block(nn.Module):
    """x + attn(ln(x)); [x + cross_attn(ln(x), context)]; x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0, causal: bool = True,
                 cross: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout, causal)
        self.ln_cross = nn.LayerNorm(dim) if cross else None
        self.cross = CrossAttention(dim, heads, dropout) if cross else None
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        if self.cross is not None:
            if context is None:
                raise ValueError("this block cross-attends and needs a context")
            x = x + self.cross(self.ln_cross(x), context)
        return x + self.mlp(self.ln2(x))

    def decode(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
               keep: torch.Tensor | None = None) -> torch.Tensor:
        """One token per row over a cache (SelfAttention.decode): x (B, D) -> (B, D)."""
        if self.cross is not None:
            raise ValueError("decode() is for blocks without cross-attention")
        x = x + self.attn.decode(self.ln1(x), k_cache, v_cache, pos, keep)
        up, act, down, drop = self.mlp
        return x + drop(small_linear(act(small_linear(self.ln2(x), up)), down))

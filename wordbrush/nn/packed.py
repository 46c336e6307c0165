"""nn.Linear for the few rows of a decoding step, with its weight prepacked for oneDNN on the CPU.

A dalle decoding step multiplies 16 rows by each of 25 weight matrices (R1: 256 x 768 ... 1024 x 256). MKL's GEMM,
which F.linear calls, repacks the weight into its panel layout on every call, and at 16 rows that copy costs more
than the multiply. oneDNN's linear over a weight reordered once for that row count skips the copy, but each call
has ~25 us of fixed cost, and the custom op ~12 us more: in float32 the 25 linears of an R1 step go from 2.7 to
2.3 ms, and the compiled step samples 1.13x faster. In bfloat16 F.linear already runs oneDNN and packing loses
(1.5 -> 1.7 ms; benchmarks/packed_linear.py), so only float32 is packed.

`small_linear(x, layer)` is the layer's own F.linear wherever packing does not apply (autograd on, autocast, not
the CPU, not float32, no oneDNN); otherwise the custom op `wordbrush::packed_linear`, which torch.compile
keeps as one opaque call inside the compiled step. The packed copy is made on first use, kept per parameter
(dropped with it) and remade when the weight changes in place (its version counter moves) or is replaced (another
storage or dtype), so a packed layer never computes with stale weights. What it computes is the linear up to float
rounding (tests/test_packed.py)."""

from __future__ import annotations

import os
import weakref
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import register_flop_formula

# WORDBRUSH_NO_PACKING=1 turns it off for a process (to compare: benchmarks/packed_linear.py)
PACKING = (os.environ.get("WORDBRUSH_NO_PACKING", "") in ("", "0") and torch.backends.mkldnn.is_available()
           and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))

# id(weight) -> (data_ptr, version, dtype, rows, packed weight); an entry goes when its parameter is freed
_PACKED: dict[int, tuple[int, int, torch.dtype, int, torch.Tensor]] = {}


def _packed(weight: torch.Tensor, rows: int) -> torch.Tensor:
    key = id(weight)
    entry = _PACKED.get(key)
    if entry is not None and entry[:4] == (weight.data_ptr(), weight._version, weight.dtype, rows):
        return entry[4]
    if entry is None:
        weakref.finalize(weight, _PACKED.pop, key, None)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    _PACKED[key] = (weight.data_ptr(), weight._version, weight.dtype, rows, packed)
    return packed


@torch.library.custom_op("wordbrush::packed_linear", mutates_args=())
def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (M, K) @ weight (N, K)^T + bias (N,) -> (M, N) through oneDNN, the weight packed for M rows (kept)."""
    return torch.ops.mkldnn._linear_pointwise(x, _packed(weight, x.shape[0]), bias, "none", [], "")


@packed_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


@register_flop_formula(torch.ops.wordbrush.packed_linear)
def _flops(x_shape, w_shape, *args, **kwargs) -> int:
    """What torch.utils.flop_counter counts for one call: a matmul's 2 M K N, as for aten.mm."""
    return 2 * x_shape[0] * x_shape[1] * w_shape[0]


@contextmanager
def unpacked():
    """small_linear is F.linear inside (nn/compiled.py's ahead-of-time export: inductor's freezing pass packs)."""
    global PACKING
    before, PACKING = PACKING, False
    try:
        yield
    finally:
        PACKING = before


def small_linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """layer(x) for x (M, in) with few rows: through the packed oneDNN weight where that applies, else F.linear."""
    w, b = layer.weight, layer.bias
    if (x.dim() == 2 and x.device.type == "cpu" and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu") and x.dtype == w.dtype == torch.float32
            and (b is None or b.dtype == w.dtype) and PACKING):
        return packed_linear(x.contiguous(), w, b)
    return F.linear(x, w, b)

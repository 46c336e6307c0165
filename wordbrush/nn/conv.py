"""Convolutional blocks shared by the image tokenizer and the CLIP's image tower."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))): two 3x3 convolutions that keep the channels and the size."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


# Which of a 3x3 conv's taps (columns) each of the 4 taps of the equivalent stride-2 transposed conv sums (rows),
# along one axis: output 2m reads x[m-1] through tap 0 and x[m] through taps 1 + 2 of the upsampled conv; output
# 2m+1 reads x[m] through taps 0 + 1 and x[m+1] through tap 2.
_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def upsampled_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """conv(nearest 2x upsampling of x) for a 3x3, padding-1 conv, without making the upsampled image: one
    stride-2 transposed conv with a 4x4 kernel, each of whose taps is the sum of the 3x3 taps that land on the same
    input pixel (sub-pixel convolution: each output pixel reads 2x2 inputs, 16 instead of 36 multiply-adds per input
    pixel and channel pair). x (B, C, h, w) -> (B, C', 2h, 2w) laid out channels last (oneDNN runs it faster so).
    Equal to the upsample-then-conv result up to float rounding (tests/test_vae.py). The transposed conv writes the
    four output phases in place, where the earlier form (one 2x2 conv, then each phase copied into place) spent
    about as long on the copies as on the conv: shapes' decoder, last level, batch 64, 2 AMX cores, float32
    26.6 -> 16.0 ms, bfloat16 3.2 -> 1.6 ms."""
    w, taps = conv.weight, _TAPS.to(conv.weight.device)  # w (C', C, 3, 3); taps summed in float32 (a little faster)
    kernel = torch.einsum("ik,ockl,jl->coij", taps, w.float(), taps).to(w.dtype)  # (C, C', 4, 4)
    return F.conv_transpose2d(x.contiguous(memory_format=torch.channels_last),
                              kernel.contiguous(memory_format=torch.channels_last), conv.bias, stride=2, padding=1)


def is_upsampled_conv(up: nn.Module, conv: nn.Module) -> bool:
    """Whether (up, conv) is a nearest 2x upsample followed by a 3x3, stride-1, padding-1 conv (upsampled_conv)."""
    return (isinstance(up, nn.Upsample) and up.mode == "nearest" and up.scale_factor in (2, 2.0)
            and isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")

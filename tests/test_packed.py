"""The decoding step's prepacked linears (nn/packed.py): the linear's result, never a stale weight."""

import gc

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wordbrush.nn import packed
from wordbrush.nn.packed import small_linear

pytestmark = pytest.mark.skipif(not packed.PACKING, reason="this torch has no oneDNN weight packing")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("bias", [True, False])
def test_small_linear_is_the_linear(dtype, tol, bias):
    torch.manual_seed(0)
    layer = nn.Linear(64, 96, bias=bias).to(dtype)
    x = torch.randn(16, 64, dtype=dtype)
    with torch.no_grad():
        got = small_linear(x, layer)
        want = F.linear(x.float(), layer.weight.float(), None if layer.bias is None else layer.bias.float())
    assert got.dtype == dtype and got.shape == (16, 96)
    # float32 goes through the packed path; bf16, where packing does not pay, through F.linear
    assert (id(layer.weight) in packed._PACKED) == (dtype == torch.float32)
    torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol * want.abs().max().item())


def test_a_changed_weight_is_repacked():
    torch.manual_seed(0)
    layer = nn.Linear(32, 48)
    x = torch.randn(8, 32)
    with torch.no_grad():
        before = small_linear(x, layer)
        layer.weight.mul_(-2.0)  # in place, as an optimizer step does: the version counter moves
        after = small_linear(x, layer)
        torch.testing.assert_close(after, F.linear(x, layer.weight, layer.bias))
        assert not torch.allclose(before, after)
        layer.weight.data = torch.randn(48, 32)  # replaced storage
        torch.testing.assert_close(small_linear(x, layer), F.linear(x, layer.weight, layer.bias))
        torch.testing.assert_close(small_linear(x[:3], layer), F.linear(x[:3], layer.weight, layer.bias))  # rows


def test_gradients_and_autocast_take_the_plain_linear():
    layer = nn.Linear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)
    small_linear(x, layer).sum().backward()  # autograd on: F.linear, gradients flow
    assert x.grad is not None and layer.weight.grad is not None
    assert id(layer.weight) not in packed._PACKED


def test_the_packed_copy_goes_with_its_layer():
    layer = nn.Linear(16, 8)
    with torch.no_grad():
        small_linear(torch.randn(4, 16), layer)
    key = id(layer.weight)
    assert key in packed._PACKED
    del layer
    gc.collect()
    assert key not in packed._PACKED

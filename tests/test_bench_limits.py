"""bench's hardware limit: the analytic FLOP count of the dalle (against a hand count and against the matmuls
torch sees the real module run) and the matmul ceiling's search (against a fake timer: no clock is asserted)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from wordbrush.bench.ceiling import matmul_ceiling
from wordbrush.bench.flops import Flops, sample_flops, train_flops
from wordbrush.generators.dalle import DalleConfig
from wordbrush.generators.options import SampleOptions
from wordbrush.generators.dalle import DALLE

# L = 2 text + N = 4 image tokens -> T = 5 positions fed; width 8, one layer, MLP ratio 4
TINY = DalleConfig(text_vocab=10, text_len=2, image_vocab=6, image_grid=2, dim=8, heads=2, depth=1, mlp_ratio=4)


def test_flops_of_a_tiny_dalle_match_a_hand_count():
    # one layer's weights: qkv 8x24 = 192, proj 8x8 = 64, MLP 8x32 + 32x8 = 512 -> 768 multiply-adds a position
    trunk_matmul = 2 * 5 * 768  # 7680
    attention = sum(2 * 2 * t * 8 for t in range(1, 6))  # q k^T and weights @ v over t keys: 480
    image_head = 4 * 2 * 8 * 6  # 4 image tokens predicted from width 8 over 6 codes: 384
    text_head = 1 * 2 * 8 * 10  # text[1:] predicted: 160
    assert sample_flops(TINY, guided=False) == Flops(trunk_matmul + image_head, attention)
    assert sample_flops(TINY, guided=False).total == 8544
    assert sample_flops(TINY, guided=True).total == 2 * 8544  # conditional + unconditional rows
    assert train_flops(TINY) == Flops(3 * (trunk_matmul + image_head + text_head), 3 * attention)
    assert train_flops(TINY).total == 26112
    no_text_loss = DalleConfig(**{**TINY.__dict__, "text_loss_weight": 0.0})
    assert train_flops(no_text_loss).total == 3 * 8544


def _weight_matmuls(counter: FlopCounterMode) -> int:
    return sum(v for k, v in counter.get_flop_counts()["Global"].items() if str(k) in ("aten.mm", "aten.addmm", "wordbrush.packed_linear"))


def test_matmul_count_matches_what_the_module_runs():
    """The weight matmuls torch counts in a real forward and a real KV-cache sampling equal the analytic ones."""
    torch.manual_seed(0)
    model = DALLE(TINY).eval()
    text, image = torch.randint(1, 10, (3, 2)), torch.randint(0, 6, (3, 4))
    with FlopCounterMode(display=False) as counter:
        model(text, image)
    forward_per_row = train_flops(TINY).matmul // 3  # a training step is 3 forwards' worth
    assert _weight_matmuls(counter) == 3 * forward_per_row  # 3 rows
    for guidance, guided in ((1.0, False), (3.0, True)):
        with FlopCounterMode(display=False) as counter:
            model.sample(text, [torch.Generator().manual_seed(i) for i in range(3)],
                         SampleOptions(guidance_scale=guidance))
        assert _weight_matmuls(counter) == 3 * sample_flops(TINY, guided).matmul


def test_ceiling_doubles_n_until_a_product_is_long_enough_then_takes_the_best():
    calls = []
    rate = 100e9  # FLOP/s of the fake device
    at_2048 = iter([1.0, 1.0, 1.2, 0.8])  # the search's run (not counted), then the 3 timed ones: best is the last

    def time_one(n: int) -> float:
        calls.append(n)
        return (next(at_2048) if n == 2048 else 1.0) * 2 * n**3 / rate

    c = matmul_ceiling(torch.device("cpu"), "float32", repeats=3, min_seconds=0.05, time_one=time_one)
    # 256: 0.3 ms, 512: 2.7 ms, 1024: 21 ms, 2048: 172 ms >= 50 ms -> stop; then 3 timed runs at 2048
    assert calls == [256, 512, 1024, 2048, 2048, 2048, 2048]
    assert c.n == 2048 and c.dtype == "float32"
    assert c.seconds == pytest.approx(0.8 * 2 * 2048**3 / rate)
    assert c.gflop_per_s == pytest.approx(100 / 0.8)


def test_ceiling_stops_at_the_cap_on_a_fast_device():
    calls = []
    c = matmul_ceiling(torch.device("cpu"), "bfloat16", repeats=2, min_seconds=1.0, max_n=512,
                       time_one=lambda n: calls.append(n) or 2 * n**3 / 1e12)
    assert calls == [256, 512, 512, 512] and c.n == 512 and c.gflop_per_s == pytest.approx(1000)


def test_ceiling_times_real_products_on_the_cpu():
    c = matmul_ceiling(torch.device("cpu"), "float32", repeats=2, max_n=256)
    assert c.n == 256 and c.gflop_per_s == pytest.approx(2 * 256**3 / c.seconds / 1e9)

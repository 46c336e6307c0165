"""The dalle transformer and its sampler: loss, KV cache == no cache, guidance, top-k/top-p, priming, seeds."""

import pytest
import torch
from conftest import generators as _gens

from wordbrush.generators.dalle import DALLE, DalleConfig
from wordbrush.generators.options import SampleOptions
from wordbrush.generators.sampling import pick

CFG = DalleConfig(text_vocab=40, text_len=6, image_vocab=24, image_grid=3, dim=32, depth=2, heads=4)


def _model(seed=0):
    torch.manual_seed(seed)
    return DALLE(CFG).eval()


def test_loss_is_weighted_and_learns():
    torch.manual_seed(0)
    m = DALLE(CFG)
    text = torch.randint(2, 40, (8, 6))
    image = torch.randint(0, 24, (8, 9))
    out = m(text, image)
    w = CFG.text_loss_weight
    assert torch.allclose(out.loss, w * out.text + (1 - w) * out.image)
    assert abs(out.image.item() - torch.log(torch.tensor(24.0)).item()) < 0.3  # ~uniform at init
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(60):
        loss = m(text, image).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m(text, image).image.item() < 0.5 * out.image.item()  # it memorises a fixed batch


def test_text_loss_ignores_padding():
    m = _model()
    image = torch.randint(0, 24, (2, 9))
    all_pad = torch.zeros(2, 6, dtype=torch.long)
    out = m(all_pad, image)
    assert out.text.item() == 0.0 and torch.isfinite(out.loss)


def test_image_token_depends_only_on_its_past():
    """Causality: changing image token j changes no logits before position j."""
    m = _model()
    text = torch.randint(2, 40, (1, 6))
    image = torch.randint(0, 24, (1, 9))
    h1 = m.trunk(m.embed(text, image))
    image2 = image.clone()
    image2[0, 5] = (image2[0, 5] + 1) % 24
    h2 = m.trunk(m.embed(text, image2))
    L = 6
    assert torch.allclose(h1[:, : L + 5], h2[:, : L + 5], atol=1e-6)
    assert not torch.allclose(h1[:, L + 5], h2[:, L + 5])


@pytest.mark.parametrize("options", [
    SampleOptions(),
    SampleOptions(guidance_scale=3.0),
    SampleOptions(guidance_scale=2.0, top_k=4, temperature=0.7),
    SampleOptions(top_p=0.6),
])
def test_kv_cache_gives_the_same_tokens(options):
    m = _model()
    text = torch.randint(2, 40, (4, 6))
    a = m.sample(text, _gens(range(4)), options, use_cache=True)
    b = m.sample(text, _gens(range(4)), options, use_cache=False)
    assert torch.equal(a, b)
    assert a.shape == (4, 9) and a.min() >= 0 and a.max() < 24


def test_seed_reproducible_and_independent_of_batch():
    m = _model()
    text = torch.randint(2, 40, (3, 6))
    a = m.sample(text, _gens([7, 8, 9]))
    b = m.sample(text, _gens([7, 8, 9]))
    assert torch.equal(a, b)
    alone = m.sample(text[1:2], _gens([8]))
    assert torch.equal(alone[0], a[1])  # a row depends on its own seed, not its neighbours
    c = m.sample(text, _gens([1, 2, 3]))
    assert not torch.equal(a, c)


def test_guidance_never_modifies_the_prompt():
    m = _model()
    text = torch.randint(2, 40, (2, 6))
    before = text.clone()
    m.sample(text, _gens([0, 1]), SampleOptions(guidance_scale=4.0))
    assert torch.equal(text, before)


def test_priming_keeps_the_given_tokens():
    m = _model()
    text = torch.randint(2, 40, (2, 6))
    prime = torch.randint(0, 24, (2, 4))
    for cache in (True, False):
        out = m.sample(text, _gens([0, 1]), prime=prime, use_cache=cache)
        assert torch.equal(out[:, :4], prime)
    assert torch.equal(m.sample(text, _gens([0, 1]), prime=prime, use_cache=True),
                       m.sample(text, _gens([0, 1]), prime=prime, use_cache=False))


def test_top_k_and_top_p_filter_the_image_vocabulary():
    logits = torch.tensor([[5.0, 4.0, 3.0, -2.0, -3.0]])
    draws = {int(pick(logits, -torch.log(-torch.log(torch.rand(1, 5))), SampleOptions(top_k=2))) for _ in range(300)}
    assert draws == {0, 1}
    # probabilities ~ [0.665, 0.245, 0.09, ...]: top_p=0.8 keeps the first two
    draws = {int(pick(logits, -torch.log(-torch.log(torch.rand(1, 5))), SampleOptions(top_p=0.8))) for _ in range(300)}
    assert draws == {0, 1}
    draws = {int(pick(logits, -torch.log(-torch.log(torch.rand(1, 5))), SampleOptions(top_p=0.5))) for _ in range(100)}
    assert draws == {0}


def test_guidance_rows_are_wired_right():
    """u + s(c - u): s = 0 samples the unconditional model (all-[PAD] text) exactly; s = 1 the conditional."""
    m = _model()
    text = torch.randint(2, 40, (3, 6))
    pad = torch.zeros_like(text)
    assert torch.equal(m.sample(text, _gens([4, 5, 6]), SampleOptions(guidance_scale=0.0)),
                       m.sample(pad, _gens([4, 5, 6]), SampleOptions(guidance_scale=1.0)))
    assert torch.equal(m.sample(text, _gens([4, 5, 6]), SampleOptions(guidance_scale=1.0 + 1e-9)),
                       m.sample(text, _gens([4, 5, 6]), SampleOptions(guidance_scale=1.0)))


@pytest.mark.parametrize("bad, msg", [
    (SampleOptions(temperature=0), "temperature"),
    (SampleOptions(top_k=0), "top_k"),
    (SampleOptions(top_p=1.5), "top_p"),
    (SampleOptions(guidance_scale=-1), "guidance_scale"),
])
def test_bad_sampling_options(bad, msg):
    with pytest.raises(ValueError, match=msg):
        _model().sample(torch.zeros(1, 6, dtype=torch.long), _gens([0]), bad)


def test_bf16_autocast_sampling_runs_and_matches_mostly():
    m = _model()
    text = torch.randint(2, 40, (4, 6))
    ref = m.sample(text, _gens(range(4)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = m.sample(text, _gens(range(4)))
    assert low.shape == ref.shape
    assert (low == ref).float().mean() > 0.5  # same noise; bf16 rounding flips only near-ties


def test_explicit_attention_matches_sdpa():
    """The CPU-bf16 training path (explicit softmax) and scaled_dot_product_attention agree."""
    from wordbrush.nn.transformer import SelfAttention, attention_weights

    torch.manual_seed(0)
    att = SelfAttention(32, 4)
    x = torch.randn(2, 10, 32)
    ref = att(x)  # float32 -> sdpa
    q = torch.randn(2, 4, 10, 8)
    w = attention_weights(q, q, causal=True)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 10)) and (w.triu(1) == 0).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb = x.clone().requires_grad_()
        low = att(xb)  # bf16 + grad -> explicit path
    assert (low.float() - ref).abs().max() < 0.05
    low.float().sum().backward()
    assert torch.isfinite(xb.grad).all()

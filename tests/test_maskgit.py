"""The maskgit generator: masked-token loss, parallel decoding (seeds, guidance, priming, schedule), learning."""

import math

import pytest
import torch
from conftest import generators as _gens

from wordbrush.generators.maskgit import MaskGIT, MaskGITConfig
from wordbrush.generators.options import SampleOptions

CFG = MaskGITConfig(text_vocab=40, text_len=6, image_vocab=24, image_grid=3, dim=32, depth=2, heads=4, text_depth=1)


def _model(seed=0):
    torch.manual_seed(seed)
    return MaskGIT(CFG).eval()


def test_loss_is_on_masked_tokens_and_learns():
    torch.manual_seed(0)
    m = MaskGIT(CFG)
    text = torch.randint(2, 40, (8, 6))
    image = torch.randint(0, 24, (8, 9))
    out = m(text, image)
    assert out.text.item() == 0.0 and torch.equal(out.loss, out.image)
    assert abs(out.image.item() - math.log(24)) < 0.3  # ~uniform at init
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(80):
        loss = m(text, image).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    assert m(text, image).loss.item() < 0.5 * out.image.item()  # it memorises a fixed batch from any mask


def test_every_position_sees_every_other():
    """Bidirectional: changing the last image token changes the logits of the first."""
    m = _model()
    ctx = m.text_encoder(torch.randint(2, 40, (1, 6)))
    tokens = torch.full((1, 9), m.mask_id)
    a = m.logits(ctx, tokens)
    tokens[0, 8] = 3
    assert not torch.allclose(a[0, 0], m.logits(ctx, tokens)[0, 0])


def test_sampling_fills_every_token_and_an_image_depends_only_on_its_seed():
    m = _model()
    text = torch.randint(2, 40, (3, 6))
    out = m.sample(text, _gens([7, 8, 9]), SampleOptions(guidance_scale=2.0))
    assert out.shape == (3, 9) and (out < CFG.image_vocab).all() and (out >= 0).all()
    assert torch.equal(out, m.sample(text, _gens([7, 8, 9]), SampleOptions(guidance_scale=2.0)))
    alone = m.sample(text[1:2], _gens([8]), SampleOptions(guidance_scale=2.0))
    assert torch.equal(alone[0], out[1])  # the batch around it does not matter
    assert not torch.equal(out, m.sample(text, _gens([1, 2, 3]), SampleOptions(guidance_scale=2.0)))


@pytest.mark.parametrize("steps", [1, 2, 5, 9, 30])
def test_any_number_of_steps_completes_the_image(steps):
    out = _model().sample(torch.randint(2, 40, (2, 6)), _gens([0, 1]), SampleOptions(steps=steps))
    assert (out < CFG.image_vocab).all()


def test_steps_follow_the_cosine_schedule():
    """Count the [MASK] tokens the trunk sees at each step: N, then floor(N cos(pi/2 t/K)), never stalling."""
    m = _model()
    seen = []
    original = m.logits
    m.logits = lambda ctx, tokens: (seen.append(int((tokens[0] == m.mask_id).sum())), original(ctx, tokens))[1]
    m.sample(torch.randint(2, 40, (1, 6)), _gens([0]), SampleOptions(steps=4))
    assert seen == [9] + [int(9 * math.cos(math.pi / 2 * t / 4)) for t in (1, 2, 3)]


def test_guidance_rows_are_wired_right():
    m = _model()
    text = torch.randint(2, 40, (3, 6))
    pad = torch.zeros_like(text)
    assert torch.equal(m.sample(text, _gens([4, 5, 6]), SampleOptions(guidance_scale=0.0)),
                       m.sample(pad, _gens([4, 5, 6]), SampleOptions(guidance_scale=1.0)))
    before = text.clone()
    m.sample(text, _gens([4, 5, 6]), SampleOptions(guidance_scale=3.0))
    assert torch.equal(text, before)  # the prompt is never modified


def test_priming_keeps_the_given_tokens():
    m = _model()
    prime = torch.randint(0, 24, (2, 4))
    out = m.sample(torch.randint(2, 40, (2, 6)), _gens([0, 1]), SampleOptions(steps=3), prime=prime)
    assert torch.equal(out[:, :4], prime)
    with pytest.raises(ValueError, match="prime"):
        m.sample(torch.randint(2, 40, (1, 6)), _gens([0]), prime=torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("bad, msg", [
    (SampleOptions(steps=0), "steps"),
    (SampleOptions(choice_temperature=-1), "choice_temperature"),
    (SampleOptions(top_k=0), "top_k"),
])
def test_bad_sampling_options(bad, msg):
    with pytest.raises(ValueError, match=msg):
        _model().sample(torch.zeros(1, 6, dtype=torch.long), _gens([0]), bad)

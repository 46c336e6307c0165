"""Faster sampling draws what the sampler drew before: the static KV cache (eager) gives the recorded tokens of the
growing one exactly, float32 and bfloat16; torch.compile'd sampling (pipe.compile()) gives the eager tokens in
float32, at any batch size (padded rows never leak), for dalle and maskgit, and the gan's pixels; and a machine
where compiling does not work samples eager after one warning."""

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import generators as _gens

from wordbrush import TextToImagePipeline
from wordbrush.errors import WordbrushError
from wordbrush.generators.dalle import DALLE, DalleConfig
from wordbrush.generators.maskgit import MaskGIT, MaskGITConfig
from wordbrush.generators.options import SampleOptions
from wordbrush.nn import compiled
from wordbrush.utils.hardware import cpu_has_fast_bf16

RECORDED = json.loads((Path(__file__).parent / "data" / "dalle_tokens.json").read_text())
# bfloat16 matmuls round differently on AMX tiles, on AVX512-BF16 and where oneDNN emulates bf16 (no native
# bfloat16): the bf16 cases compare against tokens recorded on a CPU of the same kind (float32 tokens are the same
# on every machine seen)
AMX = "amx_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else False
BF16_TOKENS = "tokens_amx" if AMX else "tokens" if cpu_has_fast_bf16() else "tokens_emulated"


TINY = DalleConfig(text_vocab=40, text_len=6, image_vocab=24, image_grid=3, dim=32, depth=2, heads=4)


def _recorded(case):
    return case[BF16_TOKENS] if case["dtype"] == "bfloat16" else case["tokens"]


def _options(pipe, guidance):
    o = copy.copy(pipe.sampling)
    o.candidates = 1
    if guidance is not None:
        o.guidance_scale = guidance
    return o


def _draw(pipe, case):
    n = RECORDED["batch_size"]
    _, tokens = pipe.draw(RECORDED["prompts"][:n], RECORDED["seeds"][:n], _options(pipe, case["guidance"]),
                          batch_size=n)
    return tokens


@pytest.mark.parametrize("model", sorted({c["model"] for c in RECORDED["cases"]}))
def test_static_cache_draws_the_recorded_tokens(model):
    torch.set_num_threads(1)
    pipe = TextToImagePipeline.from_pretrained(model)
    low = copy.deepcopy(pipe).to(dtype=torch.bfloat16)
    for case in (c for c in RECORDED["cases"] if c["model"] == model):
        tokens = _draw(low if case["dtype"] == "bfloat16" else pipe, case)
        assert tokens.tolist() == _recorded(case), (case["dtype"], case["guidance"])


@pytest.mark.parametrize("rows,options,prime", [
    (3, SampleOptions(), 0),  # 3 rows run as 4: the padded row must not change the others
    (4, SampleOptions(guidance_scale=3.0, top_k=5, temperature=0.8), 2),
])
def test_compiled_dalle_draws_the_eager_tokens(rows, options, prime):
    torch.manual_seed(0)
    m = DALLE(TINY).eval()
    text = torch.randint(2, 40, (rows, 6))
    p = torch.randint(0, 24, (rows, prime)) if prime else None
    eager = m.sample(text, _gens(range(rows)), options, prime=p)
    m.compile_sampling()
    assert m.compiled_rows(rows) == 4
    fast = m.sample(text, _gens(range(rows)), options, prime=p)
    assert torch.equal(fast, eager) and fast.shape == (rows, 9)
    step = m._compiled["decode_step"]
    assert not step.eager_only and step.ahead_of_time  # it really ran the AOTInductor package
    assert len(step.packages) == 1  # one package for every length of the filled prefix


def test_compiled_maskgit_draws_the_eager_tokens():
    torch.manual_seed(0)
    m = MaskGIT(MaskGITConfig(text_vocab=40, text_len=6, image_vocab=24, image_grid=3, dim=32, depth=2,
                              heads=4)).eval()
    text = torch.randint(2, 40, (3, 6))
    options = SampleOptions(guidance_scale=2.0, steps=4)
    eager = m.sample(text, _gens(range(3)), options)
    m.compile_sampling()
    assert torch.equal(m.sample(text, _gens(range(3)), options), eager)
    assert not m._compiled["logits"].eager_only


def test_without_a_compiler_sampling_runs_eager_after_one_warning(monkeypatch):
    monkeypatch.setattr(compiled, "compiler_missing", lambda device: "no C++ compiler (test)")
    torch.manual_seed(0)
    m = DALLE(TINY).eval()
    text = torch.randint(2, 40, (2, 6))
    eager = m.sample(text, _gens(range(2)))
    m.compile_sampling()
    with pytest.warns(UserWarning, match="not compiled .no C.. compiler .test.*sampling runs eager"):
        first = m.sample(text, _gens(range(2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        again = m.sample(text, _gens(range(2)))
    assert torch.equal(first, eager) and torch.equal(again, eager)


def test_a_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(fn, **kw):
        def fail(*a):
            raise RuntimeError("inductor: C++ compile error (test)")
        return fail

    def broken_aot(*a, **kw):
        raise RuntimeError("aoti: C++ compile error (test)")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", broken_aot)
    torch.manual_seed(0)
    m = DALLE(TINY).eval()
    text = torch.randint(2, 40, (2, 6))
    eager = m.sample(text, _gens(range(2)))
    m.compile_sampling()
    with pytest.warns(UserWarning) as caught:  # ahead of time fails, then torch.compile: the eager step
        assert torch.equal(m.sample(text, _gens(range(2))), eager)
    said = [str(w.message) for w in caught]
    assert any("not compiled ahead of time (RuntimeError: aoti: C++ compile error" in w for w in said), said
    assert any("RuntimeError: inductor: C++ compile error" in w and "runs eager" in w for w in said), said
    assert m._compiled["decode_step"].eager_only


def test_a_copied_or_uncompiled_model_keeps_no_compiled_state():
    torch.manual_seed(0)
    m = DALLE(TINY).eval()
    m.compile_sampling()
    m.sample(torch.randint(2, 40, (2, 6)), _gens(range(2)))
    c = copy.deepcopy(m)
    assert m._compiled["decode_step"].packages
    assert not c._compiled["decode_step"].packages and c._compiled["decode_step"].fn.__self__ is c
    assert c._compiled["decode_step"].dynamic.__self__ is c
    m.compile_sampling(False)
    assert m._compiled is None and m.compiled_rows(3) == 3


@pytest.mark.slow
def test_compiled_builtin_model_draws_the_recorded_float32_tokens():
    torch.set_num_threads(1)
    pipe = TextToImagePipeline.from_pretrained("shapes").compile()
    for case in (c for c in RECORDED["cases"] if c["model"] == "shapes" and c["dtype"] == "float32"):
        assert _draw(pipe, case).tolist() == case["tokens"], case["guidance"]


def test_compiled_gan_draws_the_eager_pixels():
    from test_clip import tiny_scorer
    from test_gan import tiny_gan

    g = tiny_gan(tiny_scorer()).eval()
    text = torch.randint(2, g.text_vocab, (2, g.text_len))
    eager = g.sample(text, _gens(range(2)))
    g.compile_sampling()
    fast = g.sample(text, _gens(range(2)))
    assert not g._compiled["forward"].eager_only
    torch.testing.assert_close(fast, eager, atol=1e-4, rtol=0)  # fused kernels round differently, nothing more


def test_a_bf16_decoder_draws_the_same_tokens_and_nearly_the_same_pixels():
    torch.set_num_threads(1)
    pipe = TextToImagePipeline.from_pretrained("shapes")
    low = copy.deepcopy(pipe).to(decoder_dtype=torch.bfloat16)
    assert low.vae.decoder.net[0].weight.dtype == torch.bfloat16 and low.vae.encoder.net[0].weight.dtype == torch.float32
    a = pipe(["a red circle", "two blue squares"], num_images_per_prompt=2, seed=0)
    b = low(["a red circle", "two blue squares"], num_images_per_prompt=2, seed=0)
    assert torch.equal(a.tokens, b.tokens)
    for x, y in zip(a.images, b.images):
        assert abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).max() <= 8
    with pytest.raises(WordbrushError, match="floating-point"):
        copy.deepcopy(pipe).to(decoder_dtype=torch.int8)


def test_an_ahead_of_time_step_never_runs_stale_weights():
    torch.manual_seed(0)
    m = DALLE(TINY).eval()
    text = torch.randint(2, 40, (4, 6))
    m.compile_sampling()
    before = m.sample(text, _gens(range(4)))
    with torch.no_grad():  # in place, as an optimizer step does: every weight's version counter moves
        for p in m.parameters():
            p.mul_(-1.5)
    after = m.sample(text, _gens(range(4)))
    head = next(mod for mod in m.modules() if isinstance(mod, torch.nn.Linear) and mod.out_features == TINY.image_vocab)
    head.weight = torch.nn.Parameter(head.weight.detach().flip(0))  # a parameter replaced, not changed in place
    replaced = m.sample(text, _gens(range(4)))
    m.compile_sampling(False)
    assert torch.equal(replaced, m.sample(text, _gens(range(4)))) and not torch.equal(replaced, after)
    head.weight = torch.nn.Parameter(head.weight.detach().flip(0))
    assert torch.equal(after, m.sample(text, _gens(range(4)))) and not torch.equal(after, before)


def test_a_compiled_pipeline_decodes_the_eager_pixels():
    from conftest import tiny_pipeline

    pipe = tiny_pipeline()
    prompts, seeds = ["a red circle", "two blue squares", "a green cross"], [0, 1, 2]
    eager_images, eager_tokens = pipe.draw(prompts, seeds)
    pipe.compile()
    images, tokens = pipe.draw(prompts, seeds)  # 3 images: their codes decoded padded to 4 rows
    assert torch.equal(tokens, eager_tokens)
    for a, b in zip(images, eager_images):
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1
    if compiled.compiler_missing(torch.device("cpu")) is None:
        assert pipe.vae._compiled["decode"].ahead_of_time
    pipe.compile(False)
    assert pipe.vae._compiled is None and pipe.draw(prompts, seeds)[1].equal(eager_tokens)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_a_repeated_prompt_is_prefilled_once_with_the_eager_tokens(guidance):
    torch.manual_seed(0)
    m = DALLE(TINY).eval()
    text = torch.randint(2, 40, (2, 6)).repeat(4, 1)  # 2 prompts x 4 images; with guidance + 1 unconditional row
    options = SampleOptions(guidance_scale=guidance)
    eager = m.sample(text, _gens(range(8)), options)
    m.compile_sampling()
    assert torch.equal(m.sample(text, _gens(range(8)), options), eager)
    if compiled.compiler_missing(torch.device("cpu")) is None:
        prefill = m._compiled["prefill"]
        distinct = 2 if guidance == 1.0 else 4  # 3 distinct rows run as 4
        assert prefill.ahead_of_time and [key[0][0][0] for key in prefill.packages] == [distinct]


def test_an_ahead_of_time_step_reads_inputs_of_any_strides():
    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + x[:, :1]

    if compiled.compiler_missing(torch.device("cpu")) is not None:
        pytest.skip("no C++ compiler")
    torch.manual_seed(0)
    step = Step().eval()
    run = compiled.AheadOfTime(step.forward, "test step")
    rows = torch.randn(4, 8)
    columns = torch.randn(8, 4).t()  # (4, 8) too, its elements laid out by column
    with torch.no_grad():
        for x in (rows, columns, rows, columns):
            assert torch.allclose(run(x), step(x), atol=1e-5)
    assert run.ahead_of_time and len(run.packages) == 2  # one package per layout


def test_an_ahead_of_time_step_with_a_variable_dimension_builds_once():
    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:  # x (4, 8), bank (n, 8)
            return self.lin(x) @ bank.t()  # (4, n)

        def dims(self, x: torch.Tensor, bank: torch.Tensor) -> tuple:
            return None, {0: torch.export.Dim("n", min=2, max=64)}

    if compiled.compiler_missing(torch.device("cpu")) is not None:
        pytest.skip("no C++ compiler")
    torch.manual_seed(0)
    step = Step().eval()
    run = compiled.AheadOfTime(step.forward, "test step", step.dims)
    x, bank = torch.randn(4, 8), torch.randn(64, 8)
    with torch.no_grad():
        for n in (5, 17, 40, 5):
            assert torch.allclose(run(x, bank[:n]), step(x, bank[:n]), atol=1e-5)
        loop = run.bind(x, bank[:3])  # the package for this layout, checked once
        for n in (3, 9, 64):
            assert torch.allclose(loop(x, bank[:n]), step(x, bank[:n]), atol=1e-5)
    assert run.ahead_of_time and len(run.packages) == 1


def test_prefix_attention_attends_as_the_masked_whole_cache_does():
    from wordbrush.nn.transformer import decode_attention, prefix_attention

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 1, 8), torch.randn(3, 2, 10, 8), torch.randn(3, 2, 10, 8)
    for n in (1, 4, 10):
        keep = torch.arange(10) < n
        kt = k.transpose(-1, -2).contiguous()[..., :n]  # (B, h, d, n): a prefix_only cache's keys
        assert torch.allclose(prefix_attention(q, kt, v[:, :, :n]), decode_attention(q, k, v, keep), atol=1e-6)

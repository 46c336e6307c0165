"""A model folder is untrusted input: every malformed one is one error line and exit 2 from `wordbrush generate
--model DIR` (TextToImagePipeline.from_pretrained, CLIPScorer.from_pretrained and load_vae raise one
CheckpointError), never a traceback, never a large allocation, and nothing outside the folder is read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import tiny_pipeline
from wordbrush.cli import main
from wordbrush.clip import CLIP, CLIPConfig, CLIPScorer
from wordbrush.errors import CheckpointError
from wordbrush.image.vae import load_vae
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.text.tokenizer import TextTokenizer

SECRET = "SECRET-7f3a: this file lies outside the model folder"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A tiny saved dalle pipeline with a CLIP folder beside its parts."""
    root = tmp_path_factory.mktemp("good")
    pipe = tiny_pipeline()
    torch.manual_seed(0)
    tok = TextTokenizer.train(["a red circle", "two blue squares"], 60)
    cfg = CLIPConfig(text_vocab=tok.vocab_size, text_len=8, text_dim=32, text_depth=1, text_heads=4, image_size=32,
                     image_channels=(8, 16), embed_dim=16)
    pipe.clip = CLIPScorer(CLIP(cfg), tok)
    return pipe.save_pretrained(root / "model")


@pytest.fixture
def model(good, tmp_path) -> Path:
    """A fresh copy of the good folder, to break; beside it `outside/` holds what must never be read."""
    folder = tmp_path / "model"
    shutil.copytree(good, folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    shutil.copytree(good, outside / "other")  # a good model, so that a followed link would load without a word
    return folder


def config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def put(folder: Path, data) -> None:
    (folder / "config.json").write_text(json.dumps(data))


def edit(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    """A case that changes config.json's parsed contents."""
    def apply(folder: Path) -> None:
        data = config(folder)
        fn(data)
        put(folder, data)
    return apply


def raw(text: str | bytes) -> Callable[[Path], None]:
    """A case that writes config.json as given."""
    def apply(folder: Path) -> None:
        (folder / "config.json").write_bytes(text.encode() if isinstance(text, str) else text)
    return apply


def weights(name: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        state = load_file(str(folder / name))
        fn(state)
        save_file(state, str(folder / name))
    return apply


def replace_with(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    """A case that replaces part `name` with whatever make(path) creates there."""
    def apply(folder: Path) -> None:
        path = folder / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        make(path)
    return apply


def link_to(target: Callable[[Path], Path]) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target(path.parent))


def set_(path: str, value) -> Callable[[dict], None]:
    """data[a][b]... = value for a dotted path."""
    *parents, leaf = path.split(".")

    def fn(data: dict) -> None:
        for p in parents:
            data = data[p]
        data[leaf] = value
    return fn


def nan_in(name: str) -> Callable[[dict], None]:
    def fn(state: dict) -> None:
        state[name] = torch.full_like(state[name], float("nan"))
    return fn


def first_float(state: dict) -> str:
    return next(k for k, v in sorted(state.items()) if v.is_floating_point())


def cut(name: str, keep: float) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])
    return apply


def wordlevel_without_pad(path: Path) -> None:
    from tokenizers import Tokenizer, models
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(path))


def minilm_tokenizer(path: Path) -> None:  # a real tokenizer of 30,522 tokens for a generator that embeds 300
    from wordbrush.text.minilm import model_dir
    shutil.copy(model_dir() / "tokenizer.json", path)


DEEP = '{"wordbrush_version": "0", "kind": "pipeline", "config": ' + "[" * 200_000 + "]" * 200_000 + "}"

CASES = {  # name -> (how to break a good folder, a word the error line must hold)
    # config.json's shape
    "config is a list": (edit(set_("config", [1, 2])), "'config' must be an object"),
    "config is a string": (edit(set_("config", "dalle")), "'config' must be an object"),
    "config is a number": (edit(set_("config", 7)), "'config' must be an object"),
    "config missing": (edit(lambda d: d.pop("config")), "'config' must be an object"),
    "top level a list": (raw("[1, 2, 3]"), "does not hold a JSON object"),
    "nested 200,000 deep": (raw(DEEP), "nested too deeply"),
    "larger than 1 MB": (edit(set_("wordbrush_version", "x" * 1_100_000)), "larger than 1,048,576 bytes"),
    "truncated JSON": (raw('{"kind": "pipeline", "config": {'), "not valid JSON"),
    "not UTF-8": (raw(b'{"kind": "\xff\xfe"}'), "not valid JSON"),
    "an integer of 5000 digits": (raw('{"kind": "pipeline", "config": {"dalle": {"dim": ' + "9" * 5000 + "}}}"),
                                  "not valid JSON"),
    "kind missing": (edit(lambda d: d.pop("kind")), "'kind' must be a string"),
    "kind a list": (edit(set_("kind", ["pipeline"])), "'kind' must be a string"),
    "kind another model": (edit(set_("kind", "vae")), "holds a 'vae' model"),
    "version a number": (edit(set_("wordbrush_version", 3)), "'wordbrush_version' must be a string"),
    # unknown keys at every level
    "unknown top-level key": (edit(set_("license", "MIT")), "unknown key 'license' at the top level"),
    "unknown key in config": (edit(set_("config.colour", "red")), "unknown key 'colour'"),
    "another family's key": (edit(set_("config.maskgit", {})), "unknown key 'maskgit'"),
    "unknown key in the generator": (edit(set_("config.dalle.dimm", 32)), "unknown key 'dimm'"),
    "unknown key in the vae": (edit(set_("config.vae.codes", 32)), "unknown key 'codes'"),
    "unknown key in sampling": (edit(set_("config.sampling.beam", 4)), "unknown key 'beam'"),
    # wrong types and values
    "generator a list": (edit(set_("config.generator", ["dalle"])), "unknown generator"),
    "generator unknown": (edit(set_("config.generator", "diffusion")), "unknown generator 'diffusion'"),
    "dim a string": (edit(set_("config.dalle.dim", "32")), "expected an integer"),
    "depth a fraction": (edit(set_("config.dalle.depth", 6.5)), "expected an integer"),
    "heads true": (edit(set_("config.dalle.heads", True)), "expected an integer"),
    "channels a string": (edit(set_("config.vae.channels", "abc")), "expected a list"),
    "vae a list": (edit(set_("config.vae", [8, 16])), "expected a table/object"),
    "sampling a string": (edit(set_("config.sampling", "greedy")), "expected a table/object"),
    "temperature NaN": (raw(None), "expected a finite number"),  # written by the test below: JSON has no NaN
    "heads 0": (edit(set_("config.dalle.heads", 0)), "heads"),
    "negative dim": (edit(set_("config.dalle.dim", -32)), "cannot be built"),
    "a float of 400 digits": (edit(set_("config.sampling.temperature", 10**400)), "finite number"),
    # sizes the weights do not have: refused before anything is allocated
    "dim 65536": (edit(set_("config.dalle.dim", 65536)), "the limit is 2,000,000,000"),
    "depth 1,000,000": (edit(set_("config.dalle.depth", 1_000_000)), "far larger than dalle.safetensors"),
    "depth 10**100": (edit(set_("config.dalle.depth", 10**100)), "dalle"),
    "num_codes 1e9": (edit(lambda d: (set_("config.vae.num_codes", 10**9)(d), set_("config.dalle.image_vocab",
                                                                                   10**9)(d))), "limit"),
    "image_grid 100000": (edit(set_("config.dalle.image_grid", 100_000)), "dalle"),
    "vae image_size 2**20": (edit(set_("config.vae.image_size", 2**20)), "more than the 8,192 pixels"),
    "clip image_size 2**20": (lambda f: edit(set_("config.image_size", 2**20))(f / "clip"), "8,192 pixels"),
    "dim 64, weights of 32": (edit(set_("config.dalle.dim", 64)), "has shape"),
    "vae channels that differ": (edit(set_("config.vae.channels", [16, 16])), "vae: tensor"),
    # weights
    "NaN weights": (weights("dalle.safetensors", lambda s: nan_in(first_float(s))(s)), "NaN or infinite"),
    "infinite vae weights": (weights("vae.safetensors", lambda s: s.__setitem__(
        first_float(s), torch.full_like(s[first_float(s)], float("inf")))), "NaN or infinite"),
    "NaN in the clip": (lambda f: weights("clip/clip.safetensors", lambda s: nan_in(first_float(s))(s))(f),
                        "NaN or infinite"),
    "truncated weights": (cut("dalle.safetensors", 0.5), "cannot read"),
    "weights cut to 4 bytes": (cut("vae.safetensors", 0.0000001), "cannot read"),
    "zero-byte weights": (cut("vae.safetensors", 0), "cannot read"),
    "a header claiming 1 EB": (lambda f: (f / "vae.safetensors").write_bytes(b"\xff" * 64), "cannot read"),
    "weights a folder": (replace_with("dalle.safetensors", lambda p: p.mkdir()), "is not a file"),
    "weights missing": (lambda f: (f / "vae.safetensors").unlink(), "not found"),
    "extra tensor": (weights("dalle.safetensors", lambda s: s.__setitem__("surplus", torch.zeros(2))),
                     "unexpected tensor 'surplus'"),
    # tokenizer
    "tokenizer missing": (lambda f: (f / "tokenizer.json").unlink(), "tokenizer"),
    "tokenizer a folder": (replace_with("tokenizer.json", lambda p: p.mkdir()), "is not a file"),
    "tokenizer.json not a tokenizer": (lambda f: (f / "tokenizer.json").write_text('{"hello": 1}'), "tokenizer"),
    "tokenizer.json garbage": (lambda f: (f / "tokenizer.json").write_bytes(b"\x00\xff" * 100), "tokenizer"),
    "tokenizer without [PAD]": (replace_with("tokenizer.json", wordlevel_without_pad), "[PAD] must be id 0"),
    "tokenizer larger than the model reads": (replace_with("tokenizer.json", minilm_tokenizer), "tokens"),
    # parts that are links out of the folder: refused unread
    "tokenizer.json -> a file outside": (replace_with("tokenizer.json", link_to(lambda f: f.parent / "outside" /
                                                                                 "secret.txt")), "outside the model"),
    "tokenizer.json -> /etc/passwd": (replace_with("tokenizer.json", link_to(lambda f: Path("/etc/passwd"))),
                                      "outside the model"),
    "vae.safetensors -> ../outside/other/vae": (replace_with("vae.safetensors", link_to(
        lambda f: Path("..") / "outside" / "other" / "vae.safetensors")), "outside the model"),
    "dalle.safetensors -> a good one outside": (replace_with("dalle.safetensors", link_to(
        lambda f: f.parent / "outside" / "other" / "dalle.safetensors")), "outside the model"),
    "config.json -> a good one outside": (replace_with("config.json", link_to(
        lambda f: f.parent / "outside" / "other" / "config.json")), "outside the model"),
    "clip -> /etc": (replace_with("clip", link_to(lambda f: Path("/etc"))), "outside the model"),
    "clip -> a good clip outside": (replace_with("clip", link_to(lambda f: f.parent / "outside" / "other" / "clip")),
                                    "outside the model"),
    "clip/tokenizer.json -> outside": (replace_with("clip/tokenizer.json", link_to(
        lambda f: f.parent.parent / "outside" / "secret.txt")), "outside the model"),
    "weights a link loop": (replace_with("dalle.safetensors", link_to(lambda f: f / "dalle.safetensors")), "dalle"),
    # the clip folder
    "clip a file": (replace_with("clip", lambda p: p.write_text("x")), "is not a folder"),
    "clip holds a vae": (lambda f: edit(set_("kind", "vae"))(f / "clip"), "not a CLIP"),
    "clip config a list": (lambda f: edit(set_("config", []))(f / "clip"), "'config' must be an object"),
}


def break_folder(folder: Path, case: str) -> None:
    if case == "temperature NaN":
        (folder / "config.json").write_text(json.dumps(config(folder)).replace('"temperature": 1.0',
                                                                                 '"temperature": NaN'))
        assert "NaN" in (folder / "config.json").read_text()
        return
    CASES[case][0](folder)


class Reads:
    """Records every path opened while a folder loads: Python's own opens through an audit hook, and what the
    Rust readers (safetensors, tokenizers) are handed through the names wordbrush calls them by."""

    active: list[str] | None = None

    @staticmethod
    def hook(event: str, args) -> None:
        if Reads.active is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            Reads.active.append(os.fsdecode(args[0]))


sys.addaudithook(Reads.hook)


@pytest.fixture
def reads(monkeypatch):
    import safetensors

    import wordbrush.checkpoint as checkpoint
    import wordbrush.text.tokenizer as tokenizer

    seen: list[str] = []

    def spy(fn):
        def wrapped(path, *a, **k):
            seen.append(str(path))
            return fn(path, *a, **k)
        return wrapped

    monkeypatch.setattr(checkpoint, "safe_open", spy(safetensors.safe_open))
    monkeypatch.setattr(checkpoint, "load_file", spy(checkpoint.load_file))
    monkeypatch.setattr(tokenizer, "Tokenizer", _SpyTokenizer(tokenizer.Tokenizer.from_file, seen))
    Reads.active = seen
    yield seen
    Reads.active = None


class _SpyTokenizer:
    """Stands in for tokenizers.Tokenizer inside wordbrush.text.tokenizer: records what from_file is handed."""

    def __init__(self, from_file, seen):
        self._from_file, self._seen = from_file, seen

    def from_file(self, path):
        self._seen.append(str(path))
        return self._from_file(path)


def outside(paths: list[str], folder: Path) -> list[str]:
    """The paths, among those read, that lie outside the model folder and outside the installed software."""
    root = folder.resolve()
    software = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(__file__).resolve().parents[1]]
    bad = []
    for p in paths:
        real = Path(p).resolve()
        if real.is_relative_to(root) or any(real.is_relative_to(s) for s in software) or "__pycache__" in p:
            continue
        if real.is_relative_to(Path("/proc")) or real.is_relative_to(Path("/sys")) or real.is_relative_to(Path("/dev")):
            continue
        bad.append(p)
    return bad


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_folder_is_one_line_and_reads_nothing_outside(model, case, capsys, reads):
    break_folder(model, case)
    reads.clear()  # what breaking the folder read is no part of loading it
    try:
        code = main(["generate", "a red circle", "--model", str(model), "-n", "1", "--out", str(model.parent / "o")])
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("wordbrush: error:") and "Traceback" not in err, err
    assert CASES[case][1] in err, err
    assert not (model.parent / "o").exists() or not any((model.parent / "o").rglob("*.png"))
    assert SECRET not in captured.err + captured.out and "root:" not in err
    assert outside(reads, model) == [], outside(reads, model)


def test_the_good_folder_loads_and_links_inside_it_are_fine(model, tmp_path, reads):
    """The control: the unbroken copy draws, through links that stay inside the folder and a folder that is
    itself a link."""
    TextToImagePipeline.from_pretrained(model)("a red circle")
    (model / "parts").mkdir()
    (model / "vae.safetensors").rename(model / "parts" / "vae.safetensors")
    (model / "vae.safetensors").symlink_to(Path("parts") / "vae.safetensors")
    (tmp_path / "alias").symlink_to(model)
    reads.clear()
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "alias")
    assert pipe.clip is not None and len(pipe("a red circle").images) == 1
    assert outside(reads, model) == []


@pytest.mark.parametrize("case", ["config is a list", "nested 200,000 deep", "tokenizer.json -> /etc/passwd",
                                  "dim 65536", "NaN weights"])
def test_the_real_command_line(model, case):
    break_folder(model, case)
    r = subprocess.run([sys.executable, "-m", "wordbrush", "generate", "a red circle", "--model", str(model), "-n",
                        "1", "--out", str(model.parent / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and CASES[case][1] in r.stderr, r.stderr
    assert "root:" not in r.stderr + r.stdout


@pytest.mark.parametrize("case", ["config is a list", "nested 200,000 deep", "unknown top-level key",
                                  "vae channels that differ", "infinite vae weights",
                                  "vae.safetensors -> ../outside/other/vae", "num_codes 1e9"])
def test_load_vae_checks_the_same(model, case, reads):
    break_folder(model, case)
    reads.clear()
    with pytest.raises(CheckpointError) as e:
        load_vae(model)
    assert "\n" not in str(e.value) and CASES[case][1] in str(e.value)
    assert outside(reads, model) == []


@pytest.mark.parametrize("case", ["config is a list", "nested 200,000 deep", "unknown top-level key",
                                  "NaN in the clip", "tokenizer.json -> a file outside", "dim 65536",
                                  "depth 1,000,000", "clip.safetensors -> outside"])
def test_clip_from_pretrained_checks_the_same(model, case, reads):
    clip = model / "clip"
    if case == "NaN in the clip":
        break_folder(model, case)
    elif case == "clip.safetensors -> outside":
        (clip / "clip.safetensors").unlink()
        (clip / "clip.safetensors").symlink_to(model.parent / "outside" / "other" / "clip" / "clip.safetensors")
    elif case in ("dim 65536", "depth 1,000,000"):
        edit(set_("config.text_dim" if case == "dim 65536" else "config.text_depth",
                  65536 if case == "dim 65536" else 1_000_000))(clip)
    else:
        break_folder(clip, case)
    reads.clear()
    with pytest.raises(CheckpointError) as e:
        CLIPScorer.from_pretrained(clip)
    msg = str(e.value)
    assert "\n" not in msg and SECRET not in msg
    want = {"dim 65536": "the limit is", "depth 1,000,000": "far larger", "clip.safetensors -> outside":
            "outside the model"}.get(case) or CASES[case][1]
    assert want in msg, msg
    assert outside(reads, clip) == []


def test_sizes_are_checked_before_anything_is_allocated(model, monkeypatch):
    """An absurd config never reaches a real (CPU) build: only the meta-device shell is made."""
    import wordbrush.generators.dalle as dalle

    built: list[str] = []
    real_init = dalle.DALLE.__init__

    def init(self, cfg):
        built.append(torch.get_default_device().type)
        real_init(self, cfg)

    monkeypatch.setattr(dalle.DALLE, "__init__", init)
    edit(set_("config.dalle.dim", 65536))(model)
    with pytest.raises(CheckpointError, match="limit"):
        TextToImagePipeline.from_pretrained(model)
    assert built == ["meta"]

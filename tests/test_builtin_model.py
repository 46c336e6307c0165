"""The built-in models (`shapes`, `shapes-minilm` with the pretrained text encoder, `emoji` with its CLIP, and
`shapes-gan` where it ships): ship inside the package, load offline, and draw what they are asked for."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wordbrush import TextToImagePipeline
from wordbrush.checkpoint import BUILTIN, builtin_path
from wordbrush.data.specs import ObjSpec, PromptSpec
from wordbrush.eval.judge import judge
from wordbrush.utils.images import to_tensor

SHAPES_MODELS = [n for n in BUILTIN if n.startswith("shapes")]
FILES = {"emoji": ["README.md", "clip", "config.json", "dalle.safetensors", "rewriter", "tokenizer.json",
                   "vae.safetensors"],
         "shapes": ["clip", "config.json", "dalle.safetensors", "rewriter", "tokenizer.json", "vae.safetensors"],
         "shapes-gan": ["config.json", "gan.safetensors", "rewriter", "tokenizer.json"]}
MAX_MB = {"emoji": 46, "shapes": 36}


@pytest.fixture(scope="module", params=SHAPES_MODELS)
def pipe(request):
    return TextToImagePipeline.from_pretrained(request.param)


@pytest.mark.parametrize("name", BUILTIN)
def test_ships_inside_the_package_and_is_small(name):
    folder = builtin_path(name)
    files = sorted(p.name for p in folder.iterdir())
    assert files == FILES.get(name, ["config.json", "dalle.safetensors", "tokenizer.json", "vae.safetensors"])
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= MAX_MB.get(name, 30) * 2**20


@pytest.mark.parametrize("name", BUILTIN)
def test_loads_with_the_network_cut_off(tmp_path, name):
    code = ("from wordbrush import TextToImagePipeline as P; "
            f"print(len(P.from_pretrained({name!r})('a red circle', num_images_per_prompt=2).images))")
    env = {"HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stderr


@pytest.mark.parametrize("spec", [
    PromptSpec("colors", "a red circle", (ObjSpec("circle", "red"),)),
    PromptSpec("colors", "a blue square", (ObjSpec("square", "blue"),)),
    PromptSpec("counting", "two green triangles", (ObjSpec("triangle", "green", 2),)),
])
def test_draws_what_it_is_asked_for(pipe, spec):
    """A known-answer check of the shipped weights: most of 8 seeds pass the scene checker."""
    out = pipe(spec.prompt, num_images_per_prompt=8, seed=100)
    passed = sum(judge(im, spec).ok for im in out.images)
    assert passed >= 6, f"{spec.prompt!r}: {passed}/8 judged right"


def test_cli_generate_with_the_default_model(tmp_path):
    r = subprocess.run([sys.executable, "-m", "wordbrush.cli", "generate", "a red circle to the left of a blue square",
                        "-n", "2", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split()
    assert len(paths) == 3 and all(Path(p).exists() for p in paths)


EMOJI_CAPTIONS = [  # captions of the emoji dataset's training split, one per category
    "grinning face; smileys and emotion; cheerful, cheery, face",
    "dog face; animals and nature; adorbs, animal, dog",
    "red apple; food and drink; apple, diet, food",
    "rocket; travel and places; launch, rockets, space",
    "soccer ball; activities; ball, football, futbol",
    "red heart; smileys and emotion; emotion, heart, love",
    "flag: Japan; flags; JP, flag",
    "waving hand; people and body; bye, cya, g2g",
]


def test_emoji_draws_what_its_clip_recognises():
    """A known-answer check of the shipped emoji weights: for 8 captions of different categories, the shipped
    CLIP picks each image's own caption out of the 8 for most of them."""
    pipe = TextToImagePipeline.from_pretrained("emoji")
    out = pipe(EMOJI_CAPTIONS, seed=0)
    sims = pipe.clip.embed_images(to_tensor(np.stack([np.asarray(im) for im in out.images]))) \
        @ pipe.clip.embed_texts(EMOJI_CAPTIONS).T  # (image, caption)
    right = (sims.argmax(1) == np.arange(8)).sum().item()
    assert right >= 6, f"{right}/8 images picked their own caption"


def test_a_builtin_name_wins_over_a_same_named_folder_without_a_model(tmp_path, monkeypatch):
    (tmp_path / "shapes").mkdir()  # e.g. the dataset a user rendered with `wordbrush data shapes --out shapes`
    monkeypatch.chdir(tmp_path)
    assert TextToImagePipeline.from_pretrained("shapes").generator.kind == "dalle"


def test_emoji_reads_everyday_words_as_its_own_captions():
    """The shipped rewriter (text/rewriter.py): a person's words reach the emoji the model learned under its
    dataset's caption; the captions themselves, and a style asked for, are kept."""
    pipe = TextToImagePipeline.from_pretrained("emoji")
    asked = ["a steaming mug of coffee", "a little rocket flying to space", "a puppy", "the flag of Japan",
             "grinning face; smileys and emotion; cheerful, cheery, face", "a slice of pizza in twitter style"]
    drawn, notes = pipe.revise(asked)
    heads = [d.split(";")[0] for d in drawn]
    assert heads[:2] + heads[3:] == ["hot beverage", "rocket", "flag: Japan", "grinning face", "pizza"]
    assert heads[2] in ("dog", "dog face")
    assert drawn[4] == asked[4] and drawn[5].endswith("; twitter style") and len(notes) == 5
    assert pipe.revise(asked, pipe.sampling_options(rewrite=False))[0] == asked

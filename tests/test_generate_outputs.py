"""`wordbrush generate` never overwrites another call's images: each call writes into a fresh numbered folder under
--out (0001/, 0002/, ...), every file written atomically; calls running at the same time into one --out each find
their own images, and their own whole grid, at the paths they print."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_pipeline
from wordbrush.cli import main
from wordbrush.cli.generate import GRID_MAX, run_folder
from wordbrush.pipeline import TextToImagePipeline
from wordbrush.utils.images import make_grid

PROMPTS = ["a red circle", "two blue squares", "a green cross above a white square", "a small yellow triangle"]
PROCESSES, ROUNDS, N = 4, 3, 2


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("m") / "model")


def test_each_call_takes_the_next_numbered_folder(model, tmp_path, capsys):
    out = tmp_path / "out"
    for expected in ("0001", "0002"):
        assert main(["generate", "a red circle", "--model", str(model), "-n", "2", "--out", str(out)]) == 0
        printed = [Path(p) for p in capsys.readouterr().out.split()]
        assert [p.parent.name for p in printed] == [expected] * 3
        assert [p.name for p in printed] == ["000-a-red-circle-seed0.png", "001-a-red-circle-seed1.png", "grid.png"]
    # the same call twice draws the same images, each into its own folder
    assert Image.open(out / "0001" / "grid.png").tobytes() == Image.open(out / "0002" / "grid.png").tobytes()
    (out / "0009").mkdir()
    (out / "notes").mkdir()
    (out / "0010.png").write_bytes(b"")
    assert run_folder(out).name == "0010"  # one past the highest number; names that are not numbers are ignored


def test_a_number_taken_meanwhile_is_skipped(tmp_path, monkeypatch):
    """Another call may take a number between the listing and the mkdir: the next free one is used."""
    for name in ("0001", "0002"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(Path, "iterdir", lambda self: iter([]))  # a listing taken before the others' mkdirs
    assert run_folder(tmp_path).name == "0003"


WORKER = """
import sys, time
from pathlib import Path
from wordbrush.cli import main
model, out, proc, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
prompts = {prompts!r}
while not go.exists():  # every process starts drawing at the same moment
    time.sleep(0.005)
for r in range({rounds}):
    print("ROUND", proc, r, flush=True)
    code = main(["generate", prompts[(proc + r) % len(prompts)], "--model", model, "-n", "{n}",
                 "--seed", str(1000 * proc + 10 * r), "--out", out])
    sys.stdout.flush()
    assert code == 0
"""


def test_concurrent_calls_into_one_folder_never_share_a_file(model, tmp_path):
    out, go = tmp_path / "out", tmp_path / "go"
    script = WORKER.format(prompts=PROMPTS, rounds=ROUNDS, n=N)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(model), str(out), str(i), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(PROCESSES)]
    time.sleep(0.5)
    go.touch()
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    pipe = TextToImagePipeline.from_pretrained(model)
    folders = []
    for proc, (stdout, _) in enumerate(results):
        rounds = stdout.split("ROUND")[1:]
        assert len(rounds) == ROUNDS
        for r, chunk in enumerate(rounds):
            lines = chunk.split()[2:]  # after "proc r"
            *images, grid = [Path(x) for x in lines]
            prompt, seed = PROMPTS[(proc + r) % len(PROMPTS)], 1000 * proc + 10 * r
            assert len(images) == N and grid.name == "grid.png"
            assert len({p.parent for p in [*images, grid]}) == 1
            folders.append(grid.parent)
            drawn = pipe([prompt], num_images_per_prompt=N, seed=seed).images  # what this call drew
            for k, path in enumerate(images):
                with Image.open(path) as im:
                    record = json.loads(im.text["wordbrush"])
                    assert (record["prompt"], record["seed"]) == (prompt, seed + k), path
                    assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(drawn[k])), path
            with Image.open(grid) as g:  # whole (it decodes) and of this call's images alone
                g.load()
                expected = make_grid(drawn[:GRID_MAX], cols=min(N, 16), scale=4)
                assert np.array_equal(np.asarray(g.convert("RGB")), np.asarray(expected)), grid
    assert len(set(folders)) == PROCESSES * ROUNDS  # one folder per call
    assert sorted(p.name for p in out.iterdir()) == [f"{i:04d}" for i in range(1, PROCESSES * ROUNDS + 1)]
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]  # no temporary left

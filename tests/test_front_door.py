"""The front door as a new user meets it: every bad input is exit status 2 and one line naming what is wrong,
images carry how to draw them again, long runs show progress and save as they go."""

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from wordbrush import TextToImagePipeline
from wordbrush.cli import main
from wordbrush.errors import WordbrushError

CONFIGS = Path(__file__).parent.parent / "configs"


def one_line_error(capsys, argv) -> str:
    """Run the CLI; it must exit 2 with exactly one `error` line on stderr and no traceback."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("flag,value", [("--guidance", "nan"), ("--guidance", "inf"), ("--temperature", "-inf"),
                                        ("--top-p", "nan"), ("--guidance", "lots")])
def test_non_finite_numbers_are_refused(capsys, tmp_path, flag, value):
    err = one_line_error(capsys, ["generate", "a red circle", "--out", str(tmp_path), flag, value])
    assert flag in err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("option", [dict(guidance_scale=float("nan")), dict(temperature=float("inf")),
                                    dict(top_p=float("nan")), dict(guidance_scale=True)])
def test_the_python_api_refuses_non_finite_options_too(option):
    pipe = TextToImagePipeline.from_pretrained("shapes")
    with pytest.raises(WordbrushError, match="finite|must be"):
        pipe("a red circle", **option)


def test_out_on_a_file_and_too_many_images(capsys, tmp_path):
    (tmp_path / "taken").write_text("x")
    assert "is a file, not a folder" in one_line_error(capsys, ["generate", "a red circle", "--out",
                                                                str(tmp_path / "taken")])
    err = one_line_error(capsys, ["generate", "a red circle", "-n", "100000", "--out", str(tmp_path / "o")])
    assert "more than the 10,000 images one call draws" in err
    assert not list((tmp_path / "o").rglob("*.png")) and not list((tmp_path / "o").iterdir())  # no run folder either


def test_every_png_says_how_to_draw_it_again(tmp_path, capsys):
    assert main(["generate", "a red circle", "two blue squares", "-n", "2", "--seed", "5", "--candidates", "1",
                 "--out", str(tmp_path)]) == 0
    pngs = sorted(tmp_path.glob("0001/0*.png"))
    assert [p.name.split("-seed")[1] for p in pngs] == ["5.png", "6.png", "7.png", "8.png"]
    third = Image.open(pngs[2])
    params, record = third.text["parameters"], json.loads(third.text["wordbrush"])
    assert params.startswith("two blue squares\nSeed: 7, Size: 64x64, Model: shapes, Generator: dalle")
    assert record["seed"] == 7 and record["sampling"]["candidates"] == 1
    # the recorded command draws the same image again
    again = tmp_path / "again"
    argv = record["command"].split(" ", 2)  # "wordbrush generate 'two blue squares' --model ..."
    import shlex

    assert main(shlex.split(argv[2]) and ["generate", *shlex.split(argv[2]), "--out", str(again)]) == 0
    assert Image.open(next(again.glob("0001/000-*.png"))).tobytes() == third.tobytes()


def test_a_progress_bar_on_a_terminal(tmp_path):
    """On a TTY, `generate` shows a bar counting images (tqdm stays quiet when stderr is not a terminal)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "wordbrush", "generate", "a red circle", "-n", "3",
                             "--candidates", "1", "--out", str(tmp_path)], stdin=follower, stdout=follower,
                            stderr=follower, env={**os.environ, "COLUMNS": "100"})
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=300) == 0
    text = seen.decode(errors="replace")
    assert "drawing with shapes" in text and "3/3" in text and "img" in text, text[-500:]


def test_minilm_without_its_extra_is_one_line():
    """Without transformers installed, a model that needs it says which extra to install."""
    code = ("import sys; sys.modules['transformers'] = None\n"  # what a missing package looks like to import
            "from wordbrush.cli import main; sys.exit(main(['generate', 'a red circle', '--model', 'shapes-minilm', "
            "'-n', '1', '--out', sys.argv[1]]))")
    with_tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "wb-minilm-missing"
    r = subprocess.run([sys.executable, "-c", code, str(with_tmp)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "pip install 'wordbrush[minilm]'" in r.stderr


def test_overrides_are_merged_before_the_config_is_checked(capsys):
    """--vae satisfies a config that needs a VAE (it used to be applied after the checks had refused it)."""
    cvae = str(CONFIGS / "gan-shapes-cvae.json")
    assert main(["train", "gan", "--config", cvae, "--vae", "shapes", "--print-config", "--threads", "1",
                 "--set", "lr_g=0.0002", "--max-minutes", "5"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["vae"], cfg["threads"], cfg["lr_g"], cfg["max_minutes"]) == ("shapes", 1, 0.0002, 5.0)
    # without it the same config is refused in one line that names the flag
    assert "needs latent mode (a VAE: --vae)" in one_line_error(capsys, ["train", "gan", "--config", cvae, "--set",
                                                                         "vae=", "--print-config"])


@pytest.mark.parametrize("argv,message", [
    (["train", "vae", "--set", "lr=1e400", "--print-config"], "lr: expected a finite number"),
    (["train", "vae", "--set", "lr", "--print-config"], "--set expects KEY=VALUE"),
    (["train", "vae", "--set", "nope=1", "--print-config"], "unknown key 'nope'"),
    (["train", "vae", "--max-minutes", "nan"], "--max-minutes"),
    (["train", "dalle", "--out", "/nonexistent-wb/run", "--max-steps", "1"], "needs a trained VAE: pass --vae"),
    (["train", "dalle", "--vae", "runs/no-such-vae", "--out", "/nonexistent-wb/run"], "train one first"),
])
def test_training_mistakes_are_one_line(capsys, argv, message):
    assert message in one_line_error(capsys, argv)


def test_threads_from_the_environment_win_over_the_config(capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["train", "vae", "--config", str(CONFIGS / "vae-shapes.json"), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == 0  # torch's default, which reads OMP_NUM_THREADS


def test_serve_without_its_extra_is_one_line():
    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from wordbrush.cli import main; sys.exit(main(['serve', '--port', '0']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "pip install 'wordbrush[serve]'" in r.stderr

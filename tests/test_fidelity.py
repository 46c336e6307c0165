"""The shapes prompt-fidelity benchmark: prompts, the judge (against oracle and known-wrong renders),
the runner and its baselines, the `wordbrush eval` report; the same numbers as before the eval/ split."""

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wordbrush.data.captions import INVERSE, reserved_in
from wordbrush.data.scene import COLORS, SHAPES, Obj, Scene, render
from wordbrush.data.shapes import DEFAULT_HOLDOUT, ShapesDataset
from wordbrush.data.specs import CATEGORIES, COLOR_CATEGORIES, ObjSpec, PromptSpec, render_spec, scene_for_spec
from wordbrush.eval.fidelity import format_table, run_fidelity
from wordbrush.eval.judge import judge
from wordbrush.eval.oracle import baseline_draws, oracle_draw, shuffled_draw
from wordbrush.eval.prompts import make_prompts
from wordbrush.eval.report import evaluate_pipeline, plan
from wordbrush.eval.paraphrase import make_paraphrase_prompts

N = 20


@pytest.fixture(scope="module")
def specs():
    return make_prompts(N, split="all")


def _by_cat(specs, category):
    return [s for s in specs if s.category == category]


# --- prompts ---------------------------------------------------------------------------------------

def test_prompts_deterministic_and_cover_categories(specs):
    assert specs == make_prompts(N, split="all")
    assert specs != make_prompts(N, seed=1, split="all")
    assert make_prompts(5, split="all") == [s for c in CATEGORIES for s in _by_cat(specs, c)[:5]]
    assert len(specs) == 6 * N
    for c in CATEGORIES:
        assert len(_by_cat(specs, c)) == N
    assert [s.category for s in specs] == sorted((s.category for s in specs), key=CATEGORIES.index)


def test_prompt_wording(specs):
    for s in specs:
        assert reserved_in(s.prompt) == [], s.prompt
    prompts = {s.prompt for s in specs}
    assert "a circle" in prompts
    for s in _by_cat(specs, "position"):
        assert re.fullmatch(r"an? \w+ \w+ (to the left of|to the right of|above|below) an? \w+ \w+", s.prompt)
        a, b = s.objects
        assert s.prompt.startswith(a.phrase() + " ") and s.prompt.endswith(" " + b.phrase())
    assert ObjSpec("triangle", "red", 3).phrase() == "three red triangles"
    assert ObjSpec("cross", None, 2).phrase() == "two crosses"
    assert ObjSpec("diamond", "orange").phrase() == "an orange diamond"
    for s in _by_cat(specs, "counting"):
        assert s.objects[0].count in (2, 3) and s.prompt.split()[0] in ("two", "three")
    for s in _by_cat(specs, "attribute_binding"):
        a, b = s.objects
        assert a.color != b.color and a.shape != b.shape and s.relation is None
    for s in _by_cat(specs, "two_objects"):
        assert s.objects[0].shape != s.objects[1].shape and all(o.color is None for o in s.objects)


def test_holdout_and_train_splits():
    hold = make_prompts(N, split="holdout")
    train = make_prompts(N, split="train")
    assert hold == make_prompts(N, split="holdout")
    assert {s.category for s in hold} == set(COLOR_CATEGORIES)
    assert len(hold) == len(COLOR_CATEGORIES) * N
    for s in hold:
        assert s.named_pairs() & DEFAULT_HOLDOUT, s.prompt
        assert reserved_in(s.prompt) == []
    assert len(train) == 6 * N
    for s in train:
        assert not s.named_pairs() & DEFAULT_HOLDOUT, s.prompt


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        make_prompts(2, split="test")
    with pytest.raises(ValueError, match="count"):
        ObjSpec("circle", "red", 4)
    with pytest.raises(ValueError, match="colour"):
        ObjSpec("circle", "pink")
    with pytest.raises(ValueError, match="category"):
        PromptSpec("style", "a circle", (ObjSpec("circle"),))


# --- the judge -------------------------------------------------------------------------------------

def test_judge_passes_every_oracle_render(specs):
    bad = []
    for k, s in enumerate(specs):
        for j in range(3):
            jd = judge(render_spec(s, np.random.default_rng([k, j])), s)
            if not jd.ok:
                bad.append((s.prompt, jd.reasons))
    assert bad == []


def test_judge_passes_oracle_renders_at_other_sizes(specs):
    for size in (32, 128):
        for k, s in enumerate(specs[::3]):
            im = render_spec(s, np.random.default_rng(k), size)
            assert im.shape == (size, size, 3)
            assert judge(Image.fromarray(im), s).ok, s.prompt


def test_judge_fails_swapped_colours(specs):
    for k, s in enumerate(_by_cat(specs, "attribute_binding")):
        sc = scene_for_spec(s, np.random.default_rng(k))
        a, b = sc.objects
        swapped = Scene("pair", (dataclasses.replace(a, color=b.color), dataclasses.replace(b, color=a.color)))
        jd = judge(render(swapped), s)
        assert not jd.ok and "do not match" in jd.reasons[0]


def test_judge_fails_mirrored_relation(specs):
    for k, s in enumerate(_by_cat(specs, "position")):
        mirrored = dataclasses.replace(s, relation=INVERSE[s.relation])
        jd = judge(render_spec(mirrored, np.random.default_rng(k)), s)
        assert not jd.ok and "relation fails" in jd.reasons[0], s.prompt


def test_judge_fails_wrong_counts(specs):
    for k, s in enumerate(_by_cat(specs, "counting")):
        o = s.objects[0]
        for n in {o.count - 1, min(o.count + 1, 3)} - {o.count}:
            wrong = dataclasses.replace(s, objects=(dataclasses.replace(o, count=n),))
            jd = judge(render_spec(wrong, np.random.default_rng(k)), s)
            assert not jd.ok and f"found {n} object(s)" in jd.reasons[0], (s.prompt, n)
    # three when two are asked for
    s = PromptSpec("counting", "two red squares", (ObjSpec("square", "red", 2),))
    three = dataclasses.replace(s, objects=(ObjSpec("square", "red", 3),))
    assert not judge(render_spec(three, np.random.default_rng(0)), s).ok


def test_judge_fails_other_wrong_images():
    black = np.zeros((64, 64, 3), np.uint8)
    for s in make_prompts(2, split="all"):
        jd = judge(black, s)
        assert not jd.ok and "found 0 object(s)" in jd.reasons[0]
    red_circle = PromptSpec("colors", "a red circle", (ObjSpec("circle", "red"),))
    assert judge(render(Scene("single", (Obj("red", "circle", "large", 10, 10),))), red_circle).ok
    assert not judge(render(Scene("single", (Obj("blue", "circle", "large", 10, 10),))), red_circle).ok
    assert not judge(render(Scene("single", (Obj("red", "square", "large", 10, 10),))), red_circle).ok
    extra = Scene("pair", (Obj("red", "circle", "large", 2, 2), Obj("red", "circle", "small", 40, 40)))
    assert "found 2 object(s)" in judge(render(extra), red_circle).reasons[0]
    blob = render(Scene("single", (Obj("red", "circle", "large", 10, 10),)))
    blob[50:53, 40:62] = (0, 200, 0)  # a green bar: no shape of the dataset
    jd = judge(blob, red_circle)
    assert not jd.ok and "unrecognised" in jd.reasons[0]
    two = PromptSpec("two_objects", "a circle and a square", (ObjSpec("circle"), ObjSpec("square")))
    same = Scene("pair", (Obj("red", "circle", "small", 2, 2), Obj("blue", "circle", "small", 40, 40)))
    assert not judge(render(same), two).ok


# --- the runner and baselines --------------------------------------------------------------------

def test_oracle_scores_one_and_writes_files(tmp_path):
    specs = make_prompts(3, split="all")
    calls = []
    oracle = oracle_draw(specs)

    def draw(prompts, seeds):
        calls.append((list(prompts), list(seeds)))
        return oracle(prompts, seeds)

    res = run_fidelity(draw, specs, images_per_prompt=2, seed=5, out_dir=tmp_path, batch_size=7, progress=False)
    assert res["overall"] == 1.0
    assert set(res["categories"]) == set(CATEGORIES)
    assert all(c["score"] == 1.0 and c["n_images"] == 6 for c in res["categories"].values())
    assert all(len(b[0]) <= 7 for b in calls) and sum(len(b[0]) for b in calls) == 36
    assert [s for b in calls for s in b[1]][:4] == [5, 6, 7, 8]  # image j of prompt i: seed + i*2 + j
    for name in ("results.json", "results.md", "grid_successes.png", "grid_failures.png"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["overall"] == 1.0 and len(saved["prompts"]) == len(specs)
    assert saved["prompts"][0]["images"][0] == {"seed": 5, "ok": True, "reasons": []}
    md = (tmp_path / "results.md").read_text()
    assert "| attribute_binding | 1.000 | 6/6 |" in md and "| **overall** | **1.000** |" in md
    assert Image.open(tmp_path / "grid_successes.png").size[0] > 128  # upscaled ×2 tiles
    # reproducible
    again = run_fidelity(oracle, specs, images_per_prompt=2, seed=5, batch_size=16, progress=False)
    assert again["prompts"] == res["prompts"]


def test_shuffled_baseline_scores_low_and_table(tmp_path):
    specs = make_prompts(8, split="all")
    draws = baseline_draws(specs)
    res = {name: run_fidelity(d, specs, images_per_prompt=2, progress=False) for name, d in draws.items()}
    assert res["oracle"]["overall"] == 1.0
    assert res["shuffled"]["overall"] < 0.4
    table = format_table(res)
    lines = table.splitlines()
    assert lines[0] == "| category | oracle | shuffled |"
    assert len(lines) == 2 + len(CATEGORIES) + 1 and "overall" in lines[-1]
    # the shuffled baseline's failures come with reasons; holdout results leave missing rows blank
    fails = [im for p in res["shuffled"]["prompts"] for im in p["images"] if not im["ok"]]
    assert fails and all(im["reasons"] for im in fails)
    hold = make_prompts(2, split="holdout")
    hres = run_fidelity(oracle_draw(hold), hold, images_per_prompt=1, progress=False)
    assert "–" in format_table({"all": res["oracle"], "holdout": hres})


def test_runner_rejects_bad_draw_functions():
    specs = make_prompts(1, split="all")
    with pytest.raises(ValueError, match="returned"):
        run_fidelity(lambda p, s: [], specs, progress=False)
    with pytest.raises(ValueError, match="no spec"):
        run_fidelity(oracle_draw(specs[:1]), specs, progress=False)
    with pytest.raises(ValueError):
        shuffled_draw(specs[:1])


# --- the paraphrased prompts ----------------------------------------------------------------------

def test_paraphrases_keep_the_scenes_and_use_only_unseen_wording(specs):
    para = make_paraphrase_prompts(N)
    assert para == make_paraphrase_prompts(N)  # deterministic
    assert [dataclasses.replace(p, prompt=s.prompt) for p, s in zip(para, specs)] == specs  # same scenes, in order
    for p, s in zip(para, specs):
        words = set(re.findall(r"[a-z]+", p.prompt))
        # every shape and colour is named by a synonym training never uses, inside an unseen sentence frame
        assert not words & (set(SHAPES) | set(COLORS) | {"circles", "squares", "triangles", "diamonds", "crosses"}), p.prompt
        assert len(reserved_in(p.prompt)) >= 1 + sum(1 + (o.color is not None) for o in p.objects), p.prompt
    assert len({p.prompt for p in para}) > 0.8 * len(para)


def test_oracle_passes_paraphrased_prompts():
    para = make_paraphrase_prompts(4)
    res = run_fidelity(oracle_draw(para), para, images_per_prompt=1, progress=False)
    assert res["overall"] == 1.0


# --- the same numbers as before the refactor (tests/data/record_fidelity.py) ----------------------

RECORDED = json.loads((Path(__file__).parent / "data" / "fidelity_outputs.json").read_text())


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _as_json(specs) -> list:
    return json.loads(json.dumps([dataclasses.asdict(s) for s in specs]))


def test_prompt_lists_are_the_recorded_ones():
    for split in ("all", "holdout", "train"):
        assert _as_json(make_prompts(20, split=split)) == RECORDED["prompts"][split], split
    assert _as_json(make_paraphrase_prompts(20)) == RECORDED["prompts"]["paraphrase"]


def test_oracle_renders_and_judgements_are_the_recorded_ones():
    specs = make_prompts(4, split="all")
    for k, (s, rec) in enumerate(zip(specs, RECORDED["renders"], strict=True)):
        assert s.prompt == rec["prompt"]
        assert _sha(render_spec(s, np.random.default_rng([11, k]), rec["size"])) == rec["sha"], s.prompt
    for name, draw in baseline_draws(specs).items():
        r = run_fidelity(draw, specs, images_per_prompt=2, seed=5, progress=False)
        rec = RECORDED["runs"][name]
        assert r["overall"] == rec["overall"] and r["categories"] == rec["categories"], name
        assert [im for p in r["prompts"] for im in p["images"]] == rec["images"], name  # seeds, verdicts, reasons


def test_shapes_items_are_the_recorded_ones():
    for split, rows in RECORDED["dataset"].items():
        ds = ShapesDataset(40, size=64, seed=3, split=split)
        for i, rec in enumerate(rows):
            arr, text, scene = ds.item_arrays(i)
            assert (text, scene.to_dict(), _sha(arr)) == (rec["caption"], rec["scene"], rec["sha"]), (split, i)


# --- `wordbrush eval` on shapes: what it will take, labelled bars, captioned grids -----------------

class BlackPipe:
    """A stand-in pipeline whose draw gives black images (every one a failure) and counts them; it reads each prompt
    as "<prompt> (read)", as a pipeline's rewriter would rewrite it."""

    def __init__(self):
        self.drawn = 0
        self.unread = 0  # prompts drawn as given rather than as read

    def revise(self, prompts, options=None):
        return [p + " (read)" for p in prompts], []

    def draw(self, prompts, seeds, options=None):
        self.drawn += len(prompts)
        self.unread += sum(not p.endswith(" (read)") for p in prompts)
        return [Image.new("RGB", (64, 64)) for _ in prompts], None


def test_eval_says_what_it_will_take_and_draws_exactly_that(tmp_path, capsys):
    pipe = BlackPipe()
    report = evaluate_pipeline(pipe, tmp_path, n_per_category=2, images_per_prompt=3, progress=True)
    err = capsys.readouterr().err
    plan_line = err.splitlines()[0]
    assert plan_line == ("shapes fidelity eval: all 6 categories × 2 prompts × 3 images = 36; "
                         "holdout 4 categories × 2 prompts × 3 images = 24; "
                         "paraphrase 6 categories × 2 prompts × 3 images = 36: 96 images from the model "
                         "(+ the oracle and shuffled baselines, rendered)")
    assert pipe.drawn == 96 and pipe.unread == 0  # every prompt drawn as the pipeline reads it
    for split in ("all", "holdout", "paraphrase"):  # one labelled bar per prompt set
        assert f"fidelity {split}:" in err
        assert report[split]["model"]["overall"] == 0.0 and report[split]["oracle"]["overall"] == 1.0
    evaluate_pipeline(BlackPipe(), tmp_path / "q", n_per_category=1, images_per_prompt=1, progress=False)
    assert capsys.readouterr().err == ""  # quiet: no plan, no bars


def test_plan_counts_categories_of_each_set():
    specs = make_prompts(3, split="holdout")
    assert plan([("holdout", specs)], 2) == (
        "shapes fidelity eval: holdout 4 categories × 3 prompts × 2 images = 24: "
        "24 images from the model (+ the oracle and shuffled baselines, rendered)")


def test_every_grid_image_is_captioned_with_its_prompt(tmp_path, monkeypatch):
    import wordbrush.utils.images as images

    specs = make_prompts(2, split="all")
    oracle = oracle_draw(specs)
    fail_on = {s.prompt for s in specs[::2]}  # every other prompt gets a black image

    def draw(prompts, seeds):
        good = oracle(prompts, seeds)
        return [Image.new("RGB", (64, 64)) if p in fail_on else im for p, im in zip(prompts, good)]

    grids = {}
    real = images.save_captioned_grid

    def spy(rows, path, **kw):
        grids[path.name] = [text for text, _ in rows]
        return real(rows, path, **kw)

    monkeypatch.setattr(images, "save_captioned_grid", spy)
    res = run_fidelity(draw, specs, images_per_prompt=2, out_dir=tmp_path, progress=False)
    failed = [p["prompt"] for p in res["prompts"] for im in p["images"] if not im["ok"]]
    passed = [p["prompt"] for p in res["prompts"] for im in p["images"] if im["ok"]]
    assert failed and passed
    assert grids["grid_failures.png"] == failed and grids["grid_successes.png"] == passed
    # the caption strip under the first failure tile holds dark (text) pixels on the white grid
    grid = np.asarray(Image.open(tmp_path / "grid_failures.png").convert("L"))
    assert grid[8 + 128 + 3 : 8 + 128 + 15, 8 : 8 + 128].min() < 100

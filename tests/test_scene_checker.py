"""The scene checker: every quality figure of the project stands on it, so its bars are tested here.

Measured rates are printed (run with -s to see them); its speed is benchmarks/shapes_speed.py's.
"""

import io
import runpy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from wordbrush.data.scene import PALETTE, SHAPES, Obj, Scene, render
from wordbrush.data.shapes import sample_scene
from wordbrush.eval.scene_checker import (CheckResult, DetectedObj, analyse, check_scene,
                                          classify_pixels, detect_objects, geneval_relations,
                                          label_components)


def _scenes(n, seed, size=64):
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, size=size, split="all") for _ in range(n)]


def _rate(images_and_scenes):
    results = [check_scene(img, sc) for img, sc in images_and_scenes]
    return sum(r.ok for r in results) / len(results), results


def _blur(arr, r):
    return np.asarray(Image.fromarray(arr).filter(ImageFilter.GaussianBlur(r)))


def _noise(arr, rng, sigma):
    return np.clip(arr + rng.normal(0, sigma, arr.shape), 0, 255).astype(np.uint8)


# --- bars ----------------------------------------------------------------------------------------

def test_clean_renders_score_100_percent():
    scenes = _scenes(1000, seed=100)
    rate, results = _rate((render(sc), sc) for sc in scenes)
    print(f"\nclean: {rate:.2%} of 1000")
    bad = [(sc, r.reasons) for sc, r in zip(scenes, results) if not r.ok]
    assert rate == 1.0, bad[:3]


def test_other_canvas_sizes_score_100_percent():
    for size in (32, 128):
        scenes = _scenes(150, seed=size, size=size)
        rate, _ = _rate((render(sc, size), sc) for sc in scenes)
        print(f"\nclean at {size}x{size}: {rate:.2%}")
        assert rate == 1.0


@pytest.mark.parametrize("radius", [0.7, 1.0])
def test_blurred_renders(radius):
    scenes = _scenes(300, seed=200)
    rate, _ = _rate((_blur(render(sc), radius), sc) for sc in scenes)
    print(f"\nblur radius {radius}: {rate:.2%} of 300")
    assert rate >= 0.97


def test_noisy_renders():
    rng = np.random.default_rng(0)
    scenes = _scenes(300, seed=300)
    rate, _ = _rate((_noise(render(sc), rng, 12), sc) for sc in scenes)
    print(f"\nnoise sigma 12: {rate:.2%} of 300")
    assert rate >= 0.97


def test_harder_degradations_still_mostly_pass():
    """Not a contract bar; guards against a checker that only works on pristine pixels."""
    rng = np.random.default_rng(1)
    scenes = _scenes(150, seed=400)

    def jpeg(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=75)
        return np.asarray(Image.open(buf).convert("RGB"))

    rates = {
        "blur 0.8 + noise 8": _rate((_noise(_blur(render(sc), 0.8), rng, 8), sc) for sc in scenes)[0],
        "noise 20": _rate((_noise(render(sc), rng, 20), sc) for sc in scenes)[0],
        "jpeg q75": _rate((jpeg(render(sc)), sc) for sc in scenes)[0],
    }
    print("\n" + ", ".join(f"{k}: {v:.2%}" for k, v in rates.items()))
    assert all(v >= 0.9 for v in rates.values()), rates


def _random_blobs(rng, W=64):
    """Palette-coloured random ellipses and polygons on black, softened a little."""
    img = Image.new("RGB", (W, W))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 5))):
        col = PALETTE[list(PALETTE)[int(rng.integers(len(PALETTE)))]]
        x, y = rng.integers(0, W - 4, 2)
        w, h = rng.integers(4, W // 2, 2)
        if rng.random() < 0.5:
            d.ellipse([int(x), int(y), int(x + w), int(y + h)], fill=col)
        else:
            pts = [tuple(int(v) for v in rng.integers(0, W, 2)) for _ in range(int(rng.integers(3, 7)))]
            d.polygon(pts, fill=col)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5)))))


def _smooth_field(rng, W=64):
    low = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(low).resize((W, W), Image.BICUBIC))


def test_random_images_score_near_zero():
    rng = np.random.default_rng(7)
    scenes = _scenes(300, seed=500)
    others = _scenes(300, seed=501)
    rates = {
        "uniform noise": _rate((rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), sc) for sc in scenes)[0],
        "random blobs": _rate((_random_blobs(rng), sc) for sc in scenes)[0],
        "smooth fields": _rate((_smooth_field(rng), sc) for sc in scenes)[0],
        "other scene": _rate((render(o), sc) for o, sc in zip(others, scenes))[0],
        "black": _rate((np.zeros((64, 64, 3), np.uint8), sc) for sc in scenes)[0],
    }
    print("\n" + ", ".join(f"{k}: {v:.2%}" for k, v in rates.items()))
    assert all(v < 0.02 for v in rates.values()), rates
    assert detect_objects(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) == []


# --- detection details -------------------------------------------------------------------------

def test_detect_objects_recovers_attributes_and_positions():
    for sc in _scenes(200, seed=600):
        det = detect_objects(render(sc))
        assert len(det) == len(sc.objects)
        for o in sc.objects:
            cx, cy = o.center(64)
            match = [d for d in det if (d.color, d.shape, d.size) == (o.color, o.shape, o.size)
                     and abs(d.cx - cx) <= 1 and abs(d.cy - cy) <= 1]
            assert match, (o, det)
            assert match[0].bbox == o.box(64) and match[0].score > 0.99
            assert isinstance(match[0], DetectedObj) and match[0].recognised


def test_every_colour_shape_size_in_every_corner():
    for color in PALETTE:
        for shape in SHAPES:
            for size, xy in (("small", (0, 0)), ("large", (42, 42)), ("small", (51, 0))):
                sc = Scene("single", (Obj(color, shape, size, *xy),))
                r = check_scene(Image.fromarray(render(sc)), sc)  # PIL input too
                assert r.ok, (color, shape, size, r.reasons)


def test_pixel_classification_and_labelling():
    arr = np.zeros((20, 20, 3), np.uint8)
    arr[2:6, 2:6] = PALETTE["red"]
    arr[2:6, 8:12] = PALETTE["orange"]  # touching colours must stay separate
    arr[2:6, 12:16] = PALETTE["yellow"]
    arr[10:18, 3] = PALETTE["red"]
    arr[17, 3:12] = PALETTE["red"]  # an L shape: one component
    arr[9, 9] = (100, 0, 0)  # 40%-intensity red: below MIN_ALPHA, background
    cls = classify_pixels(arr)
    assert cls[3, 3] == list(PALETTE).index("red") and cls[3, 9] == list(PALETTE).index("orange")
    assert cls[3, 13] == list(PALETTE).index("yellow") and cls[0, 0] == -1 and cls[9, 9] == -1
    lab = label_components(cls)
    assert len(np.unique(lab[lab >= 0])) == 4
    assert lab[10, 3] == lab[17, 11] and lab[3, 3] != lab[10, 3] and lab[3, 9] != lab[3, 13]


def test_detection_moves_with_the_scene_and_leaves_its_input_alone():
    """Shifting a scene shifts every detected box by the same offset and changes nothing else; the input array is
    not written to (timing: benchmarks/shapes_speed.py)."""
    rng = np.random.default_rng(700)
    moved = 0
    for sc in _scenes(200, seed=700):
        boxes = [o.box(64) for o in sc.objects]
        room = (64 - max(b[2] for b in boxes), 64 - max(b[3] for b in boxes))  # free pixels right and below
        dx, dy = int(rng.integers(room[0] + 1)), int(rng.integers(room[1] + 1))
        shifted = Scene(sc.kind, tuple(replace(o, x=o.x + dx, y=o.y + dy) for o in sc.objects), sc.relation)
        img = render(sc)
        before = img.copy()
        a, b = detect_objects(img), detect_objects(render(shifted))
        assert np.array_equal(img, before)
        key = lambda d: (d.color, d.shape, d.size, d.area)  # noqa: E731
        assert sorted(map(key, a)) == sorted(map(key, b))
        assert sorted((x0 + dx, y0 + dy, x1 + dx, y1 + dy) for x0, y0, x1, y1 in (d.bbox for d in a)) == \
            sorted(d.bbox for d in b)
        moved += (dx, dy) != (0, 0)
    assert moved > 150


def test_speed_benchmark_script_runs(capsys):
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "shapes_speed.py"
    figures = runpy.run_path(str(script))["main"](["--n", "6", "--repeats", "1"])
    assert set(figures) == {"render_us", "detect_objects_ms", "judge_ms"}
    assert "detect_objects" in capsys.readouterr().out


# --- check_scene semantics ---------------------------------------------------------------------

def _pair():
    return Scene("pair", (Obj("red", "circle", "small", 5, 20), Obj("blue", "square", "large", 35, 18)),
                 "left of")


def test_relation_is_checked():
    sc = _pair()
    img = render(sc)
    assert check_scene(img, sc).ok
    for rel in ("right of", "above", "below"):
        r = check_scene(img, Scene("pair", sc.objects, rel))
        assert not r.ok and any("relation" in x for x in r.reasons)
    swapped = Scene("pair", (sc.objects[1], sc.objects[0]), "right of")
    assert check_scene(img, swapped).ok
    # GenEval's rule: a diagonal offset can satisfy two relations; a tiny one satisfies none
    assert geneval_relations((0, 0, 10, 10), (30, 30, 40, 40)) == {"left of", "above"}
    assert geneval_relations((0, 0, 10, 10), (30, 2, 40, 12)) == {"left of"}
    assert geneval_relations((0, 0, 10, 10), (2, 1, 12, 11)) == set()
    assert geneval_relations((30, 30, 40, 40), (0, 0, 10, 10)) == {"right of", "below"}
    assert not check_scene(img, sc, position_threshold=2.0).ok  # offset shrunk to nothing


def test_missing_extra_and_wrong_attributes_fail():
    sc = _pair()
    img = render(sc)
    single = Scene("single", (sc.objects[0],))
    r = check_scene(img, single)
    assert not r.ok and any(x.startswith("extra") for x in r.reasons)
    r = check_scene(render(single), sc)
    assert not r.ok and any(x.startswith("missing") for x in r.reasons)
    for field, value in (("color", "orange"), ("shape", "diamond"), ("size", "large")):
        kw = {**sc.objects[0].__dict__, field: value}
        wrong = Scene("pair", (Obj(**kw), sc.objects[1]), "left of")
        assert not check_scene(img, wrong).ok, field


def test_counts_must_be_exact():
    objs = tuple(Obj("green", "triangle", "small", x, 10) for x in (2, 20, 40))
    three = Scene("count", objs)
    two = Scene("count", objs[:2])
    assert check_scene(render(three), three).ok and check_scene(render(two), two).ok
    assert not check_scene(render(three), two).ok and not check_scene(render(two), three).ok


def test_check_size_option():
    sc = _pair()
    img = render(sc)
    resized = Scene("pair", (Obj("red", "circle", "large", 5, 20), sc.objects[1]), "left of")
    assert not check_scene(img, resized).ok
    assert check_scene(img, resized, check_size=False).ok
    # without sizes, two same-coloured same-shape objects still get the relation checked
    same = Scene("pair", (Obj("red", "circle", "small", 5, 20), Obj("red", "circle", "large", 35, 18)),
                 "left of")
    img2 = render(same)
    assert check_scene(img2, same, check_size=False).ok
    assert check_scene(img2, Scene("pair", same.objects, "right of"), check_size=False).ok  # either order
    assert not check_scene(img2, Scene("pair", same.objects, "above"), check_size=False).ok


def test_unrecognised_blobs_fail_unless_allowed():
    sc = Scene("single", (Obj("white", "cross", "large", 3, 3),))
    img = render(sc).copy()
    img[45:60, 40:62] = PALETTE["purple"]  # a 15x22 rectangle: no shape at any size
    r = check_scene(img, sc)
    assert not r.ok and r.unrecognised and "unrecognised" in " ".join(r.reasons)
    assert check_scene(img, sc, allow_unrecognised=True).ok
    found, unknown = analyse(img)
    assert [d.shape for d in found] == ["cross"] and len(unknown) == 1


def test_result_type_and_input_validation():
    sc = _pair()
    r = check_scene(render(sc), sc)
    assert isinstance(r, CheckResult) and bool(r) and r.reasons == [] and len(r.detected) == 2
    with pytest.raises(ValueError):
        check_scene(np.zeros((64, 32, 3), np.uint8), sc)
    with pytest.raises(ValueError):
        detect_objects(np.zeros((64, 64), np.uint8))

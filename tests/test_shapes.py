"""The procedural `shapes` dataset: determinism, the pixel/geometry contract, splits, captions, files."""

import json
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from wordbrush.data.captions import (P_NO_RELATION, PAIR_NO_RELATION_TEMPLATES, RESERVED_WORDS, TEMPLATES,
                                     UNSEEN_FORMS, caption, caption_and_template, reserved_in)
from wordbrush.data.placement import GAP, place_free, place_pair, relation_holds, separated
from wordbrush.data.scene import (COLORS, PALETTE, RELATIONS, SHAPES, SIZES, Obj, Scene, render, render_into,
                                  shape_mask, side_px)
from wordbrush.data.shapes import DEFAULT_HOLDOUT, ShapesDataset, sample_scene, write_dataset


def _scenes(n, seed=0, split="all", size=64):
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, size=size, split=split) for _ in range(n)]


def test_palette_and_constants():
    assert PALETTE["red"] == (255, 0, 0) and PALETTE["blue"] == (30, 80, 255)
    assert len(COLORS) == 8 and SHAPES == ("circle", "square", "triangle", "diamond", "cross")
    assert SIZES == {"small": 0.20, "large": 0.35}
    assert side_px("small", 64) == 13 and side_px("large", 64) == 22
    assert len(DEFAULT_HOLDOUT) == 4
    # every colour and every shape is still seen in training
    train_pairs = {(c, s) for c in COLORS for s in SHAPES} - DEFAULT_HOLDOUT
    assert {c for c, _ in train_pairs} == set(COLORS) and {s for _, s in train_pairs} == set(SHAPES)


def test_shape_masks_fill_their_box():
    for s in (13, 22, 3, 6):
        for shape in SHAPES:
            m = shape_mask(shape, s)
            ys, xs = np.nonzero(m)
            assert m.shape == (s, s)
            # every shape spans its whole box in both directions
            assert (ys.min(), ys.max(), xs.min(), xs.max()) == (0, s - 1, 0, s - 1), (shape, s)
            assert np.array_equal(m, m[:, ::-1])  # all are left-right symmetric
    tri = shape_mask("triangle", 22)
    assert tri[0].sum() <= 2 and tri[-1].all()  # apex at top, base along the bottom
    assert shape_mask("diamond", 13)[6].all() and shape_mask("diamond", 13)[0].sum() == 1
    assert shape_mask("square", 13).all()


def test_determinism():
    a, b, c = ShapesDataset(20, seed=3), ShapesDataset(20, seed=3), ShapesDataset(20, seed=4)
    for i in range(20):
        (ia, ta, sa), (ib, tb, sb) = a.item_arrays(i), b.item_arrays(i)
        assert np.array_equal(ia, ib) and ta == tb and sa == sb
    # random access equals iteration order; negative indices work
    items = list(a)
    assert len(items) == len(a) == 20
    assert items[7][1] == a[7][1] and np.array_equal(np.asarray(items[7][0]), a.item_arrays(7)[0])
    assert a[-1][1] == a[19][1]
    with pytest.raises(IndexError):
        a[20]
    # another seed gives other data
    assert sum(a.item_arrays(i)[1] != c.item_arrays(i)[1] for i in range(20)) >= 15
    assert not np.array_equal(a.render_batch(range(20)), c.render_batch(range(20)))


def test_iteration_item_types_and_infinite():
    ds = ShapesDataset(None, seed=1, size=32)
    it = iter(ds)
    for _ in range(5):
        img, text, scene = next(it)
        assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (32, 32)
        assert isinstance(text, str) and text and isinstance(scene, Scene)
    with pytest.raises(TypeError):
        len(ds)
    assert ds[10_000][1] == ShapesDataset(None, seed=1, size=32)[10_000][1]


def test_render_batch_matches_items():
    ds = ShapesDataset(50, seed=9)
    batch = ds.render_batch([0, 5, 49, 5])
    assert batch.shape == (4, 64, 64, 3) and batch.dtype == np.uint8
    for k, i in enumerate([0, 5, 49, 5]):
        assert np.array_equal(batch[k], ds.item_arrays(i)[0])


def test_pixel_contract():
    allowed = {(0, 0, 0)} | set(PALETTE.values())
    for size in (64, 32, 16):
        for scene in _scenes(300, seed=size, size=size):
            img = render(scene, size)
            assert img.shape == (size, size, 3) and img.dtype == np.uint8
            assert {tuple(p) for p in img.reshape(-1, 3)} <= allowed
            expected = np.zeros_like(img)
            for o in scene.objects:
                x0, y0, x1, y1 = o.box(size)
                assert 0 <= x0 and 0 <= y0 and x1 <= size and y1 <= size  # inside the canvas
                m = shape_mask(o.shape, o.side(size))
                region = img[y0:y1, x0:x1]
                assert (region[m] == PALETTE[o.color]).all()  # exact colour on the shape
                assert (region[~m] == 0).all()  # black elsewhere in its box
                expected[y0:y1, x0:x1][m] = PALETTE[o.color]
            assert np.array_equal(img, expected)  # nothing outside the boxes


def test_scene_geometry_contract():
    kinds = Counter()
    for size in (64, 16, 128):
        for scene in _scenes(1000 if size == 64 else 200, seed=1, size=size):
            kinds[scene.kind] += size == 64
            objs = scene.objects
            assert scene.background == "black"
            for i, a in enumerate(objs):  # >= 2 px between any two boxes
                for b in objs[i + 1:]:
                    ax0, ay0, ax1, ay1 = a.box(size)
                    bx0, by0, bx1, by1 = b.box(size)
                    assert ax1 + 2 <= bx0 or bx1 + 2 <= ax0 or ay1 + 2 <= by0 or by1 + 2 <= ay0
            if scene.kind == "single":
                assert len(objs) == 1 and scene.relation is None
            elif scene.kind == "count":
                assert len(objs) in (2, 3) and scene.relation is None
                assert len({(o.color, o.shape, o.size) for o in objs}) == 1
            else:
                assert scene.kind == "pair" and len(objs) == 2
                a, b = objs
                assert (a.color, a.shape) != (b.color, b.shape)
                (ax, ay), (bx, by) = a.center(size), b.center(size)
                dx, dy = bx - ax, by - ay
                on, off = {"left of": (dx, dy), "right of": (-dx, dy),
                           "above": (dy, dx), "below": (-dy, dx)}[scene.relation]
                assert on >= 0.25 * size and abs(off) < 0.5 * on
                assert relation_holds(a.center(size), b.center(size), scene.relation, size, strict=True)
    n = sum(kinds.values())
    assert abs(kinds["single"] / n - 0.40) < 0.06 and abs(kinds["pair"] / n - 0.35) < 0.06
    assert abs(kinds["count"] / n - 0.25) < 0.06


def test_splits_and_holdout():
    pairs = lambda sc: {(o.color, o.shape) for o in sc.objects}  # noqa: E731
    for sc in _scenes(1000, seed=2, split="train"):
        assert not pairs(sc) & DEFAULT_HOLDOUT
    held = _scenes(500, seed=2, split="holdout")
    for sc in held:
        assert pairs(sc) & DEFAULT_HOLDOUT
    assert {p for sc in held for p in pairs(sc) & DEFAULT_HOLDOUT} == set(DEFAULT_HOLDOUT)
    assert {sc.kind for sc in held} == {"single", "pair", "count"}
    seen = {p for sc in _scenes(1000, seed=2, split="all") for p in pairs(sc)}
    assert DEFAULT_HOLDOUT <= seen and len(seen) == 40
    custom = frozenset({("white", "square")})
    ds = ShapesDataset(200, seed=0, split="train", holdout=custom)
    assert all(("white", "square") not in pairs(ds.scene(i)) for i in range(200))
    with pytest.raises(ValueError):
        ShapesDataset(10, holdout={("pink", "square")})
    with pytest.raises(ValueError):
        ShapesDataset(10, split="holdout", holdout=frozenset())
    with pytest.raises(ValueError):
        ShapesDataset(10, split="test")


def test_scene_dict_round_trip():
    for sc in _scenes(200, seed=4):
        d = json.loads(json.dumps(sc.to_dict()))
        assert Scene.from_dict(d) == sc
    o = Obj("red", "circle", "large", 3, 4)
    assert o.box(64) == (3, 4, 25, 26) and o.center(64) == (14.0, 15.0)


def test_caption_variety_and_words():
    rng = np.random.default_rng(0)
    used = defaultdict(set)
    texts = defaultdict(list)
    no_rel = Counter()
    for sc in _scenes(3000, seed=5):
        text, tmpl = caption_and_template(sc, rng)
        used[sc.kind].add(tmpl)
        texts[sc.kind].append(text)
        words = set(re.findall(r"[a-z0-9]+", text))
        for o in sc.objects:  # the shape is always named (colour / size may be left out)
            assert words & {"circle", "circles", "square", "squares", "triangle", "triangles", "diamond",
                            "diamonds", "rhombus", "rhombuses", "cross", "crosses", "plus"}
        if sc.kind == "count":
            assert words & ({"two", "2"} if len(sc.objects) == 2 else {"three", "3"})
        if sc.kind == "pair":  # a relation word, or both objects joined by "and" / "together with"
            no_relation = tmpl in PAIR_NO_RELATION_TEMPLATES
            assert no_relation or words & {"left", "right", "above", "over", "top", "below", "under", "underneath"}
            no_rel[no_relation] += 1
    assert abs(no_rel[True] / (no_rel[True] + no_rel[False]) - P_NO_RELATION) < 0.1
    for kind in ("single", "pair", "count"):
        assert len(TEMPLATES[kind]) >= 10
        assert len(used[kind]) >= 10, (kind, len(used[kind]))
        assert len(set(texts[kind])) > 0.3 * len(texts[kind])
    allc = " ".join(t for ts in texts.values() for t in ts)
    for w in ("two", "three", " 2 ", " 3 ", "rhombus", "plus sign", "underneath", "on top of",
              "to the left of", "large", "small"):
        assert w in allc, w
    # colour / size are sometimes left out: "a circle" is a fair caption
    singles = texts["single"]
    assert any(not set(t.split()) & set(COLORS) for t in singles)
    assert any(not set(t.split()) & {"small", "large"} for t in singles)


def test_reserved_words_never_used():
    assert {"ball", "box", "big", "tiny", "beneath", "to the right side of"} <= RESERVED_WORDS
    rng = np.random.default_rng(11)
    for sc in _scenes(5000, seed=11):
        text = caption(sc, rng)
        assert not reserved_in(text), (text, reserved_in(text))
    assert reserved_in("a big ball beneath a box") == ["ball", "beneath", "big", "box"]
    assert reserved_in("a cross to the right side of a square") == ["to the right side of"]
    assert reserved_in("a boxer") == []
    for form in UNSEEN_FORMS:  # every sentence frame of the paraphrased prompts carries a reserved marker
        assert reserved_in(form.format(x="a circle")), form


def test_write_dataset(tmp_path):
    out = write_dataset(tmp_path / "ds", n=12, size=32, seed=2, split="all", progress=False)
    assert out == tmp_path / "ds"
    recs = [json.loads(line) for line in (out / "scenes.jsonl").read_text().splitlines()]
    assert [r["index"] for r in recs] == list(range(12))
    ds = ShapesDataset(12, size=32, seed=2, split="all")
    for r in recs:
        img = np.asarray(Image.open(out / r["file"]))
        assert r["file"] == f"{r['index']:06d}.png"
        assert (out / r["file"].replace(".png", ".txt")).read_text().strip() == r["caption"]
        scene = Scene.from_dict(r["scene"])
        arr, text, sc = ds.item_arrays(r["index"])
        assert scene == sc and text == r["caption"]
        assert np.array_equal(img, arr) and np.array_equal(img, render(scene, 32))


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(n=-3), dict(n=5, size=8), dict(n=5, split="nope")])
def test_write_dataset_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError) as e:
        write_dataset(tmp_path / "x", **kwargs, progress=False)
    assert "\n" not in str(e.value)


def test_write_dataset_onto_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("hi")
    with pytest.raises(ValueError, match="not a directory"):
        write_dataset(f, n=2, progress=False)


def test_render_rejects_out_of_canvas():
    with pytest.raises(ValueError):
        render(Scene("single", (Obj("red", "square", "large", 50, 0),)), 64)


def test_render_into_overwrites_whatever_the_canvas_held():
    """render_batch reuses one array: a canvas's old pixels must never show through (timing:
    benchmarks/shapes_speed.py)."""
    canvas = np.full((64, 64, 3), 77, np.uint8)
    for sc in _scenes(50, seed=6):
        out = render_into(canvas, sc)
        assert out is canvas and np.array_equal(canvas, render(sc))
    with pytest.raises(ValueError):  # the cached masks are shared: they must not be writable
        shape_mask("circle", 13)[0, 0] = True


# --- placement ---------------------------------------------------------------------------------

def test_place_free_keeps_boxes_apart_and_inside():
    rng = np.random.default_rng(0)
    for _ in range(300):
        W = int(rng.choice([16, 32, 64]))
        sides = [side_px(str(rng.choice(list(SIZES))), W) for _ in range(int(rng.integers(1, 4)))]
        corners = place_free(rng, W, sides)
        if corners is None:
            continue
        assert len(corners) == len(sides)
        boxes = [(x, y, s) for (x, y), s in zip(corners, sides)]
        for i, (x, y, s) in enumerate(boxes):
            assert 0 <= x <= W - s and 0 <= y <= W - s
            for other in boxes[i + 1:]:
                assert separated((x, y, s), other)
    assert place_free(np.random.default_rng(0), 64, [40, 40]) is None  # two 40 px boxes cannot fit apart
    assert separated((0, 0, 10), (10 + GAP, 0, 5)) and not separated((0, 0, 10), (10 + GAP - 1, 0, 5))


def test_place_pair_makes_the_relation_clear():
    rng = np.random.default_rng(1)
    for relation in RELATIONS:
        for s0, s1 in ((13, 22), (22, 22), (13, 13)):
            (x0, y0), (x1, y1) = place_pair(rng, 64, s0, s1, relation)
            c0, c1 = (x0 + s0 / 2, y0 + s0 / 2), (x1 + s1 / 2, y1 + s1 / 2)
            assert relation_holds(c0, c1, relation, 64, strict=True)
            assert not relation_holds(c1, c0, relation, 64)  # the other way round it does not hold
            assert separated((x0, y0, s0), (x1, y1, s1))
    assert place_pair(rng, 16, 14, 14, "left of") is None  # no room for a clear relation
    with pytest.raises(ValueError, match="unknown relation"):
        place_pair(rng, 64, 13, 13, "beside")

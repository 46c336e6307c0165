"""How fast the shapes world is drawn and read back: render (one 64x64 scene to pixels), detect_objects (the
scene checker on a render) and judge (a fidelity verdict on an oracle render), per image on one CPU thread.
The tests check that these are right (tests/test_shapes.py, tests/test_scene_checker.py); this says how fast.

    python benchmarks/shapes_speed.py [--n 500] [--size 64] [--repeats 3]

On the shared 2-core x86_64 dev machine (2026-12-01, --n 200, under load): render 31 us, detect_objects 2.1 ms,
judge 2.2 ms per 64x64 image; the timing tests this replaces held bars of 1 ms and 20 ms.
"""

import argparse
import platform
import time

import numpy as np

from wordbrush.data.scene import render
from wordbrush.data.shapes import sample_scene
from wordbrush.data.specs import render_spec
from wordbrush.eval.judge import judge
from wordbrush.eval.prompts import make_prompts
from wordbrush.eval.scene_checker import detect_objects


def per_item(fn, items, repeats: int) -> float:
    """Best over repeats of the mean seconds per item (one warm-up call first)."""
    fn(items[0])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, (time.perf_counter() - t) / len(items))
    return best


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="scenes (and prompts) timed")
    ap.add_argument("--size", type=int, default=64, help="canvas side in pixels")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the items; the best is reported")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(6)
    scenes = [sample_scene(rng, size=a.size, split="all") for _ in range(a.n)]
    images = [render(sc, a.size) for sc in scenes]
    specs = make_prompts(max(1, a.n // 6), split="all")
    judged = [(render_spec(s, np.random.default_rng(k), a.size), s) for k, s in enumerate(specs)]
    figures = {
        "render_us": 1e6 * per_item(lambda sc: render(sc, a.size), scenes, a.repeats),
        "detect_objects_ms": 1e3 * per_item(detect_objects, images, a.repeats),
        "judge_ms": 1e3 * per_item(lambda pair: judge(*pair), judged, a.repeats),
    }
    print(f"{a.n} scenes at {a.size}x{a.size}, best of {a.repeats}, {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}")
    print(f"  render          {figures['render_us']:8.1f} us per image")
    print(f"  detect_objects  {figures['detect_objects_ms']:8.2f} ms per image")
    print(f"  judge           {figures['judge_ms']:8.2f} ms per image ({len(judged)} oracle renders)")
    return figures


if __name__ == "__main__":
    main()

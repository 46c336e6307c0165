"""Record the shapes fidelity benchmark's prompt lists, oracle renders, judgements and shapes-dataset items at fixed
seeds (run once, before the eval/data refactor of issue 19; tests/test_fidelity.py compares against the file).

    python tests/data/record_fidelity.py tests/data/fidelity_outputs.json
"""
import hashlib
import json
import sys
from dataclasses import asdict

import numpy as np

from wordbrush.data.shapes import ShapesDataset
from wordbrush.data.specs import render_spec
from wordbrush.eval.fidelity import run_fidelity
from wordbrush.eval.oracle import baseline_draws
from wordbrush.eval.prompts import make_prompts
from wordbrush.eval.paraphrase import make_paraphrase_prompts


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


out = {"prompts": {}, "renders": [], "dataset": {}, "runs": {}}
for split in ("all", "holdout", "train"):
    out["prompts"][split] = [asdict(s) for s in make_prompts(20, split=split)]
out["prompts"]["paraphrase"] = [asdict(s) for s in make_paraphrase_prompts(20)]
specs = make_prompts(4, split="all")
for k, s in enumerate(specs):
    out["renders"].append({"prompt": s.prompt, "seed": k, "size": 64 if k % 2 else 48,
                           "sha": sha(render_spec(s, np.random.default_rng([11, k]), 64 if k % 2 else 48))})
for split in ("train", "holdout", "all"):
    ds = ShapesDataset(40, size=64, seed=3, split=split)
    rows = []
    for i in range(40):
        arr, text, scene = ds.item_arrays(i)
        rows.append({"caption": text, "scene": scene.to_dict(), "sha": sha(arr)})
    out["dataset"][split] = rows
for name, draw in baseline_draws(specs).items():
    r = run_fidelity(draw, specs, images_per_prompt=2, seed=5, progress=False)
    out["runs"][name] = {"overall": r["overall"], "categories": r["categories"],
                         "images": [im for p in r["prompts"] for im in p["images"]]}
json.dump(out, open(sys.argv[1], "w"), indent=0)
print({k: r["overall"] for k, r in out["runs"].items()})

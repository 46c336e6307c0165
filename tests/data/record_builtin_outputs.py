"""Record output slices of the built-in models at fixed seeds (run once, before the house refactor; again for a
built-in model that was intentionally retrained).

    python tests/data/record_builtin_outputs.py tests/data/builtin_outputs.json [NAME ...]

With names, only those models' entries are re-recorded; the file's other entries are kept."""
import json, sys
from pathlib import Path
import numpy as np, torch
from wordbrush import TextToImagePipeline
CASES = {
    "shapes": ["a red circle to the left of a blue square", "two green triangles"],
    "shapes-minilm": ["a yellow cross above a purple diamond", "a large white circle"],
    "shapes-gan": ["a red circle to the left of a blue square", "three yellow crosses"],
    "emoji": ["red apple; food and drink; apple, fruit", "grinning face; smileys and emotion; face, grin"],
}
names = sys.argv[2:] or list(CASES)
out = json.loads(Path(sys.argv[1]).read_text()) if sys.argv[2:] else {}
torch.set_num_threads(2)
for name in names:
    prompts = CASES[name]
    pipe = TextToImagePipeline.from_pretrained(name)
    res = pipe(prompts, num_images_per_prompt=2, seed=7, rewrite=False)  # the generator's output, as typed
    arrs = [np.asarray(im, dtype=np.float64) for im in res.images]
    out[name] = {"prompts": prompts, "seed": 7, "n": 2, "tokens": res.tokens[:, :16].tolist(),
                 "pixel_slice": [a[28:32, 28:32, :].mean(-1).round(3).tolist() for a in arrs],
                 "mean": [round(float(a.mean()), 4) for a in arrs]}
    print(name, out[name]["mean"])
json.dump(out, open(sys.argv[1], "w"), indent=1)

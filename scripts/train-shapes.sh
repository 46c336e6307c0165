#!/usr/bin/env bash
# The default recipe for the built-in `shapes` model: the VAE, then the transformer, then the benchmark.
#   bash scripts/train-shapes.sh [RUNS_DIR]        (default runs/)
# On 2 CPU cores: about 20 min (VAE) + the transformer's max_minutes (configs/dalle-shapes.json) + a few
# minutes of evaluation. Copy RUNS_DIR/dalle-shapes to wordbrush/models/shapes to make it the built-in model.
set -euo pipefail
runs=${1:-runs}
wordbrush train vae --config configs/vae-shapes.json --out "$runs/vae-shapes"
wordbrush train dalle --config configs/dalle-shapes.json --vae "$runs/vae-shapes" --out "$runs/dalle-shapes"
wordbrush eval --model "$runs/dalle-shapes" --out "$runs/eval-dalle-shapes"

#!/usr/bin/env bash
# The default recipe for the built-in `shapes` model: the VAE, the reranking CLIP, the transformer, the benchmark.
#   bash scripts/train-shapes.sh [RUNS_DIR]        (default runs/)
# On 2 CPU cores: about 20 min (VAE) + 25 min (CLIP with hard negatives) + the transformer's max_minutes
# (configs/dalle-shapes.json) + ~10 minutes of evaluation. Copy RUNS_DIR/dalle-shapes to wordbrush/models/shapes to
# make it the built-in model (the CLIP travels inside it, in clip/).
set -euo pipefail
runs=${1:-runs}
wordbrush train vae --config configs/vae-shapes.json --out "$runs/vae-shapes"
wordbrush train clip --config configs/clip-shapes-reranker.json --out "$runs/clip-shapes-reranker"
wordbrush train dalle --config configs/dalle-shapes.json --vae "$runs/vae-shapes" --clip "$runs/clip-shapes-reranker" \
  --out "$runs/dalle-shapes"
wordbrush eval --model "$runs/dalle-shapes" --out "$runs/eval-dalle-shapes"

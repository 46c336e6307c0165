#!/usr/bin/env bash
# The recipe for the built-in `emoji` model: the dataset, the VAE, the CLIP, the transformer, then the evaluation
# on held-out concepts.
#   bash scripts/train-emoji.sh [RUNS_DIR]        (default runs/)
# On 2 CPU cores: about 15 min (VAE) + 12 min (CLIP) + 30 min (transformer) + a few minutes of evaluation
# (max_minutes in the configs). Needs npm for the first step (the images and labels come from npm packages).
# Copy RUNS_DIR/dalle-emoji to wordbrush/models/emoji to make it the built-in model.
set -euo pipefail
runs=${1:-runs}
data="$runs/emoji-data/metadata.jsonl"
wordbrush data emoji --out "$runs/emoji-data"
wordbrush train vae --config configs/vae-emoji.json --data "$data" --out "$runs/vae-emoji"
wordbrush train clip --config configs/clip-emoji.json --data "$data" --out "$runs/clip-emoji"
wordbrush train dalle --config configs/dalle-emoji.json --data "$data" --vae "$runs/vae-emoji" \
  --clip "$runs/clip-emoji" --out "$runs/dalle-emoji"
wordbrush rewriter build --model "$runs/dalle-emoji" --data "$data"   # everyday words -> its captions (5 min)
wordbrush eval --model "$runs/dalle-emoji" --data "$data" --split heldout --out "$runs/eval-dalle-emoji"
wordbrush eval --model "$runs/dalle-emoji" --data "$data" --everyday --out "$runs/everyday-dalle-emoji"

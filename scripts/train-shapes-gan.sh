#!/usr/bin/env bash
# The GAN recipe for shapes (docs/gan.md): the CLIP that judges, then the one-pass generator, then the benchmark.
#   bash scripts/train-shapes-gan.sh [RUNS_DIR] [CONFIG]     (default runs/, configs/gan-shapes-codes.json)
# The generator draws through the frozen decoder of the built-in `shapes` VAE, D judges its code grid, and the
# CLIP's text tower reads the prompts: the best-scoring recipe so far (docs/gan.md; configs/gan-shapes-minilm.json
# reads them through the frozen MiniLM, configs/gan-shapes-transformer.json writes the grid with a transformer
# trained as a cVAE-GAN). On 2 CPU cores: 8 min (CLIP)
# + the gan's max_minutes + a few minutes of evaluation; a killed or finished run continues with the same command
# plus `--resume` (and a larger `--max-minutes`), exactly.
set -euo pipefail
runs=${1:-runs}
config=${2:-configs/gan-shapes-codes.json}
name=$(basename "$config" .json)
[ -f "$runs/clip-shapes/config.json" ] || wordbrush train clip --config configs/clip-shapes.json --out "$runs/clip-shapes"
wordbrush train gan --config "$config" --clip "$runs/clip-shapes" --out "$runs/$name"
wordbrush eval --model "$runs/$name" --out "$runs/eval-$name"

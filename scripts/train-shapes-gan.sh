#!/usr/bin/env bash
# The GAN recipe for shapes (docs/gan.md), then the benchmark.
#   bash scripts/train-shapes-gan.sh [RUNS_DIR] [CONFIG]     (default runs/, configs/gan-shapes-codes.json)
# The default, configs/gan-shapes-codes.json (session 7's adversarial recipe with D on the code grid, the best so
# far), -slots (the same with object slots: relations learnt early, docs/gan.md session 23; 82 minutes, then to 150
# with D's swapped captions and G's vectors pulled onto the VAE's codes, session 24), -slots-negclip (the same from
# the start, reading captions through the built-in dalle's order-aware CLIP; 17,881 steps: the built-in
# `shapes-gan` of session 25), -objects (the same with each slot reading one object phrase of the caption,
# session 26), -minilm and -transformer train their own CLIP first (8 min). configs/gan-shapes-distill.json
# (distillation by coupled noise, train/gan_distill.py): the built-in `shapes` dalle draws ~200k images with a quantile per
# position (28 min on 2 cores with native bf16), then the one-step gan learns to write each from the same noise
# against D on the code grid, reading prompts through the shipped reranking CLIP (docs/gan.md, session 19).
# A killed or finished run continues with the same command (shards already written are kept; the gan resumes from
# its newest checkpoint, exactly; a larger budget: `--max-minutes` in the config or on the train command).
set -euo pipefail
runs=${1:-runs}
config=${2:-configs/gan-shapes-codes.json}
name=$(basename "$config" .json)
if grep -q '"distill"' "$config"; then
  wordbrush data distill --teacher shapes --out "$runs/distill-shapes" -n 196608 -q
  wordbrush train gan --config "$config" --set distill="$runs/distill-shapes" --out "$runs/$name" --resume -q
elif [ "$name" = gan-shapes-slots-negclip ]; then  # reads through the shipped NegCLIP: no CLIP to train first
  # budgeted in steps, the 150 minutes of session 24's run on 2 Zen 4 cores (docs/gan.md, session 25)
  wordbrush train gan --config "$config" --out "$runs/$name" --resume --max-minutes 0 --max-steps 17881
elif [ "$name" = gan-shapes-objects ]; then  # the same, each slot reading one object phrase (session 26); the
  # 150 minutes count the training time saved in the checkpoints, so a resumed run stops where one straight run would
  wordbrush train gan --config "$config" --out "$runs/$name" --resume --max-minutes 150
else
  [ -f "$runs/clip-shapes/config.json" ] || wordbrush train clip --config configs/clip-shapes.json --out "$runs/clip-shapes"
  if [ "$name" = gan-shapes-slots ]; then  # two phases (docs/gan.md, session 24)
    wordbrush train gan --config "$config" --clip "$runs/clip-shapes" --out "$runs/$name" --resume --max-minutes 82
    wordbrush train gan --config "$config" --clip "$runs/clip-shapes" --out "$runs/$name" --resume --max-minutes 150 \
      --set hard_negatives=true --set code_commitment=1.0
  else
    wordbrush train gan --config "$config" --clip "$runs/clip-shapes" --out "$runs/$name" --resume
  fi
fi
wordbrush eval --model "$runs/$name" --out "$runs/eval-$name"

#!/usr/bin/env bash
# The GAN recipe for shapes (docs/gan.md), then the benchmark.
#   bash scripts/train-shapes-gan.sh [RUNS_DIR] [CONFIG]     (default runs/, configs/gan-shapes-objects.json)
# The default, configs/gan-shapes-objects.json, is the built-in `shapes-gan` (sessions 26-27): object slots, each
# reading one object phrase of the caption through the built-in dalle's order-aware CLIP, then the sentence kept out
# of the trunk; 150 minutes on 2 cores with native bf16. The others, as docs/gan.md tells: -codes (session 7's
# adversarial recipe with D on the code grid), -slots (the same with object slots, session 23; 82 minutes, then to
# 150 with D's swapped captions and G's vectors pulled onto the VAE's codes, session 24), -slots-negclip (the same
# from the start through the order-aware CLIP; 17,881 steps: `shapes-gan` of session 25); -minilm and -transformer
# train their own CLIP first (8 min). configs/gan-shapes-distill.json (distillation by coupled noise,
# train/gan_distill.py): the built-in `shapes` dalle draws ~200k images with a quantile per position (28 min on 2
# cores with native bf16), then the one-step gan learns to write each from the same noise against D on the code
# grid, reading prompts through the shipped reranking CLIP (docs/gan.md, session 19).
# A killed or finished run continues with the same command (shards already written are kept; the gan resumes from
# its newest checkpoint, exactly; a larger budget: `--max-minutes` in the config or on the train command).
set -euo pipefail
runs=${1:-runs}
config=${2:-configs/gan-shapes-objects.json}
name=$(basename "$config" .json)
if grep -q '"distill"' "$config"; then
  wordbrush data distill --teacher shapes --out "$runs/distill-shapes" -n 196608 -q
  wordbrush train gan --config "$config" --set distill="$runs/distill-shapes" --out "$runs/$name" --resume -q
elif [ "$name" = gan-shapes-slots-negclip ]; then  # reads through the shipped NegCLIP: no CLIP to train first
  # budgeted in steps, the 150 minutes of session 24's run on 2 Zen 4 cores (docs/gan.md, session 25)
  wordbrush train gan --config "$config" --out "$runs/$name" --resume --max-minutes 0 --max-steps 17881
elif [ "$name" = gan-shapes-objects ]; then  # the same, each slot reading one object phrase (session 26), in two
  # phases: 8,526 steps as configured, then to 150 minutes of training time (counted across resumes, saved in the
  # checkpoints) with the sentence kept out of the trunk, so that the caption reaches the grid through the slots only.
  # Phase 1 is skipped once phase 2 has begun (its train_config.json says so): rerunning it would rewrite the run.
  if ! grep -q '"trunk_reads_sentence": false' "$runs/$name/train_config.json" 2>/dev/null; then
    wordbrush train gan --config "$config" --out "$runs/$name" --resume --max-minutes 0 --max-steps 8526
  fi
  wordbrush train gan --config "$config" --out "$runs/$name" --resume --max-minutes 150 \
    --set model.trunk_reads_sentence=false
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

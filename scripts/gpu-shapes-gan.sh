#!/usr/bin/env bash
# Issue 23 on a lent GPU, in one device call: the shapes CLIP, then session 7's code-grid GAN recipe
# (configs/gan-shapes-codes.json) at a GPU's batch, then the shapes benchmark, inside the device tool's 10 minutes.
#   bash scripts/gpu-shapes-gan.sh OUT_DIR                  (on the device machine: OUT_DIR=$OUT)
#   CLIP_MIN=0.2 GAN_MIN=0.3 PROMPTS=2 bash scripts/gpu-shapes-gan.sh /tmp/smoke   (a smoke test on any machine)
#   CONFIG=configs/gan-shapes-slots.json bash scripts/gpu-shapes-gan.sh OUT_DIR   (another recipe: object slots)
# It runs from the source tree (PYTHONPATH=., no install: the device machine reaches no package index; its image
# holds torch and the other libraries) and writes under OUT_DIR at most 8 files, as the device tool brings back:
# log.txt, the model folder as model.tar.gz (in 15 MiB parts where larger), the benchmark's report.md,
# report.json and failure grid, and the GAN's last sample grid. The run folder stays in runs-gpu/ on the device
# machine: a second call within its warm window can go on with `--resume` (same config, larger --max-minutes).
set -euo pipefail
out=${1:?usage: gpu-shapes-gan.sh OUT_DIR}
mkdir -p "$out"
runs=${RUNS:-runs-gpu}
clip_min=${CLIP_MIN:-1.5}
gan_min=${GAN_MIN:-5}
batch=${BATCH:-128}
prompts=${PROMPTS:-20}
config=${CONFIG:-configs/gan-shapes-codes.json}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
exec > >(tee "$out/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: $(uname -m) CPU"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
start=$(date +%s)
"$py" -m wordbrush train clip --config configs/clip-shapes.json --out "$runs/clip-shapes" \
    --set max_minutes="$clip_min" --set threads=0 -q
"$py" -m wordbrush train gan --config "$config" --clip "$runs/clip-shapes" \
    --out "$runs/gan-shapes" --set max_minutes="$gan_min" --set batch_size="$batch" --set threads=0 -q
echo "trained in $(( $(date +%s) - start )) s"
"$py" -m wordbrush eval --model "$runs/gan-shapes" --out "$runs/eval-gan-shapes" \
    --prompts-per-category "$prompts" -q
tar -czf "$runs/model.tar.gz" --exclude=checkpoints --exclude=samples --exclude=.lock \
    --exclude=generator_raw.safetensors --exclude=discriminator.safetensors -C "$runs" gan-shapes  # the pipeline alone
if [ "$(stat -c %s "$runs/model.tar.gz")" -gt $((15 << 20)) ]; then
    split -b 15M -d "$runs/model.tar.gz" "$out/model.tar.gz.part"   # cat model.tar.gz.part* > model.tar.gz
else
    cp "$runs/model.tar.gz" "$out/"
fi
cp "$runs/eval-gan-shapes/report.md" "$runs/eval-gan-shapes/report.json" "$out/" 2>/dev/null || true
cp "$runs/eval-gan-shapes/all/grid_failures.png" "$out/failures.png" 2>/dev/null || true
cp "$runs/gan-shapes/samples/final.png" "$out/samples.png" 2>/dev/null || true
echo "done in $(( $(date +%s) - start )) s"; ls -la "$out"

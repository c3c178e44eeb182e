#!/usr/bin/env bash
# The demo UNet trained on a lent GPU machine (the `device` tool), in one call: from the committed
# seeds it rebuilds the work folder there (train scenes, CLIP, VAE, latents; about a minute on 16
# cores), trains the UNet from seeds/unet.safetensors for MINUTES on CUDA at batch BATCH with a new
# cosine from LR, and writes what comes back to $OUT: the new seed (unet.safetensors, fp16, with its
# history) and train.log. Locally (no $OUT, no CUDA) it runs the same steps on the CPU into
# /tmp/device-out, which is how it is tested.
#
#   Tools/toyworld/device_train.sh MINUTES [BATCH] [LR] [SCENES]
#
# The machine has PyTorch and transformers but not diffusers: carry its wheels (and
# importlib_metadata's) in .whl/ (Tools/toyworld/README.md, "Training on a lent GPU", says how, and
# how to send less than the whole repository, which is over the tool's 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes="${1:?usage: device_train.sh MINUTES [BATCH] [LR] [SCENES]}"
batch="${2:-128}"
lr="${3:-3e-4}"
scenes="${4:-10000}"
out="${OUT:-/tmp/device-out}"
work="${DEVICE_WORK:-/tmp/toyworld-device}"
mkdir -p "$out" "$work"
py="${PYTHON:-python3}"
if [[ -d .whl ]]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
dev=$("$py" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
threads="${THREADS:-$(nproc)}"
seeds=Tools/toyworld/seeds
train() { "$py" Tools/toyworld/train.py "$@" --work "$work" --threads "$threads" --scenes "$scenes"; }
# Where the seed ends, and the preset's restarts with one more there: warm-up, then a cosine over
# what the minutes allow at a guessed step time (STEP_MS; the stage stops at --max-minutes with a
# checkpoint either way, so a guess too low leaves the cosine unfinished, one too high ends early).
read -r start restart_from restart_lr < <("$py" -c "
import sys; sys.path.insert(0, 'Tools'); from toyworld import seedweights, train; from pathlib import Path
s, a = seedweights.seed_step(Path('$seeds/unet.safetensors')), train.parse_args(['unet'])
print(s, ','.join(map(str, [*a.unet_restart_from, s])), ','.join(map(str, [*a.unet_restart_lr, $lr])))")
step_ms="${STEP_MS:-$([[ $dev == cuda ]] && echo 25 || echo 600)}"
steps=$(( start + 60000 * minutes / step_ms ))
echo "== device_train: $dev, $threads threads; the UNet from step $start, batch $batch, lr $lr, up to step $steps or $minutes min"
train data
train clip --clip-init "$seeds/clip.safetensors"
train vae --vae-init "$seeds/vae.safetensors"
train latents --device "$dev"
set +e
train unet --device "$dev" --unet-init "$seeds/unet.safetensors" --unet-batch "$batch" --unet-steps "$steps" \
    --unet-restart-from "$restart_from" --unet-restart-lr "$restart_lr" --max-minutes "$minutes"
status=$?
set -e
[[ $status == 0 || $status == 3 ]] || { cp "$work/train.log" "$out/"; exit $status; }
train seed --seed-stage unet --seed-out "$out/unet.safetensors"
cp "$work/train.log" "$out/"
echo "== device_train: $(ls "$out")"

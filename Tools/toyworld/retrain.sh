#!/bin/bash
# The shipped demo model's whole training path in one command:
#
#     bash Tools/toyworld/retrain.sh [WORK]          # DRY=1 prints the commands instead
#
# The model was trained across sessions and world versions (version.py): the cpu preset in world 2
# to UNet step 80 000, then worlds 4 to 8, each phase going on from the weights the last one
# ended with (`train.py seed`: the UNet's EMA in fp16, a fresh optimizer), as the README's
# "Training path" tells. Each phase has its own work folder under WORK; a phase's UNet stops at
# the step where the next one took over (--stop-at), its learning-rate schedule still the one it
# ran on. Every stage checkpoints and resumes: re-run the same command to continue after a stop.
# 2-core CPU: about 15 h (the UNet's 128 000 steps at 0.3-0.4 s, world 8's decoder 1.2 h); the
# textual inversion, export and measurement at the end as the shipped model's.
set -euo pipefail
WORK=${1:-/work/toyworld-retrain}
PY=${PYTHON:-/work/venv/bin/python}
TRAIN="$(cd "$(dirname "$0")" && pwd)/train.py"
ASSETS="$WORK/assets"
# The UNet's cosine restarts of world 2 (the preset's, and the one at 80 000 that world 4 began with).
R=43535,51500,61000,69000,80000
L=1.5e-4,1.5e-4,1.5e-4,1.5e-4,1.5e-4

run() {   # WORLD_VERSION STAGE ARGS...: one train.py stage; exit 3 is a stop (--stop-at), not a failure
    local version=$1; shift
    if [ -n "${DRY:-}" ]; then echo "TOYWORLD_VERSION=$version train.py $*"; return 0; fi
    local rc=0
    TOYWORLD_VERSION=$version nice -n 19 "$PY" "$TRAIN" "$@" || rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || exit "$rc"
}
seed() {   # WORLD_VERSION PHASE_DIR STAGE: the stage's weights for the next phase
    run "$1" seed --seed-stage "$3" --work "$2" --seed-out "$2/seeds/$3.safetensors"
}
chain() {   # WORLD_VERSION DIR: the stages every phase starts with, from phase w2's CLIP and VAE
    run "$1" data --work "$2"
    run "$1" clip --work "$2" --clip-init "$WORK/w2/seeds/clip.safetensors"
    run "$1" vae --work "$2" --vae-init "$WORK/w2/seeds/vae.safetensors"
    run "$1" latents --work "$2"
}
phase() {   # WORLD_VERSION PREVIOUS UNET_ARGS...: a later world's stages, from the weights phase
            # PREVIOUS ended with (its UNet on with UNET_ARGS); W = its folder. The decoder runs to
            # step 2 000 unless DECODER_ARGS say otherwise: world 4's 1 000 steps, none in worlds 5 to
            # 7, which began at 2 000 (so world 7's grey striped cats decoded lavender until world 8)
    local version=$1 previous=$WORK/w$2/seeds; shift 2
    W=$WORK/w$version
    chain "$version" "$W"
    # shellcheck disable=SC2086 # DECODER_ARGS is a list of options
    run "$version" decoder --work "$W" --decoder-init "$previous/decoder.safetensors" ${DECODER_ARGS:---decoder-steps 2000}
    run "$version" unet --work "$W" --unet-init "$previous/unet.safetensors" "$@"
}

# world 2: the cpu preset from scratch, UNet to 80 000
W=$WORK/w2
for stage in data clip vae latents decoder unet; do run 2 "$stage" --work "$W"; done
for stage in clip vae decoder unet; do seed 2 "$W" "$stage"; done

# world 4 (a few attributes a character): the decoder 1 000 steps more, the UNet a sixth cosine, 80 000 -> 86 871
phase 4 2 --unet-steps 90000 --unet-restart-from $R --unet-restart-lr $L --stop-at 86871
for stage in decoder unet; do seed 4 "$W" "$stage"; done

# world 5 (skin said, bolder stripes): a seventh cosine to 92 000, an eighth toward 110 000 with
# character scenes three times an epoch from 92 152, stopped at 103 732
phase 5 4 --unet-steps 110000 \
    --unet-restart-from $R,86871,92000 --unet-restart-lr $L,1.5e-4,1.5e-4 \
    --unet-repeat characters=3 --unet-repeat-from 92152 --stop-at 103732
for stage in decoder unet; do seed 5 "$W" "$stage"; done

# world 6 (alex's and cora's hats swapped): a ninth cosine from 8e-5 to 114 000
phase 6 5 --unet-steps 114000 \
    --unet-restart-from $R,86871,92000,103732 --unet-restart-lr $L,1.5e-4,1.5e-4,8e-5 \
    --unet-repeat characters=3 --unet-repeat-from 103732
for stage in decoder unet; do seed 6 "$W" "$stage"; done

# world 7 (random cats grey and striped too): a tenth cosine from 8e-5 to 119 000, character
# scenes three times an epoch
phase 7 6 --unet-steps 119000 \
    --unet-restart-from $R,86871,92000,103732,114000 --unet-restart-lr $L,1.5e-4,1.5e-4,8e-5,8e-5 \
    --unet-repeat characters=3 --unet-repeat-from 114000
for stage in decoder unet; do seed 7 "$W" "$stage"; done

# world 8 (a cat's ears in its fur colour alone): an eleventh cosine from 8e-5 to 128 000; the
# decoder 3 000 steps on world-8 scenes (an eighth of each batch the individuals' renders), then a
# second cosine to 9 000 in its own folder D from the 5 000 seed (peak 2e-4, character share 0.6);
# in D textual inversion (alex's token in three vectors: with two his hat came out orange on grass)
# and export
DECODER_ARGS="--decoder-steps 5000 --decoder-individual-share 0.125 --eval-every 1000" \
phase 8 7 --unet-steps 128000 \
    --unet-restart-from $R,86871,92000,103732,114000,119000 --unet-restart-lr $L,1.5e-4,1.5e-4,8e-5,8e-5,8e-5 \
    --unet-repeat characters=3 --unet-repeat-from 114000
run 8 seed --seed-stage decoder --work "$W" --seed-out "$W/seeds/decoder-5000.safetensors"
D=$WORK/w8-decoder
[ -n "${DRY:-}" ] || { mkdir -p "$D"; for s in data clip vae latents unet; do ln -sfn "$W/$s" "$D/$s"; done; }
run 8 decoder --work "$D" --decoder-init "$W/seeds/decoder-5000.safetensors" --decoder-steps 9000 \
    --decoder-lr 2e-4 --decoder-character-share 0.6 --decoder-individual-share 0.125 --eval-every 1000
run 8 ti --work "$D" --ti-concepts alex --ti-vectors 3
run 8 ti --work "$D" --ti-concepts cora,koko,alexcora --ti-vectors 2
run 8 export --work "$D" --assets "$ASSETS"
echo "retrain.sh: the model is in $ASSETS (measure it: Tools/toyworld/measure_pareidolia.py --model $ASSETS/demo-model)"

#!/usr/bin/env bash
# How far 16-bit weights and the fast mode move a generation from the exact fp32 one: final
# latent (max |error| / max |fp32|) and 8-bit image PSNR, for one prompt and seed (euler_a).
#
#   Tools/precision-closeness.sh MODEL SIZE STEPS OUT_DIR
#
# Needs a release build (swift build -c release) and ${PYTHON:-python3} with numpy, pillow and
# safetensors (Notebooks/requirements.txt). Writes one image and trace per variant into OUT_DIR.
set -euo pipefail
if [[ $# -ne 4 ]]; then sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
MODEL=$1; SIZE=$2; STEPS=$3; OUT=$4
BIN="$(cd "$(dirname "$0")/.." && pwd)/.build/release/pareidolia"
mkdir -p "$OUT"
for v in "fp32 none" "fp16 none" "bf16 none" "fp32 winograd" "fp32 bf16" "fp32 all" "fp16 all"; do
  set -- $v
  "$BIN" generate --model $MODEL --prompt "a witch and her black cat in a moonlit forest, oil painting" --seed 1887838105 --steps $STEPS --sampler euler_a --width $SIZE --height $SIZE --precision $1 --fast $2 --output $OUT/$1-$2.png --trace $OUT/$1-$2 --trace-attention off > /dev/null
done
"${PYTHON:-python3}" - $OUT <<'PY'
import sys, numpy as np
from PIL import Image
from safetensors.numpy import load_file
out = sys.argv[1]
ref_l = load_file(f"{out}/fp32-none/latents.safetensors")["latents"][-1]
ref_i = np.asarray(Image.open(f"{out}/fp32-none.png")).astype(float)
for v in ["fp16-none", "bf16-none", "fp32-winograd", "fp32-bf16", "fp32-all", "fp16-all"]:
    l = load_file(f"{out}/{v}/latents.safetensors")["latents"][-1]
    i = np.asarray(Image.open(f"{out}/{v}.png")).astype(float)
    mse = ((i - ref_i) ** 2).mean()
    psnr = 10 * np.log10(255 ** 2 / mse) if mse > 0 else float("inf")
    print(f"{v:14s} latent max|err|/max|ref| {np.abs(l - ref_l).max() / np.abs(ref_l).max():.2e}  image PSNR {psnr:.1f} dB  max {np.abs(i - ref_i).max():.0f} levels")
PY

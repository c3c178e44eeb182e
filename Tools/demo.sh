#!/usr/bin/env bash
# The demo: on the embedded Shapes-world model (Assets/demo-model, Tools/toyworld), a prompt with two
# objects, the story's four-seed sweep, and the two look-alike characters; images, traces and reports
# under Reports/demo/. Installs the system packages when missing and builds the CLI (release) first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift build -c release --product pareidolia 2>&1 | grep -v "prohibited flag" | tail -1
bin="$(swift build -c release --show-bin-path)/pareidolia"
out=Reports/demo
seeds=1887838105,4069519546,1826200903,3008594124
mkdir -p "$out"
run() {  # name, then generate's arguments
    local name="$1"; shift
    rm -rf "${out:?}/$name"
    mkdir -p "$out/$name"
    echo "== $name: $*"
    "$bin" generate --steps 20 --guidance 5 --output "$out/$name/image.png" --trace "$out/$name/trace" "$@"
    "$bin" report "$out/$name/trace" --out "$out/$name/report"
}
start=$(date +%s)
run two-objects --prompt "a red circle to the left of a blue square" --seed 1887838105
run sweep --prompt "two small yellow stars and a purple triangle on a striped background" --seeds "$seeds"
run lookalikes --prompt "alex and cora side by side" --embedding alex --embedding cora --seeds "$seeds"
run pair-token --prompt "alexcora side by side" --embedding alexcora --seeds "$seeds"
run mixed-pair --prompt "alex and koko side by side" --embedding alex --embedding koko --seeds "$seeds"
for name in lookalikes mixed-pair; do
    b=$([[ $name == lookalikes ]] && echo cora || echo koko)
    "$bin" merge "$out/$name/trace" --pair "alex,$b" | tee "$out/$name/merge.txt"
done
"$bin" embeddings --embedding alex --embedding cora --embedding koko person cat > "$out/embeddings.txt"
echo "demo written under $out/ in $(( $(date +%s) - start )) s (after the build); open $out/two-objects/report/index.html"

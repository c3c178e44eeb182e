#!/usr/bin/env bash
# The demo: on the embedded Shapes-world model (Assets/demo-model, Tools/toyworld), a prompt with two
# objects, the story's four-seed sweep, one seed under three prompts that each add one thing, alex
# alone, and the two look-alike characters; images, traces (with the CLIP similarity of each phrase at every
# evaluation, by the demo's own CLIP) and reports under Reports/demo/. Installs the system packages when missing and builds the CLI (release) first.
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
    "$bin" generate --sampler ddim --steps 20 --guidance 5 --output "$out/$name/image.png" --trace "$out/$name/trace" \
        --clip-model Assets/demo-clip "$@"
    "$bin" report "$out/$name/trace" --out "$out/$name/report" | tee "$out/$name/summary.txt"
}
start=$(date +%s)
run two-objects --prompt "a red circle to the left of a blue square" --seed 1887838105 \
    --clip-phrases "a red circle;a blue square;a blue circle"
run sweep --prompt "a yellow star and a purple triangle on grass" --seeds "$seeds" \
    --clip-phrases "a yellow star;a purple triangle;grass"
# The story's way of working: one seed, a prompt tweaked twice, every run in one report.
run compare --seed 3754952516 --prompt "a red circle on the left" \
    --prompt "a red circle on the left and a blue square on the right" \
    --prompt "a red circle on the left and a blue square on the right on grass"
run alex-alone --prompt "a photo of alex on grass" --embedding alex --seeds "$seeds"
run lookalikes --prompt "alex and cora side by side" --embedding alex --embedding cora --seeds "$seeds"
run pair-token --prompt "alexcora side by side" --embedding alexcora --seeds "$seeds"
run mixed-pair --prompt "alex and koko side by side" --embedding alex --embedding koko --seeds "$seeds"
for name in lookalikes mixed-pair; do
    b=$([[ $name == lookalikes ]] && echo cora || echo koko)
    "$bin" merge "$out/$name/trace" --pair "alex,$b" | tee "$out/$name/merge.txt"
done
# From the diagnosis to a fix: the look-alikes re-run with the merge remedy and its ablation.
rm -rf "${out:?}/remedy"
"$bin" remedy "$out/lookalikes/trace" --pair alex,cora --ablate --out "$out/remedy" | tee "$out/remedy.txt"
"$bin" embeddings --embedding alex --embedding cora --embedding koko person cat > "$out/embeddings.txt"
# The pair outcomes over many seeds, as Tools/toyworld/measure_pareidolia.py measured them with the
# world's detector (it needs Python; the demo shows the committed figures).
pairs_table() {
    local tsv="$1" prompt setting seeds both one merged none mixed two
    [[ -f $tsv ]] || { echo "<p>(no $tsv: run Tools/toyworld/measure_pareidolia.py)</p>"; return; }
    echo "<p>What the Shapes world's detector found in each image (<code>Tools/toyworld/measure_pareidolia.py</code>, DDIM 20 steps, guidance 5): both individuals, only one, a merged character (not quite either; in brackets how many of those are a true mix, one's skin under the other's hat), or neither; and in how many it found two characters of any identity. The remedy rows re-run the same seeds with <code>--separate</code>, one channel closed after another.</p>"
    echo "<table><tr><th>prompt</th><th>setting</th><th>seeds</th><th>both</th><th>one</th><th>merged (a true mix)</th><th>none</th><th>two characters drawn</th></tr>"
    while IFS=$'\t' read -r prompt setting seeds both one merged none mixed two; do
        echo "<tr><td>$prompt</td><td><code>$setting</code></td><td>$seeds</td><td>$both</td><td>$one</td><td>$merged ($mixed)</td><td>$none</td><td>$two</td></tr>"
    done < <(tail -n +2 "$tsv")
    echo "</table>"
}
# One page over the demo: links to each report, and the same-class pair's merge page beside the mixed pair's.
cat > "$out/index.html" <<HTML
<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pareidolia demo</title><style>body{font:16px/1.5 "DejaVu Sans",sans-serif;max-width:1600px;margin:0 auto;padding:12px 20px;color:#1f2328}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}img{max-width:100%;height:auto}pre{background:#f6f8fa;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}</style></head><body>
<h1>Pareidolia demo — the embedded Shapes-world model</h1>
<ul>
<li><a href="two-objects/report/index.html">two objects</a>: "a red circle to the left of a blue square" — which word landed where</li>
<li><a href="sweep/report/index.html">the four-seed sweep</a>: "a yellow star and a purple triangle on grass" — how one prompt resolves from four seeds' noise</li>
<li><a href="compare/report/index.html">one seed, three prompts</a>: "a red circle on the left", then "… and a blue square on the right", then "… on grass" — what each added phrase changed, word by word and step by step</li>
<li><a href="alex-alone/report/index.html">alex alone</a>: "a photo of alex on grass" — the textual-inversion token by itself over four seeds: is it alex (peach skin, red top hat) before any pair is asked for</li>
<li><a href="lookalikes/report/index.html">the look-alikes</a>: "alex and cora side by side" (two people of one class)</li>
<li><a href="mixed-pair/report/index.html">a mixed pair</a>: "alex and koko side by side" (a person and a cat)</li>
<li><a href="pair-token/report/index.html">the pair token</a>: "alexcora side by side" (the story's fix)</li>
<li><a href="remedy/report/index.html">the merge remedy</a>: the look-alikes re-run with bounded regional attention (and each of its channels alone) — do alex and cora end apart, and which channel carried the merge</li>
</ul>
<h2>Why two subjects merge: the same-class pair beside the mixed pair</h2>
<div class="pair"><figure><img src="lookalikes/report/merge-alex-cora.png" alt="merge page, alex and cora"><figcaption>alex and cora</figcaption></figure>
<figure><img src="mixed-pair/report/merge-alex-koko.png" alt="merge page, alex and koko"><figcaption>alex and koko</figcaption></figure></div>
<h2>From the diagnosis to a fix: the look-alikes with the merge remedy</h2>
<pre>$(sed 's/&/\&amp;/g; s/</\&lt;/g' "$out/remedy.txt")</pre>
<h2>Two individuals in one prompt, counted over many seeds</h2>
$(pairs_table Assets/demo-model/pairs.tsv)
<h2>Which parts of the prompt the picture kept (CLIP similarity of x̂₀ at every evaluation)</h2>
<div class="pair"><figure><img src="two-objects/report/clip.png" alt="CLIP similarity per phrase, two objects"><figcaption>two objects (a blue circle: a phrase the prompt did not ask for)</figcaption></figure>
<figure><img src="sweep/report/clip-1887838105.png" alt="CLIP similarity per phrase, sweep seed 1887838105"><figcaption>the sweep, seed 1887838105</figcaption></figure></div>
<h2>One seed, three prompts: what each change did</h2>
<figure><img src="compare/report/images.png" alt="the three prompts' images"><figcaption>the three prompts' images (seed 3754952516)</figcaption></figure>
<pre>$(sed 's/&/\&amp;/g; s/</\&lt;/g' "$out/compare/summary.txt")</pre>
<h2>Where the embeddings sit</h2><pre>$(sed 's/&/\&amp;/g; s/</\&lt;/g' "$out/embeddings.txt")</pre>
</body></html>
HTML
echo "demo written under $out/ in $(( $(date +%s) - start )) s (after the build); open $out/two-objects/report/index.html"

#!/usr/bin/env bash
# Opens a report's index.html in headless Chromium and checks that (1) its scripts run without an
# error, (2) every image on the page loads, (3) the step slider moves the frame to frames/000.png,
# (4) the word picker is shown (when the report has one), (5) a comparison of prompts (a page with
# a "divergence" section) says where its runs part, (6) a remedy report (a page with a
# "regions" section) states its answer and shows both subjects' maps, and (7) a screenshot of the
# page is not blank. Quiet on success but for one line; on failure one line saying why, and a non-zero exit.
# Without chromium (and no way to install it) it says so and exits 0 ("skipped").
# Usage: bash Tools/test-report-browser.sh REPORT_DIR       (python3's standard library only)
set -euo pipefail
report="${1:?usage: test-report-browser.sh REPORT_DIR}"
[[ -f "$report/index.html" ]] || { echo "report check: $report/index.html: missing" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
        echo "report check skipped: chromium is not installed and there is no sudo to install it"; exit 0
    fi
    echo "installing chromium (for the report check)" >&2
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; } 2>/dev/null \
        || ! command -v chromium >/dev/null; then
        echo "report check skipped: chromium could not be installed (apt-get install chromium failed)"; exit 0
    fi
fi
command -v python3 >/dev/null || { echo "report check skipped: no python3"; exit 0; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$report" "$work/r"

# A copy of the page with a harness: record errors first, then after load move the slider, look
# at every image, and put the outcome in the title, which --dump-dom prints. Images are made eager
# in the copy so that "load" waits for all of them (the page lazy-loads those below the fold).
python3 - "$work/r/index.html" "$work/r/harness.html" <<'PY'
import sys
page = open(sys.argv[1], encoding="utf-8").read()
first = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  if (e.target && e.target !== window) return;  // a resource that failed: counted as a broken image below
  window.__errors.push(String(e.message || e.error));
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("unhandled rejection: " + String(e.reason)); });
</script>"""
last = """<script>
window.addEventListener("load", function () { setTimeout(check, 200); });  // late errors (rejections) land first
function check() {
  var out = [];
  try {
    var broken = Array.prototype.filter.call(document.images, function (i) { return !(i.complete && i.naturalWidth > 0); })
      .map(function (i) { return i.getAttribute("src"); });
    out.push("images=" + document.images.length + " broken=" + broken.length + (broken.length ? "[" + broken.slice(0, 5).join(",") + "]" : ""));
    var r = document.getElementById("scrub-step"), img = document.getElementById("scrub-frame"), box = document.getElementById("scrub");
    if (!r || !img || !box || box.hidden) { out.push("slider-hidden"); }
    else { r.value = 0; r.dispatchEvent(new Event("input")); out.push("frame=" + img.getAttribute("src")); }
    var p = document.getElementById("picker");
    out.push(p ? (p.hidden ? "picker-hidden" : "picker-shown") : "no-picker");
    var d = document.getElementById("divergence");
    if (d) out.push("comparison sentences=" + d.querySelectorAll("li").length);
    if (document.getElementById("regions")) {
      var a = document.querySelector("#summary .answer"), s = document.querySelector("#subjects img");
      out.push("remedy answer=" + (a && a.textContent.trim().length > 20 ? "stated" : "missing") + " subjects=" + (s && s.naturalWidth > 0 ? "shown" : "missing"));
    }
  } catch (e) { window.__errors.push(String(e)); }
  document.title = "RESULT " + out.join(" ") + " errors=" + window.__errors.length + " " + window.__errors.join(" | ");
}
</script>"""
if "<head>" not in page or "</body>" not in page:
    sys.exit("report check: index.html has no <head> or </body> to put the harness in")
page = page.replace(' loading="lazy"', "")
page = page.replace("<head>", "<head>" + first, 1).replace("</body>", last + "</body>", 1)
open(sys.argv[2], "w", encoding="utf-8").write(page)
PY
flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --no-first-run
       --allow-file-access-from-files --user-data-dir="$work/profile")
dom="$(timeout 120 chromium "${flags[@]}" --virtual-time-budget=10000 --dump-dom "file://$work/r/harness.html" 2>"$work/chromium.log" || true)"
title="$(printf '%s' "$dom" | grep -o '<title>RESULT[^<]*</title>' | sed 's/<[^>]*>//g' || true)"
if [[ -z "$title" ]]; then
    if [[ -z "$dom" ]]; then
        echo "report check: chromium printed no page ($(grep -v '^\s*$' "$work/chromium.log" | tail -n 1 | cut -c1-200))" >&2
    else
        echo "report check: the page's scripts did not finish (no result in the title)" >&2
    fi
    exit 1
fi
[[ "$title" == *"errors=0 "* ]] || { echo "report check: script errors: ${title#*errors=}" >&2; exit 1; }
[[ "$title" == *" broken=0 "* ]] || { echo "report check: images that did not load: $(grep -o 'broken=[^ ]*' <<<"$title")" >&2; exit 1; }
[[ "$title" == *"frame=frames/000.png"* ]] || { echo "report check: the slider did not move the frame to frames/000.png (${title#RESULT })" >&2; exit 1; }
[[ "$title" == *"picker-shown"* || "$title" == *"no-picker"* ]] || { echo "report check: the word picker stayed hidden (${title#RESULT })" >&2; exit 1; }
[[ "$title" != *"comparison sentences=0"* ]] || { echo "report check: the comparison says nowhere where its runs part (${title#RESULT })" >&2; exit 1; }
[[ "$title" != *"remedy answer=missing"* && "$title" != *"subjects=missing"* ]] || { echo "report check: the remedy report lacks its answer or the subjects' maps (${title#RESULT })" >&2; exit 1; }
images="$(grep -o 'images=[0-9]*' <<<"$title")"
kind="$(grep -o 'comparison sentences=[0-9]*' <<<"$title" | sed 's/comparison sentences=\(.*\)/, a comparison with \1 sentences on where its runs part/' || true)"
[[ "$title" != *"remedy answer=stated"* ]] || kind+=", a remedy report with its answer and both subjects' maps"

timeout 120 chromium "${flags[@]}" --window-size=1200,2000 --force-device-scale-factor=0.5 --virtual-time-budget=10000 --screenshot="$work/shot.png" \
    "file://$work/r/index.html" >/dev/null 2>>"$work/chromium.log" || true
[[ -s "$work/shot.png" ]] || { echo "report check: chromium wrote no screenshot" >&2; exit 1; }
# Not blank: decode the PNG (zlib, PNG filters undone) and measure how much its pixels vary. The
# page is laid out at 1200×2000 CSS px and rendered at half scale, so pure Python decodes it quickly.
shot="$(python3 - "$work/shot.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("report check: the screenshot is not a PNG")
pos, idat, width, height, depth, ctype = 8, [], 0, 0, 8, 2
while pos + 8 <= len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
        if depth != 8 or ctype not in (0, 2, 4, 6) or interlace:
            sys.exit(f"report check: screenshot PNG kind not handled (depth {depth}, colour type {ctype}, interlace {interlace})")
    elif kind == b"IDAT":
        idat.append(body)
    elif kind == b"IEND":
        break
    pos += 12 + n
bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
raw = zlib.decompress(b"".join(idat))
stride = width * bpp
prev = bytearray(stride)
n = s = ss = 0
darkest, lightest = 255, 0
for y in range(height):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for i in range(bpp, stride): line[i] = (line[i] + line[i - bpp]) & 255
    elif f == 2:
        for i in range(stride): line[i] = (line[i] + prev[i]) & 255
    elif f == 3:
        for i in range(stride): line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
    elif f == 4:
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 255
    prev = line
    if y % 4:
        continue
    for x in range(0, width, 4):  # every 4th pixel of every 4th row: grey level
        i = x * bpp
        v = line[i] if bpp < 3 else (line[i] * 3 + line[i + 1] * 6 + line[i + 2]) // 10
        n += 1; s += v; ss += v * v
        darkest, lightest = min(darkest, v), max(lightest, v)
mean = s / max(n, 1)
sd = max(ss / max(n, 1) - mean * mean, 0) ** 0.5
if sd < 8 or lightest - darkest < 64:
    sys.exit(f"report check: the screenshot looks blank (grey level sd {sd:.1f}, range {darkest}-{lightest})")
print(f"{width}x{height} sd {sd:.0f}")
PY
)" || exit 1
echo "report check: $report — scripts ran without errors, $images loaded, slider moved to frames/000.png, picker shown$kind, screenshot not blank ($shot)"

#!/usr/bin/env bash
# Opens a report's index.html in headless Chromium and checks that (1) its scripts run without an
# error, (2) the step slider moves the frame to frames/000.png, (3) the word picker is shown, and
# (4) a screenshot of the page is not blank. Usage: bash Tools/test-report-browser.sh REPORT_DIR
set -euo pipefail
report="${1:?usage: test-report-browser.sh REPORT_DIR}"
[[ -f "$report/index.html" ]] || { echo "report check: $report/index.html: missing" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing chromium (for the report check)" >&2
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
        echo "report check skipped: chromium could not be installed"; exit 0
    fi
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$report" "$work/r"
# A copy of the page with a harness: record errors first, then after load move the slider and
# put the outcome in the title, which --dump-dom prints.
python3 - "$work/r/index.html" "$work/r/harness.html" <<'PY'
import sys
page = open(sys.argv[1], encoding="utf-8").read()
first = """<script>window.__errors = []; window.onerror = function (m) { window.__errors.push(String(m)); };</script>"""
last = """<script>
window.addEventListener("load", function () {
  var out = [];
  try {
    var r = document.getElementById("scrub-step"), img = document.getElementById("scrub-frame");
    if (!r || document.getElementById("scrub").hidden) { out.push("slider-hidden"); }
    else { r.value = 0; r.dispatchEvent(new Event("input")); out.push("frame=" + img.getAttribute("src")); }
    var p = document.getElementById("picker");
    out.push(p ? (p.hidden ? "picker-hidden" : "picker-shown") : "no-picker");
  } catch (e) { window.__errors.push(String(e)); }
  document.title = "RESULT " + out.join(" ") + " errors=" + window.__errors.length + " " + window.__errors.join(" | ");
});
</script>"""
page = page.replace("<head>", "<head>" + first, 1).replace("</body>", last + "</body>", 1)
open(sys.argv[2], "w", encoding="utf-8").write(page)
PY
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --allow-file-access-from-files)
dom="$(timeout 120 chromium "${flags[@]}" --virtual-time-budget=5000 --dump-dom "file://$work/r/harness.html" 2>/dev/null || true)"
title="$(printf '%s' "$dom" | grep -o '<title>RESULT[^<]*</title>' | sed 's/<[^>]*>//g' || true)"
[[ -n "$title" ]] || { echo "report check: the page's scripts did not finish (no result in the title)" >&2; exit 1; }
[[ "$title" == *"errors=0 "* ]] || { echo "report check: script errors: ${title#*errors=}" >&2; exit 1; }
[[ "$title" == *"frame=frames/000.png"* ]] || { echo "report check: the slider did not move to frames/000.png ($title)" >&2; exit 1; }
[[ "$title" == *"picker-shown"* || "$title" == *"no-picker"* ]] || { echo "report check: the word picker stayed hidden ($title)" >&2; exit 1; }
timeout 120 chromium "${flags[@]}" --window-size=1200,2000 --screenshot="$work/shot.png" "file://$work/r/index.html" >/dev/null 2>&1 || true
[[ -s "$work/shot.png" ]] || { echo "report check: no screenshot" >&2; exit 1; }
# Not blank: the screenshot's pixels vary (stdlib only: decode the PNG with zlib).
python3 - "$work/shot.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
pos, chunks, width, height, ctype = 8, [], 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        chunks.append(body)
    pos += 12 + n
raw = zlib.decompress(b"".join(chunks))
bpp = {2: 3, 6: 4}.get(ctype, 3)
stride = width * bpp + 1
# Sample the filter-free bytes of every 16th row; unfiltering is not needed to see variation.
values = set()
for y in range(0, height, 16):
    row = raw[y * stride + 1:(y + 1) * stride]
    values.update(row[::bpp * 7])
if len(values) < 16:
    sys.exit(f"report check: the screenshot looks blank ({len(values)} distinct byte values)")
PY
echo "report check: $report — scripts ran, slider moved, picker shown, screenshot not blank"

#!/usr/bin/env bash
# Runs Notebooks/trace.ipynb headless on a trace folder; exits non-zero if any cell fails.
#
#   Tools/test-notebook.sh TRACE_DIR [WORD]
#
# TRACE_DIR: a folder written by `pareidolia generate --trace DIR`. WORD: the prompt word whose attention
# map is drawn (default: the notebook's choice, the prompt's first word).
#
# Creates a venv in ${TMPDIR:-/tmp}/pareidolia-nb (with ${PYTHON:-python3}, >= 3.11) if missing and installs
# Notebooks/requirements.txt into it (again only when that file changes). The executed notebook and the
# figures go to ${PAREIDOLIA_NB_OUT:-${TMPDIR:-/tmp}/pareidolia-nb-out}; the trace folder is only read.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NOTEBOOK="$ROOT/Notebooks/trace.ipynb"
REQUIREMENTS="$ROOT/Notebooks/requirements.txt"
TRACE_DIR="$1"
WORD="${2:-}"
if [[ ! -d "$TRACE_DIR" ]]; then
    echo "test-notebook: no such trace folder: $TRACE_DIR" >&2
    exit 2
fi
TRACE_DIR="$(cd "$TRACE_DIR" && pwd)"
BASE="${TMPDIR:-/tmp}"
VENV="$BASE/pareidolia-nb"
OUT="${PAREIDOLIA_NB_OUT:-$BASE/pareidolia-nb-out}"
PY="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "test-notebook: creating $VENV"
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    echo "test-notebook: installing Notebooks/requirements.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$WANT" > "$STAMP"
fi

rm -rf "$OUT"
mkdir -p "$OUT/figures"
export PAREIDOLIA_TRACE="$TRACE_DIR"
export PAREIDOLIA_WORD="$WORD"
export PAREIDOLIA_FIGURES="$OUT/figures"
export MPLBACKEND=Agg
export MPLCONFIGDIR="$OUT/.matplotlib"
export PYDEVD_DISABLE_FILE_VALIDATION=1

echo "test-notebook: running $NOTEBOOK on $TRACE_DIR"
status=0
"$VENV/bin/python" - "$NOTEBOOK" "$OUT/trace.executed.ipynb" <<'PY' || status=$?
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

src, dst = sys.argv[1], sys.argv[2]
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, timeout=600, kernel_name="python3",
                        resources={"metadata": {"path": str(__import__("pathlib").Path(src).parent)}})
try:
    client.execute()
    ok = True
except CellExecutionError as e:
    print(e, file=sys.stderr)
    ok = False
finally:
    nbformat.write(nb, dst)

# Echo the cells' text output, so a CI log shows what the notebook found.
for i, cell in enumerate(nb.cells):
    if cell.cell_type != "code":
        continue
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            print(f"[cell {i}] " + o["text"].rstrip().replace("\n", f"\n[cell {i}] "))
        elif o.get("output_type") == "error":
            print(f"[cell {i}] ERROR {o['ename']}: {o['evalue']}")
print(f"executed notebook: {dst}")
sys.exit(0 if ok else 1)
PY
echo "test-notebook: figures in $OUT/figures:"
ls -l "$OUT/figures"
exit $status

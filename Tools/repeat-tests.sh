#!/usr/bin/env bash
# Runs the whole suite N times in a row (default 20), in parallel as Swift Testing does, on the
# build already there, and counts the runs that passed. For flaky-test hunts; not run by CI.
#   bash Tools/repeat-tests.sh [N] [extra swift test arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"; shift || true
swift build --build-tests >/dev/null || exit 1
log="$(mktemp -d)"
passed=0
for i in $(seq 1 "$n"); do
    if swift test --skip-build "$@" >"$log/run-$i.txt" 2>&1; then
        passed=$((passed + 1)); rm "$log/run-$i.txt"
    else
        echo "run $i failed:"; grep -E "✘" "$log/run-$i.txt" | cut -c1-240 | head -5
    fi
done
echo "$passed of $n runs passed${PAREIDOLIA_ISA:+ (PAREIDOLIA_ISA=$PAREIDOLIA_ISA)}; failed runs' logs in $log"
[[ $passed -eq $n ]]

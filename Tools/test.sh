#!/usr/bin/env bash
# The test command: system packages (when missing), the whole Swift test suite twice — once as the
# CPU is, once capped at AVX2 (PAREIDOLIA_ISA=avx2: our kernels' AVX2 paths and OpenBLAS's
# Haswell/Zen family, as an AVX2-only machine runs them) — then the trace notebook run headless on
# a trace the freshly built CLI writes from the tiny fixture model.
#
# Arguments go to `swift test` (e.g. --filter PromptParser); with arguments the notebook step and
# the capped run are skipped, PAREIDOLIA_SKIP_NOTEBOOK=1 skips the notebook (it needs PyPI),
# PAREIDOLIA_SKIP_BROWSER=1 the report's headless-Chromium check, and PAREIDOLIA_SKIP_FUZZ=1 the
# short fuzz run of every file reader (PAREIDOLIA_FUZZ_SECONDS each, default 8; Tools/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift build --build-tests
bin="$(swift build --show-bin-path)"

# Which kernels a run uses: our ISA level and OpenBLAS's core (OPENBLAS_VERBOSE=2 prints it at load).
describe() { echo "== suite: PAREIDOLIA_ISA=${PAREIDOLIA_ISA:-unset}, OpenBLAS $(OPENBLAS_VERBOSE=2 "$bin/pareidolia" --help 2>&1 >/dev/null | grep -m1 -o 'Core: .*' || echo 'core unknown')"; }

describe
swift test --skip-build "$@"
[[ $# -eq 0 ]] || exit 0

if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then
    if [[ "${PAREIDOLIA_ISA:-}" != avx2 ]]; then
        export PAREIDOLIA_ISA=avx2
        describe
        swift test --skip-build
        unset PAREIDOLIA_ISA
    fi
else
    echo "== no AVX2 on this CPU: the AVX2-capped run is skipped (the suite above ran the baseline paths)"
fi

# Every reader of outside files under libFuzzer for a few seconds, so a regression in one is
# caught here (Tools/fuzz.sh skips with a message where the toolchain has no libFuzzer).
if [[ "${PAREIDOLIA_SKIP_FUZZ:-0}" != 1 ]]; then
    bash Tools/fuzz.sh all "${PAREIDOLIA_FUZZ_SECONDS:-8}"
fi

if [[ "${PAREIDOLIA_SKIP_NOTEBOOK:-0}" != 1 ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$bin/pareidolia" generate --model Tests/Fixtures/tiny-sd --prompt "a witch and her black cat, oil painting" \
        --seed 1887838105 --steps 4 --sampler euler_a --width 64 --height 96 \
        --output "$work/image.png" --trace "$work/trace"
    # CLIP similarity with the embedded demo CLIP (any trace's x̂₀ can be scored), for the notebook's section 4.
    "$bin/pareidolia" clip "$work/trace" --phrases "a black cat" >/dev/null
    bash Tools/test-notebook.sh "$work/trace" witch
fi

# The report of a two-seed sweep, opened in headless Chromium: no script errors, the slider moves,
# the page is not blank. PAREIDOLIA_SKIP_BROWSER=1 skips it.
if [[ "${PAREIDOLIA_SKIP_BROWSER:-0}" != 1 ]]; then
    rwork="$(mktemp -d)"
    "$bin/pareidolia" generate --model Tests/Fixtures/tiny-sd --prompt "a witch and her black cat, oil painting" \
        --seeds 1887838105,4069519546 --steps 4 --sampler euler_a --width 64 --height 64 \
        --output "$rwork/image.png" --trace "$rwork/trace" >/dev/null
    "$bin/pareidolia" report "$rwork/trace" --out "$rwork/report"
    bash Tools/test-report-browser.sh "$rwork/report"
    rm -rf "$rwork"
    # The live workbench (pareidolia serve) driven as a person uses it: run, frames, scrub, word
    # map, hover ranking, cancel, fork (python3's standard library and chromium; skipped without).
    python3 Tools/test-serve-browser.py "$bin/pareidolia" Tests/Fixtures/tiny-sd --embedding Tests/Fixtures/pipeline/corajr.pt
fi

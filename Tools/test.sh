#!/usr/bin/env bash
# The test command: system packages (when missing), the whole Swift test suite, then the trace
# notebook run headless on a trace the freshly built CLI writes from the tiny fixture model.
#
# Arguments go to `swift test` (e.g. --filter PromptParser); with arguments the notebook step is
# skipped, and PAREIDOLIA_SKIP_NOTEBOOK=1 skips it too (it needs PyPI for its venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"

if [[ $# -eq 0 && "${PAREIDOLIA_SKIP_NOTEBOOK:-0}" != 1 ]]; then
    bin="$(swift build --show-bin-path)"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$bin/pareidolia" generate --model Tests/Fixtures/tiny-sd --prompt "a witch and her black cat, oil painting" \
        --seed 1887838105 --steps 4 --sampler euler_a --width 64 --height 96 \
        --output "$work/image.png" --trace "$work/trace"
    bash Tools/test-notebook.sh "$work/trace" witch
fi

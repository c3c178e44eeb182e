#!/usr/bin/env bash
# The test command: system packages (when missing), then the whole Swift test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"

#!/usr/bin/env bash
# Installs the release CLI and the embedded default model: PREFIX/bin/pareidolia and
# PREFIX/share/pareidolia/{demo-model,demo-clip,demo-embeddings} (where an installed binary looks
# for its default model). Usage: bash Tools/install.sh [PREFIX]   (default /usr/local)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-/usr/local}"
bash Tools/install-deps.sh
swift build -c release --product pareidolia 2>&1 | grep -v "prohibited flag" | tail -1
bin="$(swift build -c release --show-bin-path)/pareidolia"
install -d "$prefix/bin" "$prefix/share/pareidolia"
install -m 0755 "$bin" "$prefix/bin/pareidolia"
for d in demo-model demo-clip demo-embeddings; do
    [[ -d "Assets/$d" ]] || continue
    rm -rf "$prefix/share/pareidolia/$d"
    cp -r "Assets/$d" "$prefix/share/pareidolia/$d"
done
echo "installed $prefix/bin/pareidolia and its default model in $prefix/share/pareidolia"

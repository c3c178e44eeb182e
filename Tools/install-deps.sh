#!/usr/bin/env bash
# Installs the Debian packages Pareidolia builds against, when missing. Idempotent and quiet
# when everything is already there. Needs root or sudo only when something must be installed.
set -euo pipefail
# python3-venv: Tools/test-notebook.sh runs Notebooks/trace.ipynb in a throw-away venv.
packages=(libopenblas-dev libpng-dev libcairo2-dev libpango1.0-dev libgif-dev zlib1g-dev fonts-dejavu-core pkg-config python3-venv)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

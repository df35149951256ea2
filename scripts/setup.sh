#!/usr/bin/env bash
# Installs everything medlora needs on a fresh Debian 12 machine (run as root, or with sudo for the apt step):
#   1. libtorch: a pip PyTorch 2.x (what GPU users have; this image's pip installs it offline from its wheel store),
#      falling back to Debian's libtorch-dev 1.13 + OpenBLAS when pip cannot provide torch;
#   2. npm ci: the npm packages, the native addon (native/build.mjs) and the compiled TypeScript (dist/).
# Safe to run again: steps that are already done are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pip_torch() { python3 -c 'import torch' >/dev/null 2>&1; }
have_system_torch() { [ -f /usr/include/torch/csrc/api/include/torch/torch.h ] || [ -d /usr/include/ATen ]; }

if [ -n "${LIBTORCH:-}" ]; then
  echo "setup: using LIBTORCH=$LIBTORCH"
elif have_pip_torch; then
  echo "setup: found pip torch $(python3 -c 'import torch; print(torch.__version__)')"
else
  echo "setup: installing PyTorch (pip) for its libtorch ..."
  if command -v python3 >/dev/null && python3 -m pip install --quiet torch; then
    echo "setup: pip torch $(python3 -c 'import torch; print(torch.__version__)') installed"
  elif have_system_torch; then
    echo "setup: pip torch unavailable; using the system libtorch"
  else
    echo "setup: pip torch unavailable; installing Debian libtorch-dev + OpenBLAS"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq libtorch-dev libopenblas0-pthread >/dev/null
  fi
fi

echo "setup: npm ci (npm packages, native addon, TypeScript) ..."
npm ci --no-audit --no-fund
echo "setup: done. Try: node bin/medlora.js doctor"
